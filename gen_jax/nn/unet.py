"""A small U-Net for images (DDPM's, Ho et al. 2020, scaled down): residual blocks with group norm and a
time (and optional class) embedding added in each block, average-pool down-sampling, nearest-neighbour
up-sampling followed by a 3x3 convolution, skip connections by concatenation and optional self-attention at the
lowest resolution.

Built for XLA:CPU's fast paths: every convolution is stride-1, down-sampling is a pooling and up-sampling a repeat,
so no strided or transposed convolution (whose weight gradient takes XLA:CPU's slow path) appears anywhere. The
convolutions are ``conv="native"`` (:mod:`gen_jax.nn.cpu_conv`: gen_jax's C++ kernels for the forward pass, both
gradients and the bias gradient on CPU, XLA's convolution elsewhere, and the group norms + SiLU of
:mod:`gen_jax.nn.cpu_norm`; the diffusion family's default), ``"flax"`` (``nn.Conv``) or ``"patch"``
(``PatchConv``, one matrix product of shifted inputs; the class's default), all on the same parameters
(``tests/test_nn.py`` checks that they give the same function).
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from gen_jax.nn import cpu_conv, cpu_norm
from gen_jax.nn.conv import PatchConv
from gen_jax.nn.embeddings import sinusoidal_embedding
from gen_jax.nn.resample import average_pool, nearest_upsample

CONV_IMPLEMENTATIONS = ("patch", "flax", "native")


class Conv(nn.Module):
    """A stride-1 "SAME" convolution by ``impl`` (``patch`` | ``flax`` | ``native``), with the same parameter tree
    every way."""

    features: int
    kernel_size: int = 3
    impl: str = "patch"
    zero_init: bool = False

    @nn.compact
    def __call__(self, x):
        kw = dict(kernel_init=nn.initializers.zeros_init()) if self.zero_init else {}
        size = (self.kernel_size, self.kernel_size)
        if self.impl == "patch":
            return PatchConv(self.features, size, padding="SAME", name="conv", **kw)(x)
        if self.impl == "flax":
            return nn.Conv(self.features, size, padding="SAME", name="conv", **kw)(x)
        if self.impl == "native":
            return cpu_conv.Conv(self.features, self.kernel_size, name="conv", **kw)(x)
        raise ValueError(f"unknown conv implementation {self.impl!r}; known: {CONV_IMPLEMENTATIONS}")


def _norm(x, groups: int, impl: str, silu: bool = True):
    """Group norm (``gcd(groups, channels)`` groups), then SiLU where ``silu``: ``flax.linen.GroupNorm`` or, with
    the native convolutions, :class:`gen_jax.nn.cpu_norm.GroupNorm` (the same parameters and function)."""
    g = math.gcd(groups, x.shape[-1])
    if impl == "native":
        return cpu_norm.GroupNorm(num_groups=g, activation="silu" if silu else None)(x)
    y = nn.GroupNorm(num_groups=g)(x)
    return nn.silu(y) if silu else y


class ResBlock(nn.Module):
    """``x + conv(silu(norm(conv(silu(norm(x))) + dense(emb))))``; a 1x1 convolution on the skip when the
    channel count changes; the last convolution starts at zero, so a fresh block is the identity."""

    features: int
    groups: int = 8
    dropout: float = 0.0
    conv: str = "patch"

    @nn.compact
    def __call__(self, x, emb, *, train: bool = False):
        h = Conv(self.features, 3, self.conv)(_norm(x, self.groups, self.conv))
        h = h + nn.Dense(self.features)(nn.silu(emb))[:, None, None, :]
        h = _norm(h, self.groups, self.conv)
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        h = Conv(self.features, 3, self.conv, zero_init=True)(h)
        skip = x if x.shape[-1] == self.features else Conv(self.features, 1, self.conv)(x)
        return skip + h


class SelfAttention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, residual, the output projection at zero."""

    num_heads: int = 1
    groups: int = 8
    conv: str = "flax"  # the U-Net's convolutions; "native" brings gen_jax.nn.cpu_norm's group norm (_norm)

    @nn.compact
    def __call__(self, x):
        b, h, w, c = x.shape
        tokens = _norm(x, self.groups, self.conv, silu=False).reshape(b, h * w, c)
        out = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, out_kernel_init=nn.initializers.zeros_init()
                                              )(tokens, tokens)
        return x + out.reshape(b, h, w, c)


