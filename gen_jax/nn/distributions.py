"""Distributions that models output and losses score, each defined once here: the diagonal Gaussian density
of latent codes (:func:`log_normal_diag`, summed over the last axis), and per-pixel discrete distributions.

Levels ``k`` of a ``K``-level pixel sit at ``c_k = 2k / (K-1) - 1`` in [-1, 1] (see ``gen_jax.data.conventions``).
Every pixel function is elementwise over the leading axes: it returns per-pixel log-probabilities, not sums.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp


def log_normal_diag(z: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """``log N(z; mean, diag(exp(log_var)))`` summed over the last axis."""
    return -0.5 * jnp.sum((z - mean) ** 2 * jnp.exp(-log_var) + log_var + math.log(2 * math.pi), axis=-1)


def bernoulli_log_prob(logits: jax.Array, x: jax.Array) -> jax.Array:
    """``x log sigmoid(l) + (1 - x) log sigmoid(-l)`` for targets ``x`` in {0, 1}, elementwise."""
    t = x.astype(logits.dtype)
    return t * jax.nn.log_sigmoid(logits) + (1 - t) * jax.nn.log_sigmoid(-logits)


def discretized_logistic_log_mass(levels: jax.Array, mean: jax.Array, log_scale: jax.Array, *,
                                  num_levels: int) -> jax.Array:
    """Log probability mass of integer ``levels`` under a logistic(``mean``, ``exp(log_scale)``) discretized
    into ``num_levels`` bins of width ``2 / (K-1)``; the two edge bins extend to -inf and +inf so the masses
    sum to one (Salimans et al. 2017, PixelCNN++). Elementwise, broadcasting its arguments."""
    half_bin = 1.0 / (num_levels - 1)
    centered = 2.0 * levels.astype(mean.dtype) * half_bin - 1.0 - mean
    inv_scale = jnp.exp(-log_scale)
    plus = inv_scale * (centered + half_bin)
    minus = inv_scale * (centered - half_bin)
    log_cdf_plus = jax.nn.log_sigmoid(plus)  # log F(upper edge): the lowest bin's mass
    log_one_minus_cdf_minus = jax.nn.log_sigmoid(-minus)  # log (1 - F(lower edge)): the highest bin's
    # log(F(plus) - F(minus)) = log sigmoid(plus) + log(1 - exp(log sigmoid(minus) - log sigmoid(plus)));
    # both terms are exact in log space, also far in the tails where the sigmoids round to 0 or 1.
    # The clamp keeps the branch jnp.where discards finite: a -inf there would still poison the gradient.
    log_ratio = jnp.minimum(jax.nn.log_sigmoid(minus) - log_cdf_plus, -1e-12)
    log_mid = log_cdf_plus + jnp.log(-jnp.expm1(log_ratio))
    log_mid_narrow = jax.nn.log_sigmoid(inv_scale * centered) + jax.nn.log_sigmoid(-inv_scale * centered) \
        + jnp.log(2.0 * half_bin * inv_scale)  # density x bin width, for bins far narrower than the scale
    log_mid = jnp.where(plus - minus > 1e-5, log_mid, log_mid_narrow)
    return jnp.where(levels == 0, log_cdf_plus,
                     jnp.where(levels == num_levels - 1, log_one_minus_cdf_minus, log_mid))


def logistic_mixture_log_probs(out, levels, num_levels):
    """Per-pixel log-probabilities of a discretized logistic mixture, ``out`` = (logits, means, log scales)."""
    m = out.shape[-1] // 3
    logit_pi, mean, log_scale = out[..., :m], out[..., m:2 * m], jnp.clip(out[..., 2 * m:], -7.0, 7.0)
    lv = jnp.broadcast_to(levels[..., None], mean.shape)
    comp = discretized_logistic_log_mass(lv, mean, log_scale, num_levels=num_levels)
    return jax.nn.logsumexp(jax.nn.log_softmax(logit_pi, -1) + comp, -1)


def pixel_log_probs(out, levels, num_levels, output):
    """Per-pixel ``log p(level | out)`` for 2 levels (Bernoulli logit), ``"categorical"`` logits or a
    ``"logistic_mixture"``; ``out`` ``(..., n)``, ``levels`` ``(...)``."""
    if num_levels == 2:
        return bernoulli_log_prob(out[..., 0], levels)
    if output == "categorical":
        return jnp.take_along_axis(jax.nn.log_softmax(out, -1), levels[..., None].astype(jnp.int32), -1)[..., 0]
    return logistic_mixture_log_probs(out, levels, num_levels)


def sample_pixel(key, out, num_levels, output, temperature):
    """One level per pixel from :func:`pixel_log_probs`' distribution, its logits divided by ``temperature``."""
    if num_levels == 2:
        return jax.random.bernoulli(key, jax.nn.sigmoid(out[..., 0] / temperature)).astype(jnp.int32)
    if output == "categorical":
        return jax.random.categorical(key, out / temperature).astype(jnp.int32)
    # Exact for a discretized mixture: its K level probabilities, then a categorical draw.
    levels = jnp.arange(num_levels)
    logp = jax.vmap(lambda lv: logistic_mixture_log_probs(out, jnp.full(out.shape[:-1], lv), num_levels),
                    out_axes=-1)(levels)
    return jax.random.categorical(key, logp / temperature).astype(jnp.int32)
