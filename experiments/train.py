"""Trains a model: ``python experiments/train.py --config configs/vae_digits.py --workdir runs/vae_digits``.

Overrides: ``--config.train.steps=100`` (an unknown key is an error). Re-running on the same workdir resumes.
"""

from absl import app, flags, logging
from ml_collections import config_flags

import gen_jax.train

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py[:variant]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and pictures.")
flags.mark_flags_as_required(["config", "workdir"])


def _print(section: str, values: dict) -> None:
    for k, v in sorted(values.items()):
        print(f"{section}/{k}: {v:.4f}" if isinstance(v, float) else f"{section}/{k}: {v}")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # Orbax logs every file it closes at INFO
    print(f"workdir: {_WORKDIR.value}", flush=True)
    results = gen_jax.train.run(_CONFIG.value, _WORKDIR.value)
    _print("train", results["train"])
    if "interrupted_at_step" in results:
        print(f"stopped at step {results['interrupted_at_step']} with a checkpoint; run the same command to resume")
    else:
        _print("eval", results["eval"])
        print(f"outputs (samples.png, metrics.jsonl, eval.json, checkpoints/) in {_WORKDIR.value}")


if __name__ == "__main__":
    app.run(main)
