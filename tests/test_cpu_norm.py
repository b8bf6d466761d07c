"""gen_jax.nn.cpu_norm: the native group norm (+ SiLU) against flax's and XLA's formula, under grad (first and
second order), jvp, vmap and jit."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.nn import cpu_norm, native
from gen_jax.nn.cpu_norm import GroupNorm, group_norm


def _reference(x, scale, bias, groups, silu):
    """flax.linen.GroupNorm's function (epsilon 1e-6), then SiLU."""
    params = {"params": {"scale": scale, "bias": bias}}
    y = nn.GroupNorm(num_groups=groups).apply(params, x)
    return nn.silu(y) if silu else y


def _close(a, b, tol=3e-5):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=0, atol=tol * max(1.0, float(np.abs(b).max())))


def _data(shape, seed=0):
    kx, ks, kb = jax.random.split(jax.random.key(seed), 3)
    c = shape[-1]
    return (2 * jax.random.normal(kx, shape) + 0.5, 1 + 0.3 * jax.random.normal(ks, (c,)),
            0.2 * jax.random.normal(kb, (c,)))


# (shape, groups): the U-Net's (channels 16-128, gcd(8, c) groups), one channel per group, a 2-D (N, C) input,
# and channel counts the kernels leave to XLA (24 on AVX-512, 12)
CASES = [((3, 7, 7, 16), 8), ((2, 5, 6, 32), 8), ((2, 4, 4, 128), 8), ((3, 6, 16), 16), ((4, 32), 4),
         ((2, 5, 5, 24), 8), ((2, 3, 3, 12), 4)]


@pytest.mark.parametrize("silu", [False, True])
@pytest.mark.parametrize("shape,groups", CASES)
def test_group_norm_and_its_gradients_equal_flax(shape, groups, silu):
    x, scale, bias = _data(shape)
    ours = jax.jit(lambda x, s, b: group_norm(x, s, b, groups, 1e-6, silu))
    _close(ours(x, scale, bias), _reference(x, scale, bias, groups, silu))
    w = jax.random.normal(jax.random.key(7), shape)

    def loss(f):
        return lambda x, s, b: jnp.sum(jnp.sin(f(x, s, b)) * w)

    grads = jax.jit(jax.grad(loss(lambda x, s, b: group_norm(x, s, b, groups, 1e-6, silu)), (0, 1, 2)))
    ref = jax.grad(loss(lambda x, s, b: _reference(x, s, b, groups, silu)), (0, 1, 2))
    for a, b in zip(grads(x, scale, bias), ref(x, scale, bias)):
        _close(a, b)


def test_the_cpu_program_calls_the_native_kernels():
    x, scale, bias = _data((2, 4, 4, 16))
    text = jax.jit(jax.grad(lambda x: jnp.sum(group_norm(x, scale, bias, 8, 1e-6, True) ** 2))).lower(x).as_text()
    assert native.NORM_FORWARD_TARGET in text and native.NORM_BACKWARD_TARGET in text
    assert cpu_norm.native_applies(x.shape, x.dtype, 8)


def test_forward_mode_second_order_and_vmap():
    x, scale, bias = _data((2, 5, 5, 16))
    v = jax.random.normal(jax.random.key(3), x.shape)
    ours = lambda x, s: group_norm(x, s, bias, 8, 1e-6, True)  # noqa: E731
    ref = lambda x, s: _reference(x, s, bias, 8, True)  # noqa: E731
    # jvp in x (the PF-ODE likelihood's divergence) and in the scale
    _close(jax.jit(lambda x: jax.jvp(lambda x: ours(x, scale), (x,), (v,))[1])(x),
           jax.jvp(lambda x: ref(x, scale), (x,), (v,))[1])
    _close(jax.jvp(lambda s: ours(x, s), (scale,), (bias,))[1], jax.jvp(lambda s: ref(x, s), (scale,), (bias,))[1])
    # second order: the gradient of a gradient norm in the scale (reverse over reverse), and a Hessian-vector
    # product (forward over reverse)
    loss = lambda f: lambda x, s: jnp.sum(jnp.sin(f(x, s)) * x)  # noqa: E731
    gp = lambda f: jax.jit(jax.grad(lambda s: jnp.sum(jax.grad(loss(f))(x, s) ** 2)))(scale)  # noqa: E731
    _close(gp(ours), gp(ref), 1e-4)
    hvp = lambda f: jax.jit(lambda s: jax.jvp(jax.grad(loss(f), 1), (x, s), (v, bias))[1])(scale)  # noqa: E731
    _close(hvp(ours), hvp(ref), 1e-4)
    # the backward pass transposed (it is linear in the output gradient): the transpose of a transpose
    back_t = lambda f: jax.jit(lambda d: jax.linear_transpose(  # noqa: E731
        lambda dy: jax.vjp(lambda x: f(x, scale), x)[1](dy)[0], d)(d)[0])(v)
    _close(back_t(ours), back_t(ref), 1e-4)
    # vmap over examples (per-example gradients)
    xs = x[:, None]
    _close(jax.jit(jax.vmap(jax.grad(loss(ours), 1), (0, None)))(xs, scale),
           jax.vmap(jax.grad(loss(ref), 1), (0, None))(xs, scale))


def test_the_module_is_flax_group_norm():
    x, _, _ = _data((2, 4, 4, 32))
    ref = nn.GroupNorm(num_groups=4)
    params = jax.tree.map(lambda p: p + 0.2, ref.init(jax.random.key(0), x))
    assert jax.tree.structure(GroupNorm(4).init(jax.random.key(0), x)) == jax.tree.structure(params)
    _close(jax.jit(GroupNorm(4).apply)(params, x), ref.apply(params, x))
    _close(jax.jit(GroupNorm(4, activation="silu").apply)(params, x), nn.silu(ref.apply(params, x)))
    with pytest.raises(ValueError, match="unknown activation"):
        GroupNorm(4, activation="relu").init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="do not divide"):
        GroupNorm(5).init(jax.random.key(0), x)


def test_native_results_repeat_to_the_bit():
    x, scale, bias = _data((8, 6, 6, 32))
    step = jax.jit(jax.grad(lambda x, s, b: jnp.sum(jnp.sin(group_norm(x, s, b, 8, 1e-6, True))), (0, 1, 2)))
    for u, v in zip(step(x, scale, bias), step(x, scale, bias)):
        assert np.array_equal(np.asarray(u), np.asarray(v))


def test_a_large_offset_costs_no_precision():
    """The mean from sums of differences to the first pixel, the variance about it (two passes), the output as
    (x - mean) * a + bias: an input 1000 standard deviations from zero normalises within 6e-5 of a float64 reference
    (2.8e-5 here; XLA's two-pass float32 formula 1.3e-4; flax's GroupNorm, E[x^2] - E[x]^2, 1.58)."""
    x, scale, bias = _data((2, 6, 6, 16))
    x = x + 2000.0
    y = np.asarray(jax.jit(lambda x: group_norm(x, scale, bias, 8, 1e-6, False))(x), np.float64)
    xg = np.asarray(x, np.float64).reshape(2, 36, 8, 2)
    mean, var = xg.mean(axis=(1, 3), keepdims=True), xg.var(axis=(1, 3), keepdims=True)
    ref = ((xg - mean) / np.sqrt(var + 1e-6)).reshape(x.shape) * np.asarray(scale) + np.asarray(bias)
    assert np.abs(y - ref).max() < 6e-5