def downsample(x):
    """2x2 average pooling (an odd side loses its last row/column)."""
    h, w = x.shape[1:3]
    return average_pool(x[:, :h // 2 * 2, :w // 2 * 2], 2)


def upsample(x, size):
    """Nearest-neighbour to ``size = (H, W)`` (twice the input, or that plus one for an odd original side).

    :func:`nearest_upsample`, the last row / column repeated only where a side is odd: ``jnp.pad(mode="edge")``,
    even with nothing to pad, has a gradient 100-300x slower on XLA:CPU (with ``jnp.repeat``: 26 / 44 ms against
    0.1-0.2 ms at the MNIST U-Net's 7x7x64 / 14x14x32, batch 128); the same function (tests/test_nn.py)."""
    b, h, w, c = x.shape
    x = nearest_upsample(x, 2)
    if size[0] > 2 * h:
        x = jnp.concatenate([x, jnp.broadcast_to(x[:, -1:], (b, size[0] - 2 * h, 2 * w, c))], axis=1)
    if size[1] > 2 * w:
        x = jnp.concatenate([x, jnp.broadcast_to(x[:, :, -1:], (b, size[0], size[1] - 2 * w, c))], axis=2)
    return x


class UNet(nn.Module):
    """``(x, t_features, labels) -> output`` of ``x``'s shape (``out_channels`` channels, default ``x``'s).

    Attributes:
      channels: feature maps at each resolution, from the input's down (``len(channels) - 1`` halvings).
      num_res_blocks: residual blocks per resolution on each side.
      attention: self-attention in the middle (the lowest resolution).
      num_classes: a class embedding when > 0; label ``num_classes`` means "no label" (classifier-free guidance).
      time_dim: the sinusoidal embedding's size; the embedding MLP is ``4 * channels[0]`` wide.
      conv: ``native`` (gen_jax.nn.cpu_conv, and gen_jax.nn.cpu_norm's group norms), ``flax`` (``nn.Conv``) or
        ``patch`` (matrix-product convolutions).
    """

    channels: Sequence[int] = (32, 64, 64)
    num_res_blocks: int = 1
    attention: bool = True
    num_heads: int = 1
    num_classes: int = 0
    time_dim: int = 64
    groups: int = 8
    dropout: float = 0.0
    out_channels: int | None = None
    conv: str = "patch"

    @nn.compact
    def __call__(self, x, t_features, labels=None, *, train: bool = False):
        emb_dim = 4 * self.channels[0]
        emb = sinusoidal_embedding(t_features, self.time_dim)
        emb = nn.Dense(emb_dim)(nn.silu(nn.Dense(emb_dim)(emb)))
        if self.num_classes:
            y = jnp.full((x.shape[0],), self.num_classes, jnp.int32) if labels is None else labels
            emb = emb + nn.Embed(self.num_classes + 1, emb_dim, name="label")(y)
        block = lambda c: ResBlock(c, self.groups, self.dropout, self.conv)
        h = Conv(self.channels[0], 3, self.conv)(x)
        skips = []
        for i, c in enumerate(self.channels):
            for _ in range(self.num_res_blocks):
                h = block(c)(h, emb, train=train)
            skips.append(h)
            if i < len(self.channels) - 1:
                h = downsample(h)
        h = block(self.channels[-1])(h, emb, train=train)
        if self.attention:
            h = SelfAttention(self.num_heads, self.groups, self.conv)(h)
        h = block(self.channels[-1])(h, emb, train=train)
        for i in reversed(range(len(self.channels))):
            c = self.channels[i]
            if i < len(self.channels) - 1:
                h = Conv(c, 3, self.conv)(upsample(h, skips[i].shape[1:3]))
            h = jnp.concatenate([h, skips[i]], axis=-1)
            for _ in range(self.num_res_blocks):
                h = block(c)(h, emb, train=train)
        h = _norm(h, self.groups, self.conv)
        return Conv(self.out_channels or x.shape[-1], 3, self.conv, zero_init=True)(h)
