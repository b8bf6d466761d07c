"""Losses of energy-based models ``p(x) = exp(-E(x)) / Z``, per example.

* :func:`contrastive_divergence`: the maximum-likelihood gradient ``E_data[grad E] - E_model[grad E]`` as a
  loss, ``E(x+) - E(x-)`` with the model's samples ``x-`` held fixed (Hinton 2002; persistent chains:
  Tieleman 2008; short-run chains from noise: Nijkamp et al. 2019), plus the energy-magnitude regulariser
  ``alpha (E(x+)^2 + E(x-)^2)`` of Du & Mordatch 2019, which keeps energies near zero without changing the
  optimum's density much. The samples come from a sampler passed in by the caller: this loss never samples.
* :func:`noise_contrastive_estimation`: logistic regression of data against samples of a known noise density
  (Gutmann & Hyvarinen 2010); the model's log-normaliser is a parameter, so the fitted model is normalised.
* :func:`joint_energy_loss`: JEM (Grathwohl et al. 2020): a classifier's logits ``f(x)`` define
  ``p(x, y) ∝ exp(f(x)[y])`` and ``E(x) = -logsumexp_y f(x)[y]``: cross-entropy of ``p(y | x)`` plus
  contrastive divergence on ``p(x)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def contrastive_divergence(energy_data: jax.Array, energy_samples: jax.Array, *, alpha: float = 0.0) -> jax.Array:
    """Per-pair contrastive divergence ``E(x+) - E(x-) + alpha (E(x+)^2 + E(x-)^2)``.

    Args:
      energy_data: ``E`` on data ``(B,)``.
      energy_samples: ``E`` on the model's samples ``(B,)`` (their inputs carry no gradient: stop it).
      alpha: the energy-magnitude weight (Du & Mordatch: 1).
    Returns:
      ``(B,)``; its mean's gradient is the negative log-likelihood's, estimated with the samples.
    """
    return energy_data - energy_samples + alpha * (energy_data ** 2 + energy_samples ** 2)


def noise_contrastive_estimation(log_ratio_data: jax.Array, log_ratio_noise: jax.Array, *,
                                 noise_ratio: float = 1.0) -> jax.Array:
    """Per-example NCE loss with ``nu = noise_ratio`` noise samples per data point.

    Args:
      log_ratio_data: ``log p_model(x) - log p_noise(x)`` on data ``(B,)`` (``p_model`` with its learned
        normaliser).
      log_ratio_noise: the same on noise samples, ``(B, nu)``.
      noise_ratio: ``nu``.
    Returns:
      ``-log s(G(x)) - sum_j log(1 - s(G(y_j)))`` with ``G = log_ratio - log nu``, ``(B,)``: its minimiser is
      ``p_model = p_data`` with the normaliser right.
    """
    shift = jnp.log(noise_ratio)
    return (-jax.nn.log_sigmoid(log_ratio_data - shift)
            - jnp.sum(jax.nn.log_sigmoid(-(log_ratio_noise - shift)), axis=-1))


def energy_from_logits(logits: jax.Array) -> jax.Array:
    """JEM's energy of ``x``: ``-logsumexp_y f(x)[y]`` ``(B,)`` from logits ``(B, C)``."""
    return -jax.nn.logsumexp(logits, axis=-1)


def joint_energy_loss(logits_data: jax.Array, labels: jax.Array, logits_samples: jax.Array, *, alpha: float = 0.0,
                      generative_weight: float = 1.0) -> jax.Array:
    """Per-example JEM loss: ``CE(f(x+), y) + generative_weight * CD(E(x+), E(x-))``.

    Args:
      logits_data: ``f(x+)`` ``(B, C)``; labels: ``(B,)`` integers.
      logits_samples: ``f(x-)`` on the model's samples of ``p(x)`` ``(B, C)``.
      alpha: the energy-magnitude weight of the CD term.
      generative_weight: the CD term's weight (0 = a plain classifier).
    """
    ce = optax.softmax_cross_entropy_with_integer_labels(logits_data, labels)
    cd = contrastive_divergence(energy_from_logits(logits_data), energy_from_logits(logits_samples), alpha=alpha)
    return ce + generative_weight * cd
