"""Steps/s of one config's training step as one process with 4 devices against 2 processes with 2 devices
each (``jax.distributed`` on localhost, gloo collectives), the mesh-sharded path in both, alternating repeats:

``python experiments/benchmark_processes.py --configs vae_binarized_mnist,conv_vae_mnist --repeats 3``

On a CPU the devices are simulated host devices sharing the same cores (4 device threads either way), so the
figure is the cost of crossing a process boundary: gloo's all-reduce over TCP on localhost and the assembly of
each process's rows into the global batch. Every process runs the same fixed number of steps (a time-based
loop would let the processes disagree on how many).

``--allreduce_floats 1000,1100000`` times instead a ``pmean`` of one array of that many floats over the 4
devices, both layouts, waited for each call (50 calls after 5 warm-up calls).
"""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags

ROOT = Path(__file__).resolve().parents[1]
_CONFIGS = flags.DEFINE_list("configs", ["vae_binarized_mnist", "conv_vae_mnist"], "Config names in configs/.")
_STEPS = flags.DEFINE_list("steps", ["600", "100"], "Timed steps per repeat, one per config.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Repeats per layout (median reported), alternating layouts.")
_ALLREDUCE = flags.DEFINE_list("allreduce_floats", [], "Time a pmean of arrays of these sizes instead.")

_WORKER = """
import sys, time
sys.path.insert(0, "experiments")
name, steps, port, nproc, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
from gen_jax.train import distributed
if nproc > 1:
    distributed.initialize(f"localhost:{port}", nproc, pid, timeout_s=60)
import jax
from absl import logging
logging.set_verbosity(logging.WARNING)
from step_runner import engine_runner
from gen_jax.train.config import load_config_file
config = load_config_file(f"configs/{name}.py")
go = engine_runner(config, jax.device_count(), "sharded")
go(20)  # compile, warm up
t0 = time.perf_counter()
go(steps)
print(f"RATE {steps / (time.perf_counter() - t0):.3f}", flush=True)
"""


_ALLREDUCE_WORKER = """
import sys, time
import numpy as np
n, port, nproc, pid = int(sys.argv[1]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
from gen_jax.train import distributed
if nproc > 1:
    distributed.initialize(f"localhost:{port}", nproc, pid, timeout_s=60)
import jax
from jax.sharding import NamedSharding, PartitionSpec as P
from gen_jax.train.parallel import AXIS_NAME, data_mesh
mesh = data_mesh(jax.device_count())
f = jax.jit(jax.shard_map(lambda x: jax.lax.pmean(x, AXIS_NAME), mesh=mesh, in_specs=P(AXIS_NAME),
                          out_specs=P(AXIS_NAME)))
x = jax.make_array_from_process_local_data(NamedSharding(mesh, P(AXIS_NAME)),
                                           np.ones((jax.local_device_count(), n), np.float32))
for _ in range(5):
    x = jax.block_until_ready(f(x))
t0 = time.perf_counter()
for _ in range(50):  # waited for every call: an unwaited queue of all-reduces hangs (MAX_IN_FLIGHT)
    x = jax.block_until_ready(f(x))
print(f"RATE {50 / (time.perf_counter() - t0):.3f}", flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _run(name: str, steps: int, num_processes: int, worker: str = _WORKER) -> float:
    devices = 4 // num_processes
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    port = str(_free_port())
    procs = [subprocess.Popen([sys.executable, "-c", worker, name, str(steps), port, str(num_processes), str(i)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(num_processes)]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(f"{name}, {num_processes} process(es) failed:\n" + "\n".join(o[-3000:] for o in outs))
    return float(re.search(r"RATE ([\d.]+)", outs[0]).group(1))


def main(argv):
    del argv
    for n in map(int, _ALLREDUCE.value):
        ms = {k: 1e3 / _run(str(n), 0, k, _ALLREDUCE_WORKER) for k in (1, 2)}
        print(f"pmean of {n} floats over 4 devices: 1 process {ms[1]:.2f} ms, 2 processes {ms[2]:.2f} ms per call",
              flush=True)
    if _ALLREDUCE.value:
        return
    for name, steps in zip(_CONFIGS.value, map(int, _STEPS.value)):
        rates = {"1 process x 4 devices": [], "2 processes x 2 devices": []}
        t0 = time.time()
        for _ in range(_REPEATS.value):
            rates["1 process x 4 devices"].append(_run(name, steps, 1))
            rates["2 processes x 2 devices"].append(_run(name, steps, 2))
        med = {k: float(np.median(v)) for k, v in rates.items()}
        base = med["1 process x 4 devices"]
        print(f"{name} ({steps} steps per repeat, {time.time() - t0:.0f} s): " + ", ".join(
            f"{k} {v:.1f} steps/s ({v / base:.2f}x; repeats {', '.join(f'{r:.1f}' for r in rates[k])})"
            for k, v in med.items()), flush=True)


if __name__ == "__main__":
    app.run(main)
