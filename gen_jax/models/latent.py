"""Classic latent-variable models in JAX: PCA and probabilistic PCA, factor analysis, Gaussian mixtures, mixtures
of Bernoullis and the naive Bayes classifiers, fitted by closed form or EM under ``jax.jit``.

Every model is a dict of arrays (a pytree) and plain functions: ``fit_*`` returns the maximum-likelihood
parameters (EM's also the training log-likelihood of every step, so that "EM never decreases it" is a test),
``*_log_prob(params, x)`` the exact log-density per example. Every fit takes optional per-example ``weights``
(0/1 weights fit one class of a labelled set: the per-class models of a generative classifier are one compiled
fit ``vmap``-free, the same shapes for every class).

Missing data: with ``mask`` (1 = observed) the Gaussian models give the exact marginal ``log p(x_obs)`` and the
conditional ``p(x_mis | x_obs)`` (a mixture's posterior over its components reweights them): the classifiers of
:mod:`gen_jax.eval.generative_classifier` marginalise missing pixels exactly through these.

Papers: Tipping & Bishop 1999 (probabilistic PCA, closed-form ML); Rubin & Thayer 1982, Ghahramani & Hinton
1996 (EM for factor analysis); Dempster, Laird & Rubin 1977 (EM); Arthur & Vassilvitskii 2007 (k-means++).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.linalg import cho_solve, solve_triangular

LOG_2PI = math.log(2 * math.pi)


def _weights(x, weights):
    return jnp.ones(x.shape[0], x.dtype) if weights is None else jnp.asarray(weights, x.dtype)


def weighted_moments(x, weights=None):
    """The weighted mean and the (biased, 1/sum w) covariance: the Gaussian's maximum-likelihood estimate."""
    w = _weights(x, weights)
    total = w.sum()
    mean = w @ x / total
    centred = x - mean
    return mean, (centred * w[:, None]).T @ centred / total


# ------------------------------------------------------------------------------------------- Gaussians


def gaussian_log_prob(x, mean, cov):
    """``log N(x; mean, cov)`` per row of ``x`` ``(B, D)`` by a Cholesky factor."""
    chol = jnp.linalg.cholesky(cov)
    z = solve_triangular(chol, (x - mean).T, lower=True)
    log_det = 2 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    return -0.5 * (jnp.sum(z ** 2, axis=0) + log_det + x.shape[-1] * LOG_2PI)


def _observed_system(x, mask, mean, cov):
    """For one example: the covariance with the missing rows/columns replaced by the identity, and the residual
    with zeros there. Its Cholesky factor has ``log det = log det cov_oo`` and its solve is ``cov_oo^-1 r_o``
    padded with zeros, so masks of any pattern share one shape and one compiled function."""
    outer = mask[:, None] * mask[None, :]
    return cov * outer + jnp.diag(1.0 - mask), (x - mean) * mask


def masked_gaussian_log_prob(x, mask, mean, cov):
    """``log N(x_obs; mean_obs, cov_obs,obs)`` per row: the exact marginal of the observed coordinates
    (``mask`` 1 = observed, one mask per row). An all-observed mask gives :func:`gaussian_log_prob`."""

    def one(xi, mi):
        a, r = _observed_system(xi, mi, mean, cov)
        chol = jnp.linalg.cholesky(a)
        z = solve_triangular(chol, r, lower=True)
        return -0.5 * (z @ z + 2 * jnp.sum(jnp.log(jnp.diagonal(chol))) + mi.sum() * LOG_2PI)

    return jax.vmap(one)(x, mask.astype(x.dtype))


def gaussian_conditional(x, mask, mean, cov):
    """``p(x_mis | x_obs)`` of a Gaussian per row: the conditional mean as a full vector (the observed
    coordinates are ``x`` itself) and the conditional covariance ``(D, D)`` (zero on observed rows/columns):
    ``mean_m + cov_mo cov_oo^-1 (x_o - mean_o)`` and ``cov_mm - cov_mo cov_oo^-1 cov_om``."""

    def one(xi, mi):
        a, r = _observed_system(xi, mi, mean, cov)
        factor = jnp.linalg.cholesky(a)
        mean_c = mean + cov @ cho_solve((factor, True), r)
        cov_o = cov * mi[None, :]  # columns of the observed coordinates
        cond = cov - cov_o @ cho_solve((factor, True), cov_o.T)
        keep = (1 - mi)[:, None] * (1 - mi)[None, :]
        return jnp.where(mi > 0, xi, mean_c), cond * keep

    return jax.vmap(one)(x, mask.astype(x.dtype))


