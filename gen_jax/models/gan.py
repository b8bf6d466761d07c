"""GAN players as pure Flax modules: generators map noise ``z`` (and a label) to samples; discriminators map
samples (and a label) to one logit each.

* :class:`MLPGenerator` / the ``mlp`` :class:`Discriminator`: the 2-D toys.
* :class:`DCGANGenerator` / the ``dcgan`` :class:`Discriminator` (Radford et al. 2016): no pooling, 4x4 stride-2
  convolutions down and 4x4 stride-2 transposed convolutions up, batch norm, ReLU and a tanh output in the
  generator, LeakyReLU(0.2) in the discriminator. On CPU the strided layers are computed as exactly equivalent
  matrix products (:class:`gen_jax.nn.Col2ImConvTranspose`, :class:`gen_jax.nn.SpaceToDepthConv`: XLA:CPU's
  weight gradients of the strided forms are slow paths); ``conv="flax"`` keeps the plain Flax layers (same
  parameters), for comparison.
* Conditional players: the generator takes the one-hot label beside ``z``; the discriminator adds the projection
  ``<embed(y), h(x)>`` to its logit (Miyato & Koyama 2018).
* Discriminator options against mode collapse (:mod:`gen_jax.nn.minibatch`): minibatch discrimination, minibatch
  standard deviation, packing; spectral normalisation of every layer (Miyato et al. 2018); batch, layer or no
  normalisation (no batch norm in a gradient-penalty critic: the penalty is per example).

Batch norm and spectral norm keep state in the ``batch_stats`` collection: apply with ``mutable=["batch_stats"]``
when training. ``axis_name`` set (under ``jax.pmap``) makes batch norm use the statistics of the global batch.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.nn.conv import Col2ImConvTranspose, SpaceToDepthConv
from gen_jax.nn.minibatch import MinibatchDiscrimination, minibatch_stddev, pack

NORMS = ("none", "batch", "layer")
MINIBATCH_FEATURES = ("none", "discrimination", "stddev")


def _with_label(z: jax.Array, labels, num_classes: int) -> jax.Array:
    if not num_classes:
        if labels is not None:
            raise ValueError("labels given to an unconditional player (num_classes = 0)")
        return z
    if labels is None:
        raise ValueError(f"this player is conditional ({num_classes} classes): pass labels")
    return jnp.concatenate([z, jax.nn.one_hot(labels, num_classes, dtype=z.dtype)], axis=-1)


class MLPGenerator(nn.Module):
    """``z -> x`` by ReLU layers of sizes ``hidden`` (batch norm after each when ``batch_norm``)."""

    out_dim: int
    hidden: Sequence[int] = (256, 256, 256)
    batch_norm: bool = False
    num_classes: int = 0
    axis_name: str | None = None

    @nn.compact
    def __call__(self, z: jax.Array, labels=None, train: bool = False) -> jax.Array:
        h = _with_label(z, labels, self.num_classes)
        for width in self.hidden:
            h = nn.Dense(width, use_bias=not self.batch_norm)(h)  # batch norm removes a bias: none to train
            if self.batch_norm:
                h = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=self.axis_name)(h)
            h = nn.relu(h)
        return nn.Dense(self.out_dim)(h)


class DCGANGenerator(nn.Module):
    """``z`` -> a dense layer to an ``(H / 2^n, W / 2^n, channels[0])`` map -> ``n = len(channels)`` 4x4
    stride-2 transposed convolutions (maps ``channels[1:]``, then the image's channels) -> tanh: images in
    [-1, 1]. Batch norm (``batch_norm``) and ReLU after every layer but the last."""

    image_shape: Sequence[int]
    channels: Sequence[int] = (128, 64)
    batch_norm: bool = True
    num_classes: int = 0
    conv: str = "col2im"  # col2im | flax (nn.ConvTranspose: same function and parameters, slow on CPU)
    axis_name: str | None = None

    @nn.compact
    def __call__(self, z: jax.Array, labels=None, train: bool = False) -> jax.Array:
        h_img, w_img, c_img = self.image_shape
        n = len(self.channels)
        if h_img % 2 ** n or w_img % 2 ** n:
            raise ValueError(f"DCGAN generator: {n} upsamplings need sides divisible by {2 ** n}, "
                             f"got {h_img}x{w_img}")
        if self.conv not in ("col2im", "flax"):
            raise ValueError(f"unknown conv {self.conv!r}; use col2im or flax")
        up = Col2ImConvTranspose if self.conv == "col2im" else nn.ConvTranspose

        def norm_relu(h):
            if self.batch_norm:
                h = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=self.axis_name)(h)
            return nn.relu(h)

        bias = not self.batch_norm  # batch norm removes a bias: none to train (its gradient is float noise)
        h = nn.Dense(h_img // 2 ** n * w_img // 2 ** n * self.channels[0], use_bias=bias)(
            _with_label(z, labels, self.num_classes))
        h = norm_relu(h.reshape(z.shape[0], h_img // 2 ** n, w_img // 2 ** n, self.channels[0]))
        for c in self.channels[1:]:
            h = norm_relu(up(c, (4, 4), (2, 2), padding="SAME", use_bias=bias)(h))
        return jnp.tanh(up(c_img, (4, 4), (2, 2), padding="SAME")(h))


class Discriminator(nn.Module):
    """Samples ``(B, ...)`` -> logits ``(B / pack,)``.

    Attributes:
      kind: ``mlp`` (Dense + LeakyReLU layers of sizes ``features``) or ``dcgan`` (4x4 stride-2 convolutions
        with ``features`` maps, LeakyReLU; no normalisation after the first, as DCGAN).
      norm: ``none`` | ``batch`` | ``layer`` after each layer but the first.
      spectral_norm: every weight divided by its largest singular value (one power iteration a call with
        ``update_stats``: the discriminator's own steps).
      minibatch: ``none`` | ``discrimination`` | ``stddev`` features before the output layer.
      pack: PacGAN's degree (1 = no packing).
      num_classes: > 0: the projection discriminator.
      conv: ``space_to_depth`` (fast on CPU) or ``flax`` (``nn.Conv`` with strides: same parameters).
    """

    kind: str = "mlp"
    features: Sequence[int] = (256, 256)
    norm: str = "none"
    spectral_norm: bool = False
    minibatch: str = "none"
    minibatch_group: int = 4
    pack: int = 1
    num_classes: int = 0
    conv: str = "space_to_depth"
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, labels=None, update_stats: bool = True) -> jax.Array:
        if self.kind not in ("mlp", "dcgan"):
            raise ValueError(f"unknown discriminator kind {self.kind!r}; use mlp or dcgan")
        if self.norm not in NORMS:
            raise ValueError(f"unknown discriminator norm {self.norm!r}; known: {NORMS}")
        if self.minibatch not in MINIBATCH_FEATURES:
            raise ValueError(f"unknown minibatch feature {self.minibatch!r}; known: {MINIBATCH_FEATURES}")
        if self.conv not in ("space_to_depth", "flax"):
            raise ValueError(f"unknown conv {self.conv!r}; use space_to_depth or flax")
        if self.num_classes and self.pack > 1:
            raise ValueError("packing (pack > 1) with a conditional discriminator is not defined: a pack mixes labels")

        def layer(module, h):
            if self.spectral_norm:
                return nn.SpectralNorm(module)(h, update_stats=update_stats)
            return module(h)

        def normalise(h):
            if self.norm == "batch":
                return nn.BatchNorm(use_running_average=False, momentum=0.9, axis_name=self.axis_name)(h)
            if self.norm == "layer":
                return nn.LayerNorm()(h)
            return h

        h = pack(x, self.pack)
        for i, width in enumerate(self.features):
            bias = not (i and self.norm == "batch")  # batch norm removes a bias
            if self.kind == "mlp":
                module = nn.Dense(width, use_bias=bias)
            elif self.conv == "space_to_depth":
                module = SpaceToDepthConv(width, (4, 4), (2, 2), padding=((1, 1), (1, 1)), use_bias=bias)
            else:
                module = nn.Conv(width, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)), use_bias=bias)
            h = layer(module, h)
            if i:
                h = normalise(h)
            h = nn.leaky_relu(h, 0.2)
        if self.minibatch == "stddev":  # on the last map (a channel) or features
            h = minibatch_stddev(h, self.minibatch_group)
        h = h.reshape(h.shape[0], -1)
        if self.minibatch == "discrimination":
            h = MinibatchDiscrimination()(h)
        logit = layer(nn.Dense(1), h)[:, 0]
        if self.num_classes:
            if labels is None:
                raise ValueError(f"this discriminator is conditional ({self.num_classes} classes): pass labels")
            embed = nn.Embed(self.num_classes, h.shape[-1], embedding_init=nn.initializers.normal(0.02))(labels)
            logit = logit + jnp.sum(embed * h, axis=-1)
        elif labels is not None:
            raise ValueError("labels given to an unconditional discriminator (num_classes = 0)")
        return logit
