"""Embeddings of scalars (diffusion times, noise levels) for networks."""

from __future__ import annotations

import math

import jax.numpy as jnp


def sinusoidal_embedding(t, dim: int, max_period: float = 10_000.0):
    """Transformer-style features of ``t`` (shape ``(B,)`` or scalar): ``[sin(t w_k), cos(t w_k)]`` with
    frequencies ``w_k`` from 1 down to ``1 / max_period`` (Vaswani et al. 2017; DDPM's time embedding), scaled
    by 1000 so that times in [0, 1] use the whole range. Returns ``(B, dim)``."""
    t = jnp.atleast_1d(jnp.asarray(t, jnp.float32)) * 1000.0
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half) / half)
    angles = t[:, None] * freqs[None]
    emb = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)
    return jnp.pad(emb, ((0, 0), (0, dim - 2 * half)))
