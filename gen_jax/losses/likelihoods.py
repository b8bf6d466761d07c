"""Observation models: per-example log-likelihoods of data under a decoder's output.

Each returns ``log p(x | params)`` summed over all non-batch dimensions, shape ``(B,)``, in nats, computed in
log space so that no probability underflows.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gen_jax.nn.distributions import bernoulli_log_prob, discretized_logistic_log_mass


def _sum_per_example(v: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """Sums over non-batch axes; ``weights`` (broadcastable, e.g. an observed-pixel mask) weight each term."""
    if weights is not None:
        v = v * weights
    return v.reshape(v.shape[0], -1).sum(axis=1)


def bernoulli_log_likelihood(logits: jax.Array, x: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """``sum x log sigmoid(l) + (1 - x) log sigmoid(-l)``.

    Args:
      logits: ``(B, ...)`` Bernoulli logits.
      x: ``(B, ...)`` targets in {0, 1}.
    Returns:
      ``(B,)`` log-likelihoods.
    """
    return _sum_per_example(bernoulli_log_prob(logits, x), weights)


def gaussian_log_likelihood(x: jax.Array, mean: jax.Array, log_scale: jax.Array,
                            weights: jax.Array | None = None) -> jax.Array:
    """Diagonal Gaussian density ``N(x; mean, exp(log_scale)^2)``, summed per example."""
    z = (x - mean) * jnp.exp(-log_scale)
    return _sum_per_example(-0.5 * z**2 - log_scale - 0.5 * math.log(2 * math.pi), weights)


def discretized_logistic_log_likelihood(levels: jax.Array, mean: jax.Array, log_scale: jax.Array, *,
                                        num_levels: int, weights: jax.Array | None = None) -> jax.Array:
    """Probability mass of integer levels under a logistic discretized into ``num_levels`` bins, summed per
    example (per-pixel masses and conventions: :func:`gen_jax.nn.distributions.discretized_logistic_log_mass`).

    Args:
      levels: ``(B, ...)`` integers in ``{0, ..., num_levels - 1}``.
      mean: ``(B, ...)`` logistic location, in [-1, 1] units.
      log_scale: ``(B, ...)`` log of the logistic scale.
      num_levels: ``K``.
    Returns:
      ``(B,)`` log-probabilities (nats).
    """
    return _sum_per_example(discretized_logistic_log_mass(levels, mean, log_scale, num_levels=num_levels), weights)


LIKELIHOODS = ("bernoulli", "gaussian", "discretized_logistic")


def params_per_dim(likelihood: str) -> int:
    """How many decoder outputs per data dimension an observation model takes."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {likelihood!r}; known: {list(LIKELIHOODS)}")
    return 1 if likelihood == "bernoulli" else 2


def observation_log_likelihood(likelihood: str, decoder_out: jax.Array, levels: jax.Array, *,
                               num_levels: int, weights: jax.Array | None = None) -> jax.Array:
    """Dispatches on the likelihood's name; ``levels`` are the integer data (see data.conventions).
    ``weights`` (e.g. 1 on observed pixels, 0 on missing ones) weight the per-dimension terms of the sum.

    ``bernoulli`` needs ``num_levels == 2``; ``gaussian`` models ``levels / (K - 1)`` as continuous (not a
    likelihood of the discrete data: use it for real-valued data); ``discretized_logistic`` is exact for levels.
    """
    if likelihood == "bernoulli":
        if num_levels != 2:
            raise ValueError(f"the bernoulli likelihood needs binary data, got {num_levels} levels")
        return bernoulli_log_likelihood(decoder_out, levels, weights)
    mean, log_scale = jnp.split(decoder_out, 2, axis=-1)
    log_scale = jnp.clip(log_scale, -7.0, 7.0)
    if likelihood == "gaussian":
        return gaussian_log_likelihood(levels.astype(mean.dtype) / (num_levels - 1), mean, log_scale, weights)
    if likelihood == "discretized_logistic":
        return discretized_logistic_log_likelihood(levels, mean, log_scale, num_levels=num_levels,
                                                   weights=weights)
    raise ValueError(f"unknown likelihood {likelihood!r}; known: {list(LIKELIHOODS)}")


def observation_mean(likelihood: str, decoder_out: jax.Array, *, num_levels: int) -> jax.Array:
    """The decoder's mean image in [0, 1] (for pictures)."""
    if likelihood == "bernoulli":
        return jax.nn.sigmoid(decoder_out)
    mean = jnp.split(decoder_out, 2, axis=-1)[0]
    return jnp.clip((mean + 1.0) / 2.0 if likelihood == "discretized_logistic" else mean, 0.0, 1.0)


def observation_sample(likelihood: str, decoder_out: jax.Array, rng: jax.Array, *,
                       num_levels: int) -> jax.Array:
    """Draws data from the observation model, returned in [0, 1]."""
    if likelihood == "bernoulli":
        return jax.random.bernoulli(rng, jax.nn.sigmoid(decoder_out)).astype(jnp.float32)
    mean, log_scale = jnp.split(decoder_out, 2, axis=-1)
    log_scale = jnp.clip(log_scale, -7.0, 7.0)
    u = jax.random.uniform(rng, mean.shape, minval=1e-5, maxval=1 - 1e-5)
    v = mean + jnp.exp(log_scale) * (jnp.log(u) - jnp.log1p(-u))  # logistic sample
    if likelihood == "gaussian":
        v = mean + jnp.exp(log_scale) * jax.random.normal(rng, mean.shape)
        return jnp.clip(v, 0.0, 1.0)
    levels = jnp.clip(jnp.round((v + 1.0) / 2.0 * (num_levels - 1)), 0, num_levels - 1)
    return levels / (num_levels - 1)
