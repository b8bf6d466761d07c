"""One module per model family and the registry the engine reaches them through.

``FAMILIES[name]`` is a module with ``NAME``, ``config_defaults()`` and ``build(config, data) -> Family``
(:mod:`gen_jax.families.base`). A new family is a module and one line here.
"""

from __future__ import annotations

import dataclasses
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gen_jax.families import classic, diffusion, ebm, flow, gan, made, pixelcnn, transformer, vae
from gen_jax.families.base import (CAPABILITIES, LOG_PROB_KINDS, Family, LogProb, Trainer, loss_trainer)

FAMILIES: dict[str, types.ModuleType] = {m.NAME: m for m in (vae, flow, made, pixelcnn, transformer, diffusion, gan, ebm,
                                                     classic)}


def get_family(name: str) -> types.ModuleType:
    if name not in FAMILIES:
        raise ValueError(f"unknown model.family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name]


def register_family(module) -> None:
    """Adds a family module (``NAME``, ``config_defaults``, ``build``) to the registry: how research code and
    tests bring a family of their own to the engine."""
    FAMILIES[module.NAME] = module


def build_family(config: ml_collections.ConfigDict, data) -> Family:
    """The family ``config.model.family`` built for ``data`` (the training split).

    With cluster labels (``data.clusters``, :mod:`gen_jax.data.clusters`) the model must be conditional, and its
    unlabelled draws take their label from the clusters' shares of the training split (a key split off the
    sampling key), so that ``sample`` draws from p(x) = sum_k pi_k p(x | k); labelled draws are the family's."""
    clusters = config.data.get("clusters", 0)
    if clusters and not config.model.get("conditional", False):
        raise ValueError(f"data.clusters={clusters} labels the images by cluster for a conditional "
                         f"model: set model.conditional=True (model.family={config.model.family!r})")
    family = get_family(config.model.family).build(config, data)
    if clusters and family.sample is not None:
        family = dataclasses.replace(family, sample=_sampling_labels_from(family.sample, label_shares(data)))
    return family


def label_shares(data) -> jax.Array:
    """Each label's share of the labelled dataset ``data`` (the training split): the mixture weights pi_k of
    p(x) = sum_k pi_k p(x | k) for a model conditional on cluster labels."""
    return jnp.asarray(np.bincount(data.label, minlength=data.num_classes) / len(data.label), jnp.float32)


def draw_labels_by_shares(key: jax.Array, shares: jax.Array, n: int) -> jax.Array:
    """``n`` labels drawn independently with probabilities ``shares`` (:func:`label_shares`)."""
    return jax.random.choice(key, len(shares), (n,), p=shares)


def _sampling_labels_from(sample, shares):
    def drawn(params, rng, n, *, labels=None, **options):
        if labels is None:
            rng, key = jax.random.split(rng)
            labels = draw_labels_by_shares(key, shares, n)
        return sample(params, rng, n, labels=labels, **options)

    return drawn
