"""Test NLL of a trained workdir: ``python experiments/evaluate.py --workdir runs/vae_bmnist --num_samples 5000``.

A VAE is scored by the importance-weighted bound with ``num_samples`` = k (``<workdir>/eval_iwae<k>_<split>.json``);
an exact-likelihood family (flows, MADE, PixelCNN, the character Transformer) by its own exact evaluation, the
same as at the end of training (``<workdir>/eval_<split>.json``; ``num_samples`` does not apply)."""

import json
import time
from pathlib import Path

import jax
from absl import app, flags, logging

from gen_jax.eval import evaluate_log_likelihood
from gen_jax.losses import make_importance_weighted_bound
from gen_jax.train import CHECKPOINT_CHOICES, resolve_checkpoint, restore_run

_WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir.")
_K = flags.DEFINE_integer("num_samples", 5000, "k of the IWAE bound (1 = ELBO).")
_CHUNK = flags.DEFINE_integer("chunk", 250, "Importance samples drawn at once (memory ~ chunk x batch).")
_BATCH = flags.DEFINE_integer("batch_size", 500, "Test examples at once.")
_SPLIT = flags.DEFINE_string("split", "test", "Split to evaluate.")
_CHECKPOINT = flags.DEFINE_enum("checkpoint", "best_if_any", list(CHECKPOINT_CHOICES),
                                "Which parameters: the end of training, the model-selection pick, or the pick "
                                "when the run made one.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the importance samples.")
_NUM = flags.DEFINE_integer("num_examples", 0, "Evaluate the first n examples of the split (0 = all).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    which = resolve_checkpoint(_WORKDIR.value, _CHECKPOINT.value)
    config, task, state, data = restore_run(_WORKDIR.value, _SPLIT.value, which)
    params = state.eval_params
    if _NUM.value:
        data = data.take(_NUM.value)
    t0 = time.time()
    if config.model.family == "vae":
        bound = make_importance_weighted_bound(task.model, likelihood=config.model.likelihood,
                                               num_levels=data.num_levels, num_samples=_K.value,
                                               chunk_size=min(_CHUNK.value, _K.value))
        res = evaluate_log_likelihood(bound, params, data.arrays(), jax.random.key(_SEED.value),
                                      batch_size=_BATCH.value, num_dims=data.num_dims)
        res.update(k=_K.value, device=str(jax.devices()[0].platform))
        name = f"eval_iwae{_K.value}_{_SPLIT.value}.json"
    else:  # an exact likelihood: the family's own evaluation
        res = {k: (float(v) if hasattr(v, "item") else v)
               for k, v in task.evaluate(params, data, jax.random.key(_SEED.value)).items()}
        name = f"eval_{_SPLIT.value}.json"
    res.update(split=_SPLIT.value, checkpoint=which, step=int(state.step), seconds=round(time.time() - t0, 1))
    (Path(_WORKDIR.value) / name).write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    app.run(main)
