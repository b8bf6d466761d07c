"""Col2ImConvTranspose computes exactly nn.ConvTranspose, PatchConv exactly nn.Conv, SpaceToDepthConv exactly a
strided nn.Conv: outputs and gradients on shared parameters."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.nn import MLP, Col2ImConvTranspose, ConvDecoder, PatchConv, SpaceToDepthConv, UNet
from gen_jax.nn.conv import _s2d_patches, space_to_depth_patches
from gen_jax.nn.minibatch import MinibatchDiscrimination, minibatch_stddev, pack
from gen_jax.nn.unet import upsample

CASES = [  # (input H, W, kernel, stride, padding)
    (7, 7, 4, 2, "SAME"), (7, 9, 4, 2, "VALID"), (8, 8, 3, 2, "SAME"), (5, 6, 5, 2, "SAME"),
    (4, 4, 3, 3, "VALID"), (6, 6, 3, 1, "SAME"), (3, 5, 2, 2, "SAME"),
]


def assert_same_function(ours, ref, x):
    """``ours`` has ``ref``'s parameter shapes and, on ``ref``'s parameters (shifted so the bias is non-zero),
    its outputs and its gradients with respect to parameters and input."""
    params = jax.tree.map(lambda p: p + 0.1, ref.init(jax.random.key(1), x))
    assert jax.tree.map(jnp.shape, ours.init(jax.random.key(1), x)) == jax.tree.map(jnp.shape, params)
    np.testing.assert_allclose(ours.apply(params, x), ref.apply(params, x), rtol=1e-5, atol=1e-5)

    def loss(module, p, v):
        return jnp.sum(jnp.sin(module.apply(p, v)))

    g_ref = jax.grad(lambda p, v: loss(ref, p, v), argnums=(0, 1))(params, x)
    g_ours = jax.grad(lambda p, v: loss(ours, p, v), argnums=(0, 1))(params, x)
    for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("h,w,k,s,padding", CASES)
def test_col2im_conv_transpose_equals_flax_conv_transpose(h, w, k, s, padding):
    x = jax.random.normal(jax.random.key(0), (2, h, w, 3))
    assert_same_function(Col2ImConvTranspose(5, (k, k), (s, s), padding=padding),
                         nn.ConvTranspose(5, (k, k), (s, s), padding=padding), x)


def test_col2im_conv_transpose_has_forward_mode_derivatives():
    """Forward mode (``jax.jvp``: the PF-ODE's divergence) goes through it and agrees with reverse mode."""
    layer = Col2ImConvTranspose(3, (4, 4), (2, 2))
    x, v = jax.random.normal(jax.random.key(0), (2, 2, 5, 4, 3))
    params = layer.init(jax.random.key(1), x)
    f = lambda u: layer.apply(params, u)
    y, jv = jax.jvp(f, (x,), (v,))
    cot = jax.random.normal(jax.random.key(2), y.shape)
    np.testing.assert_allclose(jnp.sum(jv * cot), jnp.sum(jax.vjp(f, x)[1](cot)[0] * v), rtol=1e-4)


@pytest.mark.parametrize("h,w,k,s,padding", [(28, 28, 4, 2, ((1, 1), (1, 1))), (7, 9, 4, 2, ((1, 1), (1, 1))),
                                               (8, 7, 3, 2, "SAME"), (9, 9, 5, 2, "VALID"), (10, 11, 3, 3, "SAME"),
                                               (6, 6, 2, 2, ((0, 1), (1, 0)))])
def test_space_to_depth_conv_equals_strided_flax_conv(h, w, k, s, padding):
    x = jax.random.normal(jax.random.key(0), (2, h, w, 3))
    assert_same_function(SpaceToDepthConv(5, (k, k), (s, s), padding=padding),
                         nn.Conv(5, (k, k), strides=(s, s), padding=padding), x)


@pytest.mark.parametrize("taps,strides,out", [((2, 2), (2, 2), (7, 7)), ((2, 3), (2, 3), (3, 4)),
                                              ((1, 2), (3, 2), (4, 3))])
def test_space_to_depth_patches_values_and_derivatives_take_one_copy_two_ways(taps, strides, out):
    """The patches' values (strided slices) equal the space-to-depth form's, by hand on a few entries too; its
    forward-mode derivative is that form (exact), its gradient that form's transpose; and a gradient of a
    gradient (R1, WGAN-GP) agrees with ``nn.Conv``'s."""
    (uh, uw), (sh, sw), (oh, ow) = taps, strides, out
    x = jax.random.normal(jax.random.key(0), (2, (oh + uh - 1) * sh, (ow + uw - 1) * sw, 3))
    p = space_to_depth_patches(x, taps, strides, out)
    np.testing.assert_array_equal(p, _s2d_patches(x, taps, strides, out))
    b, o, q, i, j, r, c = 1, oh - 1, 0, uh - 1, uw - 1, sh - 1, 0  # channel (i, j, r, c, ch) of output (o, q)
    channel = (((i * uw + j) * sh + r) * sw + c) * 3 + 2
    assert p[b, o, q, channel] == x[b, sh * (o + i) + r, sw * (q + j) + c, 2]
    v = jax.random.normal(jax.random.key(1), x.shape)
    y, jv = jax.jvp(lambda u: space_to_depth_patches(u, taps, strides, out), (x,), (v,))
    np.testing.assert_array_equal(jv, _s2d_patches(v, taps, strides, out))
    cot = jax.random.normal(jax.random.key(2), y.shape)
    vjp = jax.vjp(lambda u: space_to_depth_patches(u, taps, strides, out), x)[1](cot)[0]
    np.testing.assert_array_equal(vjp, jax.vjp(lambda u: _s2d_patches(u, taps, strides, out), x)[1](cot)[0])


def test_space_to_depth_conv_second_order_gradient_equals_flax_conv():
    ours, ref = SpaceToDepthConv(4, (4, 4), (2, 2)), nn.Conv(4, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)))
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    params = jax.tree.map(lambda p: p + 0.1, ref.init(jax.random.key(1), x))

    def r1(module, p):  # the gradient penalty's shape: the squared input gradient, differentiated in the params
        g = jax.grad(lambda v: jnp.sum(jnp.sin(module.apply(p, v))))(x)
        return jnp.sum(g ** 2)

    for a, b in zip(jax.tree.leaves(jax.grad(lambda p: r1(ours, p))(params)),
                    jax.tree.leaves(jax.grad(lambda p: r1(ref, p))(params))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_packing_minibatch_stddev_and_minibatch_discrimination_by_hand():
    x = np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2)  # 4 examples, 3 "pixels", 2 channels
    packed = np.asarray(pack(jnp.asarray(x), 2))
    assert packed.shape == (2, 3, 4)
    np.testing.assert_array_equal(packed[1, 2], np.concatenate([x[2, 2], x[3, 2]]))  # examples side by side
    with pytest.raises(ValueError, match="not divisible by the packing degree 3"):
        pack(jnp.asarray(x), 3)
    v = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    out = np.asarray(minibatch_stddev(jnp.asarray(v), group_size=3))
    for i in range(6):  # group of example i: the examples i mod 2 (StyleGAN's reshape)
        group = v[i % 2::2]
        np.testing.assert_allclose(out[i, -1], np.mean(np.sqrt(group.var(0) + 1e-8)), rtol=1e-5)
    np.testing.assert_array_equal(out[:, :5], v)
    mbd = MinibatchDiscrimination(num_kernels=3, kernel_dim=2)
    params = mbd.init(jax.random.key(0), jnp.asarray(v))
    t = np.asarray(params["params"]["T"])
    m = (v @ t).reshape(6, 3, 2)
    want = np.stack([sum(np.exp(-np.abs(m[i] - m[j]).sum(-1)) for j in range(6) if j != i) for i in range(6)])
    np.testing.assert_allclose(np.asarray(mbd.apply(params, jnp.asarray(v)))[:, 5:], want, rtol=1e-5)


