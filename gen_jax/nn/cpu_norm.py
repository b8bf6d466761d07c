"""Group normalisation (optionally followed by SiLU) whose forward and backward passes run in gen_jax's native
kernels on CPU.

:func:`group_norm` is ``act((x - mean_g) / sqrt(var_g + eps) * scale + bias)`` with the statistics of each
example over its pixels and the channels of each group (Wu & He 2018; ``flax.linen.GroupNorm``'s function, the
variance taken about the mean rather than as ``E[x^2] - E[x]^2``, and in the native kernel the mean from
differences to each example's first pixel, so an input far from zero keeps its precision), ``act`` SiLU or the
identity. On XLA:CPU the statistics, the parameter gradients (per-channel sums over the batch and pixels) and
the SiLU cost the diffusion U-Net's step more than its normalisations are worth: XLA splits those sums into slow
``reduce-window`` loops, and without the group norms (a bound, not a model) the step took 0.194 against 0.232 s,
without SiLU too 0.164.
:mod:`gen_jax.nn.native` computes each example in cache (forward: the statistics and the normalised output with
its SiLU in three passes over it; backward: the SiLU derivative, the parameter sums and the input gradient in
two), the batch split over XLA's threads.

Three primitives: the forward pass (``y``, and the per-example, per-group mean and reciprocal deviation it keeps
for the backward pass), its linearisation (the tangent of ``y``, linear in the tangents of ``x``, ``scale`` and
``bias``), and the transpose of that linearisation (the backward pass). :func:`group_norm` is a ``custom_jvp``
whose rule is the forward pass and the linearisation, so ``jax.jvp`` / ``jacfwd`` use XLA's formula for the
tangent and reverse mode transposes it into the native backward pass. Higher derivatives and ``vmap`` use XLA's
formulas (the same function); off CPU, or where the kernels do not apply (not float32, channels not a multiple of
the vector width), every pass is XLA's.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.interpreters import ad, batching

from gen_jax.nn import native

ACTIVATIONS = (None, "silu")


def _grouped(v, groups):
    return v.reshape(v.shape[0], -1, groups, v.shape[-1] // groups)


def _per_group(stat):  # (N, G) -> broadcastable against _grouped's (N, M, G, C/G)
    return stat[:, None, :, None]


def _normalized(x, mean, rstd, groups):
    return ((_grouped(x, groups) - _per_group(mean)) * _per_group(rstd)).reshape(x.shape)


def _silu_grad(z):
    s = jax.nn.sigmoid(z)
    return s * (1 + z * (1 - s))


def _xla_forward(x, scale, bias, *, groups, eps, silu):
    xg = _grouped(x, groups)
    mean = jnp.mean(xg, axis=(1, 3))
    rstd = lax.rsqrt(jnp.mean(jnp.square(xg - _per_group(mean)), axis=(1, 3)) + eps)
    z = _normalized(x, mean, rstd, groups) * scale + bias
    return (z * jax.nn.sigmoid(z) if silu else z), mean, rstd


def _xla_linear(x, scale, bias, mean, rstd, tx, tscale, tbias, *, groups, silu):
    xhat = _normalized(x, mean, rstd, groups)
    txg, xhg = _grouped(tx, groups), _grouped(xhat, groups)
    txhat = _per_group(rstd) * (txg - jnp.mean(txg, axis=(1, 3), keepdims=True)
                                - xhg * jnp.mean(txg * xhg, axis=(1, 3), keepdims=True))
    tz = txhat.reshape(x.shape) * scale + xhat * tscale + tbias
    return tz * _silu_grad(xhat * scale + bias) if silu else tz


def _xla_backward(x, scale, bias, mean, rstd, dy, *, groups, silu):
    def linear(tx, tscale, tbias):
        return _xla_linear(x, scale, bias, mean, rstd, tx, tscale, tbias, groups=groups, silu=silu)

    return tuple(jax.linear_transpose(linear, x, scale, bias)(dy))


def native_applies(shape, dtype, groups: int) -> bool:
    """Whether the native kernels compute this group norm on CPU (else XLA does)."""
    return len(shape) >= 2 and shape[-1] % groups == 0 and native.fits(dtype, shape[-1])


def _stats(x, groups):
    return jax.ShapeDtypeStruct((x.shape[0], groups), x.dtype)


def _native_forward(x, scale, bias, *, groups, eps, silu):
    if not native_applies(x.shape, x.dtype, groups):
        return _xla_forward(x, scale, bias, groups=groups, eps=eps, silu=silu)
    out = (jax.ShapeDtypeStruct(x.shape, x.dtype), _stats(x, groups), _stats(x, groups))
    return native.call(native.NORM_FORWARD_TARGET, out, x, scale, bias, groups=np.int64(groups),
                       eps=np.float32(eps), silu=np.int64(silu))


def _native_backward(x, scale, bias, mean, rstd, dy, *, groups, silu):
    if not native_applies(x.shape, x.dtype, groups):
        return _xla_backward(x, scale, bias, mean, rstd, dy, groups=groups, silu=silu)
    out = tuple(jax.ShapeDtypeStruct(v.shape, v.dtype) for v in (x, scale, bias))
    return native.call(native.NORM_BACKWARD_TARGET, out, x, scale, bias, mean, rstd, dy, groups=np.int64(groups),
                       silu=np.int64(silu))


def _instantiate(tangents, primals):
    return tuple(jnp.zeros_like(p) if type(t) is ad.Zero else t for t, p in zip(tangents, primals))


def _primitive(name, xla_impl, native_impl, abstract, multiple_results):
    """A primitive computed by ``xla_impl`` (everywhere) or ``native_impl`` (its CPU lowering), whose JVP and
    batching rules are XLA's formula's."""
    p = native.define_primitive(name, abstract, xla_impl, native_impl, multiple_results=multiple_results)

    def jvp(primals, tangents, **params):
        return jax.jvp(functools.partial(xla_impl, **params), tuple(primals), _instantiate(tangents, primals))

    def batch(args, dims, **params):
        out = jax.vmap(functools.partial(xla_impl, **params), in_axes=tuple(dims))(*args)
        return out, ([0] * len(out) if multiple_results else 0)

    ad.primitive_jvps[p] = jvp
    batching.primitive_batchers[p] = batch
    return p


def _like(aval, shape):
    return aval.update(shape=shape, weak_type=False)


forward_p = _primitive(
    "gen_jax_group_norm", _xla_forward, _native_forward, multiple_results=True,
    abstract=lambda x, scale, bias, *, groups, eps, silu: (
        _like(x, x.shape), _like(x, (x.shape[0], groups)), _like(x, (x.shape[0], groups))))
linear_p = _primitive(
    "gen_jax_group_norm_linear", _xla_linear, None, multiple_results=False,
    abstract=lambda x, scale, bias, mean, rstd, tx, tscale, tbias, *, groups, silu: _like(x, x.shape))
backward_p = _primitive(
    "gen_jax_group_norm_backward", _xla_backward, _native_backward, multiple_results=True,
    abstract=lambda x, scale, bias, mean, rstd, dy, *, groups, silu: (
        _like(x, x.shape), _like(scale, scale.shape), _like(bias, bias.shape)))


def _linear_transpose(ct, x, scale, bias, mean, rstd, tx, tscale, tbias, *, groups, silu):
    if any(ad.is_undefined_primal(v) for v in (x, scale, bias, mean, rstd)):
        raise NotImplementedError("group norm's linearisation is linear in the tangents only")
    linear = (tx, tscale, tbias)
    if type(ct) is ad.Zero:
        cts = [ad.Zero(v.aval.to_ct_aval()) if ad.is_undefined_primal(v) else None for v in linear]
    else:
        grads = backward_p.bind(x, scale, bias, mean, rstd, ct, groups=groups, silu=silu)
        cts = [g if ad.is_undefined_primal(v) else None for g, v in zip(grads, linear)]
    return [None] * 5 + cts


def _backward_transpose(cts, x, scale, bias, mean, rstd, dy, *, groups, silu):
    """The backward pass is linear in ``dy``: its transpose (reverse over reverse) by XLA's formula."""
    if any(ad.is_undefined_primal(v) for v in (x, scale, bias, mean, rstd)):
        raise NotImplementedError("group norm's backward pass is linear in dy only")
    cts = [jnp.zeros(v.shape, v.dtype) if type(c) is ad.Zero else c for c, v in zip(cts, (x, scale, bias))]
    ct_dy = jax.linear_transpose(lambda d: _xla_backward(x, scale, bias, mean, rstd, d, groups=groups, silu=silu),
                                 jax.ShapeDtypeStruct(dy.aval.shape, dy.aval.dtype))(tuple(cts))[0]
    return [None] * 5 + [ct_dy]


