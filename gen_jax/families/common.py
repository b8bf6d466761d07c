"""Wiring shared by the families: data-kind checks, labels for conditional sampling, the optimizer of a
one-player family, the exact log-likelihood of a per-example function, the global batch's random draws under
pmap, the standardisation of vector data."""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import ml_collections
import numpy as np
from jax import lax

from gen_jax.data.images import ImageDataset
from gen_jax.families.base import LogProb
from gen_jax.train.optim import make_optimizer


def require_images(family: str, data) -> None:
    if not isinstance(data, ImageDataset):
        raise ValueError(f"model.family={family!r} needs an image dataset, got {data.name!r}")


def image_labels(num_classes: int, n: int, labels=None):
    """The labels of ``n`` conditional samples: those given, else one column per class
    (``0, 1, ..., C - 1, 0, ...``); ``None`` for an unconditional model."""
    if not num_classes:
        if labels is not None:
            raise ValueError("labels given to an unconditional model")
        return None
    if labels is None:
        return jnp.arange(n) % num_classes
    labels = jnp.asarray(labels, jnp.int32)
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {labels.shape}")
    return labels


def optimizer_from_config(config: ml_collections.ConfigDict):
    """The one optimizer of a one-player family: ``config.optim`` over ``config.train.steps``."""
    return make_optimizer(config.optim, config.train.steps)


def exact_log_prob(fn: Callable, kind: str = "exact", estimator: str = "exact") -> LogProb:
    """A :class:`LogProb` of ``fn(params, batch, rng) -> (B,)`` with no estimator options."""
    return LogProb(lambda params, batch, rng: fn(params, batch, rng), kind, estimator=lambda: estimator)


def rename_model_keys(config_dict: dict, renamed: dict[str, str]) -> None:
    """Renames keys of an old ``config.json``'s flat ``model`` block (old name -> new name), in place: how a
    family's ``upgrade_legacy_config`` maps the prefixed keys of the single model block to its own section."""
    model = config_dict["model"]
    for old, new in renamed.items():
        if old in model:
            model[new] = model.pop(old)


def global_draw(sampler: Callable, key, shape: tuple, axis_name: str | None):
    """This device's part of one draw ``sampler(key, (devices * B, ...))`` for the global batch (the key is
    shared by the devices), so that N devices make exactly the update of one on the same global batch."""
    if axis_name is None:
        return sampler(key, shape)
    n = lax.axis_size(axis_name)
    whole = sampler(key, (n * shape[0], *shape[1:]))
    return lax.dynamic_slice_in_dim(whole, lax.axis_index(axis_name) * shape[0], shape[0])


def standardiser(x) -> tuple[Callable, Callable, float]:
    """Per-feature standardisation of vector data ``x`` ``(N, D)``: ``(to_model, from_model, log_det)`` with
    ``log_det = -sum log std`` the log-Jacobian of ``to_model`` (a density in model units plus it is one in
    data units)."""
    x = np.asarray(x, np.float64)
    std = np.maximum(x.std(0), 1e-6)
    shift, scale = jnp.asarray(x.mean(0), jnp.float32), jnp.asarray(std, jnp.float32)
    return (lambda v: (jnp.asarray(v, jnp.float32) - shift) / scale, lambda v: v * scale + shift,
            -float(np.sum(np.log(std))))
