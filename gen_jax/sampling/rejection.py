"""Discriminator rejection sampling (Azadi et al. 2019, "Discriminator Rejection Sampling", ICLR).

A GAN's discriminator, trained to optimality against a generator with density p_g, has the logit
``D(x) = log p_data(x) / p_g(x)``; rejection sampling with acceptance ``exp(D(x) - M)``, ``M`` the largest
logit, then turns the generator's draws into draws from p_data. In practice ``M`` is estimated from the draws
seen so far (the first chunk is a burn-in that only sets it) and the discriminator is not optimal, so the
accepted draws are closer to the data than the generator's, not exact. Azadi et al.'s shift ``gamma`` trades
exactness for acceptance: with ``a = exp(D(x) - M)`` a draw is accepted with probability
``sigmoid(log a - log(1 - a) - gamma) = a / (a + (1 - a) e^gamma)``: ``gamma = 0`` is exact rejection sampling,
``gamma < 0`` accepts more.
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np


def acceptance_probability(logits: np.ndarray, max_logit: float, gamma: float = 0.0) -> np.ndarray:
    """``a / (a + (1 - a) e^gamma)`` with ``a = exp(min(logits - max_logit, 0))``: ``a`` itself at ``gamma = 0``."""
    a = np.exp(np.minimum(np.asarray(logits, np.float64) - max_logit, 0.0))
    return a / (a + (1.0 - a) * np.exp(gamma))


def discriminator_rejection_sample(propose: Callable, rng: jax.Array, n: int, *, gamma: float = 0.0,
                                   chunk: int = 1000, max_rounds: int = 1000):
    """``n`` draws from ``propose`` kept by discriminator rejection sampling.

    Args:
      propose: ``propose(key, m) -> (draws, logits)``: ``m`` draws of the generator (a leading axis of ``m``)
        and the discriminator's logit of each, an estimate of ``log p_data / p_g``.
      rng: the key; the proposals use ``fold_in(rng, round)``, the acceptance draws a key of their own.
      n: draws to return.
      gamma: Azadi et al.'s shift (0 = exact rejection sampling given the logits).
      chunk: proposals per round; the first round is the burn-in that sets the largest logit ``M``.
      max_rounds: an error past this many rounds (an acceptance rate too low to finish).

    Returns:
      ``(draws, acceptance)``: ``n`` accepted draws (numpy, in proposal order) and the fraction of the
      proposals after the burn-in that were accepted.
    """
    if n < 1 or chunk < 1:
        raise ValueError(f"n and chunk must be >= 1, got n={n}, chunk={chunk}")
    k_prop, k_acc = jax.random.split(rng)
    _, logits = propose(jax.random.fold_in(k_prop, 0), chunk)
    max_logit = float(np.max(np.asarray(logits)))
    kept, accepted, proposed = [], 0, 0
    for r in range(1, max_rounds + 1):
        draws, logits = propose(jax.random.fold_in(k_prop, r), chunk)
        logits = np.asarray(logits, np.float64)
        max_logit = max(max_logit, float(np.max(logits)))
        u = np.asarray(jax.random.uniform(jax.random.fold_in(k_acc, r), (len(logits),)), np.float64)
        keep = u < acceptance_probability(logits, max_logit, gamma)
        kept.append(np.asarray(draws)[keep])
        accepted, proposed = accepted + int(keep.sum()), proposed + len(logits)
        if accepted >= n:
            return np.concatenate(kept)[:n], accepted / proposed
    raise RuntimeError(f"discriminator rejection sampling accepted {accepted} of {proposed} proposals in "
                       f"{max_rounds} rounds, fewer than the {n} asked: lower gamma (it accepts more) or raise "
                       f"max_rounds")
