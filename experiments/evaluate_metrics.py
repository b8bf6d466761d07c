"""The shared evaluation suite on a trained image workdir:

``python experiments/evaluate_metrics.py --workdir runs/vae_mnist --metrics quality,detection,inpainting``

* ``quality``: FD, KID and precision/recall of ``--num_samples`` model samples against the reference split in
  the feature space of gen_jax's own classifier for ``--feature_dataset`` (default: the run's dataset; trained
  once and cached), with the classifier's hash and test accuracy and the noise floor (as many real train
  images against the same reference). ``--sample_source=buffer`` scores an energy-based run's persistent
  chains (its checkpoint's replay buffer) instead of new samples, into ``metrics_quality_buffer.json``.
* ``detection``: AUROC/AUPRC of ``-log p`` and of the typicality score, the run's test split against each
  ``--ood`` dataset's test split (requantized to the run's level count).
* ``inpainting``: MSE/PSNR on the missing pixels of each mask in ``gen_jax.eval.MASKS``, beside the
  mean-training-image fill.
* ``conditional`` (class-conditional image workdirs): the feature classifier's accuracy on samples drawn for
  each class, per class, and ``conditional.png`` with one row per class.
* ``two_sample`` (2-D / vector workdirs, e.g. flows on the toys): MMD^2 (RBF, bandwidths from the reference's
  median distance) and sliced W2 of ``--num_samples`` samples against the test split, with the noise floor
  (the valid split against the same reference), and mode coverage on the Gaussian mixtures.
* ``modes`` (Stacked MNIST workdirs): of ``--num_samples`` samples (PacGAN used 26,000), the modes covered of
  1000 and the KL of their distribution to the uniform one, each channel's digit read by the MNIST feature
  classifier; beside the same measure of as many training images (its floor) and the reading's accuracy on
  them.

Defaults: ``quality,detection,inpainting`` for image workdirs, ``modes`` for Stacked MNIST, ``two_sample`` for
vector ones, each where the family has what it needs (a GAN has no likelihood: no detection).

Writes ``<workdir>/metrics_<metric>.json`` and prints them. ``--checkpoint 4000`` scores the run's kept checkpoint
of step 4000 instead, into ``metrics_<metric>_step4000.json`` (the run's own results stay).
"""

import inspect
import json
import time
from pathlib import Path

import jax
import numpy as np
from absl import app, flags, logging

from gen_jax.data import ImageDataset, VectorDataset, load_image_dataset, requantize
from gen_jax.eval import per_example_log_likelihood
from gen_jax.families.ebm import buffer_images
from gen_jax.eval import (MASKS, classify_channels, detection_report, inpainting_score, load_feature_network,
                          make_mask, masked_errors, mode_coverage, mode_numbers, sample_quality, stacked_modes,
                          two_sample_report)
from gen_jax.train import CHECKPOINT_CHOICES, checkpoint_suffix, resolve_checkpoint, restore_run
from gen_jax.train.config import options_suffix, parse_key_values
from gen_jax.train.loop import load_data
from gen_jax.train.workdir import write_text_atomic
from gen_jax.viz import save_image_grid

_WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir.")
_METRICS = flags.DEFINE_list("metrics", [], "Which metrics (default: all that apply to the workdir's data).")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best_if_any",
                                f"{' | '.join(CHECKPOINT_CHOICES)} or a kept checkpoint's step (e.g. 4000). "
                                "Parameters to evaluate (see experiments/evaluate.py).")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 10000, "Generated samples for the quality metrics.")
_REFERENCE = flags.DEFINE_string("reference_split", "test", "Reference split for the quality metrics.")
_FEATURE_DATASET = flags.DEFINE_string("feature_dataset", "", "Dataset whose classifier gives the features "
                                       "(default: the run's dataset; binarized_mnist has no labels: use mnist).")
_FEATURE_STEPS = flags.DEFINE_integer("feature_steps", 2000, "Training steps of the feature classifier.")
_OOD = flags.DEFINE_list("ood", [], "Out-of-distribution datasets (default: fashion_mnist for MNIST runs, "
                         "mnist for fashion_mnist runs).")
_DETECTION_K = flags.DEFINE_integer("detection_k", 100, "Importance samples of a bound's estimator for -log p "
                                    "(ignored by an exact log-likelihood).")
_SAMPLE_OPTIONS = flags.DEFINE_list("sample_option", [], "key=value options of the family's sample, e.g. "
                                    "observation=mean for a VAE's decoder means instead of draws, truncation=0.7 "
                                    "for a GAN; quality's results go to metrics_quality_<key><value>.json.")