def gaussian_impute(x, mask, mean, cov, rng=None):
    """The conditional mean of the missing coordinates (``rng=None``: the MSE-optimal fill) or one draw from
    ``p(x_mis | x_obs)``; observed coordinates are returned as given."""
    cond_mean, cond_cov = gaussian_conditional(x, mask, mean, cov)
    if rng is None:
        return cond_mean
    d = x.shape[-1]
    chol = jax.vmap(lambda c: jnp.linalg.cholesky(c + 1e-6 * jnp.eye(d)))(cond_cov)
    eps = jax.random.normal(rng, x.shape, x.dtype) * (1 - mask)
    return cond_mean + jnp.einsum("bij,bj->bi", chol, eps) * (1 - mask)


# ------------------------------------------------------------------------------ PCA and probabilistic PCA


def fit_pca(x, num_components: int, weights=None):
    """PCA: the top ``num_components`` eigenvectors of the (weighted) covariance as rows of ``components``,
    every eigenvalue of it in decreasing order (``variances``, the variance each direction explains)."""
    mean, cov = weighted_moments(x, weights)
    values, vectors = jnp.linalg.eigh(cov)
    values, vectors = values[::-1], vectors[:, ::-1]
    # the sign convention of scikit-learn's svd_flip: the largest |entry| of each component positive
    signs = jnp.sign(vectors[jnp.argmax(jnp.abs(vectors), axis=0), jnp.arange(vectors.shape[1])])
    vectors = vectors * jnp.where(signs == 0, 1.0, signs)
    return {"mean": mean, "components": vectors[:, :num_components].T, "variances": values}


def fit_ppca(x, latent_dim: int, weights=None):
    """Probabilistic PCA by Tipping & Bishop's closed form: ``sigma^2`` = the mean of the discarded eigenvalues,
    ``W = U_k (L_k - sigma^2 I)^1/2`` (the rotation fixed to the identity). ``x = W z + mean + eps``,
    ``z ~ N(0, I_k)``, ``eps ~ N(0, sigma^2 I)``."""
    pca = fit_pca(x, latent_dim, weights)
    values = pca["variances"]
    sigma2 = jnp.maximum(jnp.mean(values[latent_dim:]), 1e-12)
    scale = jnp.sqrt(jnp.maximum(values[:latent_dim] - sigma2, 0.0))
    return {"mean": pca["mean"], "W": pca["components"].T * scale, "sigma2": sigma2}


def ppca_covariance(params):
    d = params["W"].shape[0]
    return params["W"] @ params["W"].T + params["sigma2"] * jnp.eye(d)


def _low_rank_log_prob(x, mean, w, noise_var):
    """``log N(x; mean, W W^T + diag(noise_var))`` by the Woodbury identity and the matrix determinant lemma:
    ``O(D k^2)`` per example instead of a ``D x D`` factorisation."""
    d, k = w.shape
    r = x - mean
    w_scaled = w / noise_var[:, None]
    m = jnp.eye(k) + w.T @ w_scaled  # I + W^T Psi^-1 W
    chol = jnp.linalg.cholesky(m)
    proj = solve_triangular(chol, (r @ w_scaled).T, lower=True)  # L^-1 W^T Psi^-1 r
    quad = jnp.sum(r ** 2 / noise_var, axis=-1) - jnp.sum(proj ** 2, axis=0)
    log_det = jnp.sum(jnp.log(noise_var)) + 2 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    return -0.5 * (quad + log_det + d * LOG_2PI)


def _low_rank_posterior(x, mean, w, noise_var):
    """``p(z | x)`` of ``x = W z + mean + eps``: mean ``(B, k)`` and the shared covariance ``(k, k)``."""
    k = w.shape[1]
    w_scaled = w / noise_var[:, None]
    cov = jnp.linalg.inv(jnp.eye(k) + w.T @ w_scaled)
    return (x - mean) @ w_scaled @ cov, cov


