"""Autoregressive image models: ``log p(x) = sum_d log p(x_d | x_<d)``, exact, trained by NLL.

:class:`MADEImage` (Germain et al. 2015): one masked MLP computes every conditional in a single pass.
Order- and connectivity-agnostic training draws one of ``num_masks`` (order, hidden degrees) pairs per step,
all sharing the weights; at test time the ensemble ``log (1/M) sum_m p_m(x)`` is a proper density too.

Outputs per pixel: a Bernoulli logit for 2 levels, ``K`` categorical logits for ``K > 2`` levels.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.nn.masked import made_degrees


def made_degree_set(num_inputs: int, hidden: Sequence[int], num_masks: int) -> list[np.ndarray]:
    """Degrees of ``num_masks`` MADE connectivities, stacked per layer: ``[(M, D) orders, (M, H1), ...]``.
    With one mask: the natural order and deterministic degrees; with several: random ones per mask. Masks
    are computed from these in the graph (cheaper than storing ``M`` dense masks)."""
    sets = [made_degrees(num_inputs, hidden, seed=None if num_masks == 1 else m) for m in range(num_masks)]
    return [np.stack([s[i] for s in sets]).astype(np.int32) for i in range(len(hidden) + 1)]


class MADEImage(nn.Module):
    """MADE over the ``D`` pixels of an image with ``num_levels`` levels (``image_shape`` = (H, W, C))."""

    image_shape: tuple[int, int, int]
    num_levels: int
    hidden: Sequence[int] = (500,)
    num_masks: int = 1
    num_classes: int = 0  # > 0: class-conditional, the one-hot label feeds every hidden unit

    @property
    def num_dims(self) -> int:
        return int(np.prod(self.image_shape))

    @property
    def outputs_per_dim(self) -> int:
        return 1 if self.num_levels == 2 else self.num_levels

    def setup(self):
        d = self.num_dims
        self.degrees = made_degree_set(d, tuple(self.hidden), self.num_masks)
        widths = [d, *self.hidden, d * self.outputs_per_dim]
        self.kernels = [self.param(f"kernel_{i}", nn.initializers.lecun_normal(), (widths[i], widths[i + 1]))
                        for i in range(len(widths) - 1)]
        self.biases = [self.param(f"bias_{i}", nn.initializers.zeros, (widths[i + 1],))
                       for i in range(len(widths) - 1)]
        # Direct input -> output connections (masked like the output layer), as in the MADE paper's models.
        self.direct = self.param("direct", nn.initializers.zeros, (d, d * self.outputs_per_dim))
        if self.num_classes:
            self.context = [self.param(f"context_{i}", nn.initializers.lecun_normal(), (self.num_classes, w))
                            for i, w in enumerate(self.hidden)]

    def logits(self, x: jax.Array, mask_index: jax.Array | int = 0, y: jax.Array | None = None) -> jax.Array:
        """Per-pixel logits ``(B, D)`` (2 levels) or ``(B, D, K)``, for integer images ``x`` ``(B, H, W, C)``."""
        b, d = x.shape[0], self.num_dims
        inp = x.reshape(b, d).astype(jnp.float32) / (self.num_levels - 1)
        deg = [jnp.asarray(g)[mask_index] for g in self.degrees]
        order = deg[0]
        # MADE's rules: hidden unit sees degrees <= its own; output d sees degrees < order(d).
        masks = [(a[:, None] <= b[None, :]).astype(jnp.float32) for a, b in zip(deg[:-1], deg[1:])]
        masks.append(jnp.tile((deg[-1][:, None] < order[None, :]).astype(jnp.float32), (1, self.outputs_per_dim)))
        h = inp
        for i in range(len(self.hidden)):
            h = h @ (self.kernels[i] * masks[i]) + self.biases[i]
            if self.num_classes:
                h = h + jax.nn.one_hot(y, self.num_classes) @ self.context[i]
            h = nn.relu(h)
        # The direct connection obeys the strict output rule: input order < output order.
        direct_mask = (order[:, None] < order[None, :]).astype(jnp.float32)
        direct_mask = jnp.tile(direct_mask, (1, self.outputs_per_dim))
        out = h @ (self.kernels[-1] * masks[-1]) + self.biases[-1] + inp @ (self.direct * direct_mask)
        if self.outputs_per_dim == 1:
            return out
        return out.reshape(b, self.outputs_per_dim, d).swapaxes(1, 2)

    def log_prob(self, x: jax.Array, mask_index: jax.Array | int = 0, y: jax.Array | None = None) -> jax.Array:
        """Exact ``log p_m(x)`` per example (nats) under mask ``m``."""
        logits = self.logits(x, mask_index, y)
        flat = x.reshape(x.shape[0], -1)
        if self.outputs_per_dim == 1:
            t = flat.astype(jnp.float32)
            return jnp.sum(t * jax.nn.log_sigmoid(logits) + (1 - t) * jax.nn.log_sigmoid(-logits), -1)
        logp = jax.nn.log_softmax(logits, -1)
        return jnp.take_along_axis(logp, flat[..., None].astype(jnp.int32), -1)[..., 0].sum(-1)

    def ensemble_log_prob(self, x: jax.Array, y: jax.Array | None = None) -> jax.Array:
        """``log (1/M) sum_m p_m(x)``: the order-ensemble density (a mixture, so still normalised)."""
        per_mask = jnp.stack([self.log_prob(x, m, y) for m in range(self.num_masks)])
        return jax.nn.logsumexp(per_mask, 0) - math.log(self.num_masks)

    def __call__(self, x, mask_index=0, y=None):
        return self.log_prob(x, mask_index, y)

    def sample(self, rng: jax.Array, num: int, mask_index: int = 0, y: jax.Array | None = None,
               temperature: float = 1.0) -> jax.Array:
        """Ancestral sampling in mask ``mask_index``'s order: ``D`` passes (the d-th fixes pixel d)."""
        d = self.num_dims
        order = np.asarray(self.degrees[0])[mask_index]
        positions = np.argsort(order)  # the pixel sampled at step t

        def step(t, carry):
            x, key = carry
            key, sub = jax.random.split(key)
            pos = jnp.asarray(positions)[t]
            logits = self.logits(x.reshape(num, *self.image_shape), mask_index, y)[:, pos] / temperature
            if self.outputs_per_dim == 1:
                v = jax.random.bernoulli(sub, jax.nn.sigmoid(logits)).astype(jnp.int32)
            else:
                v = jax.random.categorical(sub, logits).astype(jnp.int32)
            return x.at[:, pos].set(v), key

        x0 = jnp.zeros((num, d), jnp.int32)
        x, _ = jax.lax.fori_loop(0, d, step, (x0, rng))
        return x.reshape(num, *self.image_shape)
