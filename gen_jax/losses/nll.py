"""Negative log-likelihood: the loss of every tractable-density family (flows, autoregressive models)."""

from __future__ import annotations

from typing import Callable

import jax


def negative_log_likelihood(log_prob: jax.Array) -> jax.Array:
    """``-log p(x)`` per example (nats); the mean over a batch is the maximum-likelihood loss."""
    return -log_prob


def make_nll_loss(log_prob_fn: Callable[[dict, dict, jax.Array], jax.Array]
                  ) -> Callable[[dict, dict, jax.Array], tuple[jax.Array, dict]]:
    """Builds ``loss_fn(params, batch, rng) -> (mean NLL, {"loss", "nll"})`` from
    ``log_prob_fn(params, batch, rng) -> (B,)`` exact log-likelihoods (``rng`` serves dequantization)."""

    def loss_fn(params, batch, rng):
        loss = negative_log_likelihood(log_prob_fn(params, batch, rng)).mean()
        return loss, {"loss": loss, "nll": loss}

    return loss_fn