def ppca_log_prob(params, x):
    d = params["W"].shape[0]
    return _low_rank_log_prob(x, params["mean"], params["W"], jnp.full(d, params["sigma2"]))


def ppca_posterior(params, x):
    d = params["W"].shape[0]
    return _low_rank_posterior(x, params["mean"], params["W"], jnp.full(d, params["sigma2"]))


# --------------------------------------------------------------------------------------- factor analysis


@functools.partial(jax.jit, static_argnames=("latent_dim", "num_iters"))
def fit_factor_analysis(x, latent_dim: int, *, num_iters: int = 200, weights=None, min_var: float = 1e-6):
    """Factor analysis ``x = W z + mean + eps``, ``eps ~ N(0, diag(psi))``, by EM (Rubin & Thayer 1982) on the
    sufficient statistic ``S`` (the covariance), started from probabilistic PCA.

    Returns ``(params, history)``: ``{"mean", "W", "psi"}`` and the mean training log-likelihood before each
    EM step and after the last (``num_iters + 1`` values; EM never lowers it)."""
    mean, s = weighted_moments(x, weights)
    d = x.shape[1]
    start = fit_ppca(x, latent_dim, weights)
    w0 = start["W"]
    psi0 = jnp.maximum(jnp.diagonal(s) - jnp.sum(w0 ** 2, axis=1), min_var)

    def mean_log_likelihood(w, psi):
        # E[log N(x)] over the data = log N(0; 0, C) - tr(C^-1 S) / 2, by Woodbury: C^-1 = Psi^-1 - Psi^-1 W M^-1 W^T Psi^-1
        k = w.shape[1]
        w_scaled = w / psi[:, None]
        m = jnp.eye(k) + w.T @ w_scaled
        chol = jnp.linalg.cholesky(m)
        trace = jnp.sum(jnp.diagonal(s) / psi) - jnp.trace(cho_solve((chol, True), w_scaled.T @ s @ w_scaled))
        log_det = jnp.sum(jnp.log(psi)) + 2 * jnp.sum(jnp.log(jnp.diagonal(chol)))
        return -0.5 * (trace + log_det + d * LOG_2PI)

    def em_step(carry, _):
        w, psi = carry
        k = w.shape[1]
        w_scaled = w / psi[:, None]
        sigma_z = jnp.linalg.inv(jnp.eye(k) + w.T @ w_scaled)  # posterior covariance of z
        beta = sigma_z @ w_scaled.T  # E[z | x] = beta (x - mean)
        s_beta = s @ beta.T  # (D, k)
        ezz = sigma_z + beta @ s_beta  # mean of E[z z^T | x] over the data
        w_new = s_beta @ jnp.linalg.inv(ezz)
        psi_new = jnp.maximum(jnp.diagonal(s) - jnp.sum(w_new * s_beta, axis=1), min_var)
        return (w_new, psi_new), mean_log_likelihood(w, psi)

    (w, psi), history = lax.scan(em_step, (w0, psi0), None, length=num_iters)
    history = jnp.concatenate([history, mean_log_likelihood(w, psi)[None]])
    return {"mean": mean, "W": w, "psi": psi}, history


def fa_covariance(params):
    return params["W"] @ params["W"].T + jnp.diag(params["psi"])


def fa_log_prob(params, x):
    return _low_rank_log_prob(x, params["mean"], params["W"], params["psi"])


def fa_posterior(params, x):
    return _low_rank_posterior(x, params["mean"], params["W"], params["psi"])


# ------------------------------------------------------------------------------------ Gaussian mixtures


