"""The character-level Transformer family: a causal Transformer over character sequences
(:mod:`gen_jax.data.text`), exact NLL per word (bits/dim are bits per character); samples are strings; the
progress picture shows samples at ``model.sample_temperatures``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gen_jax.data.text import TEXT_DATASETS, TextDataset
from gen_jax.families.base import Family, loss_trainer
from gen_jax.families.common import exact_log_prob, optimizer_from_config, rename_model_keys
from gen_jax.losses import make_nll_loss
from gen_jax.models.autoregressive import CausalTransformer
from gen_jax.viz import save_text_columns

NAME = "transformer"


def config_defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict(dict(
        family=NAME,
        dim=128,  # width
        num_heads=4,
        num_layers=4,  # Transformer blocks
        dropout=0.0,  # during training only
        sample_temperatures=(0.5, 1.0, 1.5),  # the sample picture's columns
    ))
    c.evals = ml_collections.ConfigDict({"nll": {"type": "log_likelihood"}})
    return c


def upgrade_legacy_config(d: dict) -> None:
    """A config.json from before the per-family sections: the prefixed key."""
    rename_model_keys(d, {"transformer_dim": "dim"})


def build(config: ml_collections.ConfigDict, data) -> Family:
    if not isinstance(data, TextDataset):
        raise ValueError(f"model.family='transformer' needs a text dataset {list(TEXT_DATASETS)}, "
                         f"got {data.name!r}")
    model = CausalTransformer(vocab_size=data.vocab.size, max_len=data.seq_len - 1, dim=config.model.dim,
                              num_heads=config.model.num_heads, num_layers=config.model.num_layers,
                              dropout=config.model.dropout)

    def train_log_prob(params, batch, rng):  # the training objective: dropout on when model.dropout > 0
        return model.apply(params, batch["tokens"], False, method=model.log_prob, rngs={"dropout": rng})

    def log_prob(params, batch, rng):
        return model.apply(params, batch["tokens"], method=model.log_prob)

    def init_params(rng, batch):
        return model.init(rng, jnp.asarray(batch["tokens"]))

    sample_jit = jax.jit(lambda p, r, n, t: model.apply(p, r, n, data.seq_len, temperature=t, method=model.sample),
                         static_argnums=2)

    def sample(params, rng, n, *, labels=None, temperature=1.0):
        """``n`` sampled words (strings)."""
        if labels is not None:
            raise ValueError("labels given to an unconditional Transformer")
        return [data.vocab.decode(t) for t in np.asarray(sample_jit(params, rng, n, temperature))]

    def picture(params, rng, path, title):
        n = config.train.num_sample_images
        columns = {f"T = {t:g}": sample(params, jax.random.fold_in(rng, i), n, temperature=float(t))
                   for i, t in enumerate(config.model.sample_temperatures)}
        save_text_columns(columns, path, title=title)

    return Family(NAME, model, loss_trainer(init_params, make_nll_loss(train_log_prob),
                                            optimizer_from_config(config), ema_decay=config.train.ema_decay),
                  sample=sample, log_prob=exact_log_prob(log_prob), picture=picture)
