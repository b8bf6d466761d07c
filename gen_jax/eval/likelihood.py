"""Likelihood evaluation over a whole split: mean NLL (nats) and bits/dim from a per-example bound."""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

from gen_jax.data.conventions import bits_per_dim


def evaluate_log_likelihood(bound_fn: Callable, params, arrays: dict, rng: jax.Array, *, batch_size: int,
                            num_dims: int) -> dict[str, float]:
    """Averages ``bound_fn(params, batch, rng) -> (B,) log p lower bounds`` over every example of ``arrays``.

    The last partial batch is included (no example is dropped). Returns ``nll`` (nats, mean over examples),
    ``bits_per_dim`` and ``num_examples``.
    """
    fn = jax.jit(bound_fn)
    n = len(next(iter(arrays.values())))
    total, count = 0.0, 0
    for start in range(0, n, batch_size):
        batch = {k: v[start:start + batch_size] for k, v in arrays.items()}
        log_p = np.asarray(fn(params, batch, jax.random.fold_in(rng, start)), np.float64)
        total += -log_p.sum()
        count += len(log_p)
    nll = total / count
    return {"nll": nll, "bits_per_dim": float(bits_per_dim(nll, num_dims=num_dims)), "num_examples": count}