def kmeans_plus_plus(rng, x, num_clusters: int, weights=None, num_trials: int | None = None):
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007; scikit-learn's variant): the first centre drawn
    by weight; each next one the best of ``num_trials`` candidates (default ``2 + floor(log k)``) drawn with
    probability proportional to weight x squared distance to the nearest centre so far, "best" meaning the
    lowest total squared distance once added. One candidate per step is the original k-means++; on a 5 x 5
    grid of Gaussians it put two centres in one cluster in 8 restarts out of 8."""
    w = _weights(x, weights)
    trials = num_trials or 2 + int(math.log(num_clusters))
    keys = jax.random.split(rng, num_clusters)
    first = x[jax.random.choice(keys[0], x.shape[0], p=w / w.sum())]
    centres = jnp.zeros((num_clusters, x.shape[1]), x.dtype).at[0].set(first)
    dist = jnp.sum((x - first) ** 2, axis=1)

    def body(i, carry):
        centres, dist = carry
        p = w * dist
        candidates = x[jax.random.choice(keys[i], x.shape[0], (trials,), p=p / p.sum())]  # (L, D)
        new_dist = jnp.minimum(dist[None], _sq_distances(x, candidates).T)  # (L, N)
        best = jnp.argmin(new_dist @ w)
        return centres.at[i].set(candidates[best]), new_dist[best]

    return lax.fori_loop(1, num_clusters, body, (centres, dist))[0]


def _sq_distances(x, centres):
    return jnp.sum(x ** 2, 1)[:, None] - 2 * x @ centres.T + jnp.sum(centres ** 2, 1)[None, :]


def kmeans(x, centres, num_iters: int, weights=None):
    """Lloyd's iterations from ``centres``; an emptied cluster keeps its centre."""
    w = _weights(x, weights)

    def step(c, _):
        assign = jax.nn.one_hot(jnp.argmin(_sq_distances(x, c), axis=1), c.shape[0], dtype=x.dtype) * w[:, None]
        counts = assign.sum(0)
        return jnp.where(counts[:, None] > 0, assign.T @ x / jnp.maximum(counts, 1e-12)[:, None], c), None

    return lax.scan(step, centres, None, length=num_iters)[0]


def _diag_components_log_prob(x, means, variances, mask=None):
    """``log N(x_obs; mu_k, diag(var_k))`` ``(B, K)`` as three matrix products (not a ``(B, K, D)`` array):
    ``sum_d m_d [(x_d - mu_kd)^2 / var_kd + log var_kd + log 2 pi]`` expanded in ``x``."""
    m = jnp.ones_like(x) if mask is None else mask.astype(x.dtype)
    inv = 1.0 / variances
    quad = (m * x ** 2) @ inv.T - 2 * (m * x) @ (means * inv).T + m @ (means ** 2 * inv + jnp.log(variances)
                                                                      + LOG_2PI).T
    return -0.5 * quad


def gmm_component_log_prob(params, x):
    """``log pi_k + log N(x; mu_k, Sigma_k)`` per example and component ``(B, K)``."""
    if "vars" in params:
        comp = _diag_components_log_prob(x, params["means"], params["vars"])
    else:  # components one after another: (B, D) at a time, not (K, B, D)
        comp = lax.map(lambda mc: gaussian_log_prob(x, *mc), (params["means"], params["covs"])).T
    return comp + params["log_weights"]


def gmm_log_prob(params, x):
    return jax.nn.logsumexp(gmm_component_log_prob(params, x), axis=1)


def _gmm_m_step(x, resp, covariance: str, reg: float):
    counts = resp.sum(0) + 10 * jnp.finfo(x.dtype).eps
    means = resp.T @ x / counts[:, None]
    log_weights = jnp.log(counts / counts.sum())
    if covariance == "diag":
        second = resp.T @ (x ** 2) / counts[:, None]
        return {"log_weights": log_weights, "means": means, "vars": jnp.maximum(second - means ** 2, 0) + reg}
    d = x.shape[1]

    def cov(rm):
        r, m = rm
        centred = x - m
        return (centred * r[:, None]).T @ centred
    covs = lax.map(cov, (resp.T, means)) / counts[:, None, None] + reg * jnp.eye(d)
    return {"log_weights": log_weights, "means": means, "covs": covs}


@functools.partial(jax.jit, static_argnames=("num_components", "covariance", "num_iters", "num_restarts",
                                             "kmeans_iters"))