@pytest.mark.parametrize("kernel,padding", [((2, 3), "VALID"), ((1, 2), ((0, 0), (1, 0))), ((1, 1), "SAME"),
                                            ((4, 4), "SAME")])
def test_patch_conv_equals_flax_conv(kernel, padding):
    x = jax.random.normal(jax.random.key(0), (2, 6, 7, 3))
    assert_same_function(PatchConv(5, kernel, padding=padding), nn.Conv(5, kernel, padding=padding), x)


@pytest.mark.parametrize("kernel,padding,dilation", [((2, 3), "VALID", 2), ((2, 3), "SAME", (3, 1)),
                                                     ((1, 2), ((0, 0), (4, 0)), 4), ((3, 3), "SAME", 2)])
def test_dilated_patch_conv_equals_flax_conv(kernel, padding, dilation):
    x = jax.random.normal(jax.random.key(0), (2, 9, 8, 3))
    assert_same_function(PatchConv(5, kernel, padding=padding, kernel_dilation=dilation),
                         nn.Conv(5, kernel, padding=padding, kernel_dilation=dilation), x)


def test_patch_conv_rejects_unknown_padding():
    with pytest.raises(ValueError, match="padding must be"):
        PatchConv(2, (3, 3), padding="CIRCULAR").init(jax.random.key(0), jnp.zeros((1, 4, 4, 1)))


def test_conv_decoder_output_shape_and_divisibility_error():
    dec = ConvDecoder(image_shape=(28, 28, 1), out_channels=2, channels=(16, 8), hidden=32)
    out, _ = dec.init_with_output(jax.random.key(0), jnp.zeros((3, 4)))
    assert out.shape == (3, 28, 28, 2)
    with pytest.raises(ValueError, match="not divisible by 2\\^3"):
        ConvDecoder(image_shape=(28, 28, 1), out_channels=1, channels=(4, 4, 4)).init(jax.random.key(0),
                                                                                       jnp.zeros((1, 2)))


