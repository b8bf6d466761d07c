"""The side-by-side harness of the PyTorch comparisons (``benchmark_unet_torch.py``, ``benchmark_gan_torch.py``):
a child process in a PyTorch venv runs the peer's step, gen_jax's sides run here, and the two alternate.

PyTorch is a benchmark-only tool, never a dependency of gen_jax: ``python3 -m venv .venv-torch &&
.venv-torch/bin/pip install torch==2.13.0 numpy`` (a CPU wheel from local disk here). The child prints
``{"params": N}`` once its warm-up steps are done, then, for each line ``n`` it reads, ``{"seconds_per_step": s}``
for ``n`` timed steps. (Until 2026-12-04 it printed the count before its warm-up, which then ran beside gen_jax's
first timed round: that round took up to twice the others'; the medians hid most of it.)

``import gen_jax`` tunes glibc's ``malloc`` to reuse freed memory (:mod:`gen_jax.host_memory`; opt out with
``GEN_JAX_MALLOC_DEFAULTS=1``) and to run single-device CPU programs on the calling thread (opt out with
``GEN_JAX_CPU_ASYNC_DISPATCH=1``), so gen_jax's sides run with both (PyTorch runs its ops on the calling thread
too). PyTorch's child runs with glibc's defaults unless
``peer_reuse_freed_memory``: then the same settings reach it through its environment
(``gen_jax.host_memory.MALLOC_ENV``), for a comparison with the allocator tuned on both sides.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Callable

import numpy as np

from gen_jax import host_memory


def race(torch_python: str, script: str, config: dict, sides: dict[str, tuple[Callable[[int], float], int]], *,
         repeats: int, rounds: int, peer_reuse_freed_memory: bool = False) -> dict:
    """Alternates ``rounds`` rounds of ``repeats`` timed steps of each gen_jax side (``name -> (run(n) -> seconds
    per step, parameter count)``) and of the PyTorch child; every side must have the child's parameter count.
    Returns the parameter count, the medians, every round and each side's ratio to PyTorch (and whether the
    child ran with ``host_memory.MALLOC_ENV``, whether this process runs with the settings and with its CPU
    programs inline)."""
    path = Path(torch_python)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: python3 -m venv .venv-torch && "
                                ".venv-torch/bin/pip install torch==2.13.0 numpy")
    env = {**os.environ, **host_memory.MALLOC_ENV} if peer_reuse_freed_memory else None
    proc = subprocess.Popen([str(path), "-c", script, json.dumps(config)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    torch_params = json.loads(proc.stdout.readline())["params"]
    for name, (_, count) in sides.items():
        if count != torch_params:
            raise AssertionError(f"{name} has {count} parameters, the PyTorch peer {torch_params}")
    times = {name: [] for name in [*sides, "pytorch"]}
    for _ in range(rounds):
        for name, (run, _) in sides.items():
            times[name].append(run(repeats))
        proc.stdin.write(f"{repeats}\n")
        proc.stdin.flush()
        times["pytorch"].append(json.loads(proc.stdout.readline())["seconds_per_step"])
    proc.stdin.close()
    proc.wait()
    med = {name: float(np.median(v)) for name, v in times.items()}
    return {"parameters": torch_params, "gen_jax_reuses_freed_memory": host_memory.applied,
            "pytorch_reuses_freed_memory": peer_reuse_freed_memory,
            "gen_jax_runs_cpu_programs_inline": host_memory.inline,
            "seconds_per_step_median": med, "all": times,
            "ratio_to_pytorch": {name: med[name] / med["pytorch"] for name in sides}}