_IMPUTE_OPTIONS = flags.DEFINE_list("impute_option", [], "key=value options of the family's impute, e.g. "
                                    "resample=10 for a diffusion run's RePaint rounds; the results go to "
                                    "metrics_inpainting_<key><value>.json.")
_NUM_EXAMPLES = flags.DEFINE_integer("num_examples", 2000, "Test examples for detection and inpainting "
                                     "(0 = all).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of samples and imputations.")
_SAMPLE_SOURCE = flags.DEFINE_enum("sample_source", "sample", ["sample", "buffer"],
                                   "Where the quality metrics' images come from: the family's sample capability, or "
                                   "(energy-based runs with persistent chains) the checkpoint's replay buffer, its "
                                   "first --num_samples chains.")
flags.mark_flags_as_required(["workdir"])

DEFAULT_OOD = {"mnist": ["fashion_mnist"], "binarized_mnist": ["fashion_mnist"], "fashion_mnist": ["mnist"]}


def _load(config, name, split):
    return load_image_dataset(name, split, data_dir=config.data.data_dir or None,
                              tfds_dir=config.data.tfds_dir or None)


def _first(arrays, n):
    return {k: v[:n] if n else v for k, v in arrays.items()}


def _sample_options() -> dict:
    """``--sample_option key=value`` pairs (numbers parsed), passed to the family's ``sample``."""
    return parse_key_values(_SAMPLE_OPTIONS.value)


def _impute_options() -> dict:
    """``--impute_option key=value`` pairs (numbers parsed), passed to the family's ``impute``."""
    return parse_key_values(_IMPUTE_OPTIONS.value)


def _output_suffix(metric: str) -> str:
    """What tells this invocation's outputs of ``metric`` from the default ones: ``_buffer`` for the quality of
    a replay buffer, ``_<key><value>...`` for quality with sample options (e.g. ``_truncation0.7``) and for
    inpainting with impute options, then ``_step<N>`` for a named checkpoint step."""
    if metric == "quality" and _SAMPLE_SOURCE.value == "buffer":
        suffix = "_buffer"
    elif metric == "quality":
        suffix = options_suffix(_sample_options())
    elif metric == "inpainting":
        suffix = options_suffix(_impute_options())
    else:
        suffix = ""
    return suffix + checkpoint_suffix(_CHECKPOINT.value)


