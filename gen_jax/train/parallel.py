"""Runs one per-device step on one device (``jax.jit``) or on several local devices, two ways
(``train.parallelism``):

* ``pmap``: ``jax.pmap`` over ``AXIS_NAME``; the state is stacked, one copy per device (leading axis).
* ``sharded``: ``jax.jit`` of ``shard_map`` over a one-axis device mesh named ``AXIS_NAME``; the batch is
  sharded along the mesh, the state is one replicated ``jax.Array`` (``NamedSharding(mesh, P())``). The layout
  new JAX code uses (``pmap`` is in maintenance mode and built on ``shard_map``).

Both run the very same per-device step (``lax.pmean`` over ``AXIS_NAME`` inside it) and give the same update.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

AXIS_NAME = "batch"
PARALLELISMS = ("pmap", "sharded")
# Steps of a multi-device run the host may dispatch ahead of the devices. On simulated host devices
# (XLA:CPU, --xla_force_host_platform_device_count=4) a deeper queue of dispatched steps deadlocks: with
# 75-100 steps queued the all-reduce of one step waits for a device thread that never arrives and XLA aborts
# the process after its 40 s collective timeout (pmap and shard_map alike, on a quiet machine: the loop only
# synchronised every log_every steps, so a run with log_every = 750 hung every time; blocking every 4, 16, 32
# or 64 steps ran 400 steps cleanly). compile_step's multi-device step therefore waits for its own result every
# MAX_IN_FLIGHT calls, whoever calls it (the loop, the benchmarks, research code).
MAX_IN_FLIGHT = 16


def check_parallelism(parallelism: str) -> None:
    if parallelism not in PARALLELISMS:
        raise ValueError(f"train.parallelism must be one of {PARALLELISMS}, got {parallelism!r}")


def data_mesh(num_devices: int) -> Mesh:
    """The first ``num_devices`` local devices as a one-axis mesh named ``AXIS_NAME``; in a multi-process job
    (:mod:`gen_jax.train.distributed`) every device of every process, in process order."""
    devices = jax.devices() if jax.process_count() > 1 else jax.local_devices()
    return Mesh(np.asarray(devices[:num_devices]), (AXIS_NAME,))


def resolve_num_devices(requested: int, parallelism: str = "pmap") -> int:
    """0 means every local device; more than there are is an error. In a multi-process job the step runs on
    every device of every process (0 or that total) and only on the sharded path."""
    if jax.process_count() > 1:
        total = jax.device_count()
        if parallelism != "sharded":
            raise ValueError(f"a multi-process job ({jax.process_count()} processes) runs the mesh-sharded step: "
                             f"set train.parallelism=sharded (got {parallelism!r})")
        if requested not in (0, total):
            raise ValueError(f"train.num_devices={requested} but a multi-process job trains on all {total} devices "
                             f"of its {jax.process_count()} processes: set 0 (or {total})")
        return total
    available = jax.local_device_count()
    if requested == 0:
        return available
    if not 1 <= requested <= available:
        raise ValueError(f"train.num_devices={requested} but {available} local device(s) are available")
    return requested


def check_divisible(batch_size: int, num_devices: int) -> None:
    if batch_size % num_devices:
        raise ValueError(f"batch size {batch_size} is not divisible by the device count {num_devices}; "
                         f"use a multiple of {num_devices} (or set train.num_devices)")


def all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.asarray(v).dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def guard_nonfinite(step: Callable) -> Callable:
    """``step(state, batch, rng) -> (state, metrics)`` as ``guarded(state, batch, rng, first_bad) -> (state,
    metrics, first_bad)``: ``first_bad`` (int32, -1 while all is well) records on device the first step whose
    metrics were not finite, so the loop names that step however seldom it fetches metrics."""

    def guarded(state, batch, rng, first_bad):
        new_state, metrics = step(state, batch, rng)
        bad = ~all_finite(metrics)
        first_bad = jnp.where((first_bad < 0) & bad, (state.step + 1).astype(jnp.int32), first_bad)
        return new_state, metrics, first_bad

    return guarded


def cpu_compiler_options(ynn_fusion: bool = True) -> dict | None:
    """Per-program XLA options for ``train.cpu_ynn_fusion``: ``False`` turns XLA:CPU's YNNPACK fusions off for
    this program only (the U-Net's step is 1.4x faster without them here, BENCHMARKS "The U-Net's training step
    against PyTorch"); ``None`` (no options: ``jax.jit``'s default) on other backends, or when ``True``."""
    if ynn_fusion or jax.default_backend() != "cpu":
        return None
    return {"xla_cpu_experimental_ynn_fusion_type": ""}


def compile_step(step: Callable, num_devices: int, *, guard: bool = False, parallelism: str = "pmap",
                 compiler_options: dict | None = None) -> Callable:
    """``step(state, batch, rng)`` jitted (1 device), pmapped over ``AXIS_NAME`` (state stacked per device), or
    jitted over a mesh by ``shard_map`` (state replicated); the batch has a leading device axis in both
    multi-device forms, ``rng`` is shared, and the state's buffers are donated every way. With ``guard`` it is
    :func:`guard_nonfinite`'s ``(state, batch, rng, first_bad)`` form (``first_bad`` laid out like the state).

    ``step`` must have been built with ``axis_name=AXIS_NAME`` when ``num_devices > 1``; the multi-device step
    waits for its result every ``MAX_IN_FLIGHT`` calls (a deeper queue deadlocks host devices).
    ``compiler_options`` (XLA debug options, e.g. :func:`cpu_compiler_options`) apply to this program alone.
    """
    check_parallelism(parallelism)
    fn = guard_nonfinite(step) if guard else step
    if num_devices == 1:
        return jax.jit(fn, donate_argnums=(0,), compiler_options=compiler_options)
    return _bounded_queue(_multi_device(fn, num_devices, guard, parallelism, compiler_options))


def _bounded_queue(compiled: Callable) -> Callable:
    """``compiled`` that blocks on its own output every ``MAX_IN_FLIGHT`` calls (see ``MAX_IN_FLIGHT``)."""
    calls = 0

    def call(*args):
        nonlocal calls
        out = compiled(*args)
        calls += 1
        if calls % MAX_IN_FLIGHT == 0:
            jax.block_until_ready(out)
        return out

    return call


def _multi_device(fn: Callable, num_devices: int, guard: bool, parallelism: str,
                  options: dict | None) -> Callable:
    if parallelism == "sharded":
        def per_device(state, batch, rng, *rest):
            # this device's block of the (devices, per-device batch, ...) layout
            return fn(state, jax.tree.map(lambda x: x[0], batch), rng, *rest)

        in_specs = (P(), P(AXIS_NAME), P()) + ((P(),) if guard else ())
        # out_specs P(): the step keeps state, metrics and first_bad identical on every device (its pmean /
        # all_gather rule); the loop checks the state's copies at every checkpoint as it does under pmap.
        mesh = data_mesh(num_devices)
        mapped = jax.shard_map(per_device, mesh=mesh, in_specs=in_specs, out_specs=P(), check_vma=False)
        compiled = jax.jit(mapped, donate_argnums=(0,), compiler_options=options)
        return compiled if jax.process_count() == 1 else _from_process_local(compiled, mesh)
    devices = jax.local_devices()[:num_devices]
    in_axes = (0, 0, None, 0) if guard else (0, 0, None)
    mapped = jax.pmap(fn, axis_name=AXIS_NAME, in_axes=in_axes, donate_argnums=(0,), devices=devices)
    return _compiled_on_first_call(mapped, options) if options else mapped


def _compiled_on_first_call(mapped: Callable, options: dict) -> Callable:
    """``mapped`` (a pmap, which takes no compiler options) lowered and compiled with ``options`` at its first
    call; later calls must bring the same shapes (a training step does)."""
    compiled = None

    def call(*args):
        nonlocal compiled
        if compiled is None:
            compiled = mapped.lower(*args).compile(compiler_options=options)
        return compiled(*args)

    return call


def _from_process_local(compiled: Callable, mesh: Mesh) -> Callable:
    """``compiled`` fed from one process of a multi-process job: the batch is this process's rows (its local
    devices' blocks), assembled into the global array; the key, the same on every process, is replicated."""
    rows, everywhere = NamedSharding(mesh, P(AXIS_NAME)), NamedSharding(mesh, P())
    keys: dict = {}

    def call(state, batch, rng, *rest):
        batch = jax.tree.map(lambda x: jax.make_array_from_process_local_data(rows, x), batch)
        if id(rng) not in keys:  # the loop passes one key for the whole run: convert it once
            data = jax.device_put(np.asarray(jax.random.key_data(rng)), everywhere)
            keys.clear()
            keys[id(rng)] = (rng, jax.random.wrap_key_data(data, impl=jax.random.key_impl(rng)))
        return compiled(state, batch, keys[id(rng)][1], *rest)

    return call


def replicate(tree, num_devices: int, parallelism: str = "pmap"):
    """A pytree laid out for the step: as it is for one device; a stacked copy per device (leading axis) for
    ``pmap``; one array replicated over the mesh for ``sharded``."""
    if num_devices == 1:
        return tree
    if parallelism == "sharded":
        sharding = NamedSharding(data_mesh(num_devices), P())
        # through the host: a fresh buffer per device, never an alias of the caller's arrays (the step donates)
        return jax.tree.map(lambda x: jax.device_put(np.asarray(x), sharding), tree)
    # pmap shards a leading axis of size num_devices over its devices.
    return jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (num_devices, *np.shape(x))).copy(), tree)


def unreplicate(tree, num_devices: int, parallelism: str = "pmap"):
    """The first device's copy, as host-backed arrays of the original shapes."""
    if num_devices == 1:
        return tree
    if parallelism == "sharded":
        return jax.tree.map(lambda x: np.asarray(x.addressable_shards[0].data), tree)
    return jax.tree.map(lambda x: np.asarray(x[0]), tree)


def check_replicas_agree(tree, num_devices: int, what: str = "state", parallelism: str = "pmap") -> None:
    """Raises if the device copies of a replicated pytree differ (a step broke the replication rule of
    :class:`gen_jax.train.state.TrainState`); names the first leaf that differs."""
    if num_devices == 1 or tree is None:
        return
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if parallelism == "sharded":
            copies = [np.asarray(s.data) for s in leaf.addressable_shards]
        else:
            copies = list(np.asarray(leaf))
        if not all(np.array_equal(copies[0], c, equal_nan=True) for c in copies[1:]):
            raise RuntimeError(f"{what}{jax.tree_util.keystr(path)} differs between devices: the step must keep "
                               f"replicated state identical on every device (see TrainState's pmap rule)")
