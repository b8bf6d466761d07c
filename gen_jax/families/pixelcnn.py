"""The PixelCNN family: gated PixelCNN on single-channel integer images (Bernoulli for 2 levels;
``model.output`` categorical or logistic_mixture otherwise), dilated layers, class-conditional; exact NLL;
``impute`` samples the missing pixels in raster order and averages ``model.impute_samples`` draws."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gen_jax.families.base import Family, loss_trainer
from gen_jax.families.common import (exact_log_prob, image_labels, optimizer_from_config, rename_model_keys,
                                     require_images)
from gen_jax.losses import make_nll_loss
from gen_jax.models.autoregressive import PixelCNN

NAME = "pixelcnn"


def config_defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict(dict(
        family=NAME,
        channels=64,  # feature maps of every gated layer
        num_layers=8,  # gated layers (the first a 7x7, the rest 3x3)
        output="categorical",  # categorical | logistic_mixture (more than 2 levels)
        dilations=(1,),  # dilation of gated layers 1, 2, ... in turn, repeated (layer 0: none)
        conditional=False,  # class-conditional p(x | y)
        impute_samples=8,  # imputation: draws averaged into the reported fill
    ))
    c.evals = ml_collections.ConfigDict({"nll": {"type": "log_likelihood"}})
    return c


def upgrade_legacy_config(d: dict) -> None:
    """A config.json from before the per-family sections: prefixed keys, and eval.impute_samples."""
    rename_model_keys(d, {"pixelcnn_channels": "channels", "pixelcnn_output": "output",
                          "pixelcnn_dilations": "dilations"})
    if "impute_samples" in d["eval"]:
        d["model"]["impute_samples"] = d["eval"]["impute_samples"]


def build(config: ml_collections.ConfigDict, data) -> Family:
    require_images(NAME, data)
    num_classes = data.num_classes if config.model.conditional else 0
    model = PixelCNN(num_levels=data.num_levels, channels=config.model.channels,
                     num_layers=config.model.num_layers, output=config.model.output,
                     num_classes=num_classes, dilations=tuple(config.model.dilations))
    levels = data.num_levels

    def labels(batch):
        return batch["label"] if num_classes else None

    def log_prob(params, batch, rng):
        return model.apply(params, batch["image"], labels(batch), method=model.log_prob)

    def init_params(rng, batch):
        return model.init(rng, jnp.asarray(batch["image"]), jnp.asarray(batch["label"]) if num_classes else None)

    h, w = data.image_shape[:2]
    sample_jit = jax.jit(lambda p, r, y: model.apply(p, r, y.shape[0], (h, w), y if num_classes else None,
                                                     method=model.sample))

    def sample(params, rng, n, *, labels=None):
        """``n`` images (integer levels) by ancestral sampling in raster order."""
        y = image_labels(num_classes, n, labels)
        return sample_jit(params, rng, jnp.zeros((n,), jnp.int32) if y is None else y).astype(jnp.int32)

    inpaint_jit = jax.jit(lambda p, r, x, m: model.apply(p, r, x, m, method=model.inpaint))

    def impute(params, x, mask, rng):
        if num_classes:
            raise NotImplementedError("imputation with a conditional PixelCNN needs labels; use an unconditional one")
        lv = jnp.round(jnp.asarray(x) * (levels - 1)).astype(jnp.int32)
        draws = [inpaint_jit(params, jax.random.fold_in(rng, i), lv, jnp.asarray(mask))
                 for i in range(config.model.impute_samples)]
        mean = jnp.mean(jnp.stack(draws).astype(jnp.float32), 0) / (levels - 1)
        return np.asarray(mask * x + (1 - mask) * mean)

    return Family(NAME, model, loss_trainer(init_params, make_nll_loss(log_prob), optimizer_from_config(config),
                                            ema_decay=config.train.ema_decay),
                  sample=sample, log_prob=exact_log_prob(log_prob), impute=impute, num_levels=levels)
