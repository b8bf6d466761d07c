"""The VAE family: MLP / convolutional VAEs, beta-VAE, conditional VAE, VampPrior; trained on the ELBO or the
IWAE bound; log p is a lower bound (the importance-weighted bound with ``num_samples`` = k, the ELBO at k = 1)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gen_jax.data.conventions import to_unit_interval
from gen_jax.data.images import ImageDataset
from gen_jax.families.base import Family, LogProb, loss_trainer
from gen_jax.families.common import image_labels, optimizer_from_config, require_images
from gen_jax.losses import (make_importance_weighted_bound, make_iwae_loss, make_vae_loss, observation_mean,
                            observation_sample, params_per_dim)
from gen_jax.models import VAE
from gen_jax.sampling import impute_by_importance_sampling

NAME = "vae"


def config_defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict(dict(
        family=NAME,
        architecture="mlp",  # mlp | conv
        latent_dim=16,
        hidden=(256, 128),  # MLP hidden sizes (the decoder mirrors them), or the conv stacks' dense width
        conv_channels=(32, 64),
        likelihood="discretized_logistic",  # bernoulli | gaussian | discretized_logistic
        conditional=False,
        prior="normal",  # normal | vampprior (Tomczak & Welling 2018)
        num_pseudo_inputs=500,  # the VampPrior's learned pseudo-inputs
    ))
    c.loss = ml_collections.ConfigDict(dict(
        beta=1.0,
        num_importance_samples=1,  # k > 1 trains on the IWAE bound (Burda et al. 2016) instead of the ELBO
    ))
    c.eval = ml_collections.ConfigDict(dict(importance_chunk=100))  # importance samples drawn at once
    c.evals = ml_collections.ConfigDict({"elbo": {"type": "log_likelihood", "num_samples": 1}})
    return c


def upgrade_legacy_config(d: dict) -> None:
    """A config.json from before ``evals``: eval.num_importance_samples = k > 1 ran the IWAE bound at the end."""
    k = d["eval"].get("num_importance_samples", 0)
    if k > 1:
        d["evals"]["iwae"] = {"type": "log_likelihood", "num_samples": k}


def build_model(config: ml_collections.ConfigDict, data: ImageDataset) -> VAE:
    if config.model.conditional and not data.num_classes:
        raise ValueError(f"model.conditional=True but dataset {data.name!r} has no labels")
    return VAE(image_shape=data.image_shape, latent_dim=config.model.latent_dim,
               decoder_params_per_dim=params_per_dim(config.model.likelihood),
               architecture=config.model.architecture, hidden=tuple(config.model.hidden),
               conv_channels=tuple(config.model.conv_channels),
               num_classes=data.num_classes if config.model.conditional else 0,
               prior=config.model.prior, num_pseudo_inputs=config.model.num_pseudo_inputs)


def build(config: ml_collections.ConfigDict, data) -> Family:
    require_images(NAME, data)
    model = build_model(config, data)
    likelihood, levels = config.model.likelihood, data.num_levels
    k = config.loss.num_importance_samples
    if k > 1:
        if config.loss.beta != 1.0:
            raise ValueError(f"loss.num_importance_samples={k} trains the IWAE bound, which has no beta; "
                             f"got loss.beta={config.loss.beta}")
        loss_fn = make_iwae_loss(model, likelihood=likelihood, num_levels=levels, num_samples=k)
    elif k == 1:
        loss_fn = make_vae_loss(model, likelihood=likelihood, num_levels=levels, beta=config.loss.beta)
    else:
        raise ValueError(f"loss.num_importance_samples must be >= 1, got {k}")
    conditional = bool(model.num_classes)

    def init_params(rng, batch):
        x = to_unit_interval(jnp.asarray(batch["image"]), num_levels=levels)
        return model.init(rng, x, jax.random.key(0), jnp.asarray(batch["label"]) if conditional else None)

    def log_prob_fn(params, batch, rng, *, num_samples, chunk_size):
        """The importance-weighted bound with k = ``num_samples`` drawn ``chunk_size`` at a time (0 =
        ``eval.importance_chunk``); k = 1 is the ELBO. (``LogProb`` jits it once per options.)"""
        bound = make_importance_weighted_bound(model, likelihood=likelihood, num_levels=levels,
                                               num_samples=num_samples,
                                               chunk_size=chunk_size or config.eval.importance_chunk)
        return bound(params, batch, rng)

    decode_out = jax.jit(lambda p, z, y: model.apply(p, z, y, method=model.decode))
    sample_prior = jax.jit(lambda p, r, n: model.apply(p, r, n, method=model.sample_prior), static_argnums=2)

    def sample(params, rng, n, *, labels=None, observation="draw"):
        """``n`` images as integer levels drawn from p(x | z), z from the prior; ``observation="mean"`` returns
        the decoder's mean image instead (floats on the same level scale: a picture, not a draw)."""
        z_rng, x_rng = jax.random.split(rng)
        out = decode_out(params, sample_prior(params, z_rng, n), image_labels(model.num_classes, n, labels))
        if observation == "mean":
            return observation_mean(likelihood, out, num_levels=levels) * (levels - 1)
        if observation != "draw":
            raise ValueError(f"observation must be 'draw' or 'mean', got {observation!r}")
        unit = observation_sample(likelihood, out, x_rng, num_levels=levels)
        return jnp.round(unit * (levels - 1)).astype(jnp.int32)

    encode_jit = jax.jit(lambda p, x, y: model.apply(p, x, y, method=model.encode)[0])

    def encode(params, batch, rng=None):
        """The posterior mean of ``z`` given a batch (``label`` read when conditional)."""
        del rng
        x = to_unit_interval(jnp.asarray(batch["image"]), num_levels=levels)
        return encode_jit(params, x, jnp.asarray(batch["label"]) if conditional else None)

    def decode(params, z, rng=None, *, labels=None):
        """The decoder's mean image for codes ``z``, as floats in [0, 1] (a picture: see ``sample``)."""
        del rng
        return observation_mean(likelihood, decode_out(params, z, labels), num_levels=levels)

    impute_jit = jax.jit(lambda params, x, mask, rng: impute_by_importance_sampling(
        model, likelihood, levels, params, x, mask, rng))

    def impute(params, x, mask, rng):
        if conditional:
            raise NotImplementedError("imputation with a conditional VAE needs labels; use an unconditional one")
        return np.asarray(impute_jit(params, jnp.asarray(x, jnp.float32), jnp.asarray(mask, jnp.float32), rng))

    log_prob = LogProb(log_prob_fn, "lower_bound", {"num_samples": 1, "chunk_size": 0},
                       estimator=lambda num_samples, chunk_size: "elbo" if num_samples == 1 else f"iwae{num_samples}")
    return Family(NAME, model, loss_trainer(init_params, loss_fn, optimizer_from_config(config),
                                            ema_decay=config.train.ema_decay),
                  sample=sample, log_prob=log_prob, encode=encode, decode=decode, impute=impute,
                  num_levels=levels)
