"""Closed-form MLE models: the textbook's box, joint table and Gaussian."""

import math

import numpy as np
import pytest
import scipy.stats

from gen_jax.data import get_toy
from gen_jax.models.classic import (BoxUniform, CharNGram, GaussianMLE, JointTable, all_binary_images,
                                    binary_image_index, joint_table_size, log_likelihood,
                                    negative_log_likelihood, tiny_binary_images)


def test_box_is_the_bounding_box_and_a_normalised_density():
    pts = np.random.default_rng(0).uniform([-2, 1], [3, 5], size=(5000, 2))
    box = BoxUniform.fit(pts)
    np.testing.assert_array_equal(box.low, pts.min(0))
    np.testing.assert_array_equal(box.high, pts.max(0))
    # Monte Carlo over a larger box: integral of p = 1.
    grid = np.random.default_rng(1).uniform([-4, 0], [5, 6], size=(400000, 2))
    assert np.mean(np.exp(box.log_prob(grid))) * (9 * 6) == pytest.approx(1.0, abs=0.02)
    s = box.sample(1000, seed=3)
    assert np.all(np.isfinite(box.log_prob(s)))
    assert box.log_prob(np.array([[10.0, 10.0]]))[0] == -np.inf
    # MLE: any box that still holds every point has a lower likelihood.
    bigger = BoxUniform(box.low - 0.1, box.high)
    assert log_likelihood(box.log_prob, pts) > log_likelihood(bigger.log_prob, pts)


def test_box_on_world_land_is_above_the_true_entropy():
    toy = get_toy("world_land")
    box = BoxUniform.fit(toy.sample(20000, seed=0))
    test = toy.sample(5000, seed=1)
    nll = negative_log_likelihood(box.log_prob, test[np.all(np.isfinite(box.log_prob(test))[:, None], 1)])
    assert nll > toy.entropy() + 0.5  # the box wastes the oceans


def test_gaussian_mle_matches_scipy_and_closed_forms():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 3))
    x = rng.multivariate_normal([1.0, -2.0, 0.5], a @ a.T + np.eye(3), size=3000)
    g = GaussianMLE.fit(x)
    np.testing.assert_allclose(g.mean, x.mean(0))
    np.testing.assert_allclose(g.covariance, np.cov(x, rowvar=False, bias=True))
    ref = scipy.stats.multivariate_normal(g.mean, g.covariance)
    np.testing.assert_allclose(g.log_prob(x[:50]), ref.logpdf(x[:50]), rtol=1e-10)
    assert g.entropy() == pytest.approx(ref.entropy(), rel=1e-10)
    # At the MLE the training NLL equals the fitted Gaussian's entropy (the trace term is exactly d/2).
    assert negative_log_likelihood(g.log_prob, x) == pytest.approx(g.entropy(), rel=1e-10)
    # Perturbing the MLE lowers the likelihood.
    worse = GaussianMLE(g.mean + 0.05, g.covariance)
    assert log_likelihood(g.log_prob, x) > log_likelihood(worse.log_prob, x)
    s = g.sample(20000, seed=1)
    np.testing.assert_allclose(s.mean(0), g.mean, atol=0.05)


def test_joint_table_counts_normalises_samples_and_inpaints_by_bayes():
    assert joint_table_size(2, 2) == 15 and joint_table_size(3, 3) == 511
    table = all_binary_images(4)
    np.testing.assert_array_equal(binary_image_index(table.reshape(16, 2, 2)), np.arange(16))
    rng = np.random.default_rng(0)
    p_true = rng.dirichlet(np.ones(16))
    data = table[rng.choice(16, size=20000, p=p_true)].reshape(-1, 2, 2)
    jt = JointTable.fit(data)
    assert jt.probs.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(jt.probs, np.bincount(binary_image_index(data), minlength=16) / len(data))
    assert np.abs(jt.probs - p_true).max() < 0.02
    # Exact over all 16 images.
    assert np.exp(jt.log_prob(table.reshape(16, 2, 2))).sum() == pytest.approx(1.0)
    samples = jt.sample(20000, seed=1)
    freq = np.bincount(binary_image_index(samples), minlength=16) / 20000
    assert np.abs(freq - jt.probs).max() < 0.02
    # Bayes: p(missing | observed) by brute-force enumeration.
    image, mask = np.array([[1, 0], [0, 0]]), np.array([[1, 1], [0, 0]])
    cands, probs = jt.conditional(image, mask)
    assert np.all(cands[:, 0, 0] == 1) and np.all(cands[:, 0, 1] == 0) and probs.sum() == pytest.approx(1.0)
    consistent = (table[:, 0] == 1) & (table[:, 1] == 0)
    expected_mean = (jt.probs[consistent] @ table[consistent]) / jt.probs[consistent].sum()
    np.testing.assert_allclose(jt.inpaint(image, mask).reshape(-1), np.r_[1, 0, expected_mean[2:]])


