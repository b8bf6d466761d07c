"""Discriminator features computed across the minibatch, against mode collapse: a collapsed generator's batch
looks unlike a data batch (too little spread), which no per-example feature can see.

* :class:`MinibatchDiscrimination` (Salimans et al. 2016, "Improved techniques for training GANs").
* :func:`minibatch_stddev` (Karras et al. 2018, progressive GAN; StyleGAN's ``group_size``).
* :func:`pack` (PacGAN, Lin et al. 2018): the discriminator judges ``m`` samples at once, all real or all fake.

Under ``jax.pmap`` each device sees its own part of the batch: the statistics are per device (as in StyleGAN's
groups), so a run with these features is not the same update on 4 devices as on one.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class MinibatchDiscrimination(nn.Module):
    """Appends ``num_kernels`` features ``o_b(x_i) = sum_{j != i} exp(-|| M_{i,b} - M_{j,b} ||_1)`` to ``(B, F)``
    features, with ``M = x T`` reshaped to ``(B, num_kernels, kernel_dim)``."""

    num_kernels: int = 16
    kernel_dim: int = 8

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        t = self.param("T", nn.initializers.normal(0.1), (x.shape[-1], self.num_kernels * self.kernel_dim))
        m = (x @ t).reshape(x.shape[0], self.num_kernels, self.kernel_dim)
        l1 = jnp.sum(jnp.abs(m[:, None] - m[None]), axis=-1)  # (B, B, num_kernels)
        o = jnp.sum(jnp.exp(-l1), axis=1) - 1.0  # minus each example's own exp(0)
        return jnp.concatenate([x, o], axis=-1)


def minibatch_stddev(x: jax.Array, group_size: int = 4) -> jax.Array:
    """Appends one feature (a channel for images): the standard deviation of each feature over a group of
    ``group_size`` examples, averaged over features, the same for every member of the group (Karras et al.
    2018). ``B`` must be divisible by the group size (the whole batch when it is smaller)."""
    b = x.shape[0]
    g = min(group_size, b)
    if b % g:
        raise ValueError(f"minibatch stddev: batch {b} is not divisible by the group size {g}")
    y = x.reshape(g, b // g, *x.shape[1:])  # groups of examples b // g apart, as StyleGAN's reshape
    std = jnp.sqrt(jnp.var(y, axis=0) + 1e-8)  # (B / g, ...)
    s = jnp.mean(std.reshape(b // g, -1), axis=-1)  # one number per group
    s = jnp.tile(s, g)  # back to (B,): example i belongs to group i % (b // g)
    feature = jnp.broadcast_to(s.reshape(b, *([1] * (x.ndim - 1))), (*x.shape[:-1], 1))
    return jnp.concatenate([x, feature], axis=-1)


def pack(x: jax.Array, m: int) -> jax.Array:
    """PacGAN's packing: ``(B, ..., C) -> (B / m, ..., m C)``, ``m`` consecutive examples side by side in the
    last axis (channels of an image, features of a vector)."""
    if m == 1:
        return x
    b = x.shape[0]
    if b % m:
        raise ValueError(f"packing: batch {b} is not divisible by the packing degree {m}")
    y = x.reshape(b // m, m, *x.shape[1:])
    y = jnp.moveaxis(y, 1, -2)  # (B / m, ..., m, C)
    return y.reshape(b // m, *x.shape[1:-1], m * x.shape[-1])
