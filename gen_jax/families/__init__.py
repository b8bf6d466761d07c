"""One module per model family and the registry the engine reaches them through.

``FAMILIES[name]`` is a module with ``NAME``, ``config_defaults()`` and ``build(config, data) -> Family``
(:mod:`gen_jax.families.base`). A new family is a module and one line here.
"""

from __future__ import annotations

import types

import ml_collections

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
    """The family ``config.model.family`` built for ``data`` (the training split)."""
    if config.data.get("clusters", 0) and not config.model.get("conditional", False):
        raise ValueError(f"data.clusters={config.data.clusters} labels the images by cluster for a conditional "
                         f"model: set model.conditional=True (model.family={config.model.family!r})")
    return get_family(config.model.family).build(config, data)
