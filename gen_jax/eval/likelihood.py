"""Likelihood evaluation over a whole split: mean NLL (nats) and bits/dim from a per-example bound."""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from gen_jax.data.conventions import bits_per_dim


def per_example_log_likelihood(bound_fn: Callable, params, arrays: dict, rng: jax.Array, *,
                               batch_size: int) -> np.ndarray:
    """``bound_fn(params, batch, rng) -> (B,)`` over every example of ``arrays`` (the last partial batch
    included), as a float64 ``(N,)`` array; batch ``i`` starting at example ``s`` uses ``fold_in(rng, s)``."""
    fn = jax.jit(bound_fn)
    n = len(next(iter(arrays.values())))
    out = []
    for start in range(0, n, batch_size):
        batch = {k: v[start:start + batch_size] for k, v in arrays.items()}
        out.append(np.asarray(fn(params, batch, jax.random.fold_in(rng, start)), np.float64))
    return np.concatenate(out)


def evaluate_log_likelihood(bound_fn: Callable, params, arrays: dict, rng: jax.Array, *, batch_size: int,
                            num_dims: int) -> dict[str, float]:
    """Averages ``bound_fn(params, batch, rng) -> (B,) log p lower bounds`` over every example of ``arrays``.

    No example is dropped. Returns ``nll`` (nats, mean over examples), ``bits_per_dim`` and ``num_examples``.
    """
    log_p = per_example_log_likelihood(bound_fn, params, arrays, rng, batch_size=batch_size)
    nll = float(-log_p.mean())
    return {"nll": nll, "bits_per_dim": float(bits_per_dim(nll, num_dims=num_dims)), "num_examples": len(log_p)}
