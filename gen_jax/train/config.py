"""Every key a training config may have, with its default. Configs in ``configs/`` start from here.

A config with a key not listed here is an error (:func:`validate_config`), as is a command-line override of
an unknown key (``ml_collections`` with ``lock_config=True``).
"""

from __future__ import annotations

import importlib.util
import json
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


def default_config(family: str = "vae") -> ml_collections.ConfigDict:
    """The engine's settings (seed, data, optim, train, eval) with ``family``'s own sections merged in: its
    ``model`` block (only that family's settings), and its ``loss`` / ``eval`` keys and default ``evals``.

    ``evals`` chooses the evaluations run at the end of training (big_vision's ``config.evals``):
    ``name -> {type, options}`` with a type of :data:`gen_jax.train.evaluators.EVALUATORS`."""
    from gen_jax.families import get_family

    c = ml_collections.ConfigDict()
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.name = "digits"  # gen_jax.data.IMAGE_DATASETS, TOY_DATASETS or TEXT_DATASETS
    c.data.data_dir = ""  # "" = gen_jax.data.default_data_dir()
    c.data.tfds_dir = ""  # "" = $GEN_JAX_CACHE/tfds
    c.data.eval_split = "test"
    c.data.toy_num_train = 50_000  # 2-D toys: size of the fixed train split
    c.data.toy_num_eval = 10_000  # ... and of the valid / test splits
    # > 0: the labels of an image dataset are replaced by k-means clusters of the training images (50 principal
    # components; gen_jax.data.clusters): a conditional model of them is a model of p(x) without labels
    c.data.clusters = 0
    c.data.text_file = ""  # text dataset "words": "" = /usr/share/dict/american-english (gen_jax.data.text)

    c.optim = ml_collections.ConfigDict(OPTIM_DEFAULTS)

    c.train = ml_collections.ConfigDict()
    c.train.steps = 3000
    c.train.batch_size = 128
    c.train.num_devices = 0  # 0 = all local devices
    c.train.parallelism = "pmap"  # pmap | sharded (jit + shard_map over a device mesh): gen_jax.train.parallel
    # XLA:CPU's YNNPACK fusions in the compiled training step (this program only; ignored off CPU). False was
    # measured faster for the U-Net (diffusion configs set it): BENCHMARKS, parallel.cpu_compiler_options.
    c.train.cpu_ynn_fusion = True
    c.train.ema_decay = 0.0  # 0 = no EMA of parameters
    c.train.log_every = 100  # 0 = only at checkpoints
    c.train.checkpoint_every = 1000  # 0 = only at the end (and on a stop request)
    c.train.sample_every = 1000  # 0 = never during training (samples.png is still drawn at the end)
    c.train.num_sample_images = 64
    c.train.max_checkpoints = 3  # >= 1
    c.train.progress_bar = True

    c.eval = ml_collections.ConfigDict()
    c.eval.batch_size = 500
    c.eval.num_examples = 0  # evaluate on the first n examples of the split; 0 = all
    # Model selection (early stopping): every select_every steps (0 = never) the params are scored by the
    # family's log-likelihood on select_split (first select_num_examples examples, 0 = all; a bound's
    # estimator with num_samples = select_importance_samples); the best are kept in <workdir>/best and are the
    # ones evaluated at the end. Training stops after select_patience scores without improvement (0 = never).
    c.eval.select_every = 0
    c.eval.select_split = "valid"
    c.eval.select_num_examples = 0
    c.eval.select_importance_samples = 1
    c.eval.select_patience = 0

    c.evals = ml_collections.ConfigDict()
    sections = get_family(family).config_defaults()
    for name in sections.keys():
        if name in c and isinstance(c[name], ml_collections.ConfigDict):
            for key, value in sections[name].items():
                c[name][key] = value
        else:
            c[name] = sections[name]
    return c


OPTIM_DEFAULTS = dict(
    name="adam",  # adam | adamw | sgd
    learning_rate=1e-3,
    schedule="cosine",  # constant | cosine | warmup_cosine
    warmup_steps=0,
    weight_decay=0.0,
    grad_clip_norm=0.0,  # 0 = no clipping
    b1=0.9,
    b2=0.999,
)


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
    # Smoke runs evaluate with each estimator's default (the ELBO for a VAE): many-sample bounds are dropped.
    for name in list(c.evals.keys()):
        if c.evals[name].type == "log_likelihood" and c.evals[name].get("num_samples", 0) > 1:
            del c.evals[name]
    return c


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Raises ``KeyError`` naming any key the defaults of the config's family do not have (a typo, or another
    family's setting, would otherwise be ignored), and any evaluator option its type does not take."""
    from gen_jax.train.evaluators import check_evals

    if "model" not in config or "family" not in config.model:
        raise KeyError("the config has no model.family")
    reference = default_config(config.model.family)

    def walk(cfg, ref, prefix):
        for key in cfg.keys():
            if key not in ref:
                raise KeyError(f"unknown config key {prefix + key!r}; known keys here: {sorted(ref.keys())}")
            if isinstance(cfg[key], ml_collections.ConfigDict):
                walk(cfg[key], ref[key], f"{prefix}{key}.")

    evals = config.get("evals", ml_collections.ConfigDict())
    with config.unlocked():
        del config["evals"]
        try:
            walk(config, reference, "")
        finally:
            config.evals = evals
    check_evals(config.evals)


def upgrade_config_dict(d: dict) -> dict:
    """A ``config.json`` written before the per-family config sections (no ``evals``) in today's layout, with
    the same meaning: the family's own hook (``upgrade_legacy_config``: its renamed keys, the evaluations its old
    ``eval`` settings ran) first, then only the family's own model keys, with keys added since at their defaults
    (the values they had when the run was made), and only the loss / eval keys the family still has. A newer dict
    only gets the model keys its family added since, at their defaults (a family adds a key with the default
    that keeps the old behaviour); either gets the engine's ``train`` keys added since, likewise."""
    import copy

    from gen_jax.families import get_family

    d = copy.deepcopy(d)
    family = get_family(d["model"]["family"])
    own = default_config(family.NAME)
    # the engine's train keys added since (parallelism, cpu_ynn_fusion) at their defaults: the old behaviour
    d["train"] = {**json.loads(json.dumps(own.train.to_dict())), **d.get("train", {})}
    d["data"] = {**own.data.to_dict(), **d.get("data", {})}  # data keys added since (clusters: 0, none)
    if "evals" in d:  # the defaults as config.json would hold them (lists, not tuples)
        d["model"] = {**json.loads(json.dumps(own.model.to_dict())), **d["model"]}
        return d
    d["evals"] = own.evals.to_dict()
    d.setdefault("eval", {})
    if hasattr(family, "upgrade_legacy_config"):
        family.upgrade_legacy_config(d)
    d["model"] = {**own.model.to_dict(), **{k: v for k, v in d["model"].items() if k in own.model}}
    d["eval"] = {k: v for k, v in d["eval"].items() if k in own.eval}
    if "loss" in d and "loss" not in own:
        del d["loss"]
    return d


def parse_key_values(items) -> dict:
    """``["k=v", ...]`` from a command line as a dict, each value read as JSON where it parses (numbers, true,
    lists) and as the string otherwise: how entry points take a family's sample or log_prob options."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"expected key=value, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def options_suffix(options: dict) -> str:
    """``_<key><value>...`` of :func:`parse_key_values`' options, sorted by key (``""`` for none): how entry
    points name the outputs made with them, e.g. ``metrics_quality_truncation1.2.json``."""
    return "".join(f"_{k}{v}" for k, v in sorted(options.items()))
