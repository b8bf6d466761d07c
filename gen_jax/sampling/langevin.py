"""Langevin dynamics: the sampler shared by score models and energy-based models.

Unadjusted Langevin (Roberts & Tweedie 1996; SGLD, Welling & Teh 2011): ``x <- x + (eps / 2) s(x) + sqrt(eps) z``
with ``s = grad log p``; annealed over decreasing noise levels for NCSN (Song & Ermon 2019, Algorithm 1). EBM
training decouples the noise from the step (Du & Mordatch 2019; Nijkamp et al. 2019: a step of 10 with noise
0.005 on images), which ``noise_scales`` allows; ``bounds`` keeps the chain in the data's box (images).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def langevin_sample(score_fn: Callable[[jax.Array], jax.Array], x, rng, step_sizes, noise_scales=None, *,
                    bounds: tuple[float, float] | None = None, noise_fn: Callable | None = None):
    """Runs one unadjusted Langevin step per entry of ``step_sizes`` (a schedule, shape ``(T,)``) from ``x``.

    Args:
      score_fn: ``x -> grad log p(x)`` on the batch (``-grad E`` for an energy).
      x: the starting points ``(B, ...)``.
      rng: key; step ``t`` uses ``split(rng, T)[t]``.
      step_sizes: ``eps_t``, shape ``(T,)``.
      noise_scales: the noise's standard deviation per step, shape ``(T,)``; ``None`` = ``sqrt(eps_t)`` (the
        sampler of ``p``; other scales sample a tempered ``p``, as EBM training does).
      bounds: ``(lo, hi)``: each step's result is clipped to the box.
      noise_fn: ``(key, shape) -> noise``; default ``jax.random.normal`` (the families pass a draw that makes
        a device's chains those of one device on the global batch).
    Returns:
      the final ``x``.
    """
    step_sizes = jnp.asarray(step_sizes, jnp.float32)
    noise_scales = jnp.sqrt(step_sizes) if noise_scales is None else jnp.asarray(noise_scales, jnp.float32)
    noise_fn = noise_fn or jax.random.normal

    def step(x, inputs):
        eps, scale, key = inputs
        x = x + 0.5 * eps * score_fn(x) + scale * noise_fn(key, x.shape)
        return (x if bounds is None else jnp.clip(x, *bounds)), None

    x, _ = jax.lax.scan(step, x, (step_sizes, noise_scales, jax.random.split(rng, step_sizes.shape[0])))
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
