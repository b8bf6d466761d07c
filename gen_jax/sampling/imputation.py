"""Missing-data imputation by self-normalised importance sampling in a latent-variable model."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gen_jax.losses import observation_log_likelihood, observation_mean
from gen_jax.nn.distributions import log_normal_diag


def impute_by_importance_sampling(model, likelihood: str, num_levels: int, params, x, mask, rng, *,
                                  num_samples: int = 1000, chunk: int = 100):
    """Missing-data imputation with a VAE by self-normalised importance sampling (Mattei & Frellsen 2019,
    "MIWAE"): ``E[x_mis | x_obs] ~= sum_i w_i E[x_mis | z_i]`` with ``w_i ∝ p(x_obs | z_i) p(z_i) / r(z_i)``.

    The proposal ``r`` is the defensive mixture ``(q(z | x_obs, missing = 0) + N(0, I)) / 2`` (whatever the
    model's prior ``p``): the encoder alone has never seen a hole and can miss the posterior; the prior half
    keeps the weights bounded. Consistent as ``num_samples`` grows, unlike pseudo-Gibbs, which locks onto
    whatever the encoder makes of the hole.

    Args:
      model, params: an unconditional :class:`gen_jax.models.VAE` and its parameters.
      likelihood, num_levels: its observation model.
      x: images in [0, 1], ``(B, H, W, C)``; mask: 1 where observed.
    Returns:
      the weighted decoder mean (the MSE-optimal fill) on the missing pixels and ``x`` elsewhere.
    """
    levels = jnp.round(x * (num_levels - 1)).astype(jnp.int32)
    mean, log_var = model.apply(params, mask * x, method=model.encode)
    b, d = mean.shape

    def one_chunk(carry, key):
        log_total, weighted = carry
        k_eps, k_pick = jax.random.split(key)
        eps = jax.random.normal(k_eps, (chunk, b, d))
        from_q = jax.random.bernoulli(k_pick, 0.5, (chunk, b, 1))
        z = jnp.where(from_q, mean + jnp.exp(0.5 * log_var) * eps, eps)
        log_r = jnp.logaddexp(log_normal_diag(z, mean, log_var), log_normal_diag(z, 0.0, jnp.zeros_like(z))
                              ) - math.log(2.0)
        log_prior = model.apply(params, z, method=model.log_prior)
        out = model.apply(params, z.reshape(chunk * b, d), method=model.decode)
        rep = lambda a: jnp.broadcast_to(a, (chunk, *a.shape)).reshape(chunk * b, *a.shape[1:])
        ll = observation_log_likelihood(likelihood, out, rep(levels), num_levels=num_levels,
                                        weights=rep(mask)).reshape(chunk, b)
        log_w = ll + log_prior - log_r  # (chunk, b)
        means = observation_mean(likelihood, out, num_levels=num_levels).reshape(chunk, *x.shape)
        new_total = jnp.logaddexp(log_total, jax.nn.logsumexp(log_w, 0))
        w_chunk = jnp.exp(log_w - new_total[None])  # weights relative to the new running total
        scale_old = jnp.exp(log_total - new_total)
        expand = lambda a: a.reshape(a.shape + (1,) * (x.ndim - 1))
        weighted = expand(scale_old) * weighted + jnp.sum(expand(w_chunk) * means, 0)
        return (new_total, weighted), None

    keys = jax.random.split(rng, num_samples // chunk)
    (_, fill), _ = jax.lax.scan(one_chunk, (jnp.full((b,), -jnp.inf), jnp.zeros_like(x)), keys)
    return mask * x + (1 - mask) * fill
