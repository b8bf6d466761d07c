"""Autoregressive models: exact normalisation over every 3x3 binary image, the autoregressive property."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.models.autoregressive import MADEImage, PixelCNN
from gen_jax.models.classic import all_binary_images

from conftest import perturb


def _noisy_init(model, x, y=None, scale=0.5):
    return perturb(model.init(jax.random.key(0), x, 0, y), scale, seed=1)


@pytest.mark.parametrize("num_masks", [1, 3])
def test_made_sums_to_one_over_all_binary_3x3_images(num_masks):
    model = MADEImage((3, 3, 1), num_levels=2, hidden=(16, 16), num_masks=num_masks)
    images = jnp.asarray(all_binary_images(9).reshape(512, 3, 3, 1))
    params = _noisy_init(model, images[:2])
    for m in range(num_masks):
        total = jnp.exp(model.apply(params, images, m, method=model.log_prob)).sum()
        assert float(total) == pytest.approx(1.0, abs=1e-5)
    ens = jnp.exp(model.apply(params, images, method=model.ensemble_log_prob)).sum()
    assert float(ens) == pytest.approx(1.0, abs=1e-5)


def test_categorical_made_sums_to_one_over_all_3_level_2x2_images():
    model = MADEImage((2, 2, 1), num_levels=3, hidden=(8,), num_classes=2)
    images = jnp.asarray(np.array(list(itertools.product(range(3), repeat=4))).reshape(81, 2, 2, 1))
    params = _noisy_init(model, images[:2], jnp.zeros(2, jnp.int32))
    for label in (0, 1):
        y = jnp.full((81,), label)
        total = jnp.exp(model.apply(params, images, 0, y, method=model.log_prob)).sum()
        assert float(total) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("levels,mask_index", [(2, 0), (2, 2), (5, 1)])
def test_made_logit_d_ignores_pixels_at_or_after_d_in_the_order(levels, mask_index):
    model = MADEImage((2, 3, 1), num_levels=levels, hidden=(32,), num_masks=3, direct_connections=True)
    x = jnp.zeros((1, 2, 3, 1), jnp.int32)
    params = _noisy_init(model, x)

    def logits_of_input(v):  # continuous stand-in for the integer input, to differentiate
        return model.apply(params, v, mask_index, method=lambda m, u, i: m.logits(u, i))

    jac = np.asarray(jax.jacfwd(lambda v: logits_of_input(v.reshape(1, 2, 3, 1))[0])(jnp.ones(6) * 0.3))
    jac = jac.reshape(6, -1, 6)  # (output pixel, per-pixel outputs, input pixel)
    order = np.asarray(model.bind(params).degrees[0][mask_index])
    for i in range(6):
        for j in range(6):
            if order[j] >= order[i]:
                assert np.all(jac[i, :, j] == 0.0), (i, j)
    assert np.abs(jac).sum() > 0


def test_made_samples_follow_its_distribution():
    model = MADEImage((2, 2, 1), num_levels=2, hidden=(16,), num_masks=2)
    images = jnp.asarray(all_binary_images(4).reshape(16, 2, 2, 1))
    params = _noisy_init(model, images[:2], scale=1.0)
    for m in range(2):
        p = np.exp(np.asarray(model.apply(params, images, m, method=model.log_prob)))
        s = np.asarray(model.apply(params, jax.random.key(3), 20000, m, method=model.sample))
        idx = s.reshape(20000, 4) @ (1 << np.arange(3, -1, -1))
        freq = np.bincount(idx, minlength=16) / 20000
        assert np.abs(freq - p).max() < 0.015




@pytest.mark.parametrize("levels,output,dilations", [(2, "categorical", (1,)), (2, "categorical", (2,)),
                                                    (3, "categorical", (1,)), (3, "logistic_mixture", (1,))])
def test_pixelcnn_is_normalised_over_every_tiny_image(levels, output, dilations):
    model = PixelCNN(num_levels=levels, channels=8, num_layers=2, output=output, num_mixtures=2,
                     dilations=dilations)
    d = 4 if levels > 2 else 9
    side = 2 if levels > 2 else 3
    images = jnp.asarray(np.array(list(itertools.product(range(levels), repeat=d))).reshape(-1, side, side, 1))
    params = model.init(jax.random.key(0), images[:2])
    leaves, tree = jax.tree.flatten(params)
    params = jax.tree.unflatten(tree, [l + 0.3 * jax.random.normal(jax.random.key(i), l.shape)
                                       for i, l in enumerate(leaves)])
    total = jnp.exp(model.apply(params, images, method=model.log_prob)).sum()
    assert float(total) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("side,num_layers,dilations,pixels", [
    (5, 4, (1,), [(0, 1), (2, 2), (4, 4), (3, 0)]),
    (9, 5, (1, 2), [(0, 1), (4, 4), (8, 8), (8, 0), (6, 7)]),
])
def test_pixelcnn_sees_every_earlier_pixel_and_no_later_one(side, num_layers, dilations, pixels):
    """Causal and blind-spot free: d out(i, j) / d x(i', j') != 0 exactly when (i', j') precedes (i, j); also
    with dilated layers."""
    h = w = side
    model = PixelCNN(num_levels=2, channels=8, num_layers=num_layers, dilations=dilations)
    x = jnp.zeros((1, h, w, 1), jnp.int32)
    params = model.init(jax.random.key(0), x)
    leaves, tree = jax.tree.flatten(params)
    params = jax.tree.unflatten(tree, [l + 0.3 * jax.random.normal(jax.random.key(i), l.shape)
                                       for i, l in enumerate(leaves)])

    def out_of_continuous_input(u):  # the float image the network sees, bypassing the integer cast
        return model.apply(params, u, method=lambda m, v: m.outputs(v))

    u0 = jnp.full((1, h, w, 1), 0.3)
    for (i, j) in pixels:
        g = np.asarray(jax.grad(lambda u: out_of_continuous_input(u)[0, i, j, 0])(u0))[0, :, :, 0]
        for a in range(h):
            for b in range(w):
                earlier = a * w + b < i * w + j
                assert (g[a, b] != 0) == earlier, ((i, j), (a, b), g[a, b])


def test_pixelcnn_samples_and_inpaints_with_observed_pixels_kept():
    model = PixelCNN(num_levels=2, channels=8, num_layers=2)
    x = jnp.zeros((4, 4, 4, 1), jnp.int32)
    params = model.init(jax.random.key(0), x)
    s1 = model.apply(params, jax.random.key(1), 4, (4, 4), method=model.sample)
    s2 = model.apply(params, jax.random.key(2), 4, (4, 4), method=model.sample)
    assert s1.shape == (4, 4, 4, 1) and not np.array_equal(s1, s2)
    observed = jnp.ones((4, 4, 4, 1), jnp.int32)
    mask = jnp.zeros((4, 4, 4, 1)).at[:, :2].set(1.0)  # top half observed
    filled = model.apply(params, jax.random.key(3), observed, mask, method=model.inpaint)
    np.testing.assert_array_equal(filled[:, :2], observed[:, :2])


@pytest.mark.parametrize("num_layers,dilations", [(2, (1,)), (3, (2,))])
def test_pixelcnn_patch_convolutions_compute_the_flax_convolutions(num_layers, dilations):
    """The default ``conv="patch"`` (fast on CPU) and ``conv="flax"`` share parameters and log-likelihoods."""
    x = jax.random.randint(jax.random.key(2), (3, 5, 5, 1), 0, 5)
    kw = dict(num_levels=5, channels=8, num_layers=num_layers, output="logistic_mixture", num_mixtures=2,
              dilations=dilations)
    fast = PixelCNN(**kw)
    ref = PixelCNN(**kw, conv="flax")
    params = jax.jit(fast.init)(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, jax.eval_shape(ref.init, jax.random.key(0), x))
    np.testing.assert_allclose(jax.jit(fast.apply)(params, x), jax.jit(ref.apply)(params, x), rtol=1e-5, atol=1e-4)
    g_fast, g_ref = (jax.jit(jax.grad(lambda p, m=m: m.apply(p, x).sum()))(params) for m in (fast, ref))
    for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dilations", [(), (1, 0)])
def test_pixelcnn_rejects_dilations_below_one(dilations):
    with pytest.raises(ValueError, match="dilations must be a non-empty sequence of integers >= 1"):
        PixelCNN(num_levels=2, channels=4, num_layers=2, dilations=dilations).init(
            jax.random.key(0), jnp.zeros((1, 3, 3, 1), jnp.int32))
