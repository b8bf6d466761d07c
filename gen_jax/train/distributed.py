"""Several processes, one training run, on JAX's own runtime (``jax.distributed``).

Every process runs the same program with the same config. The devices of all processes form one
``("batch",)`` mesh; the step is the ``sharded`` path of :mod:`gen_jax.train.parallel` (``jax.jit`` of
``shard_map``) over it; each process feeds only its own rows of every global batch
(:class:`gen_jax.data.BatchIterator` with ``process_index``/``process_count``), so the processes' rows are
disjoint and cover each global batch, hence every example once per epoch, exactly as one process with all the
devices would. The state is replicated; Orbax writes each checkpoint once, coordinated across processes; process
0 alone writes metrics, pictures, ``config.json`` and ``eval.json`` and runs the final evaluation.

On CPU, JAX's cross-process collectives need ``jax_cpu_collectives_implementation = "gloo"``
(:func:`initialize` sets it; it changes nothing on GPU or TPU).
"""

from __future__ import annotations

import os
import socket
import time

import jax
import numpy as np

ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


class CoordinatorUnreachableError(ConnectionError):
    """Nothing accepted a connection at the coordinator's address within the timeout."""


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, timeout_s: int = 120) -> None:
    """Joins a multi-process job (call before any other JAX work).

    Arguments left ``None`` come from the environment (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
    ``JAX_PROCESS_ID``); when none is set anywhere JAX detects the cluster itself (SLURM, Open MPI, a Cloud TPU
    pod slice). A coordinator that does not answer within ``timeout_s`` seconds is a
    :class:`CoordinatorUnreachableError` naming the address, not a hang (a process other than 0 probes the address
    first: JAX itself ends the process with a fatal log, no exception, when registration times out). JAX's own
    errors (called twice, after JAX started) are raised as they are.
    """
    env = [os.environ.get(name) for name in ENV]
    coordinator_address = coordinator_address or env[0] or None
    num_processes = num_processes if num_processes is not None else (int(env[1]) if env[1] else None)
    process_id = process_id if process_id is not None else (int(env[2]) if env[2] else None)
    given = [v is not None for v in (coordinator_address, num_processes, process_id)]
    if any(given) and not all(given):
        raise ValueError("a multi-process job needs all three of the coordinator address, the process count and "
                         f"this process's id (flags or {', '.join(ENV)}); got coordinator_address="
                         f"{coordinator_address!r}, num_processes={num_processes!r}, process_id={process_id!r}")
    if num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"process_id={process_id} must be in [0, {num_processes})")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if coordinator_address and process_id:
        # JAX aborts the whole process (a fatal log, no exception) when it cannot register with the
        # coordinator in time: see for ourselves first whether anything answers there.
        _wait_for_coordinator(coordinator_address, timeout_s, process_id, num_processes)
    jax.distributed.initialize(coordinator_address, num_processes, process_id, initialization_timeout=timeout_s)


def _wait_for_coordinator(address: str, timeout_s: float, process_id: int, num_processes: int) -> None:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=min(2.0, timeout_s)):
                return
        except OSError as e:
            if time.monotonic() > deadline:
                raise CoordinatorUnreachableError(
                    f"process {process_id} of {num_processes} could not join the job through the coordinator at "
                    f"{address} within {timeout_s} s (nothing accepted a connection there: {e}); is process 0 "
                    f"running, and is that host:port reachable from here? (--coordinator_timeout sets the wait)"
                ) from None
            time.sleep(0.2)


def is_primary() -> bool:
    """Process 0: the one that writes metrics, pictures and JSON files (every process takes part in checkpoints)."""
    return jax.process_index() == 0


def allgather_text(text: str) -> list[str]:
    """``text`` of every process, in process order (a collective: every process must call it)."""
    if jax.process_count() == 1:
        return [text]
    from jax.experimental import multihost_utils

    data = np.frombuffer(text.encode(), np.uint8)
    lengths = np.asarray(multihost_utils.process_allgather(np.array([data.size], np.int32))).reshape(-1)
    padded = np.zeros(int(lengths.max()), np.uint8)
    padded[:data.size] = data
    gathered = np.asarray(multihost_utils.process_allgather(padded))
    return [bytes(gathered[i, :lengths[i]]).decode() for i in range(len(lengths))]


def any_process(flag: bool) -> bool:
    """Whether ``flag`` is true on any process (a collective: every process must call it)."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(np.asarray(multihost_utils.process_allgather(np.array([flag], np.int32))).any())