def fit_gmm(rng, x, num_components: int, *, covariance: str = "full", num_iters: int = 100, num_restarts: int = 1,
            reg: float = 1e-6, weights=None, kmeans_iters: int = 10):
    """A Gaussian mixture by EM (full or diagonal covariances, ``reg`` added to every variance as in
    scikit-learn's ``reg_covar``), each restart seeded by k-means++ and ``kmeans_iters`` Lloyd iterations
    (hard responsibilities -> the first M-step); the restart with the highest final likelihood is kept.

    Returns ``(params, history)``: ``{"log_weights", "means", "covs" | "vars"}`` and the weighted mean training
    log-likelihood of every restart before each EM step and after the last, ``(num_restarts, num_iters + 1)``."""
    if covariance not in ("full", "diag"):
        raise ValueError(f"covariance must be 'full' or 'diag', got {covariance!r}")
    w = _weights(x, weights)

    def mean_ll(params):
        return w @ gmm_log_prob(params, x) / w.sum()

    def one_restart(key):
        centres = kmeans(x, kmeans_plus_plus(key, x, num_components, w), kmeans_iters, w)
        hard = jax.nn.one_hot(jnp.argmin(_sq_distances(x, centres), axis=1), num_components, dtype=x.dtype)
        params = _gmm_m_step(x, hard * w[:, None], covariance, reg)

        def em_step(params, _):
            joint = gmm_component_log_prob(params, x)
            log_px = jax.nn.logsumexp(joint, axis=1)
            resp = jnp.exp(joint - log_px[:, None]) * w[:, None]
            return _gmm_m_step(x, resp, covariance, reg), w @ log_px / w.sum()

        params, history = lax.scan(em_step, params, None, length=num_iters)
        return params, jnp.concatenate([history, mean_ll(params)[None]])

    all_params, histories = lax.map(one_restart, jax.random.split(rng, num_restarts))
    best = jnp.argmax(histories[:, -1])
    return jax.tree.map(lambda a: a[best], all_params), histories


def gmm_masked_log_prob(params, x, mask):
    """``log p(x_obs)`` of the mixture per row: each component's exact marginal, mixed. Also the components'
    joint ``(B, K)``, whose softmax is the posterior over components given the observed coordinates."""
    mask = mask.astype(x.dtype)
    if "vars" in params:
        comp = _diag_components_log_prob(x, params["means"], params["vars"], mask)
    else:
        comp = lax.map(lambda mc: masked_gaussian_log_prob(x, mask, *mc), (params["means"], params["covs"])).T
    joint = comp + params["log_weights"]
    return jax.nn.logsumexp(joint, axis=1), joint


def gmm_impute(params, x, mask):
    """``E[x_mis | x_obs]`` under the mixture: the components' conditional means weighted by their posterior
    given the observed coordinates."""
    mask = mask.astype(x.dtype)
    log_px, joint = gmm_masked_log_prob(params, x, mask)
    post = jnp.exp(joint - log_px[:, None])  # (B, K)
    if "vars" in params:
        cond = jnp.where(mask[None] > 0, x[None], params["means"][:, None, :])  # independent coordinates
    else:
        cond = lax.map(lambda mc: gaussian_conditional(x, mask, *mc)[0], (params["means"], params["covs"]))
    return jnp.where(mask > 0, x, jnp.einsum("bk,kbd->bd", post, cond))


# ----------------------------------------------------------------------------------- Bernoulli mixtures


def bernoulli_component_log_prob(params, x, mask=None):
    """``log pi_k + sum_d log Bern(x_d; p_kd)`` ``(B, K)``; with ``mask`` only observed pixels count (exact
    marginalisation: each pixel is independent given the component)."""
    logit = params["logits"]  # (K, D)
    terms_1, terms_0 = jax.nn.log_sigmoid(logit), jax.nn.log_sigmoid(-logit)
    xm = x if mask is None else x * mask
    ones_m = jnp.ones_like(x) if mask is None else mask
    return xm @ terms_1.T + (ones_m - xm) @ terms_0.T + params["log_weights"]


def bernoulli_mixture_log_prob(params, x, mask=None):
    return jax.nn.logsumexp(bernoulli_component_log_prob(params, x, mask), axis=1)


def bernoulli_mixture_impute(params, x, mask):
    """``P(x_mis = 1 | x_obs)``: the components' pixel probabilities weighted by their posterior."""
    joint = bernoulli_component_log_prob(params, x, mask)
    post = jax.nn.softmax(joint, axis=1)
    return jnp.where(mask > 0, x, post @ jax.nn.sigmoid(params["logits"]))


