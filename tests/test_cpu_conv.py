"""gen_jax.nn.cpu_conv: the native CPU convolution kernels against XLA's own convolution, under every
transformation the library uses (grad at first and second order, jvp, vmap, jit), and the fallback without them."""

import os
import platform
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.nn import cpu_conv, native
from gen_jax.nn.cpu_conv import conv_same, conv_weight_grad


def _xla(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _data(n, side, c, o, k=3, seed=0):
    kx, kk, kg = jax.random.split(jax.random.key(seed), 3)
    return (jax.random.normal(kx, (n, side, side, c)), jax.random.normal(kk, (k, k, c, o)) / np.sqrt(k * k * c),
            jax.random.normal(kg, (n, side, side, o)))


def _close(a, b, rtol=2e-5):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=0, atol=rtol * max(1.0, float(np.abs(b).max())))


def test_the_native_kernels_are_built_here():
    # CI installs a C++ compiler (.ci/run); without one gen_jax falls back to XLA, which this test would catch
    assert native.available(), f"the native kernels did not build: {native.unavailable_reason()}"
    assert native.vector_width() in (8, 16)


# (batch, side, in, out, kernel): the U-Net's shapes, odd sides and widths, a 1x1 and a 5x5, channel counts the
# kernels take (out a multiple of 16) and ones they leave to XLA (out 3 or 8 on AVX-512)
SHAPES = [(3, 7, 16, 16, 3), (2, 9, 5, 32, 3), (2, 6, 33, 16, 1), (2, 8, 12, 48, 5), (4, 5, 16, 3, 3),
          (2, 28, 1, 16, 3), (2, 10, 20, 8, 3)]


@pytest.mark.parametrize("n,side,c,o,k", SHAPES)
def test_conv_same_and_its_gradients_equal_xlas(n, side, c, o, k):
    x, kern, g = _data(n, side, c, o, k)
    fwd = jax.jit(conv_same)
    _close(fwd(x, kern), _xla(x, kern))

    def grads(f):
        return jax.jit(lambda x, k: jax.vjp(f, x, k)[1](g))(x, kern)

    for a, b in zip(grads(conv_same), grads(_xla)):
        _close(a, b)
    _close(jax.jit(lambda x, g: conv_weight_grad(x, g, k))(x, g), grads(_xla)[1])


def test_the_cpu_program_calls_the_native_kernels():
    x, kern, g = _data(2, 6, 8, 16)
    def step(x, k):
        y, vjp = jax.vjp(conv_same, x, k)
        return y, vjp(g)

    text = jax.jit(step).lower(x, kern).as_text()
    assert native.FORWARD_TARGET in text and native.WEIGHT_GRAD_TARGET in text
    # the input gradient is a forward convolution (of g with the flipped kernel): native where its 8 outputs fit
    assert text.count(native.FORWARD_TARGET) == (2 if 8 % native.vector_width() == 0 else 1)


def test_native_results_repeat_to_the_bit():
    x, kern, g = _data(8, 12, 16, 32)
    step = jax.jit(lambda x, k: jax.vjp(conv_same, x, k)[1](g))
    a, b = step(x, kern), step(x, kern)
    for u, v in zip(a, b):
        assert np.array_equal(np.asarray(u), np.asarray(v))


