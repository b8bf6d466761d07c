"""Evaluations chosen by configuration (big_vision's ``config.evals``): ``config.evals`` maps a name to
``{type, options}``; :func:`build_evaluators` builds each once per run from the family's declared
capabilities, so adding a metric to a run is a config line and no entry point branches on the family.

Metric names are the same for every family: ``nll`` (nats per example) and ``bits_per_dim`` of the tightest
log-likelihood estimate evaluated, each estimate also under its estimator's name (``nll/elbo``,
``nll/iwae500``, ``nll/exact``, ``nll/dequantized``), with ``log_prob_kind`` saying what they are.
"""

from __future__ import annotations

from typing import Callable

import ml_collections
import numpy as np

from gen_jax.data.vectors import TOY_SPLIT_SEEDS
from gen_jax.eval.likelihood import evaluate_log_likelihood
from gen_jax.eval.modes import mode_coverage
from gen_jax.eval.two_sample import two_sample_report

# type -> its options and their defaults
EVALUATOR_OPTIONS = {
    # The family's log_prob over the split; num_samples: its estimator's (importance samples of a bound),
    # 0 = the estimator's default (an exact log-likelihood takes none).
    "log_likelihood": {"num_samples": 0},
    # Vector data: MMD^2 and sliced W2 of model samples against the split, with the noise floor (the valid
    # split against it), and mode coverage on the Gaussian mixtures.
    "two_sample": {"num_samples": 5000},
}


def check_evals(evals: ml_collections.ConfigDict) -> None:
    """Raises ``KeyError`` for an evaluator without a known ``type`` or with an option its type lacks."""
    for name in evals.keys():
        entry = evals[name]
        if not isinstance(entry, ml_collections.ConfigDict) or "type" not in entry:
            raise KeyError(f"evals.{name} must be a dict with a 'type' of {sorted(EVALUATOR_OPTIONS)}")
        if entry.type not in EVALUATOR_OPTIONS:
            raise KeyError(f"evals.{name}.type={entry.type!r} is unknown; known: {sorted(EVALUATOR_OPTIONS)}")
        unknown = set(entry.keys()) - {"type"} - set(EVALUATOR_OPTIONS[entry.type])
        if unknown:
            raise KeyError(f"unknown config key 'evals.{name}.{sorted(unknown)[0]}'; a {entry.type} evaluator "
                           f"takes {sorted(EVALUATOR_OPTIONS[entry.type])}")


def log_likelihood_options(family, num_samples: int) -> dict:
    """The log-prob options for ``num_samples`` importance samples (0 = the estimator's default)."""
    if not num_samples:
        return {}
    family.require("log_prob").resolve(num_samples=num_samples)  # an exact family has no such option
    return {"num_samples": num_samples}


def split_log_likelihood(family, params, split, rng, *, batch_size: int, **options) -> dict:
    """Mean NLL and bits/dim of ``split`` under the family's log_prob with ``options`` (compiled once per
    options for the whole run: :meth:`gen_jax.families.LogProb.function`)."""
    fn = family.require("log_prob").function(**options)
    return evaluate_log_likelihood(fn, params, split.arrays(), rng, batch_size=batch_size,
                                   num_dims=split.num_dims)


def _log_likelihood(config, family, num_samples: int) -> Callable:
    log_prob = family.require("log_prob")
    options = log_likelihood_options(family, num_samples)
    name = log_prob.name(**options)

    def evaluate(params, split, rng):
        res = split_log_likelihood(family, params, split, rng, batch_size=config.eval.batch_size, **options)
        out = {f"nll/{name}": res["nll"], f"bits_per_dim/{name}": res["bits_per_dim"]}
        toy = getattr(split, "toy", None)
        if log_prob.kind in ("exact", "estimate") and toy is not None and toy.has_log_prob:
            # the entropy is the expected NLL; the split's own NLL under the true density differs from it by
            # the split's sampling noise (ring8's test split: 0.273 against 0.309), which the paired gap removes
            true_nll = -float(np.mean(toy.log_prob(np.asarray(split.x))))
            out.update(true_entropy=toy.entropy(), gap_nats=res["nll"] - toy.entropy(), true_nll=true_nll,
                       gap_nats_paired=res["nll"] - true_nll)
        return out

    return evaluate


def _two_sample(config, family, num_samples: int) -> Callable:
    sample = family.require("sample")

    def evaluate(params, split, rng):
        if not hasattr(split, "x"):
            raise ValueError("a two_sample evaluator needs vector data (the 2-D toys); images use "
                             "experiments/evaluate_metrics.py --metrics quality")
        toy = split.toy
        n = min(len(split), num_samples)
        samples = np.asarray(sample(params, rng, n))
        reference_2 = toy.sample(n, seed=TOY_SPLIT_SEEDS["valid"]) if toy is not None else split.x[:n]
        report = two_sample_report(samples, split.x, reference_2)
        out = {"mmd2": report["mmd"]["mmd2_sum"], "mmd2_floor": report["noise_floor"]["mmd"]["mmd2_sum"],
               "sliced_w2": report["sliced_w2"], "sliced_w2_floor": report["noise_floor"]["sliced_w2"]}
        if toy is not None and toy.modes is not None:
            cov = mode_coverage(samples, toy.modes, toy.mode_std)
            out.update(modes_hit=cov["modes_hit"], num_modes=cov["num_modes"],
                       high_quality_fraction=cov["high_quality_fraction"])
        return out

    return evaluate


_BUILDERS = {"log_likelihood": _log_likelihood, "two_sample": _two_sample}


def build_evaluators(config: ml_collections.ConfigDict, family) -> dict[str, Callable]:
    """``name -> evaluate(params, split, rng) -> dict`` for every entry of ``config.evals``; an evaluator the
    family cannot serve (no log_prob, no sample) is an error here, before training."""
    check_evals(config.evals)
    out = {}
    for name in config.evals.keys():
        entry = config.evals[name]
        options = {**EVALUATOR_OPTIONS[entry.type], **{k: v for k, v in entry.items() if k != "type"}}
        out[name] = _BUILDERS[entry.type](config, family, **options)
    return out


def run_evaluators(evaluators: dict[str, Callable], family, params, split, rng) -> dict:
    """Every evaluator on ``split`` with the same key (as one evaluation), merged: two evaluators giving the
    same metric is an error rather than one silently overwriting the other. Adds ``nll``/``bits_per_dim``
    (the tightest estimate: the lowest NLL of a bound), ``nll_estimator`` and ``log_prob_kind``."""
    results: dict = {}
    for name, evaluate in evaluators.items():
        res = evaluate(params, split, rng)
        clash = set(res) & set(results)
        if clash:
            raise ValueError(f"evaluator {name!r} reports {sorted(clash)} again: two evals compute the same metric")
        results.update(res)
    estimates = {k[len("nll/"):]: v for k, v in results.items() if k.startswith("nll/")}
    if estimates:
        best = min(estimates, key=estimates.get)
        results.update(nll=estimates[best], bits_per_dim=results[f"bits_per_dim/{best}"], nll_estimator=best,
                       log_prob_kind=family.log_prob.kind)
    return results