@functools.partial(jax.jit, static_argnames=("num_components", "num_iters", "num_restarts"))
def fit_bernoulli_mixture(rng, x, num_components: int, *, num_iters: int = 50, num_restarts: int = 1,
                          alpha: float = 1.0, weights=None):
    """A mixture of products of Bernoullis on binary ``x`` by MAP-EM, with Beta(1 + alpha, 1 + alpha) priors on
    the pixel probabilities and Dirichlet(1 + alpha) on the weights: ``p = (sum r x + alpha) / (N_k + 2 alpha)``
    (``alpha = 1`` is Laplace smoothing, which keeps every log-probability finite on unseen pixels). Each
    restart starts from responsibilities drawn at random.

    Returns ``(params, history)`` as :func:`fit_gmm` (the history is the mean log-likelihood plus the log prior
    per example, which MAP-EM never lowers)."""
    w = _weights(x, weights)
    n = w.sum()

    def m_step(resp):
        counts = resp.sum(0)
        p = (resp.T @ x + alpha) / (counts[:, None] + 2 * alpha)
        pi = (counts + alpha) / (n + num_components * alpha)
        return {"log_weights": jnp.log(pi), "logits": jnp.log(p) - jnp.log1p(-p)}

    def objective(params):
        logits = params["logits"]
        log_prior = alpha * (jnp.sum(jax.nn.log_sigmoid(logits) + jax.nn.log_sigmoid(-logits))
                             + jnp.sum(params["log_weights"]))
        return (w @ bernoulli_mixture_log_prob(params, x) + log_prior) / n

    def one_restart(key):
        resp = jax.random.dirichlet(key, jnp.ones(num_components), (x.shape[0],)).astype(x.dtype) * w[:, None]
        params = m_step(resp)

        def em_step(params, _):
            joint = bernoulli_component_log_prob(params, x)
            resp = jax.nn.softmax(joint, axis=1) * w[:, None]
            return m_step(resp), objective(params)

        params, history = lax.scan(em_step, params, None, length=num_iters)
        return params, jnp.concatenate([history, objective(params)[None]])

    all_params, histories = lax.map(one_restart, jax.random.split(rng, num_restarts))
    best = jnp.argmax(histories[:, -1])
    return jax.tree.map(lambda a: a[best], all_params), histories


# ----------------------------------------------------------------------------------------- naive Bayes


def fit_gaussian_naive_bayes(x, y, num_classes: int, var_smoothing: float = 1e-9):
    """Gaussian naive Bayes as scikit-learn's ``GaussianNB``: per class the mean and (biased) variance of every
    feature plus ``var_smoothing`` times the largest feature variance, and the class frequencies as the prior."""
    # the diagonal mixture's M-step with the labels as hard responsibilities
    fit = _gmm_m_step(x, jax.nn.one_hot(y, num_classes, dtype=x.dtype), "diag",
                      var_smoothing * jnp.max(jnp.var(x, axis=0)))
    return {"log_prior": fit["log_weights"], "means": fit["means"], "vars": fit["vars"]}


def fit_bernoulli_naive_bayes(x, y, num_classes: int, alpha: float = 1.0):
    """Bernoulli naive Bayes as scikit-learn's ``BernoulliNB``: ``p_cd = (count of ones + alpha) /
    (class count + 2 alpha)``, the class frequencies as the prior."""
    onehot = jax.nn.one_hot(y, num_classes, dtype=x.dtype)
    counts = onehot.sum(0)
    p = (onehot.T @ x + alpha) / (counts[:, None] + 2 * alpha)
    return {"log_prior": jnp.log(counts / counts.sum()), "logits": jnp.log(p) - jnp.log1p(-p)}


def naive_bayes_log_joint(params, x, mask=None):
    """``log p(y) + log p(x_obs | y)`` ``(B, C)``: the missing features drop out of the product exactly."""
    if "logits" in params:
        return bernoulli_component_log_prob({"logits": params["logits"], "log_weights": params["log_prior"]},
                                            x, mask)
    return _diag_components_log_prob(x, params["means"], params["vars"], mask) + params["log_prior"]
