"""Energy networks ``x -> E(x)`` (or a classifier's logits, JEM's energy) for energy-based models.

Smooth activations (Swish by default: Langevin dynamics follows ``grad_x E``, which ReLU makes piecewise
constant), optional spectral normalisation (Miyato et al. 2018; Du & Mordatch 2019 use it for stability), and
the matrix-product convolutions of :mod:`gen_jax.nn.conv` (XLA:CPU's own convolutions are several times slower
here; both input and weight gradients are matrix products too).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from gen_jax.nn.conv import PatchConv, SpaceToDepthConv

ACTIVATIONS = {"swish": nn.swish, "softplus": nn.softplus, "elu": nn.elu, "leaky_relu": lambda h: nn.leaky_relu(h, 0.2)}


class EnergyNet(nn.Module):
    """``(B, ...)`` -> energies ``(B,)``, or logits ``(B, num_classes)`` when ``num_classes > 0`` (JEM).

    Attributes:
      kind: ``mlp`` (Dense layers of sizes ``features`` on the flattened input) or ``conv`` (a 3x3 convolution
        with ``features[0]`` maps, then a 4x4 stride-2 convolution per further entry, then a Dense layer of
        ``hidden`` units).
      activation: one of ``ACTIVATIONS``.
      spectral_norm: every weight divided by its largest singular value (a power iteration per call with
        ``update_stats``; sampling reads the vectors without advancing them).
    """

    kind: str = "mlp"
    features: Sequence[int] = (128, 128)
    hidden: int = 128
    activation: str = "swish"
    spectral_norm: bool = False
    num_classes: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool = False) -> jax.Array:
        if self.kind not in ("mlp", "conv"):
            raise ValueError(f"unknown energy network kind {self.kind!r}; use mlp or conv")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; known: {sorted(ACTIVATIONS)}")
        act = ACTIVATIONS[self.activation]

        def layer(module, h):
            return nn.SpectralNorm(module)(h, update_stats=update_stats) if self.spectral_norm else module(h)

        h = x
        if self.kind == "mlp":
            h = h.reshape(h.shape[0], -1)
            for width in self.features:
                h = act(layer(nn.Dense(width), h))
        else:
            for i, width in enumerate(self.features):
                module = PatchConv(width, (3, 3)) if i == 0 else SpaceToDepthConv(width, (4, 4), (2, 2))
                h = act(layer(module, h))
            h = act(layer(nn.Dense(self.hidden), h.reshape(h.shape[0], -1)))
        out = layer(nn.Dense(max(self.num_classes, 1)), h)
        return out if self.num_classes else out[:, 0]
