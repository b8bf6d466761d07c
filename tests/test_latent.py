"""Classic latent-variable models (gen_jax.models.latent) against scikit-learn and closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal

from gen_jax.models import latent


def _low_rank_data(n=2000, d=6, k=2, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(d, k)) * np.linspace(2, 1, k)
    psi = rng.uniform(0.1, 0.5, d)
    return (rng.normal(size=(n, k)) @ w.T + rng.normal(size=(n, d)) * np.sqrt(psi) + rng.normal(size=d)).astype(
        np.float32)


def _blobs(n=1500, seed=0):
    rng = np.random.default_rng(seed)
    means = np.array([[0, 0, 0], [6, 0, 1], [0, 7, -2]], np.float64)
    covs = [np.array([[1, .5, 0], [.5, 1, .2], [0, .2, .5]]), np.eye(3) * .3, np.diag([2, .5, 1.])]
    y = rng.choice(3, n, p=[.5, .3, .2])
    x = np.stack([rng.multivariate_normal(means[c], covs[c]) for c in y])
    return x.astype(np.float32), y


def test_pca_matches_scikit_learn():
    from sklearn.decomposition import PCA

    x = _low_rank_data()
    ours = latent.fit_pca(jnp.asarray(x), 3)
    ref = PCA(3).fit(x)
    np.testing.assert_allclose(np.asarray(ours["components"]), ref.components_, atol=2e-3)
    # scikit-learn's explained variance uses 1/(N-1); the MLE covariance 1/N
    np.testing.assert_allclose(np.asarray(ours["variances"][:3]) * len(x) / (len(x) - 1), ref.explained_variance_,
                               rtol=1e-3)


def test_ppca_log_prob_is_the_gaussian_with_low_rank_covariance_and_its_ml_is_scikit_learns():
    from sklearn.decomposition import PCA

    x = _low_rank_data()
    params = latent.fit_ppca(jnp.asarray(x), 2)
    cov = np.asarray(latent.ppca_covariance(params), np.float64)
    exact = multivariate_normal(np.asarray(params["mean"], np.float64), cov).logpdf(x[:50])
    np.testing.assert_allclose(np.asarray(latent.ppca_log_prob(params, jnp.asarray(x[:50]))), exact, rtol=1e-5,
                               atol=1e-4)
    # scikit-learn's PCA.score is PPCA's log-likelihood (its noise variance with 1/(N-1): compare loosely)
    ref = PCA(2).fit(x)
    assert abs(float(np.mean(latent.ppca_log_prob(params, jnp.asarray(x)))) - ref.score(x)) < 2e-3
    # maximum likelihood: any other noise level or a shrunk W is worse on the training data
    base = float(jnp.mean(latent.ppca_log_prob(params, jnp.asarray(x))))
    for change in ({"sigma2": params["sigma2"] * 1.1}, {"sigma2": params["sigma2"] * 0.9}, {"W": params["W"] * 0.95}):
        assert float(jnp.mean(latent.ppca_log_prob({**params, **change}, jnp.asarray(x)))) < base
    # the posterior over z: Gaussian conditioning of the joint (z, x)
    w, s2 = np.asarray(params["W"], np.float64), float(params["sigma2"])
    z_mean, z_cov = latent.ppca_posterior(params, jnp.asarray(x[:5]))
    m = w.T @ w + s2 * np.eye(2)
    np.testing.assert_allclose(np.asarray(z_cov), s2 * np.linalg.inv(m), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(np.asarray(z_mean), (x[:5] - np.asarray(params["mean"])) @ w @ np.linalg.inv(m),
                               rtol=1e-4, atol=1e-5)


def test_factor_analysis_em_climbs_and_reaches_scikit_learns_likelihood():
    from sklearn.decomposition import FactorAnalysis

    x = _low_rank_data()
    params, history = latent.fit_factor_analysis(jnp.asarray(x), 2, num_iters=300)
    history = np.asarray(history)
    # EM never decreases the likelihood (up to float32 noise: the values are ~7.6, their rounding ~1e-5)
    assert np.all(np.diff(history) > -1e-4), np.diff(history).min()
    ours = float(jnp.mean(latent.fa_log_prob(params, jnp.asarray(x))))
    assert abs(ours - history[-1]) < 1e-4  # the history's last value is the fitted model's likelihood
    ref = FactorAnalysis(2, tol=1e-8, max_iter=5000).fit(x)
    assert abs(ours - ref.score(x)) < 2e-3, (ours, ref.score(x))
    cov = np.asarray(latent.fa_covariance(params), np.float64)
    exact = multivariate_normal(np.asarray(params["mean"], np.float64), cov).logpdf(x[:20])
    np.testing.assert_allclose(np.asarray(latent.fa_log_prob(params, jnp.asarray(x[:20]))), exact, rtol=1e-5)


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_gmm_em_never_decreases_and_matches_scikit_learn(covariance):
    from sklearn.mixture import GaussianMixture

    x, _ = _blobs()
    params, history = latent.fit_gmm(jax.random.key(0), jnp.asarray(x), 3, covariance=covariance, num_iters=60,
                                     num_restarts=2)
    history = np.asarray(history)
    assert history.shape == (2, 61)
    assert np.all(np.diff(history, axis=1) > -1e-4), np.diff(history, axis=1).min()
    ours = float(jnp.mean(latent.gmm_log_prob(params, jnp.asarray(x))))
    ref = GaussianMixture(3, covariance_type=covariance, tol=1e-8, max_iter=500, random_state=0).fit(x)
    assert abs(ours - ref.score(x)) < 2e-3, (ours, ref.score(x))
    np.testing.assert_allclose(np.sort(np.exp(np.asarray(params["log_weights"]))), np.sort(ref.weights_), atol=2e-3)


def test_masked_gaussian_marginal_and_conditional_against_the_closed_form():
    rng = np.random.default_rng(1)
    d = 5
    a = rng.normal(size=(d, d))
    cov, mean = a @ a.T + np.eye(d), rng.normal(size=d)
    x = rng.normal(size=(3, d))
    masks = np.array([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1], [0, 0, 0, 1, 0]], np.float32)
    lp = latent.masked_gaussian_log_prob(jnp.asarray(x, jnp.float32), jnp.asarray(masks), jnp.asarray(mean, jnp.float32),
                                         jnp.asarray(cov, jnp.float32))
    cmean, ccov = latent.gaussian_conditional(jnp.asarray(x, jnp.float32), jnp.asarray(masks),
                                              jnp.asarray(mean, jnp.float32), jnp.asarray(cov, jnp.float32))
    for i, m in enumerate(masks.astype(bool)):
        o, u = np.flatnonzero(m), np.flatnonzero(~m)
        expect = multivariate_normal(mean[o], cov[np.ix_(o, o)]).logpdf(x[i, o])
        assert abs(float(lp[i]) - expect) < 1e-4
        np.testing.assert_allclose(np.asarray(cmean[i, o]), x[i, o], rtol=1e-6)
        if len(u):
            gain = cov[np.ix_(u, o)] @ np.linalg.inv(cov[np.ix_(o, o)])
            np.testing.assert_allclose(np.asarray(cmean[i, u]), mean[u] + gain @ (x[i, o] - mean[o]), rtol=1e-4,
                                       atol=1e-5)
            np.testing.assert_allclose(np.asarray(ccov[i])[np.ix_(u, u)],
                                       cov[np.ix_(u, u)] - gain @ cov[np.ix_(o, u)], rtol=1e-4, atol=1e-5)
        assert np.all(np.asarray(ccov[i])[o] == 0)
    # draws from the conditional: observed coordinates untouched, the missing ones with the right mean
    draws = jax.vmap(lambda k: latent.gaussian_impute(jnp.asarray(x[:1], jnp.float32), jnp.asarray(masks[:1]),
                                                      jnp.asarray(mean, jnp.float32), jnp.asarray(cov, jnp.float32),
                                                      k))(jax.random.split(jax.random.key(0), 4000))[:, 0]
    np.testing.assert_array_equal(np.asarray(draws[:, masks[0] > 0]), np.broadcast_to(
        x[0, masks[0] > 0].astype(np.float32), (4000, 3)))
    np.testing.assert_allclose(np.asarray(draws.mean(0)), np.asarray(cmean[0]), atol=0.1)


def test_mixture_marginals_and_imputation():
    x, _ = _blobs(600)
    params, _ = latent.fit_gmm(jax.random.key(1), jnp.asarray(x), 3, num_iters=30)
    xj = jnp.asarray(x[:20])
    full = jnp.ones_like(xj)
    np.testing.assert_allclose(np.asarray(latent.gmm_masked_log_prob(params, xj, full)[0]),
                               np.asarray(latent.gmm_log_prob(params, xj)), rtol=1e-5)
    # marginal of coordinate 0 only: the 1-D mixture of the components' marginals
    mask = jnp.zeros_like(xj).at[:, 0].set(1)
    w = np.exp(np.asarray(params["log_weights"]))
    covs, means = np.asarray(params["covs"]), np.asarray(params["means"])
    expect = np.log(sum(w[k] * np.exp(-0.5 * (x[:20, 0] - means[k, 0]) ** 2 / covs[k, 0, 0])
                        / np.sqrt(2 * np.pi * covs[k, 0, 0]) for k in range(3)))
    np.testing.assert_allclose(np.asarray(latent.gmm_masked_log_prob(params, xj, mask)[0]), expect, rtol=1e-4)
    filled = latent.gmm_impute(params, xj, mask)
    np.testing.assert_array_equal(np.asarray(filled[:, 0]), x[:20, 0])
    # x0 and x1 observed tell the three blobs apart: the fill of x2 is its blob's conditional mean, far better
    # than the overall mean (blob means of x2: 0, 1, -2)
    mask2 = jnp.ones_like(xj).at[:, 2].set(0)
    filled = np.asarray(latent.gmm_impute(params, xj, mask2))
    np.testing.assert_array_equal(filled[:, :2], x[:20, :2])
    err_mixture = np.mean((filled[:, 2] - x[:20, 2]) ** 2)
    err_mean = np.mean((x[:, 2].mean() - x[:20, 2]) ** 2)
    assert err_mixture < 0.5 * err_mean, (err_mixture, err_mean)


def test_bernoulli_mixture_em_recovers_planted_prototypes_and_marginalises_missing_pixels():
    rng = np.random.default_rng(0)
    protos = (rng.random((3, 30)) < 0.5).astype(np.float32)
    z = rng.choice(3, 3000, p=[.5, .3, .2])
    flips = rng.random((3000, 30)) < 0.1
    x = np.abs(protos[z] - flips).astype(np.float32)
    params, history = latent.fit_bernoulli_mixture(jax.random.key(0), jnp.asarray(x), 3, num_iters=40,
                                                   num_restarts=3)
    assert np.all(np.diff(np.asarray(history), axis=1) > -1e-4)
    p = np.asarray(jax.nn.sigmoid(params["logits"]))
    for proto in protos:  # each planted prototype is a learned component's rounding
        assert min(np.abs(np.round(p) - proto).sum(1)) == 0
    np.testing.assert_allclose(np.sort(np.exp(np.asarray(params["log_weights"]))), [.2, .3, .5], atol=0.03)
    # with every pixel missing the marginal is log 1 = 0; with half, a sum over the hidden half of the full table
    xs = jnp.asarray(x[:4, :6])
    small = {"log_weights": params["log_weights"], "logits": params["logits"][:, :6]}
    mask = jnp.asarray([[1, 1, 1, 0, 0, 0]] * 4, jnp.float32)
    np.testing.assert_allclose(np.asarray(latent.bernoulli_mixture_log_prob(small, xs, jnp.zeros_like(xs))), 0,
                               atol=1e-5)
    grid = np.array([[(i >> b) & 1 for b in range(3)] for i in range(8)], np.float32)
    for i in range(4):
        full = np.concatenate([np.repeat(x[i:i + 1, :3], 8, 0), grid], 1)
        total = jax.nn.logsumexp(latent.bernoulli_mixture_log_prob(small, jnp.asarray(full)))
        assert abs(float(latent.bernoulli_mixture_log_prob(small, xs, mask)[i]) - float(total)) < 1e-4


def test_naive_bayes_matches_scikit_learn_and_bayes_rule_with_known_gaussians():
    from sklearn.naive_bayes import BernoulliNB, GaussianNB

    x, y = _blobs(800)
    ours = latent.fit_gaussian_naive_bayes(jnp.asarray(x), jnp.asarray(y), 3)
    ref = GaussianNB().fit(x, y)
    joint = latent.naive_bayes_log_joint(ours, jnp.asarray(x))
    # float32 against float64: log-posteriors down to -90 differ by up to 3e-5 relative on some CPUs (2.5e-3 absolute)
    np.testing.assert_allclose(np.asarray(jax.nn.log_softmax(joint)), ref.predict_log_proba(x), rtol=1e-4, atol=2e-3)
    xb = (x > np.median(x, 0)).astype(np.float32)
    ours_b = latent.fit_bernoulli_naive_bayes(jnp.asarray(xb), jnp.asarray(y), 3)
    ref_b = BernoulliNB(alpha=1.0).fit(xb, y)
    np.testing.assert_allclose(np.asarray(jax.nn.log_softmax(latent.naive_bayes_log_joint(ours_b, jnp.asarray(xb)))),
                               ref_b.predict_log_proba(xb), atol=1e-4)
    # two known 1-D Gaussians with equal variance: Bayes' rule is a threshold at the midpoint shifted by the prior
    params = {"log_prior": jnp.log(jnp.asarray([0.25, 0.75])), "means": jnp.asarray([[-1.0], [1.0]]),
              "vars": jnp.asarray([[1.0], [1.0]])}
    t = jnp.linspace(-3, 3, 601)[:, None]
    decide = np.asarray(jnp.argmax(latent.naive_bayes_log_joint(params, t), axis=1))
    threshold = -np.log(0.75 / 0.25) / 2  # (mu1^2 - mu0^2)/2 - var log(pi1/pi0), over mu1 - mu0
    np.testing.assert_array_equal(decide, (np.asarray(t[:, 0]) > threshold).astype(int))
    # a missing feature drops out: the mask's zero column changes nothing when that feature is uninformative
    masked = latent.naive_bayes_log_joint(ours, jnp.asarray(x), jnp.asarray(np.tile([1, 1, 0], (len(x), 1))))
    np.testing.assert_allclose(np.asarray(masked), np.asarray(latent.naive_bayes_log_joint(
        {**ours, "means": ours["means"][:, :2], "vars": ours["vars"][:, :2]}, jnp.asarray(x[:, :2]))), rtol=1e-5)


# ------------------------------------------------------------------------------------- the classic family


def _classic(tmp_path, name="classic_digits", **overrides):
    from conftest import smoke

    from gen_jax import train as gt

    c = smoke(name, **overrides)
    return c, gt.run(c, tmp_path)


def test_classic_family_fits_once_reproducibly_and_restores(tmp_path):
    from gen_jax import train as gt

    c, res = _classic(tmp_path / "a", model__num_iters=20)
    assert res["step"] == 1 and res["train"]["em_steps"] == 20 and res["train"]["em_largest_decrease"] < 1e-3
    ev = res["eval"]
    assert ev["log_prob_kind"] == "lower_bound" and ev["nll_estimator"] == "dequantized" and np.isfinite(ev["nll"])
    _, res_b = _classic(tmp_path / "b", model__num_iters=20)
    _, family, state, _ = gt.restore_run(tmp_path / "a")
    import chex

    chex.assert_trees_all_equal(state, gt.restore_run(tmp_path / "b")[2])  # the same seed: the same fit
    assert state.aux["em_history"].shape == (1, 21)  # every EM step's log-likelihood, checkpointed
    # a rerun finds the fit done and only evaluates
    again = gt.run(c, tmp_path / "a")
    assert again["step"] == 1 and again["eval"]["nll"] == pytest.approx(ev["nll"], rel=1e-6)


def test_conditional_classic_models_classify_by_bayes_rule_and_marginalise_missing_pixels(tmp_path):
    from gen_jax import train as gt
    from gen_jax.data import load_image_dataset
    from gen_jax.eval.generative_classifier import (bayes_posterior, class_conditional_log_probs, hidden_fraction,
                                                   missing_mask)
    from gen_jax.families import classic

    _classic(tmp_path, model__kind="gaussian", model__covariance="full", model__conditional=True)
    _, family, state, _ = gt.restore_run(tmp_path)
    params = state.params
    test = load_image_dataset("digits", "test")
    batch = {"image": test.image[:120], "label": test.label[:120]}
    rng = jax.random.key(0)
    per_class = class_conditional_log_probs(family.log_prob, params, batch, rng, 10)
    # the family's log p(x | y) for the true label is that column of the generic per-class matrix
    np.testing.assert_allclose(np.asarray(family.log_prob(params, batch, rng)),
                               np.asarray(per_class)[np.arange(120), test.label[:120]], rtol=1e-6)
    acc = np.mean(np.asarray(jnp.argmax(bayes_posterior(per_class, params["log_prior"]), 1)) == test.label[:120])
    assert acc > 0.9, acc  # a Gaussian per class on the digits
    # on the bin centres with every pixel observed the marginal is the full log-density; with pixels hidden
    # the classifier still works from the rest
    x = jnp.asarray((test.image[:120].reshape(120, -1) + 0.5) / 17, jnp.float32)
    full = classic.masked_log_prob("gaussian", params, x, jnp.ones_like(x))
    dense = jax.vmap(lambda p: classic.model_log_prob("gaussian", p, x), out_axes=1)(params["classes"])
    # float32 log-densities of magnitude up to ~1e3 carry absolute rounding of ~1e-4 (an AVX-512 CPU's summation
    # order gave 3e-5 on an entry of 0.169): relative tolerance alone fails entries near zero
    np.testing.assert_allclose(np.asarray(full), np.asarray(dense), rtol=1e-4, atol=1e-3)
    masks = missing_mask("random", 0.5, (8, 8), 120, seed=1)
    assert masks.shape == (120, 8, 8) and np.all(masks.reshape(120, -1).sum(1) == 32)
    half = classic.masked_log_prob("gaussian", params, x, jnp.asarray(masks.reshape(120, -1)))
    acc_half = np.mean(np.asarray(jnp.argmax(half + params["log_prior"], 1)) == test.label[:120])
    assert 0.6 < acc_half <= acc + 0.05, acc_half
    block = missing_mask("block", 0.25, (8, 8), 5, seed=0)
    assert np.all((1 - block).reshape(5, -1).sum(1) == 16)  # a 4x4 square
    assert hidden_fraction(missing_mask("block", 0.9, (8, 8), 3)) == 56 / 64  # 8 x 7: the closest rectangle
    assert hidden_fraction(missing_mask("block", 0.3, (8, 8), 3)) == 20 / 64


def test_classic_image_models_sample_levels_impute_and_encode(tmp_path):
    from gen_jax import train as gt
    from gen_jax.data import load_image_dataset
    from gen_jax.eval import make_mask

    _classic(tmp_path, model__kind="ppca", model__latent_dim=8)
    _, family, state, _ = gt.restore_run(tmp_path)
    params = state.params
    assert set(family.capabilities) == {"sample", "log_prob", "encode", "decode", "impute", "anomaly_score"}
    assert family.require("encode") is family.encode
    a, b = (np.asarray(family.sample(params, jax.random.key(s), 16)) for s in (0, 1))
    assert a.shape == (16, 8, 8, 1) and a.dtype == np.int32 and a.min() >= 0 and a.max() <= 16
    assert not np.array_equal(a, b)
    test = load_image_dataset("digits", "test")
    x = test.image[:50].astype(np.float32) / 16
    mask = np.broadcast_to(make_mask("random_half", (8, 8, 1)), x.shape)
    filled = family.impute(params, x, mask, jax.random.key(0))
    np.testing.assert_array_equal(filled[mask > 0], x[mask > 0])
    train_mean = load_image_dataset("digits", "train").image.mean(0) / 16
    err = np.mean(((filled - x) ** 2)[mask == 0])
    assert err < 0.75 * np.mean(((train_mean - x) ** 2)[mask == 0]), err  # the covariance helps
    z = family.encode(params, {"image": test.image[:4]})
    assert z.shape == (4, 8) and family.decode(params, z).shape == (4, 8, 8, 1)


def test_a_mixtures_latent_is_its_component(tmp_path):
    from gen_jax import train as gt
    from gen_jax.data import load_image_dataset

    _classic(tmp_path, model__kind="gmm", model__covariance="diag", model__num_components=4)
    _, family, state, _ = gt.restore_run(tmp_path)
    test = load_image_dataset("digits", "test")
    post = np.asarray(family.encode(state.params, {"image": test.image[:10]}))
    assert post.shape == (10, 4)
    np.testing.assert_allclose(post.sum(1), 1, rtol=1e-5)
    means = np.asarray(family.decode(state.params, jnp.arange(4)))
    assert means.shape == (4, 8, 8, 1) and means.min() >= 0 and means.max() <= 1
    # each image's most probable component has the nearest mean (diagonal variances: roughly)
    flat = test.image[:10].reshape(10, -1) / 16
    nearest = np.argmin(((flat[:, None] - means.reshape(4, -1)[None]) ** 2).sum(-1), 1)
    assert np.mean(nearest == post.argmax(1)) >= 0.7


def test_classic_family_refuses_what_it_cannot_model(tmp_path):
    from conftest import smoke

    from gen_jax.data import load_image_dataset
    from gen_jax.families import classic

    digits = load_image_dataset("digits", "train")
    with pytest.raises(ValueError, match="needs binary images"):
        classic.build(smoke("classic_digits", model__kind="bernoulli_mixture"), digits)
    with pytest.raises(ValueError, match="unknown model.kind 'lda'"):
        classic.build(smoke("classic_digits", model__kind="lda"), digits)


def test_any_class_conditional_family_is_a_bayes_rule_classifier(tmp_path):
    """The generic classifier on a deep family: a conditional MADE's log p(x | y) for each class; the column of
    the true label is the family's own log_prob of the labelled batch, and the posterior is normalised."""
    from conftest import smoke

    from gen_jax import train as gt
    from gen_jax.data import load_image_dataset
    from gen_jax.eval.generative_classifier import bayes_posterior, class_conditional_log_probs, class_log_prior

    c = smoke("made_digits", model__conditional=True, train__steps=30)
    gt.run(c, tmp_path)
    _, family, state, _ = gt.restore_run(tmp_path)
    test = load_image_dataset("digits", "test")
    batch = {"image": test.image[:40], "label": test.label[:40]}
    per_class = class_conditional_log_probs(family.log_prob, state.params, batch, jax.random.key(0), 10)
    assert per_class.shape == (40, 10) and np.all(np.isfinite(np.asarray(per_class)))
    np.testing.assert_allclose(np.asarray(per_class)[np.arange(40), test.label[:40]],
                               np.asarray(family.log_prob(state.params, batch, jax.random.key(0))), rtol=1e-5)
    log_prior = class_log_prior(load_image_dataset("digits", "train").label, 10)
    post = np.asarray(bayes_posterior(per_class, log_prior))
    np.testing.assert_allclose(np.exp(post).sum(1), 1, rtol=1e-5)
    assert len(set(np.argmax(np.asarray(per_class), 1))) > 1  # the label changes the model's answer


def test_greedy_kmeans_plus_plus_seeds_one_centre_per_cluster_of_a_grid():
    """A 5 x 5 grid of tight Gaussians: with one candidate per step k-means++ often puts two centres in one
    cluster (EM then keeps a component over two modes); the greedy seeding finds every cluster."""
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(np.arange(5), np.arange(5)), -1).reshape(25, 2) * 2.0
    x = jnp.asarray(grid[rng.integers(0, 25, 5000)] + 0.05 * rng.normal(size=(5000, 2)), jnp.float32)
    for seed in range(3):
        centres = np.asarray(latent.kmeans_plus_plus(jax.random.key(seed), x, 25))
        owner = np.argmin(((centres[:, None] - grid[None]) ** 2).sum(-1), 1)
        assert len(set(owner)) == 25, seed
    params, _ = latent.fit_gmm(jax.random.key(0), x, 25, num_iters=20)
    np.testing.assert_allclose(np.exp(np.asarray(params["log_weights"])), 0.04, atol=0.01)
