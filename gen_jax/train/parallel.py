"""Runs one per-device step on one device (``jax.jit``) or on all local devices (``jax.pmap``)."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

AXIS_NAME = "batch"


def resolve_num_devices(requested: int) -> int:
    """0 means every local device; more than there are is an error."""
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


def compile_step(step: Callable, num_devices: int, *, guard: bool = False) -> Callable:
    """``step(state, batch, rng)`` jitted (1 device) or pmapped over ``AXIS_NAME`` (state replicated, batch
    with a leading device axis, ``rng`` shared); the state's buffers are donated either way. With ``guard``
    it is :func:`guard_nonfinite`'s ``(state, batch, rng, first_bad)`` form (``first_bad`` replicated).

    ``step`` must have been built with ``axis_name=AXIS_NAME`` when ``num_devices > 1``.
    """
    fn = guard_nonfinite(step) if guard else step
    if num_devices == 1:
        return jax.jit(fn, donate_argnums=(0,))
    devices = jax.local_devices()[:num_devices]
    in_axes = (0, 0, None, 0) if guard else (0, 0, None)
    return jax.pmap(fn, axis_name=AXIS_NAME, in_axes=in_axes, donate_argnums=(0,), devices=devices)


def replicate(tree, num_devices: int):
    """Copies a pytree onto ``num_devices`` devices (leading axis); identity for one device."""
    if num_devices == 1:
        return tree
    # pmap shards a leading axis of size num_devices over its devices.
    return jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (num_devices, *np.shape(x))).copy(), tree)


def unreplicate(tree, num_devices: int):
    """The first device's copy, as host-backed arrays of the original shapes."""
    if num_devices == 1:
        return tree
    return jax.tree.map(lambda x: np.asarray(x[0]), tree)


def check_replicas_agree(tree, num_devices: int, what: str = "state") -> None:
    """Raises if the device copies of a replicated pytree differ (a step broke the replication rule of
    :class:`gen_jax.train.state.TrainState`); names the first leaf that differs."""
    if num_devices == 1 or tree is None:
        return
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        a = np.asarray(leaf)
        if not all(np.array_equal(a[0], a[i], equal_nan=True) for i in range(1, a.shape[0])):
            raise RuntimeError(f"{what}{jax.tree_util.keystr(path)} differs between devices: the step must keep "
                               f"replicated state identical on every device (see TrainState's pmap rule)")
