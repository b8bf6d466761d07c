"""The evaluation suite against cases with known answers."""

import json
import math

import jax
import numpy as np
import pytest
import scipy.special
import scipy.stats
from sklearn.metrics import average_precision_score, roc_auc_score

from gen_jax.data import get_toy, load_image_dataset
from gen_jax.eval import (auprc, auroc, classify_channels, detection_report, frechet_distance, gaussian_statistics,
                          inpainting_score, kernel_distance, kl_to_uniform, load_feature_network, make_mask,
                          masked_errors, median_bandwidth, mmd_rbf, mode_coverage, params_hash, precision_recall,
                          sample_quality, sliced_wasserstein, stacked_modes, two_sample_report)
from gen_jax.eval import MASKS


def _gauss(n, d, shift=0.0, std=1.0, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)) * std
    x[:, 0] += shift
    return x


# ---------------------------------------------------------------- MMD and sliced Wasserstein

def test_mmd_of_identical_distributions_is_near_zero():
    x, y = _gauss(2000, 2, seed=0), _gauss(2000, 2, seed=1)
    res = mmd_rbf(x, y, bandwidths=[0.5, 1.0, 2.0])
    assert abs(res["mmd2_sum"]) < 3e-3
    far = mmd_rbf(x, _gauss(2000, 2, shift=3.0, seed=1), bandwidths=[0.5, 1.0, 2.0])
    assert far["mmd2_sum"] > 0.5


@pytest.mark.parametrize("h,shift,d", [(1.0, 1.0, 2), (2.0, 0.5, 3), (0.7, 2.0, 1)])
def test_mmd_of_shifted_gaussians_matches_closed_form(h, shift, d):
    # X ~ N(0, s^2 I), Y ~ N(delta, s^2 I), RBF bandwidth h:
    # MMD^2 = 2 (h^2 / (h^2 + 2 s^2))^(d/2) (1 - exp(-|delta|^2 / (2 (h^2 + 2 s^2)))).
    s = 0.5
    x, y = _gauss(4000, d, std=s, seed=2), _gauss(4000, d, shift=shift, std=s, seed=3)
    c = h**2 + 2 * s**2
    expected = 2 * (h**2 / c) ** (d / 2) * (1 - math.exp(-shift**2 / (2 * c)))
    got = mmd_rbf(x, y, bandwidths=[h])[f"mmd2_h={h:.4g}"]
    assert got == pytest.approx(expected, abs=0.01 + 0.03 * expected)


def test_sliced_wasserstein_in_one_dimension_is_exact_w1_for_unequal_sizes():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((37, 1)), rng.exponential(size=(53, 1))
    expected = scipy.stats.wasserstein_distance(x[:, 0], y[:, 0])
    assert sliced_wasserstein(x, y, p=1, num_projections=3) == pytest.approx(expected, rel=1e-10)


def test_sliced_w2_of_shifted_gaussians_is_shift_over_sqrt_d():
    # Projection theta: W2^2 = (theta . delta)^2, and E (theta . delta)^2 = |delta|^2 / d on the sphere.
    d, shift = 4, 2.0
    x, y = _gauss(20000, d, seed=4), _gauss(20000, d, shift=shift, seed=5)
    assert sliced_wasserstein(x, y, num_projections=2000) == pytest.approx(shift / math.sqrt(d), rel=0.05)


def test_two_sample_report_noise_floor_uses_the_same_kernels():
    toy = get_toy("ring8")
    good, bad = toy.sample(1000, seed=1), get_toy("grid25").sample(1000, seed=1)
    ref, ref2 = toy.sample(2000, seed=2), toy.sample(1000, seed=3)
    r_good = two_sample_report(good, ref, ref2)
    r_bad = two_sample_report(bad, ref, ref2)
    assert r_good["bandwidths"] == r_bad["bandwidths"] == pytest.approx(
        [s * median_bandwidth(ref) for s in (0.25, 0.5, 1.0, 2.0)])
    assert r_bad["mmd"]["mmd2_sum"] > 20 * abs(r_good["noise_floor"]["mmd"]["mmd2_sum"]) + 0.01
    assert r_good["sliced_w2"] < 2 * r_good["noise_floor"]["sliced_w2"] + 0.02 < r_bad["sliced_w2"]
    with pytest.raises(ValueError, match="noise floor"):
        two_sample_report(good, ref, ref2[:10])


