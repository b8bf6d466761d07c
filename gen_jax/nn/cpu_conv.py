"""A stride-1 "SAME" 2-D convolution (and its bias) computed by gen_jax's native kernels on CPU.

:func:`conv_same` is ``lax.conv_general_dilated(x, kernel, (1, 1), "SAME")`` (NHWC input, HWIO kernel, odd square
kernel) as the primitive ``conv_p``; its weight gradient is the primitive :func:`conv_weight_grad`, and its input
gradient ``conv_p`` again (of the output gradient, with the flipped kernel). On CPU both lower to the custom calls
of :mod:`gen_jax.nn.native` (per layer of the diffusion U-Net, batch 128: the forward pass 1.1-1.9x, the input
gradient 1.2-1.8x and the weight gradient 2-4.5x faster than XLA:CPU's lowering, and ahead of PyTorch's oneDNN in
sum; BENCHMARKS.md); elsewhere, or where the kernels do not apply (no compiler, not float32, output channels not a
multiple of the vector width), to XLA's own convolutions. :func:`bias_add` adds a bias whose gradient, a sum
over every other axis, is a native kernel too.

Both convolution primitives are bilinear, with transposes in terms of each other, so every transformation works
through them: ``jax.grad`` at any order, ``jax.jvp`` / ``jacfwd`` (the PF-ODE likelihood's divergence),
``jax.vmap`` (a batch of inputs folds into the batch; other batched operands fall back to XLA's convolution),
``jit``, ``pmap`` and ``shard_map``. :class:`Conv` is ``flax.linen.Conv`` with this function: the same parameter
tree and the same outputs. The kernels sum in another order than XLA's, so the two agree to float rounding, not
to the bit; their own order is fixed (the batch split by thread count, partial sums added in order), so a run
repeats itself bit for bit on one machine.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
from jax.interpreters import ad, batching

from gen_jax.nn import native

_DIMS = ("NHWC", "HWIO", "NHWC")


def _xla_conv(x, kernel):
    return lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_DIMS)


def _xla_weight_grad(x, g, kernel_size: int):
    """XLA's weight gradient: the transpose of ``k -> conv(x, k)`` applied to ``g``."""
    spec = jax.ShapeDtypeStruct((kernel_size, kernel_size, x.shape[-1], g.shape[-1]), g.dtype)
    return jax.linear_transpose(lambda k: _xla_conv(x, k), spec)(g)[0]


def native_applies(x_shape, g_shape, dtype, kernel_size: int) -> bool:
    """Whether the native kernels compute the convolution of ``x`` to ``g``'s shape, and its weight gradient, on
    CPU (else XLA's lowering does)."""
    return kernel_size % 2 == 1 and len(x_shape) == 4 and native.fits(dtype, g_shape[-1])


def _native_weight_grad(x, g, kernel_size: int):
    if not native_applies(x.shape, g.shape, x.dtype, kernel_size):
        return _xla_weight_grad(x, g, kernel_size)
    out = jax.ShapeDtypeStruct((kernel_size, kernel_size, x.shape[-1], g.shape[-1]), jnp.float32)
    return native.call(native.WEIGHT_GRAD_TARGET, out, x, g)


def _native_conv(x, kernel):
    if not native_applies(x.shape, (*x.shape[:3], kernel.shape[-1]), x.dtype, kernel.shape[0]):
        return _xla_conv(x, kernel)
    out = jax.ShapeDtypeStruct((*x.shape[:3], kernel.shape[-1]), jnp.float32)
    return native.call(native.FORWARD_TARGET, out, x, kernel)


def flip_kernel(kernel):
    """The kernel of the input gradient: ``conv(g, flip_kernel(k))`` is the transpose of ``x -> conv(x, k)``
    (the window reversed, input and output channels swapped)."""
    return jnp.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))


# --- conv_p(x, kernel) = conv(x, kernel) ---------------------------------------------------------------------
conv_p = native.define_primitive(
    "gen_jax_conv_same", lambda x, kernel: x.update(shape=(*x.shape[:3], kernel.shape[-1]), weak_type=False),
    _xla_conv, _native_conv)


def _conv_transpose_x(ct, x, kernel):
    return conv_p.bind(ct, flip_kernel(kernel))


def _conv_transpose_kernel(ct, x, kernel):
    return conv_weight_grad(x, ct, kernel.aval.shape[0])  # kernel: the undefined operand (it has an aval)


ad.defbilinear(conv_p, _conv_transpose_x, _conv_transpose_kernel)


def _conv_batch(args, dims):
    x, kernel = args
    dx, dk = dims
    if dk is None:  # the usual case (a batch of inputs, one kernel): fold the mapped axis into the batch
        x = jnp.moveaxis(x, dx, 0)
        b, n = x.shape[:2]
        y = conv_p.bind(x.reshape(b * n, *x.shape[2:]), kernel)
        return y.reshape(b, n, *y.shape[1:]), 0
    return jax.vmap(_xla_conv, in_axes=(dx, dk))(x, kernel), 0


batching.primitive_batchers[conv_p] = _conv_batch


# --- weight_grad_p(x, g) = d<g, conv(x, k)>/dk ----------------------------------------------------------------
weight_grad_p = native.define_primitive(
    "gen_jax_conv_same_weight_grad",
    lambda x, g, *, kernel_size: x.update(shape=(kernel_size, kernel_size, x.shape[-1], g.shape[-1]),
                                          weak_type=False),
    _xla_weight_grad, _native_weight_grad)


