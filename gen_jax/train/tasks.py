"""Tasks: what the generic loop needs from a model family, built from a config.

A :class:`Task` bundles parameter initialisation, the loss (or a whole custom step), sampling for pictures
and end-of-training evaluation. The loop, checkpoints, devices and metrics are shared by every family; a new
family registers a builder in ``TASK_BUILDERS``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections

from gen_jax.data.images import ImageDataset
from gen_jax.eval.likelihood import evaluate_log_likelihood
from gen_jax.losses import (make_importance_weighted_bound, make_vae_loss, observation_mean,
                            params_per_dim)
from gen_jax.models import VAE


@dataclasses.dataclass
class Task:
    model: object
    init_params: Callable[[jax.Array, dict], object]  # (rng, example batch) -> params
    loss_fn: Callable  # (params, batch, rng) -> (loss, metrics)
    sample: Callable[[object, jax.Array, int], jax.Array]  # (params, rng, n) -> images in [0, 1]
    evaluate: Callable[[object, ImageDataset, jax.Array], dict]  # (params, split, rng) -> metrics
    # A family whose update is not one loss + one optimizer supplies its own per-device step factory:
    # make_step(optimizer, ema_decay, axis_name) -> step(state, batch, rng) -> (state, metrics).
    make_step: Callable | None = None


def build_vae(config: ml_collections.ConfigDict, data: ImageDataset) -> VAE:
    if config.model.conditional and not data.num_classes:
        raise ValueError(f"model.conditional=True but dataset {data.name!r} has no labels")
    return VAE(image_shape=data.image_shape, latent_dim=config.model.latent_dim,
               decoder_params_per_dim=params_per_dim(config.model.likelihood),
               architecture=config.model.architecture, hidden=tuple(config.model.hidden),
               conv_channels=tuple(config.model.conv_channels),
               num_classes=data.num_classes if config.model.conditional else 0)


def vae_task(config: ml_collections.ConfigDict, data: ImageDataset) -> Task:
    model = build_vae(config, data)
    likelihood, levels = config.model.likelihood, data.num_levels
    loss_fn = make_vae_loss(model, likelihood=likelihood, num_levels=levels, beta=config.loss.beta)

    def init_params(rng, batch):
        x = jnp.asarray(batch["image"], jnp.float32) / (levels - 1)
        y = jnp.asarray(batch["label"]) if model.num_classes else None
        return model.init(rng, x, jax.random.key(0), y)

    def sample(params, rng, n):
        z_rng, _ = jax.random.split(rng)
        z = jax.random.normal(z_rng, (n, model.latent_dim))
        y = jnp.arange(n) % model.num_classes if model.num_classes else None  # one column per class
        return observation_mean(likelihood, model.apply(params, z, y, method=model.decode), num_levels=levels)

    def evaluate(params, split: ImageDataset, rng):
        out = {}
        bounds = {"elbo": 1}
        if config.eval.num_importance_samples > 1:
            bounds[f"iwae{config.eval.num_importance_samples}"] = config.eval.num_importance_samples
        for name, k in bounds.items():
            bound = make_importance_weighted_bound(model, likelihood=likelihood, num_levels=levels,
                                                   num_samples=k, chunk_size=config.eval.importance_chunk)
            res = evaluate_log_likelihood(bound, params, split.arrays(), rng, batch_size=config.eval.batch_size,
                                          num_dims=split.num_dims)
            out[f"{name}_nll"], out[f"{name}_bits_per_dim"] = res["nll"], res["bits_per_dim"]
        return out

    return Task(model, init_params, loss_fn, sample, evaluate)


TASK_BUILDERS: dict[str, Callable[[ml_collections.ConfigDict, ImageDataset], Task]] = {"vae": vae_task}


def build_task(config: ml_collections.ConfigDict, data: ImageDataset) -> Task:
    family = config.model.family
    if family not in TASK_BUILDERS:
        raise ValueError(f"unknown model.family {family!r}; known: {sorted(TASK_BUILDERS)}")
    return TASK_BUILDERS[family](config, data)