# ---------------------------------------------------------------- Frechet distance and KID

def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 5))
    sigma = a @ a.T + np.eye(5)
    mu = rng.standard_normal(5)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)
    # Commuting (diagonal) covariances: |mu1 - mu2|^2 + sum (s1 - s2)^2 with s the standard deviations.
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([0.3, 2.0, 1.5])
    m1, m2 = np.array([0.0, 1.0, -1.0]), np.array([1.0, 1.0, 1.0])
    expected = np.sum((m1 - m2) ** 2) + np.sum((s1 - s2) ** 2)
    assert frechet_distance(m1, np.diag(s1**2), m2, np.diag(s2**2)) == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_from_samples_approaches_closed_form():
    x, y = _gauss(50000, 3, seed=0), _gauss(50000, 3, shift=2.0, std=2.0, seed=1)
    # N(0, I) vs N((2, 0, 0), 4 I): 4 + 3 * (1 - 2)^2 = 7.
    assert frechet_distance(*gaussian_statistics(x), *gaussian_statistics(y)) == pytest.approx(7.0, rel=0.03)


def test_kernel_distance_zero_for_same_distribution_positive_for_shift():
    same = kernel_distance(_gauss(2000, 8, seed=0), _gauss(2000, 8, seed=1), num_subsets=20, subset_size=500)
    shifted = kernel_distance(_gauss(2000, 8, seed=0), _gauss(2000, 8, shift=1.0, seed=1), num_subsets=20,
                              subset_size=500)
    assert abs(same["kid"]) < 3 * same["kid_std"] + 1e-3
    assert shifted["kid"] > 5 * shifted["kid_std"]
    # One subset of everything = the unbiased MMD^2 of the cubic kernel, written out by pairs.
    a, b = _gauss(12, 3, seed=2), _gauss(15, 3, shift=0.5, seed=3)
    k = lambda u, v: (u @ v / 3 + 1) ** 3
    xx = np.mean([k(a[i], a[j]) for i in range(12) for j in range(12) if i != j])
    yy = np.mean([k(b[i], b[j]) for i in range(12) for j in range(12) if i != j])  # a 12-subset of b
    got = kernel_distance(a, b[:12], num_subsets=1, subset_size=12)
    xy = np.mean([k(a[i], b[j]) for i in range(12) for j in range(12)])
    assert got["kid"] == pytest.approx(xx + yy - 2 * xy, rel=1e-10)


# ---------------------------------------------------------------- precision / recall

def test_precision_recall_of_a_subset_and_of_disjoint_sets():
    real = _gauss(2000, 4, seed=0)
    subset = real[real[:, 0] < -0.5]  # a "mode-dropping" model: one side of the data only
    res = precision_recall(real, subset, k=3)
    assert res["precision"] == 1.0  # every generated point is a real point
    # The subset's own points are covered (distance 0); the balls reach a little past the cut, no further.
    assert np.mean(real[:, 0] < -0.5) <= res["recall"] < 0.5
    full = precision_recall(real, _gauss(2000, 4, seed=1), k=3)
    assert full["precision"] > 0.9 and full["recall"] > 0.9
    far = precision_recall(real, _gauss(2000, 4, shift=100.0, seed=1), k=3)
    assert far["precision"] == 0.0 and far["recall"] == 0.0


# ---------------------------------------------------------------- mode coverage

@pytest.mark.parametrize("name,num_modes", [("ring8", 8), ("grid25", 25)])
def test_mode_coverage_of_exact_samples_hits_every_mode(name, num_modes):
    toy = get_toy(name)
    res = mode_coverage(toy.sample(20000, seed=0), toy.modes, toy.mode_std)
    assert res["modes_hit"] == res["num_modes"] == num_modes
    # Within 3 sigma of a 2-D isotropic Gaussian: 1 - exp(-9/2).
    assert res["high_quality_fraction"] == pytest.approx(1 - math.exp(-4.5), abs=0.003)


def test_mode_coverage_detects_collapse():
    toy = get_toy("ring8")
    collapsed = toy.modes[3] + toy.mode_std * np.random.default_rng(0).standard_normal((1000, 2))
    res = mode_coverage(np.concatenate([collapsed, [[0.0, 0.0]]]), toy.modes, toy.mode_std)
    assert res["modes_hit"] == 1 and res["counts"][3] > 980
    assert res["high_quality_fraction"] < 1.0  # the point at the centre is off every mode


