"""Every key a training config may have, with its default. Configs in ``configs/`` start from here.

A config with a key not listed here is an error (:func:`validate_config`), as is a command-line override of
an unknown key (``ml_collections`` with ``lock_config=True``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import ml_collections


def load_config_file(path: str | Path, variant: str = "") -> ml_collections.ConfigDict:
    """``get_config(variant)`` of a config file (``configs/<name>.py``): how a config builds on another one
    (``load_config_file(Path(__file__).with_name("vae_digits.py"), variant)``), and how tests and benchmarks
    load configs by name."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(variant)


def default_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.name = "digits"  # gen_jax.data.IMAGE_DATASETS, TOY_DATASETS or TEXT_DATASETS
    c.data.data_dir = ""  # "" = gen_jax.data.default_data_dir()
    c.data.tfds_dir = ""  # "" = $GEN_JAX_CACHE/tfds
    c.data.eval_split = "test"
    c.data.toy_num_train = 50_000  # 2-D toys: size of the fixed train split
    c.data.toy_num_eval = 10_000  # ... and of the valid / test splits
    c.data.text_file = ""  # text dataset "words": "" = /usr/share/dict/american-english (gen_jax.data.text)

    c.model = ml_collections.ConfigDict()
    c.model.family = "vae"
    c.model.architecture = "mlp"  # mlp | conv
    c.model.latent_dim = 16
    c.model.hidden = (256, 128)
    c.model.conv_channels = (32, 64)
    c.model.likelihood = "discretized_logistic"  # bernoulli | gaussian | discretized_logistic
    c.model.conditional = False
    c.model.prior = "normal"  # family "vae": normal | vampprior (Tomczak & Welling 2018)
    c.model.num_pseudo_inputs = 500  # ... the VampPrior's learned pseudo-inputs
    # family "flow": realnvp | glow | maf | spline | multiscale_realnvp | multiscale_glow
    # (gen_jax.models.flows.build_flow); hidden is per conditioner
    c.model.flow = "spline"
    c.model.num_layers = 8
    c.model.num_bins = 8
    c.model.spline_bound = 4.0
    c.model.num_scales = 2  # flows multiscale_realnvp / multiscale_glow (images): squeeze-and-split scales
    c.model.pixelcnn_channels = 64  # family "pixelcnn" (model.num_layers gated layers)
    c.model.pixelcnn_output = "categorical"  # categorical | logistic_mixture (more than 2 levels)
    c.model.pixelcnn_dilations = (1,)  # dilation of gated layers 1, 2, ... in turn, repeated (layer 0: none)
    c.model.made_direct_connections = True  # family "made": masked input -> output weights too
    c.model.num_masks = 1  # family "made": connectivities for order-agnostic training (ensembled at test)
    c.model.transformer_dim = 128  # family "transformer" (model.num_layers blocks): width
    c.model.num_heads = 4  # ... and attention heads
    c.model.dropout = 0.0  # family "transformer": dropout rate during training
    c.model.sample_temperatures = (0.5, 1.0, 1.5)  # family "transformer": the sample picture's columns

    c.loss = ml_collections.ConfigDict()
    c.loss.beta = 1.0
    c.loss.num_importance_samples = 1  # k > 1 trains on the IWAE bound (Burda et al. 2016) instead of the ELBO

    c.optim = ml_collections.ConfigDict()
    c.optim.name = "adam"
    c.optim.learning_rate = 1e-3
    c.optim.schedule = "cosine"
    c.optim.warmup_steps = 0
    c.optim.weight_decay = 0.0
    c.optim.grad_clip_norm = 0.0
    c.optim.b1 = 0.9
    c.optim.b2 = 0.999

    c.train = ml_collections.ConfigDict()
    c.train.steps = 3000
    c.train.batch_size = 128
    c.train.num_devices = 0  # 0 = all local devices
    c.train.ema_decay = 0.0  # 0 = no EMA of parameters
    c.train.log_every = 100
    c.train.checkpoint_every = 1000
    c.train.sample_every = 1000
    c.train.num_sample_images = 64
    c.train.max_checkpoints = 3
    c.train.progress_bar = True

    c.eval = ml_collections.ConfigDict()
    c.eval.batch_size = 500
    c.eval.num_examples = 0  # evaluate on the first n examples of the split; 0 = all
    c.eval.num_importance_samples = 0  # k of the IWAE bound at the end of training; 0 = ELBO only
    c.eval.importance_chunk = 100
    c.eval.impute_samples = 8  # autoregressive imputation: draws averaged into the reported fill
    # Model selection (early stopping): every select_every steps (0 = never) the params are scored on
    # select_split (first select_num_examples examples, 0 = all; for latent-variable models by the IWAE
    # bound with k = select_importance_samples); the best are kept in <workdir>/best and are the ones
    # evaluated at the end. Training stops after select_patience scores without improvement (0 = never).
    c.eval.select_every = 0
    c.eval.select_split = "valid"
    c.eval.select_num_examples = 0
    c.eval.select_importance_samples = 1
    c.eval.select_patience = 0
    return c


def smoke_train_settings(c: ml_collections.ConfigDict, *, steps: int = 10, batch_size: int = 32
                         ) -> ml_collections.ConfigDict:
    """The training/evaluation part of every config's ``smoke`` variant: seconds, checkpoints and samples
    included, so tests run the whole loop. Each config shrinks its own model."""
    c.train.steps = steps
    c.train.batch_size = batch_size
    c.train.log_every = max(1, steps // 4)
    c.train.checkpoint_every = max(1, steps // 2)
    c.train.sample_every = max(1, steps // 2)
    c.train.num_sample_images = 16
    c.train.progress_bar = False
    c.eval.num_examples = 200
    c.eval.num_importance_samples = 0
    return c


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Raises ``KeyError`` naming any key the defaults do not have (a typo would otherwise be ignored)."""
    reference = default_config()

    def walk(cfg, ref, prefix):
        for key in cfg.keys():
            if key not in ref:
                raise KeyError(f"unknown config key {prefix + key!r}; known keys here: {sorted(ref.keys())}")
            if isinstance(cfg[key], ml_collections.ConfigDict):
                walk(cfg[key], ref[key], f"{prefix}{key}.")

    walk(config, reference, "")
