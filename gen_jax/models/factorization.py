"""Latent factors of count and rating matrices: latent Dirichlet allocation and matrix factorisation, in JAX.

* **LDA** (Blei, Ng & Jordan 2003) by batch variational EM with a Dirichlet(eta) prior on the topics (the
  "smoothed" model; Hoffman, Blei & Bach 2010 write the updates in the matrix form used here, as does
  scikit-learn's ``LatentDirichletAllocation(learning_method="batch")``). Documents are rows of word counts
  ``(D, V)``; the variational posterior is ``q(theta_d) = Dir(gamma_d)``, ``q(beta_k) = Dir(lambda_k)``. The
  evidence lower bound is computed exactly (no ``(D, K, V)`` array: the per-word mixture is a matrix product),
  recorded at every EM step, and gives the held-out perplexity ``exp(-bound / words)``.
* **Matrix factorisation** of a matrix with missing entries (mask 1 = observed): the truncated SVD of the
  matrix with its missing entries filled by column means (the classical baseline), and probabilistic matrix
  factorisation (Salakhutdinov & Mnih 2008: Gaussian noise, Gaussian priors on the factors, MAP by
  alternating least squares, each row's update a closed-form ridge regression on its observed entries).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.special import digamma, gammaln


def dirichlet_expectation(a):
    """``E[log x]`` under ``Dir(a)`` for each row of ``a``."""
    return digamma(a) - digamma(a.sum(-1, keepdims=True))


def _log_mixture(elog_theta, elog_beta):
    """``log sum_k exp(elog_theta[d, k] + elog_beta[k, w])`` ``(D, V)`` as one matrix product, shifted per row
    and column so that neither exponential overflows or underflows to an all-zero sum."""
    a = elog_theta.max(1, keepdims=True)
    b = elog_beta.max(0, keepdims=True)
    return jnp.log(jnp.exp(elog_theta - a) @ jnp.exp(elog_beta - b)) + a + b


def lda_e_step(counts, elog_beta, alpha: float, num_iters: int):
    """The documents' ``gamma`` ``(D, K)`` for fixed topics, by ``num_iters`` fixed-point iterations from
    ``alpha + N_d / K``; also the expected topic-word counts ``(K, V)`` (before the ``exp(E log beta)`` factor)."""
    exp_beta = jnp.exp(elog_beta)
    k = elog_beta.shape[0]
    gamma0 = alpha + jnp.broadcast_to(counts.sum(1, keepdims=True) / k, (counts.shape[0], k))

    def body(gamma, _):
        exp_theta = jnp.exp(dirichlet_expectation(gamma))
        norm = exp_theta @ exp_beta + 1e-30
        return alpha + exp_theta * ((counts / norm) @ exp_beta.T), None

    gamma = lax.scan(body, gamma0, None, length=num_iters)[0]
    exp_theta = jnp.exp(dirichlet_expectation(gamma))
    return gamma, exp_theta.T @ (counts / (exp_theta @ exp_beta + 1e-30))


def lda_bound(counts, gamma, lam, alpha: float, eta: float, *, topics: bool = True):
    """The evidence lower bound (nats, summed over documents): the words' term, each document's
    ``E[log p(theta) - log q(theta)]``, and with ``topics`` the topics' ``E[log p(beta) - log q(beta)]``."""
    elog_theta, elog_beta = dirichlet_expectation(gamma), dirichlet_expectation(lam)
    k, v = lam.shape
    words = jnp.sum(counts * _log_mixture(elog_theta, elog_beta))
    docs = (jnp.sum((alpha - gamma) * elog_theta + gammaln(gamma)) - gamma.shape[0] * k * gammaln(alpha)
            + gamma.shape[0] * gammaln(k * alpha) - jnp.sum(gammaln(gamma.sum(1))))
    if not topics:
        return words + docs
    tops = (jnp.sum((eta - lam) * elog_beta + gammaln(lam)) - k * v * gammaln(eta) + k * gammaln(v * eta)
            - jnp.sum(gammaln(lam.sum(1))))
    return words + docs + tops


@functools.partial(jax.jit, static_argnames=("num_topics", "num_iters", "e_step_iters"))
def fit_lda(rng, counts, num_topics: int, *, alpha: float | None = None, eta: float | None = None,
            num_iters: int = 50, e_step_iters: int = 50):
    """LDA by batch variational EM from ``lambda ~ Gamma(100, 1/100)`` (scikit-learn's start). ``alpha`` and
    ``eta`` default to ``1 / num_topics``.

    Returns ``(params, history)``: ``{"lambda" (K, V), "alpha", "eta"}`` and the evidence lower bound per word
    of the training documents after each EM step ``(num_iters,)``."""
    alpha = 1.0 / num_topics if alpha is None else alpha
    eta = 1.0 / num_topics if eta is None else eta
    lam0 = jax.random.gamma(rng, 100.0, (num_topics, counts.shape[1])) / 100.0
    total = counts.sum()

    def em_step(lam, _):
        elog_beta = dirichlet_expectation(lam)
        gamma, stats = lda_e_step(counts, elog_beta, alpha, e_step_iters)
        lam = eta + jnp.exp(elog_beta) * stats
        gamma, _ = lda_e_step(counts, dirichlet_expectation(lam), alpha, e_step_iters)
        return lam, lda_bound(counts, gamma, lam, alpha, eta) / total

    lam, history = lax.scan(em_step, lam0, None, length=num_iters)
    return {"lambda": lam, "alpha": jnp.asarray(alpha), "eta": jnp.asarray(eta)}, history