def _weight_grad_transpose_x(ct, x, g, *, kernel_size):
    # <ct, wgrad(x, g)> = <g, conv(x, ct)>: the input gradient of conv(., ct) at cotangent g
    return conv_p.bind(g, flip_kernel(ct))


def _weight_grad_transpose_g(ct, x, g, *, kernel_size):
    return conv_p.bind(x, ct)


ad.defbilinear(weight_grad_p, _weight_grad_transpose_x, _weight_grad_transpose_g)


def _weight_grad_batch(args, dims, *, kernel_size):
    x, g = args
    return jax.vmap(lambda x, g: _xla_weight_grad(x, g, kernel_size), in_axes=tuple(dims))(x, g), 0


batching.primitive_batchers[weight_grad_p] = _weight_grad_batch


# --- bias_add_p(y, b) = y + b over the last axis; its transpose in b is channel_sum_p --------------------------
def _xla_channel_sum(x):
    return jnp.sum(x, axis=tuple(range(x.ndim - 1)))


def _native_channel_sum(x):
    if not native.fits(x.dtype, x.shape[-1]):
        return _xla_channel_sum(x)
    return native.call(native.CHANNEL_SUM_TARGET, jax.ShapeDtypeStruct(x.shape[-1:], jnp.float32), x)


channel_sum_p = native.define_primitive("gen_jax_channel_sum", lambda x: x.update(shape=x.shape[-1:], weak_type=False),
                                        _xla_channel_sum, _native_channel_sum)
ad.deflinear2(channel_sum_p, lambda ct, x: [jnp.broadcast_to(ct, x.aval.shape)])
batching.primitive_batchers[channel_sum_p] = lambda args, dims: (jax.vmap(_xla_channel_sum, dims)(*args), 0)

bias_add_p = native.define_primitive("gen_jax_bias_add", lambda y, b: y.update(weak_type=False), jnp.add)
ad.deflinear2(bias_add_p, lambda ct, y, b: [ct if ad.is_undefined_primal(y) else None,
                                            channel_sum_p.bind(ct) if ad.is_undefined_primal(b) else None])


def _bias_add_batch(args, dims):
    y, b = args
    dy, db = dims
    if db is None:  # one bias for every member of the batch: it broadcasts over the mapped axis too
        y = jnp.moveaxis(y, dy, 0)
        return bias_add_p.bind(y, b), 0
    return jax.vmap(jnp.add, in_axes=(dy, db))(y, b), 0


batching.primitive_batchers[bias_add_p] = _bias_add_batch


def bias_add(y, b):
    """``y + b`` for a bias ``b`` over ``y``'s last axis, whose gradient in ``b`` (a sum over every other axis,
    which XLA:CPU splits into slow loops: 8.9 ms for a (128, 28, 28, 32) cotangent in the U-Net's step, where a
    matrix-vector product takes 0.8) is a native kernel on CPU."""
    if b.ndim != 1 or y.shape[-1:] != b.shape or y.dtype != b.dtype:
        raise ValueError(f"bias_add takes a bias over y's last axis, of y's dtype; got {y.shape} {y.dtype} and "
                         f"{b.shape} {b.dtype}")
    return bias_add_p.bind(y, b)


def conv_weight_grad(x, g, kernel_size: int):
    """``dw[a, b, i, o] = sum x[n, h + a - k//2, w + b - k//2, i] g[n, h, w, o]``: the weight gradient of
    :func:`conv_same` at input ``x`` and output cotangent ``g``, shape ``(k, k, C, O)``."""
    return weight_grad_p.bind(x, g, kernel_size=int(kernel_size))


def conv_same(x, kernel):
    """``lax.conv_general_dilated(x, kernel, (1, 1), "SAME")`` for NHWC ``x`` and an HWIO ``kernel`` with an odd
    square window; its weight gradient runs in the native kernel on CPU (module docstring)."""
    if x.ndim != 4 or kernel.ndim != 4 or x.shape[-1] != kernel.shape[2]:
        raise ValueError(f"conv_same takes NHWC x and HWIO kernel with matching channels; got {x.shape} and "
                         f"{kernel.shape}")
    kh, kw = kernel.shape[:2]
    if kh != kw or kh % 2 != 1:
        raise ValueError(f"conv_same takes an odd square kernel; got {kh}x{kw}")
    if x.dtype != kernel.dtype:
        raise ValueError(f"conv_same takes x and kernel of one dtype; got {x.dtype} and {kernel.dtype}")
    return conv_p.bind(x, kernel)


class Conv(nn.Module):
    """``nn.Conv(features, (k, k), padding="SAME")`` (stride 1) computed by :func:`conv_same`: the same
    parameters (``kernel`` HWIO, ``bias``), initialisers and outputs; only the CPU weight gradient differs."""

    features: int
    kernel_size: int = 3
    use_bias: bool = True
    kernel_init: nn.initializers.Initializer = nn.linear.default_kernel_init
    bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

    @nn.compact
    def __call__(self, x):
        k = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (k, k, x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", self.bias_init, (self.features,), jnp.float32) if self.use_bias else None
        x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias)
        y = conv_same(x, kernel)
        return y if bias is None else bias_add(y, bias)
