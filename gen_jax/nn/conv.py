"""Convolutional encoder/decoder and a transposed convolution that avoids XLA:CPU's slow path.

XLA on CPU computes the *weight gradient* of a strided transposed convolution (``lax.conv_transpose``, i.e. an
input-dilated convolution) through a slow generic path: a 4x4 stride-2 128->64 ``nn.ConvTranspose`` at batch
128 takes ~288 ms forward+backward here against ~19 ms in PyTorch. :class:`Col2ImConvTranspose` computes
exactly the same function as PyTorch does ("col2im"): one matrix product of every input pixel with the whole
kernel, ``(B h w, in) @ (in, kh kw out)``, then each output phase ``a`` (rows ``s*m + a``) sums the shifted
slices of the taps ``t = s*q + a`` that land there, and the phases interleave (:func:`col2im`). Its gradients
are a matrix product and slices: the taps are taken by one ``lax.split``, whose transpose is one concatenate
(indexing each tap transposed to a sum of k*k zero-padded copies of the kernel-sized array, 39 ms of the
DCGAN step in a profile; 2026-12-03). Same parameters, same outputs, same gradients (``tests/test_nn.py``
checks all three against ``nn.ConvTranspose``). (Until 2026-11-23 it was a sub-pixel convolution, Shi et al. 2016: one 3x3
stride-1 convolution for all phases, 9 taps where each phase meets 4; col2im measured 62 vs 85 ms and 270 vs
370 ms forward + backward at 7x7 and 14x14 inputs, and took the DCGAN step from 0.143 to 0.111 s.)

:class:`SpaceToDepthConv` does the same for strided convolutions (the discriminator's downsampling).

The same holds, less dramatically, for ordinary stride-1 convolutions with many channels: in the gated PixelCNN
(64 maps, 28x28, batch 64) the weight gradient of a 1x1 ``nn.Conv`` took ~89 ms against ~5 ms for its forward
pass in a one-off profile. :class:`PatchConv` computes the convolution as one matrix product of the stacked shifted inputs
("im2col") with the reshaped kernel, whose gradients are matrix products too; the whole PixelCNN training step
goes from 2.39 s to 1.43 s (``experiments/benchmark_patch_conv.py``, BENCHMARKS.md).
"""

from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax


def conv_transpose_padding(k: int, s: int, padding: str) -> tuple[int, int]:
    """The (low, high) padding of the dilated input that ``lax.conv_transpose`` uses for ``padding``."""
    if padding == "SAME":
        pad_len = k + s - 2
        pad_lo = k - 1 if s > k - 1 else int(np.ceil(pad_len / 2))
    elif padding == "VALID":
        pad_len = k + s - 2 + max(k - s, 0)
        pad_lo = k - 1
    else:
        raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
    return pad_lo, pad_len - pad_lo


