"""Trains a model: ``python experiments/train.py --config configs/vae_digits.py --workdir runs/vae_digits``.

Overrides: ``--config.train.steps=100`` (an unknown key is an error). Re-running on the same workdir resumes.

Several processes (README, "Several processes"): start the same command in each with
``--coordinator_address=host:port --num_processes=N --process_id=i`` (or ``JAX_COORDINATOR_ADDRESS``,
``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``; or ``--distributed`` alone on SLURM / a Cloud TPU pod slice, where JAX
finds them itself) and ``--config.train.parallelism=sharded``.
"""

import os

import jax
from absl import app, flags, logging
from ml_collections import config_flags

import gen_jax.train
from gen_jax.train import distributed

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py[:variant]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and pictures.")
flags.mark_flags_as_required(["config", "workdir"])
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Join a multi-process job (jax.distributed); implied by "
                                 "--coordinator_address, --num_processes, --process_id or their JAX_* variables.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0's coordinator.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's id, 0 .. num_processes - 1.")
_TIMEOUT = flags.DEFINE_integer("coordinator_timeout", 120, "Seconds to wait for the coordinator.")


def _print(section: str, values: dict) -> None:
    for k, v in sorted(values.items()):
        print(f"{section}/{k}: {v:.4f}" if isinstance(v, float) else f"{section}/{k}: {v}")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # Orbax logs every file it closes at INFO
    if _DISTRIBUTED.value or _COORDINATOR.value or _NUM_PROCESSES.value is not None or \
            _PROCESS_ID.value is not None or any(os.environ.get(name) for name in distributed.ENV):
        distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                               timeout_s=_TIMEOUT.value)
    print(f"workdir: {_WORKDIR.value}", flush=True)
    results = gen_jax.train.run(_CONFIG.value, _WORKDIR.value)
    _print("train", results["train"])
    if "evaluated_by" in results:
        print(f"process {jax.process_index()}: trained to step {results['step']}; {results['evaluated_by']} "
              f"evaluates and writes the outputs")
    elif "interrupted_at_step" in results:
        print(f"stopped at step {results['interrupted_at_step']} with a checkpoint; run the same command to resume")
    else:
        _print("eval", results["eval"])
        print(f"outputs (samples.png, metrics.jsonl, eval.json, checkpoints/) in {_WORKDIR.value}")


if __name__ == "__main__":
    app.run(main)
