"""Runs one per-device step on one device (``jax.jit``) or on all local devices (``jax.pmap``)."""

from __future__ import annotations

from typing import Callable

import jax
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


def compile_step(step: Callable, num_devices: int) -> Callable:
    """``step(state, batch, rng)`` jitted (1 device) or pmapped over ``AXIS_NAME`` (state replicated, batch
    with a leading device axis, ``rng`` shared); the state's buffers are donated either way.

    ``step`` must have been built with ``axis_name=AXIS_NAME`` when ``num_devices > 1``.
    """
    if num_devices == 1:
        return jax.jit(step, donate_argnums=(0,))
    devices = jax.local_devices()[:num_devices]
    return jax.pmap(step, axis_name=AXIS_NAME, in_axes=(0, 0, None), donate_argnums=(0,), devices=devices)


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