def _phase_taps(n: int, k: int, s: int, padding: str):
    """For one spatial axis: the sub-kernel gather table, the stride-1 padding, and the output size.

    Returns ``(taps, (lo, hi), out_size)`` where ``taps[j, a]`` is the kernel tap that input offset
    ``d_min + j`` contributes to output phase ``a`` (``k`` = no tap, read as zero).
    """
    pad_lo, pad_hi = conv_transpose_padding(k, s, padding)
    out_size = (n - 1) * s + 1 + pad_lo + pad_hi - k + 1
    # Output o = s*i + a reads dilated position o + t - pad_lo, an input pixel iff it is a multiple of s.
    offsets = {a: [(a + t - pad_lo) // s for t in range(k) if (a + t - pad_lo) % s == 0] for a in range(s)}
    d_min = min(min(v) for v in offsets.values() if v)
    d_max = max(max(v) for v in offsets.values() if v)
    taps = np.full((d_max - d_min + 1, s), k, np.int32)
    for a in range(s):
        for d in offsets[a]:
            taps[d - d_min, a] = s * d + pad_lo - a
    m = -(-out_size // s)  # ceil: phases computed on a common grid, then cropped
    return taps, (-d_min, (m - 1 + d_max) - (n - 1)), out_size


def patch_matmul(x: jax.Array, kernel: jax.Array, dilation: tuple[int, int] = (1, 1)) -> jax.Array:
    """The VALID stride-1 convolution of ``x`` ``(B, H, W, C)`` with ``kernel`` ``(kh, kw, C, O)`` (taps
    ``dilation`` apart) as one matrix product of the stacked shifted inputs ("im2col")."""
    kh, kw, cin, cout = kernel.shape
    dh, dw = dilation
    batch, h, w, _ = x.shape
    out_h, out_w = h - dh * (kh - 1), w - dw * (kw - 1)
    # Patch channel order (i, j, c) matches kernel.reshape(kh * kw * cin, out).
    patches = shifted_patches(x, (kh, kw), (out_h, out_w), dilation)
    return (patches.reshape(-1, kh * kw * cin) @ kernel.reshape(kh * kw * cin, cout)).reshape(batch, out_h, out_w,
                                                                                             cout)


def shifted_patches(x: jax.Array, taps: tuple[int, int], out: tuple[int, int],
                    dilation: tuple[int, int] = (1, 1)) -> jax.Array:
    """The ``taps`` shifted slices of ``x`` side by side: ``(B, out_h, out_w, kh kw C)``, channel ``(i, j, c)`` =
    ``x[b, o + dh i, p + dw j, c]``."""
    (kh, kw), (out_h, out_w), (dh, dw) = taps, out, dilation
    cols = [x[:, i * dh:i * dh + out_h, j * dw:j * dw + out_w, :] for i in range(kh) for j in range(kw)]
    return cols[0] if len(cols) == 1 else jnp.concatenate(cols, axis=-1)


def col2im(cols: jax.Array, strides: tuple[int, int]) -> jax.Array:
    """The full transposed convolution's output (padding ``k - 1``, size ``(n - 1) * s + k``) from ``cols``
    ``(B, h, w, kh, kw, out)``, every input pixel times every kernel tap: tap ``(t, u)`` of pixel ``(i, j)``,
    stored flipped at ``(kh-1-t, kw-1-u)``, lands at ``(s*i + t, s*j + u)`` and overlapping taps add."""
    batch, h, w, kh, kw, feat = cols.shape
    sh, sw = strides
    # Output row s * m + a (phase a) sums the taps t = s * q + a of input rows m - q: per phase, a sum of
    # shifted (zero-padded) slices that fuses into one pass, then the phases interleave (depth to space).
    qh, qw = -(-kh // sh), -(-kw // sw)
    # the taps as one split (its transpose is one concatenate; indexing each tap would transpose to a sum of
    # kh * kw zero-padded arrays)
    taps = lax.split(cols.reshape(batch, h, w, kh * kw, feat), [1] * (kh * kw), axis=3)
    rows = []
    for a in range(sh):
        phases = []
        for b in range(sw):
            acc = jnp.zeros((batch, h + qh - 1, w + qw - 1, feat), cols.dtype)
            for q in range(qh):
                for r in range(qw):
                    t, u = sh * q + a, sw * r + b
                    if t < kh and u < kw:
                        acc = acc + jnp.pad(taps[(kh - 1 - t) * kw + kw - 1 - u][:, :, :, 0],
                                            ((0, 0), (q, qh - 1 - q), (r, qw - 1 - r), (0, 0)))
            phases.append(acc)
        rows.append(jnp.stack(phases, axis=3))  # (B, M, N, sw, out)
    y = jnp.stack(rows, axis=2).reshape(batch, (h + qh - 1) * sh, (w + qw - 1) * sw, feat)
    return y[:, :(h - 1) * sh + kh, :(w - 1) * sw + kw]


class Col2ImConvTranspose(nn.Module):
    """Drop-in for ``flax.linen.ConvTranspose`` (2-D, NHWC, ``transpose_kernel=False``), fast on CPU.

    Parameters are named and shaped as ``nn.ConvTranspose``'s (``kernel`` ``(kh, kw, in, out)``, ``bias``),
    so the two are interchangeable on the same params.
    """

    features: int
    kernel_size: Sequence[int] = (4, 4)
    strides: Sequence[int] = (2, 2)
    padding: str = "SAME"
    use_bias: bool = True
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        batch, h, w, cin = x.shape
        kernel = self.param("kernel", self.kernel_init, (kh, kw, cin, self.features), jnp.float32)
        lo_h, hi_h = conv_transpose_padding(kh, sh, self.padding)
        lo_w, hi_w = conv_transpose_padding(kw, sw, self.padding)
        # "col2im": every input pixel times the whole kernel in one matrix product, (B h w, in) @ (in, kh kw out);
        # tap (t, u) lands at output s * i + t of the full (padding k - 1) transposed convolution, so the output
        # is the sum of kh * kw strided slices (:func:`col2im`); the requested padding crops (or pads) it.
        cols = (x.reshape(-1, cin) @ kernel.transpose(2, 0, 1, 3).reshape(cin, -1).astype(x.dtype))
        y = col2im(cols.reshape(batch, h, w, kh, kw, self.features), (sh, sw))
        full_h, full_w = (h - 1) * sh + kh, (w - 1) * sw + kw
        out_h, out_w = (h - 1) * sh + 1 + lo_h + hi_h - kh + 1, (w - 1) * sw + 1 + lo_w + hi_w - kw + 1
        low_h, low_w = lo_h - (kh - 1), lo_w - (kw - 1)
        y = lax.pad(y, jnp.zeros((), x.dtype), ((0, 0, 0), (low_h, out_h - full_h - low_h, 0),
                                                (low_w, out_w - full_w - low_w, 0), (0, 0, 0)))
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32)
        return y


def _s2d_patches(x, taps, strides, out):
    """The patches of :func:`space_to_depth_patches` through the space-to-depth array: reshape, transpose, then
    the ``taps`` shifted slices of it (the fast form of their transpose, the gradient)."""
    sh, sw = strides
    batch, rows, cols, cin = x.shape
    x = x.reshape(batch, rows // sh, sh, cols // sw, sw, cin).transpose(0, 1, 3, 2, 4, 5)
    return shifted_patches(x.reshape(batch, rows // sh, cols // sw, sh * sw * cin), taps, out)


def _strided_patches(x, taps, strides, out):
    """The same patches as ``uh * uw * sh * sw`` strided slices of ``x`` (the fast form of the values)."""
    (uh, uw), (sh, sw), (out_h, out_w) = taps, strides, out
    batch, _, _, cin = x.shape
    parts = [lax.slice(x, (0, sh * i + r, sw * j + c, 0),
                       (batch, sh * i + r + sh * (out_h - 1) + 1, sw * j + c + sw * (out_w - 1) + 1, cin),
                       (1, sh, sw, 1))
             for i in range(uh) for j in range(uw) for r in range(sh) for c in range(sw)]
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def space_to_depth_patches(x, taps, strides, out):
    """The patches of a strided convolution over ``x`` ``(B, (out_h + uh - 1) sh, (out_w + uw - 1) sw, C)``
    (padded, VALID): ``(B, out_h, out_w, uh uw sh sw C)``, channel ``(i, j, r, c, ch)`` = ``x[b, sh (o + i) + r,
    sw (p + j) + c, ch]``. Two exact forms of the same copy: the values as strided slices (no transposed copy
    of the input: 1.2 against 3.4 ms for the DCGAN discriminator's 14x14x64 input at batch 64, 2026-12-04), the
    derivative (and so the gradient, its transpose) through the space-to-depth array, whose transpose is a few
    padded adds where the strided slices' is a sum of ``uh uw sh sw`` interior-padded copies."""
    return _strided_patches(x, taps, strides, out)


@space_to_depth_patches.defjvp
def _space_to_depth_patches_jvp(taps, strides, out, primals, tangents):
    (x,), (dx,) = primals, tangents
    return _strided_patches(x, taps, strides, out), _s2d_patches(dx, taps, strides, out)


class SpaceToDepthConv(nn.Module):
    """Drop-in for a strided ``flax.linen.Conv`` (2-D, NHWC), fast on CPU: the same function as a stride-1
    convolution of the space-to-depth rearranged input.

    With stride ``s``, output ``o`` reads padded input rows ``s*o + t`` for taps ``t < k``; writing
    ``t = s*u + r`` (``r < s``) it reads block ``o + u`` at phase ``r``, so the kernel becomes a
    ``ceil(k / s)``-tap stride-1 kernel over ``s*s*in`` channels (missing taps zero). XLA:CPU's weight gradient
    of a strided convolution is a slow path, and so was the stride-1 weight gradient of the blocks in the DCGAN
    step (one ``lax.conv`` took 0.89 s of a 2 s step: its layout turned it into a 7x7-window convolution over
    the batch, ``experiments/benchmark_gan_torch.py``); the stride-1 convolution is therefore one matrix product
    of its patches (:func:`space_to_depth_patches`: the values copied by strided slices, the gradient through
    the space-to-depth array), whose gradients are matrix products too. Parameters are named and shaped as
    ``nn.Conv``'s (``kernel`` ``(kh, kw, in, out)``, ``bias``);
    ``tests/test_nn.py`` checks outputs and gradients against ``nn.Conv``. ``padding`` is ``"SAME"``,
    ``"VALID"`` or explicit ``((lo, hi), (lo, hi))``.
    """

    features: int
    kernel_size: Sequence[int] = (4, 4)
    strides: Sequence[int] = (2, 2)
    padding: str | Sequence[tuple[int, int]] = ((1, 1), (1, 1))
    use_bias: bool = True
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        (kh, kw), (sh, sw) = self.kernel_size, self.strides
        batch, h, w, cin = x.shape
        if isinstance(self.padding, str):
            if self.padding not in ("SAME", "VALID"):
                raise ValueError(f"padding must be 'SAME', 'VALID' or ((lo, hi), (lo, hi)), got {self.padding!r}")
            pads = lax.padtype_to_pads((h, w), (kh, kw), (sh, sw), self.padding)
        else:
            pads = tuple(tuple(p) for p in self.padding)
        out_h = (h + sum(pads[0]) - kh) // sh + 1
        out_w = (w + sum(pads[1]) - kw) // sw + 1
        uh, uw = -(-kh // sh), -(-kw // sw)  # taps per axis of the block kernel
        # pad (and crop) so that exactly out + u - 1 blocks of s rows remain: the rest is never read
        rows, cols = (out_h + uh - 1) * sh, (out_w + uw - 1) * sw
        x = jnp.pad(x, ((0, 0), (pads[0][0], max(rows - h - pads[0][0], 0)),
                        (pads[1][0], max(cols - w - pads[1][0], 0)), (0, 0)))[:, :rows, :cols]
        kernel = self.param("kernel", self.kernel_init, (kh, kw, cin, self.features), jnp.float32)
        k = jnp.pad(kernel, ((0, uh * sh - kh), (0, uw * sw - kw), (0, 0), (0, 0)))
        k = k.reshape(uh, sh, uw, sw, cin, self.features).transpose(0, 2, 1, 3, 4, 5)
        k = k.reshape(uh * uw * sh * sw * cin, self.features)
        p = space_to_depth_patches(x, (uh, uw), (sh, sw), (out_h, out_w))
        y = (p.reshape(-1, p.shape[-1]) @ k.astype(x.dtype)).reshape(batch, out_h, out_w, self.features)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32)
        return y


class PatchConv(nn.Module):
    """Drop-in for a stride-1 ``flax.linen.Conv`` (2-D, NHWC), computed as patches @ kernel.

    ``kernel_dilation`` (an int or one per axis) spaces the kernel's taps as ``nn.Conv``'s does. ``padding``
    is ``"VALID"``, ``"SAME"`` (Flax's split: the extra row/column at the end) or explicit ``((lo, hi), (lo,
    hi))``. Parameters are named and shaped as ``nn.Conv``'s (``kernel`` ``(kh, kw, in, out)``,
    ``bias``), so the two are interchangeable on the same params (checked in ``tests/test_nn.py``).
    """

    features: int
    kernel_size: Sequence[int] = (3, 3)
    padding: str | Sequence[tuple[int, int]] = "SAME"
    use_bias: bool = True
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
    kernel_dilation: int | Sequence[int] = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kh, kw = self.kernel_size
        dh, dw = ((self.kernel_dilation,) * 2 if isinstance(self.kernel_dilation, int)
                  else tuple(self.kernel_dilation))
        eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1  # extent of the dilated kernel
        if self.padding == "SAME":
            pads = (((eh - 1) // 2, eh // 2), ((ew - 1) // 2, ew // 2))
        elif self.padding == "VALID":
            pads = ((0, 0), (0, 0))
        elif isinstance(self.padding, str):
            raise ValueError(f"padding must be 'SAME', 'VALID' or ((lo, hi), (lo, hi)), got {self.padding!r}")
        else:
            pads = tuple(tuple(p) for p in self.padding)
        if any(p != (0, 0) for p in pads):
            x = jnp.pad(x, ((0, 0), *pads, (0, 0)))
        batch, hp, wp, cin = x.shape
        out_h, out_w = hp - eh + 1, wp - ew + 1
        if out_h < 1 or out_w < 1:
            raise ValueError(f"a {kh}x{kw} kernel (dilation {dh}x{dw}) does not fit a {hp}x{wp} (padded) input")
        kernel = self.param("kernel", self.kernel_init, (kh, kw, cin, self.features), jnp.float32)
        y = patch_matmul(x, kernel.astype(x.dtype), (dh, dw))
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,), jnp.float32)
        return y


class ConvEncoder(nn.Module):
    """Stride-2 3x3 convolutions (``channels``), then a dense layer to ``out_features``."""

    channels: Sequence[int] = (32, 64)
    hidden: int = 256
    out_features: int = 64

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for c in self.channels:
            x = nn.relu(nn.Conv(c, (3, 3), strides=(2, 2), padding="SAME")(x))
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(self.hidden)(x))
        return nn.Dense(self.out_features)(x)


class ConvDecoder(nn.Module):
    """Dense layer to a ``(H / 2^n, W / 2^n, channels[0])`` map, then ``n`` 4x4 stride-2 transposed convs.

    Upsampling uses :class:`Col2ImConvTranspose` (same function as ``nn.ConvTranspose``, fast on CPU).
    """

    image_shape: Sequence[int]  # (H, W, C) of the output, before the out_channels multiplier
    out_channels: int
    channels: Sequence[int] = (64, 32)
    hidden: int = 256

    @nn.compact
    def __call__(self, z: jax.Array) -> jax.Array:
        h, w, _ = self.image_shape
        scale = 2 ** len(self.channels)
        if h % scale or w % scale:
            raise ValueError(f"image {h}x{w} is not divisible by 2^{len(self.channels)} (one per up-sampling)")
        x = nn.relu(nn.Dense(self.hidden)(z))
        x = nn.relu(nn.Dense(h // scale * w // scale * self.channels[0])(x))
        x = x.reshape(z.shape[0], h // scale, w // scale, self.channels[0])
        for c in self.channels[1:]:
            x = nn.relu(Col2ImConvTranspose(c, (4, 4), (2, 2))(x))
        return Col2ImConvTranspose(self.out_channels, (4, 4), (2, 2))(x)
