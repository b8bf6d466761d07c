"""Langevin dynamics: the sampler shared by score models and energy-based models.

Unadjusted Langevin (Roberts & Tweedie 1996; SGLD, Welling & Teh 2011): ``x <- x + (eps / 2) s(x) + sqrt(eps) z``
with ``s = grad log p``; annealed over decreasing noise levels for NCSN (Song & Ermon 2019, Algorithm 1).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def langevin_sample(score_fn: Callable[[jax.Array], jax.Array], x, rng, step_sizes):
    """Runs one unadjusted Langevin step per entry of ``step_sizes`` (a schedule, shape ``(T,)``) from ``x``;
    ``score_fn(x) -> grad log p(x)`` on the batch. Returns the final ``x``."""

    def step(x, inputs):
        eps, key = inputs
        return x + 0.5 * eps * score_fn(x) + jnp.sqrt(eps) * jax.random.normal(key, x.shape), None

    step_sizes = jnp.asarray(step_sizes, jnp.float32)
    x, _ = jax.lax.scan(step, x, (step_sizes, jax.random.split(rng, step_sizes.shape[0])))
    return x


def annealed_langevin_sample(score_fn: Callable[[jax.Array, jax.Array], jax.Array], sigmas, x, rng, *,
                             steps_per_level: int = 100, step_size: float = 2e-5, denoise: bool = True):
    """NCSN's annealed Langevin dynamics: for each noise level ``sigma_i`` (decreasing), ``steps_per_level``
    Langevin steps with step ``step_size * (sigma_i / sigma_L)^2`` on ``score_fn(x, sigma_i)``; ``denoise`` adds
    the final Tweedie step ``x + sigma_L^2 s(x, sigma_L)`` (Jolicoeur-Martineau et al. 2021)."""
    sigmas = jnp.asarray(sigmas, jnp.float32)

    def level(x, inputs):
        sigma, key = inputs
        eps = step_size * (sigma / sigmas[-1]) ** 2
        x = langevin_sample(lambda v: score_fn(v, sigma), x, key, jnp.full((steps_per_level,), eps))
        return x, None

    x, _ = jax.lax.scan(level, x, (sigmas, jax.random.split(rng, sigmas.shape[0])))
    if denoise:
        x = x + sigmas[-1] ** 2 * score_fn(x, sigmas[-1])
    return x