def test_unsmoothed_table_gives_infinite_nll_on_unseen_images_and_smoothing_fixes_it():
    data = np.zeros((10, 3, 3), np.uint8)
    jt = JointTable.fit(data)
    unseen = np.ones((1, 3, 3), np.uint8)
    assert jt.log_prob(unseen)[0] == -np.inf
    with pytest.raises(ValueError, match="probability 0"):
        jt.conditional(unseen[0], np.ones((3, 3)))
    smooth = JointTable.fit(data, pseudo_count=1.0)
    assert smooth.log_prob(unseen)[0] == pytest.approx(-math.log(10 + 512))


def test_tiny_binary_images():
    x = np.zeros((1, 28, 28, 1))
    x[0, :14, :14] = 1.0
    np.testing.assert_array_equal(tiny_binary_images(x, 2)[0], [[1, 0], [0, 0]])
    assert tiny_binary_images(np.random.default_rng(0).random((5, 28, 28)), 3).shape == (5, 3, 3)


def _toy_corpus():
    # Rows as TextDataset holds them: [newline=1, chars..., newline=1, pad=0...]; characters are tokens 2..4.
    words = [[2, 3], [2, 3, 4], [3, 2], [2, 2, 3], [4], [2, 3]]
    return np.array([[1, *w, 1] + [0] * (5 - len(w)) for w in words], np.int32)


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_char_ngram_is_a_distribution_for_seen_and_unseen_contexts(order):
    model = CharNGram.fit(_toy_corpus(), order, num_tokens=5)
    for history in [(1,), (1, 2), (1, 2, 3), (4, 4, 4), (1, 3, 3, 2), ()]:
        p = model.distribution(history)
        assert p.shape == (4,) and np.all(p > 0)
        np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-12)


def test_char_ngram_counts_and_log_prob():
    tokens = _toy_corpus()
    # With a vanishing discount the bigram is the counting MLE: after 2, the training rows continue 3 x4, 1 x1,
    # 2 x1 (from '2 2 3').
    mle = CharNGram.fit(tokens, 2, num_tokens=5, discount=1e-9)
    np.testing.assert_allclose(mle.distribution((2,)), [1 / 6, 1 / 6, 4 / 6, 0.0], atol=1e-8)
    # The per-row log p is the sum of the logs of the predicted tokens' conditionals.
    model = CharNGram.fit(tokens, 3, num_tokens=5)
    row = [1, 2, 3, 4, 1]
    want = sum(math.log(model.distribution(row[max(0, i - 2):i])[row[i] - 1]) for i in range(1, len(row)))
    np.testing.assert_allclose(model.log_prob(tokens[1:2])[0], want, rtol=1e-12)
    assert model.with_order(1).log_prob(tokens).sum() < model.log_prob(tokens).sum()  # context helps in-sample


def test_char_ngram_samples_follow_its_distribution():
    model = CharNGram.fit(_toy_corpus(), 2, num_tokens=5)
    rows = model.sample(4000, stop_token=1, max_len=8, seed=0)
    assert all(r[0] == 1 and (r[-1] == 1 or len(r) == 8) for r in rows)
    first = np.bincount([r[1] for r in rows], minlength=5)[1:] / len(rows)
    np.testing.assert_allclose(first, model.distribution((1,)), atol=0.03)