def test_mlp_final_activation_flag():
    x = jnp.linspace(-3, 3, 12).reshape(2, 6)
    mlp = MLP((4, 3), activate_final=True)
    out = mlp.apply(mlp.init(jax.random.key(0), x), x)
    assert out.shape == (2, 3) and np.all(out >= 0)


@pytest.mark.parametrize("side_in,side_out", [((4, 3), (8, 7)), ((3, 4), (7, 8)), ((4, 4), (8, 8))])
def test_the_unets_upsampling_is_repeat_and_edge_pad(side_in, side_out):
    """``upsample`` (a broadcast; the odd side's last row repeated) against the textbook form it replaces for
    speed, ``jnp.repeat`` and ``jnp.pad(mode="edge")``: values and the gradient."""
    x = jax.random.normal(jax.random.key(0), (2, *side_in, 3))
    cot = jax.random.normal(jax.random.key(1), (2, *side_out, 3))

    def reference(v):
        v = jnp.repeat(jnp.repeat(v, 2, axis=1), 2, axis=2)
        return jnp.pad(v, ((0, 0), (0, side_out[0] - v.shape[1]), (0, side_out[1] - v.shape[2]), (0, 0)), mode="edge")

    for f in (reference, lambda v: upsample(v, side_out)):
        out, vjp = jax.vjp(f, x)
        if f is reference:
            want = (out, vjp(cot)[0])
        else:
            np.testing.assert_array_equal(out, want[0])
            np.testing.assert_allclose(vjp(cot)[0], want[1], rtol=1e-6, atol=1e-6)


class _UNetOn(nn.Module):
    """A conditional U-Net with a fixed time and label, as a one-input module for ``assert_same_function``."""

    conv: str
    channels: tuple = (4, 8)

    @nn.compact
    def __call__(self, x):
        t, labels = jnp.linspace(0.1, 0.9, x.shape[0]), jnp.arange(x.shape[0]) % 3
        return UNet(channels=self.channels, num_classes=3, time_dim=8, groups=2, conv=self.conv, name="unet")(
            x, t, labels)


@pytest.mark.parametrize("conv,channels", [("patch", (4, 8)), ("native", (16, 32))])
def test_the_unet_computes_one_function_with_each_convolution(conv, channels):
    """Odd sides (7 -> 3 -> up-sampled back to 7) exercise the pooling's crop and the up-sampling's edge pad.
    Jitted: the U-Net's gradient op by op took 95 s here. The native kernels take 16 and 32 output maps."""
    x = jax.random.normal(jax.random.key(0), (2, 7, 7, 1))
    patch, flax_conv = _UNetOn(conv, channels), _UNetOn("flax", channels)
    fresh_params = jax.jit(patch.init)(jax.random.key(1), x)
    params = jax.tree.map(lambda p: p + 0.1, jax.jit(flax_conv.init)(jax.random.key(1), x))  # output conv != 0
    assert jax.tree.map(jnp.shape, fresh_params) == jax.tree.map(jnp.shape, params)

    def out_and_grads(module):
        loss = lambda p, v: jnp.sum(jnp.sin(module.apply(p, v)))
        return jax.jit(lambda p, v: (module.apply(p, v), jax.grad(loss, argnums=(0, 1))(p, v)))(params, x)

    for a, b in zip(jax.tree.leaves(out_and_grads(patch)), jax.tree.leaves(out_and_grads(flax_conv))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    fresh = jax.jit(patch.apply)(fresh_params, x)
    assert fresh.shape == x.shape and float(jnp.abs(fresh).max()) == 0.0  # the output convolution starts at zero


def test_the_diffusion_unet_trains_on_the_native_kernels_by_default():
    """The diffusion family's default U-Net lowers its training gradient on CPU to gen_jax's kernels (the
    convolutions' three passes, the bias sums, the group norms): a silent fall back to XLA would fail here."""
    from gen_jax.families.diffusion import config_defaults
    from gen_jax.nn import native

    conv = config_defaults().model.conv
    assert conv == "native"
    net = UNet(channels=(16, 32), time_dim=8, groups=4, conv=conv)
    x, t = jnp.zeros((2, 8, 8, 1)), jnp.full((2,), 0.5)
    params = jax.jit(net.init)(jax.random.key(0), x, t)
    text = jax.jit(jax.grad(lambda p: jnp.sum(net.apply(p, x, t) ** 2))).lower(params).as_text()
    for target in (native.FORWARD_TARGET, native.WEIGHT_GRAD_TARGET, native.CHANNEL_SUM_TARGET,
                   native.NORM_FORWARD_TARGET, native.NORM_BACKWARD_TARGET):
        assert target in text, target
