"""LDA and matrix factorisation (gen_jax.models.factorization) on planted structure, and the fortunes corpus."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.models import factorization as fz


def _planted_corpus(num_docs=300, words_per_doc=80, seed=0):
    """3 topics over 30 words with disjoint supports (10 words each), theta ~ Dir(0.2)."""
    rng = np.random.default_rng(seed)
    topics = np.zeros((3, 30))
    for k in range(3):
        topics[k, 10 * k:10 * k + 10] = rng.dirichlet(np.ones(10) * 5)
    theta = rng.dirichlet(np.full(3, 0.2), num_docs)
    counts = np.stack([rng.multinomial(words_per_doc, t @ topics) for t in theta]).astype(np.float32)
    return counts, topics


def test_lda_recovers_planted_topics_and_its_bound_climbs():
    counts, topics = _planted_corpus()
    params, history = fz.fit_lda(jax.random.key(0), jnp.asarray(counts), 3, num_iters=30, e_step_iters=30)
    history = np.asarray(history)
    assert np.all(np.diff(history) > -1e-3), np.diff(history).min()  # variational EM: the bound climbs
    vocab = [f"w{i}" for i in range(30)]
    found = sorted(sorted(int(w[1:]) // 10 for w in ws) for ws in fz.top_words(params, vocab, n=10))
    assert found == [[0] * 10, [1] * 10, [2] * 10]  # each topic's top 10 words are one planted support
    beta = np.asarray(params["lambda"] / params["lambda"].sum(1, keepdims=True))
    for k in range(3):  # and its word probabilities close to the planted ones
        best = min(np.abs(beta[j] - topics[k]).sum() for j in range(3))
        assert best < 0.1
    # held out: documents of the same rule are far better explained than by the words' overall frequencies
    test, _ = _planted_corpus(100, seed=1)
    perplexity = float(fz.lda_perplexity(params, jnp.asarray(test)))
    freq = counts.sum(0) / counts.sum()
    unigram = float(np.exp(-(test * np.log(freq)).sum() / test.sum()))
    assert perplexity < 0.75 * unigram, (perplexity, unigram)
    # with one topic LDA is the unigram model: its perplexity is the smoothed frequencies'
    one, _ = fz.fit_lda(jax.random.key(0), jnp.asarray(counts), 1, num_iters=5, e_step_iters=5)
    assert float(fz.lda_perplexity(one, jnp.asarray(test))) == pytest.approx(unigram, rel=0.01)


def test_lda_bound_is_below_the_exact_log_likelihood_of_a_tiny_corpus():
    """For one 2-word document over 2 words and 2 topics, log p(w) = log int prod_n (theta . beta_wn) dDir(theta)
    by quadrature; the variational bound (topics fixed: lambda large) is below it, and the E-step's gamma is
    the bound's maximum (mean field's gap here is 0.40 nats: the posterior over theta is bimodal)."""
    beta = np.array([[0.9, 0.1], [0.2, 0.8]])
    lam = jnp.asarray(beta * 1e6)
    counts = jnp.asarray([[1.0, 1.0]])
    alpha = 0.5
    gamma, _ = fz.lda_e_step(counts, fz.dirichlet_expectation(lam), alpha, 200)
    bound = float(fz.lda_bound(counts, gamma, lam, alpha, 1.0, topics=False))
    from scipy import integrate
    from scipy.stats import beta as beta_dist

    def integrand(t):  # theta = (t, 1 - t) ~ Beta(alpha, alpha)
        th = np.array([t, 1 - t])
        return (th @ beta[:, 0]) * (th @ beta[:, 1]) * beta_dist(alpha, alpha).pdf(t)

    exact = np.log(integrate.quad(integrand, 0, 1)[0])
    assert bound <= exact and bound > exact - 0.5, (bound, exact)
    for delta in ([0.05, 0], [0, 0.05], [-0.05, 0.05]):
        moved = fz.lda_bound(counts, gamma + jnp.asarray(delta), lam, alpha, 1.0, topics=False)
        assert float(moved) < bound


def test_matrix_factorisation_recovers_held_out_entries_of_a_low_rank_matrix():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(200, 3)) @ rng.normal(size=(3, 60)) + 0.05 * rng.normal(size=(200, 60))).astype(
        np.float32)
    mask = (rng.random(x.shape) < 0.7).astype(np.float32)
    held = 1 - mask
    xj, mj = jnp.asarray(x), jnp.asarray(mask)
    params, history = fz.fit_pmf(jax.random.key(0), xj, mj, 3, reg=0.1, num_iters=30)
    history = np.asarray(history)
    assert np.all(np.diff(history) <= 1e-4) and history[-1] < 0.1  # ALS never increases the objective much
    pmf = float(fz.masked_rmse(xj, fz.pmf_reconstruction(params), jnp.asarray(held)))
    mean_only = float(fz.masked_rmse(xj, fz.column_mean_fill(xj, mj)[0], jnp.asarray(held)))
    svd = float(fz.masked_rmse(xj, fz.truncated_svd_reconstruction(xj, mj, 3), jnp.asarray(held)))
    assert pmf < 0.1 < svd < mean_only, (pmf, svd, mean_only)  # PMF fits only what it saw; SVD saw the fills


def test_fortunes_corpus_loads_as_bags_of_words():
    from gen_jax.data.corpus import FORTUNES_DIR, bag_of_words, load_fortunes, read_fortunes

    if not FORTUNES_DIR.is_dir():
        pytest.fail("the fortunes corpus is missing: apt-get install -y fortunes (.ci/run does)")
    train, test = load_fortunes("train", vocab_size=500), load_fortunes("test", vocab_size=500)
    assert train.counts.shape[1] == test.counts.shape[1] == 500 and train.vocab == test.vocab
    assert len(train) > 3 * len(test) > 1000 and np.all(train.counts.sum(1) >= 5)
    assert "computers" in train.categories and "the" not in train.vocab  # stop words dropped
    counts, vocab, kept = bag_of_words(["the cat sat on the cat mat", "a dog"], vocab_size=10, min_tokens=1)
    assert vocab == ["cat", "dog", "mat", "sat"] and counts[0].tolist() == [2, 0, 1, 1] and kept.tolist() == [0, 1]
    from gen_jax.data import DatasetNotFoundError

    with pytest.raises(DatasetNotFoundError, match="apt-get install -y fortunes"):
        read_fortunes("/nonexistent")


def test_document_completion_beats_the_unigram_model_on_planted_topics():
    counts, _ = _planted_corpus()
    test, _ = _planted_corpus(200, seed=2)
    params, _ = fz.fit_lda(jax.random.key(0), jnp.asarray(counts), 3, num_iters=30, e_step_iters=30)
    observed, held = fz.split_counts(jax.random.key(1), jnp.asarray(test))
    assert float((observed + held - test).sum()) == 0 and 0.45 < float(held.sum() / test.sum()) < 0.55
    completion = float(fz.lda_completion_perplexity(params, observed, held))
    freq = counts.sum(0) / counts.sum()
    unigram = float(np.exp(-(np.asarray(held) * np.log(freq)).sum() / float(held.sum())))
    # each document mixes ~1-2 of 3 topics over 10 words each: its own words predict the rest far better
    assert completion < 0.6 * unigram, (completion, unigram)