def test_forward_mode_second_order_and_vmap():
    x, kern, g = _data(2, 6, 16, 16)
    v = jax.random.normal(jax.random.key(5), x.shape)
    f = lambda x, k: jnp.sum(jnp.sin(conv_same(x, k)))  # noqa: E731
    fx = lambda x, k: jnp.sum(jnp.sin(_xla(x, k)))  # noqa: E731
    # jvp in x (the PF-ODE likelihood's divergence) and in the kernel
    _close(jax.jit(lambda x: jax.jvp(lambda x: conv_same(x, kern), (x,), (v,))[1])(x),
           jax.jvp(lambda x: _xla(x, kern), (x,), (v,))[1])
    _close(jax.jvp(lambda k: conv_same(x, k), (kern,), (kern,))[1], _xla(x, kern))
    # second order: a gradient penalty's gradient in the kernel, and a Hessian-vector product in the kernel
    gp = lambda f: jax.jit(jax.grad(lambda k: jnp.sum(jax.grad(f)(x, k) ** 2)))(kern)  # noqa: E731
    _close(gp(f), gp(fx), rtol=1e-4)
    hvp = lambda f: jax.jit(lambda k: jax.jvp(jax.grad(f, 1), (x, k), (v, k))[1])(kern)  # noqa: E731
    _close(hvp(f), hvp(fx), rtol=1e-4)
    # vmap over a batch of inputs (folded into the batch) and over kernels (XLA's convolution per kernel)
    xs = x.reshape(2, 1, *x.shape[1:])
    _close(jax.jit(jax.vmap(lambda x: conv_same(x, kern)))(xs), jax.vmap(lambda x: _xla(x, kern))(xs))
    _close(jax.jit(jax.vmap(jax.grad(f, 1), (0, None)))(xs, kern), jax.vmap(jax.grad(fx, 1), (0, None))(xs, kern))
    ks = jnp.stack([kern, -kern])
    _close(jax.vmap(lambda k: conv_same(x, k))(ks), jax.vmap(lambda k: _xla(x, k))(ks))
    _close(jax.vmap(jax.grad(f, 1), (None, 0))(x, ks), jax.vmap(jax.grad(fx, 1), (None, 0))(x, ks))


def test_conv_same_refuses_what_it_does_not_compute():
    x = jnp.zeros((1, 4, 4, 3))
    with pytest.raises(ValueError, match="odd square kernel"):
        conv_same(x, jnp.zeros((2, 2, 3, 4)))
    with pytest.raises(ValueError, match="matching channels"):
        conv_same(x, jnp.zeros((3, 3, 2, 4)))


def test_the_module_is_nn_conv():
    x, _, _ = _data(2, 7, 5, 16)
    ours, ref = cpu_conv.Conv(16, 3), nn.Conv(16, (3, 3), padding="SAME")
    params = ref.init(jax.random.key(0), x)
    assert jax.tree.structure(ours.init(jax.random.key(0), x)) == jax.tree.structure(params)
    params = jax.tree.map(lambda p: p + 0.1, params)  # a nonzero bias
    _close(jax.jit(ours.apply)(params, x), ref.apply(params, x))
    loss = lambda m: lambda p: jnp.sum(m.apply(p, x) ** 2)  # noqa: E731
    jax.tree.map(_close, jax.jit(jax.grad(loss(ours)))(params), jax.grad(loss(ref))(params))


def test_without_the_kernels_the_same_function_runs_on_xla():
    code = ("import jax, jax.numpy as jnp, numpy as np\n"
            "from gen_jax.nn import native, cpu_conv\n"
            "x = jnp.ones((2, 5, 5, 3)); k = jnp.ones((3, 3, 3, 16))\n"
            "text = jax.jit(jax.grad(lambda k: cpu_conv.conv_same(x, k).sum())).lower(k).as_text()\n"
            "print(native.available(), native.unavailable_reason(), 'gen_jax_conv' in text,\n"
            "      float(jax.grad(lambda k: cpu_conv.conv_same(x, k).sum())(k)[1, 1, 0, 0]))\n")
    env = {**os.environ, native.OPT_OUT: "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", f"{native.OPT_OUT}=0", "False", "50.0"]


def test_accelerator_programs_use_xlas_own_convolution_and_norm():
    """Off CPU the primitives lower to XLA's operations: a GPU or TPU program has no custom call of gen_jax's."""
    from gen_jax.nn.cpu_norm import group_norm

    x, kern, _ = _data(2, 5, 16, 16)
    scale = jnp.ones((16,))
    step = jax.jit(jax.grad(lambda x, k: jnp.sum(group_norm(conv_same(x, k), scale, scale, 8, 1e-6, True)), (0, 1)))
    targets = (native.FORWARD_TARGET, native.WEIGHT_GRAD_TARGET, native.NORM_FORWARD_TARGET,
               native.NORM_BACKWARD_TARGET)
    cpu = step.trace(x, kern).lower(lowering_platforms=("cpu",)).as_text()
    assert all(t in cpu for t in targets)
    for accelerator in ("cuda", "tpu"):
        text = step.trace(x, kern).lower(lowering_platforms=(accelerator,)).as_text()
        assert "custom_call" not in text and not any(t in text for t in targets), accelerator


