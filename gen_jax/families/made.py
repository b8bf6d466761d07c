"""The MADE family: masked autoencoders over integer images (Bernoulli for 2 levels, categorical otherwise),
order-agnostic with ``model.num_masks`` connectivities (one drawn per training step; log p and evaluation use
their ensemble, still a normalised density); exact NLL."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from gen_jax.families.base import Family, loss_trainer
from gen_jax.families.common import (exact_log_prob, image_labels, optimizer_from_config, rename_model_keys,
                                     require_images)
from gen_jax.losses import make_nll_loss
from gen_jax.models.autoregressive import MADEImage

NAME = "made"


def config_defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict(dict(
        family=NAME,
        hidden=(500,),  # hidden layer widths
        num_masks=1,  # connectivities for order-agnostic training (ensembled at test)
        direct_connections=True,  # masked input -> output weights too
        conditional=False,  # class-conditional p(x | y)
    ))
    c.evals = ml_collections.ConfigDict({"nll": {"type": "log_likelihood"}})
    return c


def upgrade_legacy_config(d: dict) -> None:
    """A config.json from before the per-family sections: the prefixed key."""
    rename_model_keys(d, {"made_direct_connections": "direct_connections"})


def build(config: ml_collections.ConfigDict, data) -> Family:
    require_images(NAME, data)
    num_classes = data.num_classes if config.model.conditional else 0
    model = MADEImage(data.image_shape, data.num_levels, hidden=tuple(config.model.hidden),
                      num_masks=config.model.num_masks, num_classes=num_classes,
                      direct_connections=config.model.direct_connections)
    m = config.model.num_masks

    def labels(batch):
        return batch["label"] if num_classes else None

    def train_log_prob(params, batch, rng):
        index = jax.random.randint(rng, (), 0, m) if m > 1 else 0
        return model.apply(params, batch["image"], index, labels(batch), method=model.log_prob)

    def ensemble(params, batch, rng):
        return model.apply(params, batch["image"], labels(batch), method=model.ensemble_log_prob)

    def init_params(rng, batch):
        return model.init(rng, jnp.asarray(batch["image"]), 0, jnp.asarray(batch["label"]) if num_classes else None)

    sample_jit = jax.jit(lambda p, r, n, y: model.apply(p, r, n, 0, y, method=model.sample), static_argnums=2)

    def sample(params, rng, n, *, labels=None):
        """``n`` images (integer levels) by ancestral sampling in the first mask's order."""
        return sample_jit(params, rng, n, image_labels(num_classes, n, labels)).astype(jnp.int32)

    return Family(NAME, model, loss_trainer(init_params, make_nll_loss(train_log_prob),
                                            optimizer_from_config(config), ema_decay=config.train.ema_decay),
                  sample=sample, log_prob=exact_log_prob(ensemble), num_levels=data.num_levels)
