"""Test NLL of a trained workdir: ``python experiments/evaluate.py --workdir runs/vae_bmnist --num_samples 5000``.

Scores the split with the family's declared log-likelihood (its ``log_prob`` capability): a bound's estimator
takes ``--num_samples`` (k of a VAE's importance-weighted bound; 1 = the ELBO); an exact or dequantized
log-likelihood takes none, and ``--num_samples`` is then ignored. Writes
``<workdir>/eval_<estimator>_<split>.json`` (``eval_iwae5000_test.json``, ``eval_exact_test.json``);
``--checkpoint 4000`` scores the kept checkpoint of step 4000 into ``eval_<estimator>_<split>_step4000.json``."""

import json
import time
from pathlib import Path

import jax
from absl import app, flags, logging

from gen_jax.train import CHECKPOINT_CHOICES, checkpoint_suffix, resolve_checkpoint, restore_run
from gen_jax.train.config import parse_key_values
from gen_jax.train.evaluators import split_log_likelihood
from gen_jax.train.workdir import write_text_atomic

_WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir.")
_K = flags.DEFINE_integer("num_samples", 5000, "Importance samples of a bound's estimator (1 = ELBO); "
                          "ignored by an exact log-likelihood.")
_CHUNK = flags.DEFINE_integer("chunk", 250, "Importance samples drawn at once (memory ~ chunk x batch).")
_BATCH = flags.DEFINE_integer("batch_size", 500, "Test examples at once.")
_SPLIT = flags.DEFINE_string("split", "test", "Split to evaluate.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "best_if_any",
                                f"{' | '.join(CHECKPOINT_CHOICES)} or a kept checkpoint's step (e.g. 4000). "
                                "Which parameters: the end of training, the model-selection pick, or the pick "
                                "when the run made one.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the importance samples.")
_NUM = flags.DEFINE_integer("num_examples", 0, "Evaluate the first n examples of the split (0 = all).")
_OPTIONS = flags.DEFINE_list("log_prob_option", [], "Other key=value options of the family's log_prob, e.g. "
                             "estimator=pf_ode,num_steps=50 for a diffusion model on images.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    try:
        which = resolve_checkpoint(_WORKDIR.value, _CHECKPOINT.value)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    config, family, state, data = restore_run(_WORKDIR.value, _SPLIT.value, which)
    if _NUM.value:
        data = data.take(_NUM.value)
    log_prob = family.require("log_prob")
    options = {"num_samples": _K.value} if "num_samples" in log_prob.options else {}
    if "chunk_size" in log_prob.options:
        options["chunk_size"] = min(_CHUNK.value, _K.value)
    options.update(parse_key_values(_OPTIONS.value))
    t0 = time.time()
    res = split_log_likelihood(family, state.eval_params, data, jax.random.key(_SEED.value),
                               batch_size=_BATCH.value, **options)
    estimator = log_prob.name(**options)
    res.update({**options, "estimator": estimator, "log_prob_kind": log_prob.kind, "k": options.get("num_samples"),
                "device": str(jax.devices()[0].platform), "split": _SPLIT.value, "checkpoint": which,
                "step": int(state.step), "seconds": round(time.time() - t0, 1)})
    write_text_atomic(Path(_WORKDIR.value) / f"eval_{estimator}_{_SPLIT.value}{checkpoint_suffix(which)}.json",
                      json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    app.run(main)
