"""Score matching and the diffusion / flow-matching regression losses (per example).

* Denoising score matching (Vincent 2011): ``E || s(x + sigma eps, sigma) + eps / sigma ||^2``; with the NCSN
  weighting ``lambda(sigma) = sigma^2`` over many noise levels (Song & Ermon 2019) it is the eps-regression.
* Sliced score matching (Song et al. 2019), variance-reduced: ``E_v [v^T (ds/dx) v] + ||s||^2 / 2`` with the
  second term in closed form, for data without a noise model.
* The diffusion family's regression on a Gaussian path (:mod:`gen_jax.models.diffusion`): eps-prediction
  (DDPM's simplified loss, Ho et al. 2020), v-prediction (Salimans & Ho 2022), EDM's preconditioned denoiser
  with log-normal noise levels (Karras et al. 2022), conditional flow matching (Lipman et al. 2023; Liu et al.
  2023), each built by :func:`make_diffusion_loss` from the path and the network's prediction.
* The continuous-time variational bound of a Gaussian path (Kingma et al. 2021), with a Gaussian or a
  discretized decoder (:func:`diffusion_variational_bound`): the ELBO of a diffusion model in nats.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def _sum_except_batch(v):
    return jnp.sum(v.reshape(v.shape[0], -1), axis=-1)


def denoising_score_matching(score: jax.Array, eps: jax.Array, sigma: jax.Array, *,
                             weight: str = "sigma2") -> jax.Array:
    """Per-example DSM loss of a score ``s(x + sigma eps, sigma)`` (Vincent 2011).

    Args:
      score: the model's score at the noised data, ``(B, ...)``.
      eps: the standard-normal noise that was added (times ``sigma``).
      sigma: noise level per example, ``(B,)``.
      weight: ``sigma2`` (NCSN's ``lambda = sigma^2``, Song & Ermon 2019) or ``none``.
    Returns:
      ``(B,)``: ``lambda(sigma) * 0.5 * || score + eps / sigma ||^2``.
    """
    s = jnp.reshape(sigma, (-1,) + (1,) * (score.ndim - 1))
    per = 0.5 * _sum_except_batch((score + eps / s) ** 2)
    if weight == "sigma2":
        return per * jnp.reshape(sigma, (-1,)) ** 2
    if weight == "none":
        return per
    raise ValueError(f"unknown weight {weight!r}; use 'sigma2' or 'none'")


def sliced_score_matching(score_fn: Callable[[jax.Array], jax.Array], x: jax.Array, rng: jax.Array, *,
                          num_projections: int = 1) -> jax.Array:
    """Per-example variance-reduced sliced score matching (Song et al. 2019, "SSM-VR"):
    ``E_v[v^T J_s(x) v] + 0.5 ||s(x)||^2`` with ``v ~ N(0, I)``; in expectation equal to Hyvarinen's
    ``tr(J_s(x)) + 0.5 ||s(x)||^2``. ``score_fn`` maps a batch ``(B, D)`` to scores ``(B, D)``."""
    v = jax.random.normal(rng, (num_projections, *x.shape))
    jvps = jax.vmap(lambda vi: _sum_except_batch(vi * jax.jvp(score_fn, (x,), (vi,))[1]))(v)
    return jnp.mean(jvps, 0) + 0.5 * _sum_except_batch(score_fn(x) ** 2)


def exact_score_matching(score_fn: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    """Hyvarinen's (2005) objective ``tr(J_s(x)) + 0.5 ||s(x)||^2`` per example, with the full Jacobian
    (D backward passes: low dimension only)."""
    jac = jax.vmap(jax.jacfwd(lambda v: score_fn(v[None])[0]))(x)
    return jnp.trace(jac, axis1=-2, axis2=-1) + 0.5 * _sum_except_batch(score_fn(x) ** 2)


def make_diffusion_loss(apply_fn: Callable, path, prediction: str
                        ) -> Callable[[object, dict, jax.Array], tuple[jax.Array, dict]]:
    """``loss_fn(params, batch, rng) -> (mean loss, metrics)``: regress the network's output on its target
    (``path.target``) for ``x_t = alpha x0 + sigma eps`` at times drawn by ``path.sample_t``; per example
    ``0.5 || out - target ||^2``.

    With ``prediction="eps"`` this is DDPM's simplified loss (and DSM with NCSN's sigma^2 weighting); ``v`` is
    v-prediction; ``velocity`` on a rectified-flow path is conditional flow matching; ``edm`` on an EDM path is
    EDM's loss (its weight ``lambda(sigma) c_out(sigma)^2`` is 1 for the F-regression, and ``sample_t`` draws
    its log-normal noise levels).

    Args:
      apply_fn: ``(params, x_t, t, labels, rng) -> network output`` (it applies any preconditioning itself).
      path: a Gaussian path (:mod:`gen_jax.models.diffusion`).
      prediction: ``eps`` | ``x0`` | ``v`` | ``velocity`` | ``edm``.
    The batch holds ``x`` (and ``label`` when the network is conditional). Metrics: ``loss``.
    """

    def loss_fn(params, batch, rng):
        x0 = batch["x"]
        k_t, k_eps, k_net = jax.random.split(rng, 3)
        t = path.sample_t(k_t, x0.shape[0])
        eps = jax.random.normal(k_eps, x0.shape)
        out = apply_fn(params, path.marginal(x0, eps, t), t, batch.get("label"), k_net)
        loss = (0.5 * _sum_except_batch((out - path.target(prediction, x0, eps, t)) ** 2)).mean()
        return loss, {"loss": loss}

    return loss_fn


def _discretized_gaussian_log_mass(x, mean, std, num_levels: int):
    """``log P(level)`` of a Gaussian over ``num_levels`` bins of width ``2 / K`` tiling ``[-1, 1]`` (the outer
    bins extended to infinity; Ho et al. 2020's decoder), for ``x`` at a bin's centre."""
    half = 1.0 / num_levels
    upper = jnp.where(x > 1 - 2 * half, jnp.inf, (x + half - mean) / std)
    lower = jnp.where(x < -1 + 2 * half, -jnp.inf, (x - half - mean) / std)
    # log(Phi(b) - Phi(a)) in the tail that keeps precision: mirror to the left tail when both are positive
    flip = (lower + upper) > 0
    a, b = jnp.where(flip, -upper, lower), jnp.where(flip, -lower, upper)
    log_cdf_b, log_cdf_a = jax.scipy.special.log_ndtr(b), jax.scipy.special.log_ndtr(a)
    return log_cdf_b + jnp.log1p(-jnp.exp(jnp.minimum(log_cdf_a - log_cdf_b, -1e-12)))


def diffusion_variational_bound(denoiser: Callable, path, x0, rng, *, num_samples: int = 16,
                                decoder: str = "gaussian", num_levels: int = 0,
                                t_decoder: float | None = None) -> jax.Array:
    """The negative variational bound ``-ELBO >= -log p(x0)`` of a Gaussian path in continuous time (Kingma et
    al. 2021, "Variational Diffusion Models"), per example, in nats:

    ``KL(q(x_T | x0) || prior) + E[-log p(x0 | x_{t_min})] + 1/2 int e^lambda ||x0 - x0_hat(x_t, t)||^2 d lambda``

    with ``lambda = log SNR = log(alpha^2 / sigma^2)`` from ``lambda(t_max)`` to ``lambda(t_decoder)`` (default
    ``t_min``: where the decoder takes over; any time gives a valid bound, on the model that decodes there). The integral
    is estimated with ``num_samples`` stratified points uniform in ``lambda`` (an unbiased estimate, of low
    variance: the integrand is near ``D/2`` at high SNR where uniform time would put a ``1/t`` spike). The
    decoder ``p(x0 | x_{t_min})`` is ``N(x_{t_min} / alpha, (sigma / alpha)^2)`` (``gaussian``: a density of
    continuous ``x0``), or that Gaussian's mass on ``x0``'s bin (``discretized``: ``num_levels`` bins of width
    ``2 / K`` tiling ``[-1, 1]``, ``x0`` at the bin centres; then the bound is on ``-log P(levels)``, Ho et al.
    2020's discrete decoder).

    Args:
      denoiser: ``(x_t, t) -> (x0_hat, eps_hat)`` with ``t`` of shape ``(B,)``; it is called on the batch with
        each example repeated ``num_samples`` times in a row (``jnp.repeat``), a conditional one must repeat
        its labels so.
      path: the Gaussian path.
      x0: data ``(B, ...)`` at the model's scale.
    """
    b = x0.shape[0]
    k_u, k_eps, k_dec = jax.random.split(rng, 3)
    # lambda -> t by interpolation on a fine grid: one rule for every path
    t_dec = path.t_min if t_decoder is None else t_decoder
    grid = jnp.linspace(t_dec, path.t_max, 4097)
    lam_grid = 2 * (jnp.log(path.alpha(grid)) - jnp.log(path.sigma(grid)))  # decreasing in t
    lam_max, lam_min = lam_grid[0], lam_grid[-1]
    u = (jnp.arange(num_samples)[None] + jax.random.uniform(k_u, (b, 1))) / num_samples  # stratified, (B, S)
    lam = lam_min + u * (lam_max - lam_min)
    t = jnp.interp(lam, lam_grid[::-1], grid[::-1])
    rep = lambda a: jnp.repeat(a, num_samples, axis=0)
    t_flat = t.reshape(-1)
    x0_rep = rep(x0)
    eps = jax.random.normal(k_eps, x0_rep.shape)
    x0_hat, _ = denoiser(path.marginal(x0_rep, eps, t_flat), t_flat)
    lam_true = 2 * (jnp.log(path.alpha(t_flat)) - jnp.log(path.sigma(t_flat)))  # exact at the interpolated t
    err = _sum_except_batch((x0_rep - x0_hat) ** 2) * jnp.exp(lam_true)
    diffusion = 0.5 * (lam_max - lam_min) * err.reshape(b, num_samples).mean(1)
    # prior: KL(N(a x0, s^2) || N(0, P^2)) per dimension
    a_T, s_T, p = path.alpha(path.t_max), path.sigma(path.t_max), path.prior_std
    prior = _sum_except_batch(jnp.log(p / s_T) + (s_T ** 2 + (a_T * x0) ** 2) / (2 * p * p) - 0.5)
    a0, s0 = path.alpha(t_dec), path.sigma(t_dec)
    z0 = a0 * x0 + s0 * jax.random.normal(k_dec, x0.shape)
    if decoder == "gaussian":
        std = s0 / a0
        recon = _sum_except_batch(0.5 * ((x0 - z0 / a0) / std) ** 2 + jnp.log(std) + 0.5 * jnp.log(2 * jnp.pi))
    elif decoder == "discretized":
        if num_levels < 2:
            raise ValueError("a discretized decoder needs num_levels >= 2")
        recon = -_sum_except_batch(_discretized_gaussian_log_mass(x0, z0 / a0, s0 / a0, num_levels))
    else:
        raise ValueError(f"unknown decoder {decoder!r}; use 'gaussian' or 'discretized'")
    return prior + recon + diffusion