def _samples(family, params, aux=None) -> np.ndarray:
    """``--num_samples`` images in [0, 1] from the family's ``sample`` (``--seed``, ``--sample_option``), or with
    ``--sample_source=buffer`` the first chains of the run's replay buffer (``aux``), read as levels."""
    if _SAMPLE_SOURCE.value == "buffer":
        try:
            return buffer_images(aux, _NUM_SAMPLES.value, num_levels=family.num_levels)
        except ValueError as e:
            raise app.UsageError(f"--sample_source=buffer: {e}") from None
    key = jax.random.key(_SEED.value)
    sample, options = family.require("sample"), _sample_options()
    samples = np.concatenate([np.asarray(sample(params, jax.random.fold_in(key, i), 1000, **options), np.float32)
                              for i in range(-(-_NUM_SAMPLES.value // 1000))])[:_NUM_SAMPLES.value]
    return samples / (family.num_levels - 1)


def _feature_network(config, name):
    return load_feature_network(name, steps=_FEATURE_STEPS.value, data_dir=config.data.data_dir or None,
                                tfds_dir=config.data.tfds_dir or None)


def quality(config, family, params, test, aux=None):
    name = _FEATURE_DATASET.value or ("mnist" if test.name == "binarized_mnist" else test.name)
    net = _feature_network(config, name)
    samples = _samples(family, params, aux)
    options = _sample_options()
    reference = _load(config, test.name, _REFERENCE.value)
    res = sample_quality(net, samples, reference, floor=_load(config, test.name, "train"))
    buffer = _SAMPLE_SOURCE.value == "buffer"
    res["samples"] = (f"the first {len(samples)} chains of the replay buffer" if buffer
                      else f"sample of {config.model.family} with options {options}, seed {_SEED.value}")
    # the first 64 of the images scored, beside the json
    save_image_grid(samples[:64], Path(_WORKDIR.value) / f"metrics_quality{_output_suffix('quality')}.png",
                    ncols=8, title=f"{config.model.family} on {test.name}: "
                                   f"{'replay buffer' if buffer else 'samples'}, FD {res['fd']:.1f}")
    return res


def conditional(config, family, params, test):
    """A class-conditional model's samples: the feature classifier's accuracy on ``--num_samples`` samples drawn
    for the classes in turn, overall and per class, and ``conditional.png`` (one row per class)."""
    if not test.num_classes or not config.model.get("conditional", False):
        raise ValueError(f"{config.model.family} on {test.name} is not class-conditional (model.conditional)")
    if config.data.get("clusters", 0):
        raise ValueError(f"the run's labels are k-means clusters (data.clusters={config.data.clusters}), not "
                         f"{test.name}'s classes: the feature classifier's accuracy on them means nothing")
    net = load_feature_network(test.name, steps=_FEATURE_STEPS.value, data_dir=config.data.data_dir or None,
                               tfds_dir=config.data.tfds_dir or None)
    c, k, key = test.num_classes, family.num_levels, jax.random.key(_SEED.value)
    sample, options = family.require("sample"), _sample_options()
    n = -(-_NUM_SAMPLES.value // c) * c
    labels = np.arange(n) % c
    images = np.concatenate([np.asarray(sample(params, jax.random.fold_in(key, i), len(part), labels=part,
                                               **options))
                             for i, part in enumerate(np.array_split(labels, -(-n // 1000)))])
    as_dataset = lambda y: ImageDataset(test.name, "generated", images[labels == y].astype(np.uint8),
                                        labels[labels == y], k, c)
    per_class = [net.accuracy(as_dataset(y)) for y in range(c)]
    grid = np.concatenate([images[labels == y][:10] for y in range(c)]) / (k - 1)
    save_image_grid(grid, Path(_WORKDIR.value) / f"conditional{checkpoint_suffix(_CHECKPOINT.value)}.png", ncols=10,
                    title=f"{config.model.family} on {test.name}: one row per class")
    return {"num_samples": n, "classifier_accuracy": float(np.mean(per_class)), "accuracy_per_class": per_class,
            "feature_network": net.describe(), "sample_options": options}


def detection(config, family, params, test):
    if family.anomaly_score_fn is not None:
        # the family's own score (an EBM's energy: its likelihood differs by a constant log Z that AIS would
        # estimate at great cost for every batch); reported in the NLL's place
        fn = lambda p, batch, rng: -family.anomaly_score(p, batch, rng)
        estimator, kind = f"{family.name} anomaly_score", "anomaly_score"
    else:
        log_prob = family.require("log_prob")
        options = {"num_samples": _DETECTION_K.value} if "num_samples" in log_prob.options else {}
        fn = log_prob.function(**options)
        estimator, kind = log_prob.name(**options), log_prob.kind
    ood_names = _OOD.value or DEFAULT_OOD.get(test.name)
    if not ood_names:
        raise ValueError(f"no default OOD dataset for {test.name!r}; pass --ood")
    n = _NUM_EXAMPLES.value
    key = jax.random.key(_SEED.value)

    def nll(arrays, i):
        return -per_example_log_likelihood(fn, params, _first(arrays, n), jax.random.fold_in(key, i),
                                           batch_size=config.eval.batch_size)

    train = _load(config, test.name, "train")
    in_nll = nll(test.arrays(), 0)
    train_mean = float(nll(train.arrays(), 1).mean())
    out = {"in_distribution": f"{test.name}/test", "estimator": estimator, "log_prob_kind": kind}
    for j, name in enumerate(ood_names):
        ood = _load(config, name, "test")
        if ood.image_shape != test.image_shape:
            raise ValueError(f"OOD dataset {name!r} has shape {ood.image_shape}, the model {test.image_shape}")
        arrays = {"image": requantize(ood.image, from_levels=ood.num_levels, to_levels=test.num_levels),
                  "label": ood.label}
        out[name] = detection_report(in_nll, nll(arrays, 2 + j), train_mean)
    return out


def inpainting(config, family, params, test):
    impute = family.require("impute")
    x = test.image[:_NUM_EXAMPLES.value or None].astype(np.float32) / (test.num_levels - 1)
    train = _load(config, test.name, "train")
    mean_image = train.image.astype(np.float32).mean(0) / (train.num_levels - 1)
    key = jax.random.key(_SEED.value)
    options = _impute_options()
    takes = sorted(k for k, p in inspect.signature(impute).parameters.items() if p.kind is p.KEYWORD_ONLY)
    unknown = sorted(set(options) - set(takes))
    if unknown:
        raise app.UsageError(f"--impute_option {unknown[0]!r}: the {config.model.family} family's impute takes "
                             f"{takes or 'no options'}")
    out = {"impute_options": options}
    for i, m in enumerate(MASKS):
        mask = make_mask(m, test.image_shape, seed=_SEED.value)
        t0 = time.time()
        out[m] = inpainting_score(lambda xb, mb, r: impute(params, xb, mb, r, **options), x, mask,
                                  jax.random.fold_in(key, i))
        out[m]["seconds"] = round(time.time() - t0, 1)
        # The model-free reference: fill with the mean training image.
        out[m]["baseline_train_mean_image"] = masked_errors(x, mask * x + (1 - mask) * mean_image, mask)
    return out


def two_sample(config, family, params, test):
    if not isinstance(test, VectorDataset):
        raise ValueError("two_sample needs a vector (2-D toy) workdir; use quality for images")
    n = min(_NUM_SAMPLES.value, len(test))
    samples = np.asarray(family.require("sample")(params, jax.random.key(_SEED.value), n))
    reference_2 = load_data(config, "valid").x[:n]
    out = two_sample_report(samples, test.x, reference_2)
    out["reference"], out["noise_floor"]["real"] = f"{test.name}/test", f"{test.name}/valid"
    if test.toy is not None and test.toy.modes is not None:
        out["mode_coverage"] = mode_coverage(samples, test.toy.modes, test.toy.mode_std)
    return out


def modes(config, family, params, test):
    if test.name != "stacked_mnist":
        raise app.UsageError(f"the modes metric reads Stacked MNIST's 1000 modes; this run's data is {test.name!r}")
    net = _feature_network(config, "mnist")
    generated = stacked_modes(classify_channels(net.logits, _samples(family, params)))
    train = _load(config, "stacked_mnist", "train")
    n = min(_NUM_SAMPLES.value, len(train))
    digits = classify_channels(net.logits, train.image[:n].astype(np.float32) / (train.num_levels - 1))
    floor = stacked_modes(digits)
    return {"modes_hit": generated["modes_hit"], "kl_to_uniform": generated["kl_to_uniform"],
            "largest_mode_fraction": max(generated["counts"]) / _NUM_SAMPLES.value,
            "num_samples": _NUM_SAMPLES.value,
            "floor": {"images": f"the first {n} of stacked_mnist/train", "modes_hit": floor["modes_hit"],
                      "kl_to_uniform": floor["kl_to_uniform"],
                      "reading_accuracy": float((mode_numbers(digits) == train.label[:n]).mean())},
            **net.describe(), "samples": f"sample of {config.model.family} with options {_sample_options()}, "
                                         f"seed {_SEED.value}"}


METRICS = {"quality": quality, "detection": detection, "inpainting": inpainting, "two_sample": two_sample,
           "conditional": conditional, "modes": modes}


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    unknown = set(_METRICS.value) - set(METRICS)
    if unknown:
        raise app.UsageError(f"unknown metrics {sorted(unknown)}; known: {sorted(METRICS)}")
    try:
        which = resolve_checkpoint(_WORKDIR.value, _CHECKPOINT.value)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    config, family, state, test = restore_run(_WORKDIR.value, "test", which)
    params = state.eval_params
    names = _METRICS.value or (["two_sample"] if isinstance(test, VectorDataset)
                               else ["modes"] if test.name == "stacked_mnist"
                               else ["quality", "detection", "inpainting"])
    if not _METRICS.value:  # by default only what the family can do (a GAN has no likelihood to detect with)
        needs = {"detection": "anomaly_score", "inpainting": "impute", "quality": "sample", "two_sample": "sample",
                 "conditional": "sample", "modes": "sample"}
        if (config.model.get("conditional", False) and not isinstance(test, VectorDataset)
                and not config.data.get("clusters", 0)):  # cluster labels are not the classes
            names.append("conditional")
        names = [n for n in names if needs[n] in family.capabilities]
    for metric in names:
        t0 = time.time()
        res = (quality(config, family, params, test, state.aux) if metric == "quality"
               else METRICS[metric](config, family, params, test))
        res.update(checkpoint=which, step=int(state.step), seconds=round(time.time() - t0, 1))
        path = Path(_WORKDIR.value) / f"metrics_{metric}{_output_suffix(metric)}.json"
        write_text_atomic(path, json.dumps(res, indent=2))
        print(f"{path}:\n{json.dumps(res, indent=2)}")


if __name__ == "__main__":
    app.run(main)