def lda_perplexity(params, counts, *, e_step_iters: int = 100):
    """``exp(-bound / words)`` on documents ``counts``: each document's bound on ``log p(w_d)`` under the
    topics' posterior mean field, the topics fixed (no topic term: it is shared by the corpus, not a document's
    evidence). An upper bound on the documents' true perplexity."""
    alpha = params["alpha"]
    gamma, _ = lda_e_step(counts, dirichlet_expectation(params["lambda"]), alpha, e_step_iters)
    bound = lda_bound(counts, gamma, params["lambda"], alpha, params["eta"], topics=False)
    return jnp.exp(-bound / counts.sum())


def split_counts(rng, counts, fraction: float = 0.5):
    """Each document's words split at random into an observed part and a held-out part (binomial thinning of
    every count: each word token goes to the held-out part with probability ``fraction``)."""
    held = jax.random.binomial(rng, counts, fraction).astype(counts.dtype)
    return counts - held, held


def lda_completion_perplexity(params, observed, held_out, *, e_step_iters: int = 100):
    """Document completion (Wallach et al. 2009): each document's topic proportions from its ``observed`` words
    (the variational posterior mean), the topics at their posterior mean, and the perplexity of its
    ``held_out`` words under ``p(w) = sum_k theta_k beta_kw``: comparable with any model that predicts held-out
    words, a unigram model included."""
    gamma, _ = lda_e_step(observed, dirichlet_expectation(params["lambda"]), params["alpha"], e_step_iters)
    theta = gamma / gamma.sum(1, keepdims=True)
    beta = params["lambda"] / params["lambda"].sum(1, keepdims=True)
    return jnp.exp(-jnp.sum(held_out * jnp.log(theta @ beta)) / held_out.sum())


def top_words(params, vocab: list[str], n: int = 10) -> list[list[str]]:
    """Each topic's ``n`` most probable words under ``E[beta]``."""
    lam = jnp.asarray(params["lambda"])
    order = jnp.argsort(-lam, axis=1)[:, :n]
    return [[vocab[int(i)] for i in row] for row in order]


# ----------------------------------------------------------------------------------- matrix factorisation


def column_mean_fill(x, mask):
    """Missing entries replaced by their column's observed mean (the global mean for an unobserved column)."""
    seen = mask.sum(0)
    global_mean = jnp.sum(x * mask) / mask.sum()
    col = jnp.where(seen > 0, jnp.sum(x * mask, 0) / jnp.maximum(seen, 1), global_mean)
    return jnp.where(mask > 0, x, col[None, :]), col


def truncated_svd_reconstruction(x, mask, rank: int):
    """The rank-``rank`` SVD reconstruction of ``x`` with its missing entries filled by column means (centred
    by those means first, added back after)."""
    filled, col = column_mean_fill(x, mask)
    u, s, vt = jnp.linalg.svd(filled - col, full_matrices=False)
    return (u[:, :rank] * s[:rank]) @ vt[:rank] + col


def _ridge_rows(x, mask, factors, reg):
    """Per row ``i``: ``argmin_u sum_j m_ij (x_ij - u . f_j)^2 + reg |u|^2`` (closed form)."""
    k = factors.shape[1]
    outer = (factors[:, :, None] * factors[:, None, :]).reshape(factors.shape[0], k * k)
    grams = (mask @ outer).reshape(-1, k, k) + reg * jnp.eye(k)
    rhs = (mask * x) @ factors
    return jnp.linalg.solve(grams, rhs[..., None])[..., 0]


@functools.partial(jax.jit, static_argnames=("rank", "num_iters"))
def fit_pmf(rng, x, mask, rank: int, *, reg: float = 1.0, num_iters: int = 20):
    """Probabilistic matrix factorisation ``x ~ N(mean + U V^T, s^2)``, ``U, V ~ N(0, s^2 / reg)``: MAP by
    alternating least squares on the observed entries, around their global mean.

    Returns ``(params, history)``: ``{"U", "V", "mean"}`` and the training RMSE on the observed entries after
    each sweep ``(num_iters,)``."""
    mean = jnp.sum(x * mask) / mask.sum()
    centred = (x - mean) * mask
    v0 = 0.1 * jax.random.normal(rng, (x.shape[1], rank))

    def sweep(v, _):
        u = _ridge_rows(centred, mask, v, reg)
        v = _ridge_rows(centred.T, mask.T, u, reg)
        err = jnp.sqrt(jnp.sum(((u @ v.T) - centred) ** 2 * mask) / mask.sum())
        return v, (u, err)

    v, (us, history) = lax.scan(sweep, v0, None, length=num_iters)
    return {"U": us[-1], "V": v, "mean": mean}, history


def pmf_reconstruction(params):
    return params["U"] @ params["V"].T + params["mean"]


def masked_rmse(x, estimate, mask):
    """The root-mean-square error over the entries where ``mask`` is 1."""
    return jnp.sqrt(jnp.sum((x - estimate) ** 2 * mask) / mask.sum())