def test_kl_to_uniform_and_stacked_modes_by_hand():
    assert kl_to_uniform([5, 5, 5, 5]) == 0.0
    assert kl_to_uniform([7, 0, 0, 0]) == pytest.approx(math.log(4))  # one mode of four
    assert kl_to_uniform([1, 1, 0, 0]) == pytest.approx(math.log(2))  # half: q = 1/2 on two modes
    digits = np.array([[1, 2, 3], [1, 2, 3], [0, 0, 9], [9, 9, 9]])
    res = stacked_modes(digits)
    assert res["num_modes"] == 1000 and res["modes_hit"] == 3
    assert res["counts"][123] == 2 and res["counts"][9] == 1 and res["counts"][999] == 1
    assert res["kl_to_uniform"] == pytest.approx(0.5 * math.log(500) + 2 * 0.25 * math.log(250))


def test_classify_channels_reads_each_channel_as_one_image():
    """A fake classifier that reads an image's digit as its mean level x 10: the channels are read apart."""
    images = np.zeros((2, 4, 4, 3), np.float32)
    images[0, ..., 0], images[0, ..., 1], images[0, ..., 2] = 0.1, 0.5, 0.9
    images[1, ..., 1] = 0.3
    seen = []

    def logits(x):
        seen.append(x.shape)
        digit = np.round(x.mean(axis=(1, 2, 3)) * 10).astype(int)
        return np.eye(10)[digit]

    np.testing.assert_array_equal(classify_channels(logits, images), [[1, 5, 9], [0, 3, 0]])
    assert seen == [(6, 4, 4, 1)]


# ---------------------------------------------------------------- detection

def test_auroc_auprc_known_cases_and_sklearn_oracle():
    assert auroc([0, 1, 2], [3, 4]) == 1.0 and auprc([0, 1, 2], [3, 4]) == 1.0
    assert auroc([3, 4], [0, 1, 2]) == 0.0
    assert auroc([1, 1], [1, 1]) == 0.5
    rng = np.random.default_rng(0)
    s_in, s_out = np.round(rng.normal(0, 1, 300), 1), np.round(rng.normal(1, 1, 200), 1)  # with ties
    y = np.r_[np.zeros(300), np.ones(200)]
    s = np.r_[s_in, s_out]
    assert auroc(s_in, s_out) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert auprc(s_in, s_out) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_typicality_flags_too_likely_inputs():
    in_nll = np.random.default_rng(0).normal(100, 5, 1000)
    out_nll = np.random.default_rng(1).normal(60, 5, 1000)  # "more likely" than the data: NLL score fails
    rep = detection_report(in_nll, out_nll, train_mean_nll=100.0)
    assert rep["nll"]["auroc"] < 0.01
    assert rep["typicality"]["auroc"] > 0.99
    with pytest.raises(ValueError, match="finite"):
        auroc([0.0, np.nan], [1.0])


def test_jem_anomaly_scores_of_a_linear_classifier_in_closed_form():
    """For logits W x + b: log p(x) = logsumexp, its gradient W^T softmax(W x + b), per example."""
    from gen_jax.eval import classifier_anomaly_scores

    rng = np.random.default_rng(0)
    w, b, x = rng.normal(size=(3, 5)), rng.normal(size=3), rng.normal(size=(4, 5)).astype(np.float32)
    scores = classifier_anomaly_scores(lambda v: v @ w.T.astype(np.float32) + b.astype(np.float32), x)
    logits = x @ w.T + b
    p = np.exp(logits - scipy.special.logsumexp(logits, -1, keepdims=True))
    np.testing.assert_allclose(scores["energy"], -scipy.special.logsumexp(logits, -1), rtol=1e-5)
    np.testing.assert_allclose(scores["max_softmax"], -p.max(-1), rtol=1e-5)
    np.testing.assert_allclose(scores["grad_norm"], np.linalg.norm(p @ w, axis=-1), rtol=1e-4)


# ---------------------------------------------------------------- inpainting

