"""Evidence lower bound and the importance-weighted bound for latent-variable models.

Kingma & Welling 2014 (ELBO, reparameterisation); Higgins et al. 2017 (beta); Burda et al. 2016
("Importance Weighted Autoencoders": ``log p(x) >= E log (1/k) sum_i p(x, z_i) / q(z_i | x)``, tight as k grows).
"""

from __future__ import annotations

import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.losses.likelihoods import observation_log_likelihood
from gen_jax.nn.distributions import log_normal_diag


def gaussian_kl(mean: jax.Array, log_var: jax.Array) -> jax.Array:
    """Analytic ``KL(N(mean, exp(log_var)) || N(0, I))`` summed over the last axis, shape ``(B,)``."""
    return 0.5 * jnp.sum(jnp.exp(log_var) + mean**2 - 1.0 - log_var, axis=-1)


def elbo(log_likelihood: jax.Array, kl: jax.Array, *, beta: float = 1.0) -> jax.Array:
    """``E_q log p(x|z) - beta KL(q(z|x) || p(z))``, per example; beta = 1 is the true bound."""
    return log_likelihood - beta * kl


def _model_inputs(batch: dict, num_levels: int, conditional: bool):
    x = batch["image"].astype(jnp.float32) / (num_levels - 1)
    return x, (batch["label"] if conditional else None)


def make_vae_loss(model: nn.Module, *, likelihood: str, num_levels: int, beta: float = 1.0
                  ) -> Callable[[dict, dict, jax.Array], tuple[jax.Array, dict]]:
    """Builds ``loss_fn(params, batch, rng) -> (mean negative (beta-)ELBO, metrics)`` for a :class:`VAE`.

    ``batch["image"]`` holds integer levels; ``batch["label"]`` is read when the model is conditional. The
    metrics carry ``nelbo`` (beta = 1, the bound on NLL in nats), ``recon`` and ``kl``.
    """

    def loss_fn(params, batch, rng):
        x, y = _model_inputs(batch, num_levels, bool(model.num_classes))
        out, mean, log_var, z = model.apply(params, x, rng, y)
        ll = observation_log_likelihood(likelihood, out, batch["image"], num_levels=num_levels)
        if model.prior == "normal":
            kl = gaussian_kl(mean, log_var)
        else:  # no closed form: the one-sample estimate log q(z|x) - log p(z) at the z decoded above
            kl = log_normal_diag(z, mean, log_var) - model.apply(params, z, method=model.log_prior)
        loss = -elbo(ll, kl, beta=beta).mean()
        return loss, {"loss": loss, "nelbo": -(ll - kl).mean(), "recon": -ll.mean(), "kl": kl.mean()}

    return loss_fn


def make_importance_weighted_bound(model: nn.Module, *, likelihood: str, num_levels: int,
                                   num_samples: int, chunk_size: int = 100
                                   ) -> Callable[[dict, dict, jax.Array], jax.Array]:
    """Builds ``bound(params, batch, rng) -> (B,)`` IWAE lower bounds on ``log p(x)`` with k = ``num_samples``.

    Samples are drawn ``chunk_size`` at a time under ``lax.scan`` with a running log-sum-exp, so memory is
    ``O(chunk_size * B)`` whatever k is (k = 5000 for test NLL). ``num_samples = 1`` is the ELBO.
    """
    if num_samples % chunk_size and num_samples > chunk_size:
        raise ValueError(f"num_samples={num_samples} must be a multiple of chunk_size={chunk_size}")
    chunk = min(chunk_size, num_samples)

    def bound(params, batch, rng):
        x, y = _model_inputs(batch, num_levels, bool(model.num_classes))
        mean, log_var = model.apply(params, x, y, method=model.encode)
        b = x.shape[0]

        def one_chunk(running, key):
            z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, (chunk, *mean.shape), mean.dtype)
            zf = z.reshape(chunk * b, -1)
            yf = None if y is None else jnp.tile(y, chunk)
            out = model.apply(params, zf, yf, method=model.decode)
            levels = jnp.broadcast_to(batch["image"], (chunk, *batch["image"].shape)).reshape(chunk * b, *x.shape[1:])
            ll = observation_log_likelihood(likelihood, out, levels, num_levels=num_levels).reshape(chunk, b)
            log_w = ll + model.apply(params, z, method=model.log_prior) - log_normal_diag(z, mean, log_var)
            return jnp.logaddexp(running, jax.nn.logsumexp(log_w, axis=0)), None

        keys = jax.random.split(rng, num_samples // chunk)
        total, _ = jax.lax.scan(one_chunk, jnp.full((b,), -jnp.inf), keys)
        return total - math.log(num_samples)

    return bound


def make_iwae_loss(model: nn.Module, *, likelihood: str, num_levels: int, num_samples: int
                   ) -> Callable[[dict, dict, jax.Array], tuple[jax.Array, dict]]:
    """Builds the importance-weighted training objective of Burda et al. 2016: ``loss_fn(params, batch, rng)
    -> (mean negative IWAE bound with k = num_samples, metrics)``.

    All k samples go through the decoder in one batch and are differentiated by reparameterisation (the
    bound's gradient weights each sample by its normalised importance weight). ``num_samples = 1`` is the
    ELBO with a sampled KL term. Metrics: ``loss`` and ``iwae_k`` (the same number) in nats.
    """
    bound = make_importance_weighted_bound(model, likelihood=likelihood, num_levels=num_levels,
                                           num_samples=num_samples, chunk_size=num_samples)

    def loss_fn(params, batch, rng):
        loss = -bound(params, batch, rng).mean()
        return loss, {"loss": loss, f"iwae{num_samples}": loss}

    return loss_fn
