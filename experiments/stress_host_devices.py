"""Four simulated CPU devices under load: does a pmap run survive XLA:CPU's collective timeout?

``python experiments/stress_host_devices.py --collectives default --runs 3 --burners 8``

Each run trains ``vae_digits:smoke`` for ``--steps`` steps on 4 host devices in a fresh process while
``--burners`` busy-loop processes compete for the cores; ``default`` keeps XLA's 40-second collective timeout,
``raised`` sets both CPU collective timeouts to 1200 s. Prints each run's exit code (134 = the abort) and
time. Load-dependent by design: numbers belong in BENCHMARKS.md with the machine's load stated."""

import subprocess
import sys
import time

from absl import app, flags

_COLLECTIVES = flags.DEFINE_enum("collectives", "default", ["default", "raised"], "Collective timeouts.")
_RUNS = flags.DEFINE_integer("runs", 3, "Training runs, one after the other.")
_BURNERS = flags.DEFINE_integer("burners", 8, "Busy-loop processes running during the runs.")
_STEPS = flags.DEFINE_integer("steps", 3000, "Training steps per run.")

_RUN = """
import os, sys, tempfile
raised = sys.argv[1] == "raised"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4" + (
    " --xla_cpu_collective_timeout_seconds=1200 --xla_cpu_collective_call_terminate_timeout_seconds=1200"
    if raised else "")
from gen_jax.train.config import load_config_file
import gen_jax.train as gt
c = load_config_file("configs/vae_digits.py", "smoke")
c.train.num_devices, c.train.steps, c.train.log_every, c.train.sample_every = 4, int(sys.argv[2]), 50, 0
c.train.checkpoint_every = 1000
with tempfile.TemporaryDirectory() as d:
    gt.run(c, d)
"""


def main(argv):
    del argv
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(_BURNERS.value)]
    try:
        for i in range(_RUNS.value):
            t0 = time.time()
            proc = subprocess.run([sys.executable, "-c", _RUN, _COLLECTIVES.value, str(_STEPS.value)],
                                  capture_output=True, text=True)
            stuck = proc.stderr.count("may be stuck")
            print(f"run {i + 1}: exit {proc.returncode} after {time.time() - t0:.0f} s "
                  f"({stuck} 'may be stuck' warnings)", flush=True)
    finally:
        for b in burners:
            b.kill()


if __name__ == "__main__":
    app.run(main)