def test_masks_and_masked_errors():
    for name in MASKS:
        m = make_mask(name, (8, 8, 1), seed=0)
        assert m.shape == (8, 8, 1) and 0 < m.mean() < 1
    assert make_mask("left_half", (8, 8, 1))[:, :4].min() == 1 and make_mask("left_half", (8, 8, 1))[:, 4:].max() == 0
    assert make_mask("center_square", (8, 8, 1)).mean() == pytest.approx(1 - 16 / 64)
    with pytest.raises(ValueError, match="unknown mask"):
        make_mask("triangle", (8, 8, 1))
    x = np.random.default_rng(0).random((10, 8, 8, 1))
    mask = make_mask("left_half", (8, 8, 1))
    # A fill of 0.5 on the missing half: MSE = mean (x - 0.5)^2 there; the observed half is not scored.
    filled = mask * 0.0 + (1 - mask) * 0.5
    res = masked_errors(x, filled, mask)
    assert res["mse"] == pytest.approx(np.mean((x[:, :, 4:] - 0.5) ** 2))
    perfect = inpainting_score(lambda xb, mb, r: xb * mb + (1 - mb) * x[:len(xb)], x, mask, jax.random.key(0))
    assert perfect["mse"] == 0.0 and perfect["psnr"] == pytest.approx(100.0)


# ---------------------------------------------------------------- feature network (digits: seconds)

def test_feature_network_trains_caches_and_is_named_by_its_hash(tmp_path):
    net = load_feature_network("digits", steps=300, directory=tmp_path / "fn")
    assert net.test_accuracy > 0.85
    again = load_feature_network("digits", steps=300, directory=tmp_path / "fn")
    assert again.identity == net.identity == params_hash(again.params)
    test, train = load_image_dataset("digits", "test"), load_image_dataset("digits", "train")
    real = test.image.astype(np.float32) / 16
    res = sample_quality(net, real[:300], test, floor=train)
    assert res["identity"] == net.identity and res["num_generated"] == 300 and res["num_reference"] == len(test)
    assert res["precision"] > 0.95  # real test images lie on the test manifold
    noise = np.random.default_rng(0).random((300, 8, 8, 1)).astype(np.float32)
    bad = sample_quality(net, noise, test)
    assert bad["fd"] > 10 * res["fd"] and bad["precision"] < 0.1
    assert res["noise_floor"]["fd"] < bad["fd"]
    meta = json.loads((tmp_path / "fn" / "meta.json").read_text())
    meta["identity"] = "0" * 16
    (tmp_path / "fn" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="corrupt"):
        load_feature_network("digits", steps=300, directory=tmp_path / "fn")


def test_vae_importance_sampling_imputation_matches_quadrature():
    """A 1-D latent VAE on 2x2 binary images: E[x_mis | x_obs] by quadrature over z against the estimator."""
    import jax.numpy as jnp

    from gen_jax.losses import observation_log_likelihood, observation_mean
    from gen_jax.models import VAE
    from gen_jax.sampling import impute_by_importance_sampling

    model = VAE(image_shape=(2, 2, 1), latent_dim=1, decoder_params_per_dim=1, architecture="mlp", hidden=(8,))
    x = jnp.asarray([[[[1.0], [0.0]], [[1.0], [1.0]]]])
    params = model.init(jax.random.key(0), x, jax.random.key(1))
    leaves, tree = jax.tree.flatten(params)
    params = jax.tree.unflatten(tree, [l + 0.8 * jax.random.normal(jax.random.key(i), l.shape)
                                       for i, l in enumerate(leaves)])
    mask = jnp.asarray([[[[1.0], [1.0]], [[0.0], [0.0]]]])  # top row observed
    z = jnp.linspace(-8, 8, 4001)[:, None]
    out = model.apply(params, z, method=model.decode)
    levels = jnp.broadcast_to(x, (4001, 2, 2, 1)).astype(jnp.int32)
    log_w = observation_log_likelihood("bernoulli", out, levels, num_levels=2,
                                       weights=jnp.broadcast_to(mask, levels.shape)) - 0.5 * z[:, 0] ** 2
    w = jax.nn.softmax(log_w)
    exact = np.asarray(jnp.tensordot(w, observation_mean("bernoulli", out, num_levels=2), 1))
    got = impute_by_importance_sampling(model, "bernoulli", 2, params, x * mask, mask, jax.random.key(5),
                                        num_samples=20000, chunk=1000)
    np.testing.assert_allclose(np.asarray(got)[0, 1], exact[1], atol=0.01)  # the missing bottom row
    np.testing.assert_array_equal(np.asarray(got)[0, 0], np.asarray(x)[0, 0])  # observed pixels kept