ad.primitive_transposes[linear_p] = _linear_transpose
ad.primitive_transposes[backward_p] = _backward_transpose


@functools.partial(jax.custom_jvp, nondiff_argnums=(3, 4, 5))
def group_norm(x, scale, bias, groups: int, eps: float = 1e-6, silu: bool = False):
    """Group norm of ``x`` (``(N, ..., C)``; statistics per example and group of ``C // groups`` channels over
    every other axis) with per-channel ``scale`` and ``bias``, then SiLU where ``silu``."""
    return forward_p.bind(x, scale, bias, groups=groups, eps=eps, silu=silu)[0]


@group_norm.defjvp
def _group_norm_jvp(groups, eps, silu, primals, tangents):
    y, mean, rstd = forward_p.bind(*primals, groups=groups, eps=eps, silu=silu)
    return y, linear_p.bind(*primals, mean, rstd, *tangents, groups=groups, silu=silu)


class GroupNorm(nn.Module):
    """``flax.linen.GroupNorm(num_groups, epsilon)`` (the same parameters, ``scale`` and ``bias``), followed by
    ``activation`` (``None`` or ``"silu"``), computed by :func:`group_norm`."""

    num_groups: int = 32
    epsilon: float = 1e-6
    activation: str | None = None

    @nn.compact
    def __call__(self, x):
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; known: {ACTIVATIONS}")
        c = x.shape[-1]
        if c % self.num_groups:
            raise ValueError(f"{self.num_groups} groups do not divide {c} channels")
        scale = self.param("scale", nn.initializers.ones, (c,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (c,), jnp.float32)
        x, scale, bias = nn.dtypes.promote_dtype(x, scale, bias)
        return group_norm(x, scale, bias, self.num_groups, self.epsilon, self.activation == "silu")