def test_bias_add_and_its_native_gradient():
    y = jax.random.normal(jax.random.key(0), (3, 5, 4, 32))
    b = jax.random.normal(jax.random.key(1), (32,))
    _close(jax.jit(cpu_conv.bias_add)(y, b), y + b)
    loss = lambda f: lambda y, b: jnp.sum(jnp.sin(f(y, b)))  # noqa: E731
    step = jax.jit(jax.grad(loss(cpu_conv.bias_add), (0, 1)))
    for u, v in zip(step(y, b), jax.grad(loss(jnp.add), (0, 1))(y, b)):
        _close(u, v)
    assert native.CHANNEL_SUM_TARGET in step.lower(y, b).as_text()
    _close(jax.jvp(cpu_conv.bias_add, (y, b), (y, b))[1], y + b)
    _close(jax.vmap(cpu_conv.bias_add, (3, None))(y, b[:4]), jnp.moveaxis(y, 3, 0) + b[:4])
    _close(jax.vmap(cpu_conv.bias_add, (None, 0))(y[0, 0], jnp.stack([b, -b])), jnp.stack([y[0, 0] + b, y[0, 0] - b]))
    _close(jax.vmap(jax.grad(loss(cpu_conv.bias_add), 1), (0, None))(y, b), jax.vmap(jax.grad(loss(jnp.add), 1),
                                                                                     (0, None))(y, b))
    with pytest.raises(ValueError, match="bias over y's last axis"):
        cpu_conv.bias_add(y, b[:3])


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="-march=haswell is an x86 target")
def test_the_avx2_build_computes_the_same_functions():
    """CI's machine may lack AVX-512: the 8-float build (AVX2, 16 registers) is checked here on any x86 CPU."""
    code = ("import jax, jax.numpy as jnp, numpy as np, flax.linen as nn\n"
            "from gen_jax.nn import native, cpu_conv, cpu_norm\n"
            "x = jax.random.normal(jax.random.key(0), (3, 9, 9, 24))\n"
            "k = jax.random.normal(jax.random.key(1), (3, 3, 24, 40))\n"
            "s = jnp.linspace(0.5, 1.5, 40)\n"
            "def f(conv, norm):\n"
            "    return lambda x, k, s: jnp.sum(jnp.sin(norm(cpu_conv.bias_add(conv(x, k), s), s)) * x[..., :1])\n"
            "xla = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), 'SAME',\n"
            "                                               dimension_numbers=('NHWC', 'HWIO', 'NHWC'))\n"
            "gn = lambda y, s: cpu_norm.group_norm(y, s, s - 1, 8, 1e-6, True)\n"
            "ref_gn = lambda y, s: nn.silu(nn.GroupNorm(num_groups=8).apply(\n"
            "    {'params': {'scale': s, 'bias': s - 1}}, y))\n"
            "ours = jax.jit(jax.grad(f(cpu_conv.conv_same, gn), (0, 1, 2)))\n"
            "ref = jax.grad(f(xla, ref_gn), (0, 1, 2))\n"
            "err = max(float(jnp.abs(a - b).max() / jnp.abs(b).max()) for a, b in zip(ours(x, k, s), ref(x, k, s)))\n"
            "text = ours.lower(x, k, s).as_text()\n"
            "print(native.vector_width(), sum(t in text for t in (native.FORWARD_TARGET, native.WEIGHT_GRAD_TARGET,\n"
            "      native.NORM_FORWARD_TARGET, native.NORM_BACKWARD_TARGET, native.CHANNEL_SUM_TARGET)), err)\n")
    env = {**os.environ, native.EXTRA_FLAGS: "-march=haswell"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    width, targets, err = out.stdout.split()
    assert (width, targets) == ("8", "5") and float(err) < 1e-5, out.stdout
