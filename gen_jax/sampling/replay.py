"""The replay buffer of persistent contrastive divergence (Tieleman 2008; Du & Mordatch 2019): chains kept
between training steps, a fraction restarted from the initial distribution each time.

The buffer is an array ``(N, ...)`` in the train state's ``aux``: it checkpoints with the run, so a resumed run
continues the same chains. Draws are without replacement, so the write-back :func:`replay_update` never
writes one slot twice (XLA leaves the winner of a duplicate scatter undefined).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def replay_draw(buffer: jax.Array, rng: jax.Array, n: int, *, reinit_prob: float,
                init_fn: Callable[[jax.Array, tuple], jax.Array]):
    """``n`` chain starts: buffer entries at distinct random slots, each replaced with probability
    ``reinit_prob`` by a fresh ``init_fn(key, shape)`` draw. Returns ``(x0, slots)``."""
    k_slot, k_reinit, k_init = jax.random.split(rng, 3)
    slots = jax.random.choice(k_slot, buffer.shape[0], (n,), replace=False)
    fresh = init_fn(k_init, (n, *buffer.shape[1:]))
    reinit = jax.random.uniform(k_reinit, (n,)) < reinit_prob
    x0 = jnp.where(reinit.reshape((n,) + (1,) * (buffer.ndim - 1)), fresh, buffer[slots])
    return x0, slots


def replay_update(buffer: jax.Array, slots: jax.Array, x: jax.Array) -> jax.Array:
    """The buffer with ``x`` written at ``slots`` (distinct, from :func:`replay_draw`)."""
    return buffer.at[slots].set(x.astype(buffer.dtype))
