"""Orbax checkpoints of the train state and the data position, each with a digest of its arrays.

A checkpoint's ``data`` item (JSON) holds the batch iterator's position, the device count it was written on
and ``state_sha256``, a SHA-256 of every array of the state (shape, dtype and bytes, in tree order) computed
from the host copy that was saved. Restoring recomputes it from what was read: a flipped byte in a
checkpoint's array files, or a file TensorStore cannot read, is a :class:`CheckpointCorruptError` naming the
checkpoint, and :meth:`CheckpointStore.restore_latest_intact` falls back to the newest intact one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp


class CheckpointCorruptError(RuntimeError):
    """A checkpoint could not be read, or what was read does not match the digest recorded at save."""


def state_digest(state) -> str:
    """SHA-256 over every leaf's shape, dtype and bytes, in tree order (host arrays; PRNG keys as key data)."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(state):
        if isinstance(leaf, jax.Array) and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        a = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{a.shape}{a.dtype.str}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def has_checkpoint(directory: str | Path) -> bool:
    """Whether ``directory`` holds at least one finished numbered checkpoint (without creating anything)."""
    d = Path(directory)
    return d.is_dir() and any(p.is_dir() and p.name.isdigit() for p in d.iterdir())


class CheckpointStore:
    """Numbered checkpoints in ``directory``: item ``state`` (the TrainState pytree) and item ``data`` (JSON:
    the batch iterator's position and whatever the caller adds, plus ``state_sha256``). Keeps the newest
    ``max_to_keep`` (at least 1). ``create=False`` opens an existing directory read-only: it creates nothing."""

    def __init__(self, directory: str | Path, *, max_to_keep: int = 3, create: bool = True):
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep must be >= 1 (0 would delete every checkpoint as it is written), "
                             f"got {max_to_keep}")
        self.directory = Path(directory).absolute()
        if not create and not self.directory.is_dir():
            raise FileNotFoundError(f"no checkpoint directory {self.directory}")
        self._manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create,
                                                                 read_only=not create),
            item_names=("state", "data"))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, step: int, state, data: dict) -> None:
        # A host copy first: the device buffers are donated to the next step while Orbax writes.
        host_state = jax.device_get(state)
        data = {**data, "state_sha256": state_digest(host_state)}
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(host_state), data=ocp.args.JsonSave(data)))

    def restore(self, target_state, step: int | None = None):
        """Returns ``(state, data)`` of ``step`` (default: latest), shaped like ``target_state``, after checking
        the arrays against the digest recorded at save (checkpoints written before digests existed have none
        and are restored unchecked). Raises :class:`CheckpointCorruptError` naming the checkpoint."""
        step = self.latest_step() if step is None else step
        where = self.directory / str(step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target_state)
        try:
            try:
                restored = self._manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()))
            except ValueError as e:
                if "tree structures do not match" not in str(e) or getattr(target_state, "aux", 0) is not None:
                    raise
                # A checkpoint written before TrainState had ``aux``: restore the other fields, which must match.
                legacy = {f: getattr(abstract, f) for f in ("step", "params", "opt_state", "ema_params")}
                restored = self._manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(legacy), data=ocp.args.JsonRestore()))
                restored = {"state": target_state.replace(**restored["state"]), "data": restored["data"]}
        except (ValueError, KeyError, TypeError) as e:
            if "tree structure" in str(e).lower() or "structure" in str(e).lower():
                raise  # a different state layout is a caller's mistake, not damage
            raise CheckpointCorruptError(f"checkpoint {where} cannot be read ({type(e).__name__}: {e}); "
                                         f"delete it or move it away") from e
        except Exception as e:  # TensorStore and file errors
            raise CheckpointCorruptError(f"checkpoint {where} cannot be read ({type(e).__name__}: {e}); "
                                         f"delete it or move it away") from e
        state, data = restored["state"], restored["data"]
        expected = data.get("state_sha256")
        if expected is not None and state_digest(state) != expected:
            raise CheckpointCorruptError(f"checkpoint {where} is damaged: its arrays do not match the SHA-256 "
                                         f"recorded when it was written; delete it or move it away")
        return state, data

    def restore_latest_intact(self, target_state):
        """``(state, data, step, damaged)``: the newest checkpoint that restores intact, and the
        ``(step, error)`` of each newer one that did not. Raises the newest error when none is intact."""
        damaged = []
        for step in reversed(self.all_steps()):
            try:
                state, data = self.restore(target_state, step)
                return state, data, step, damaged
            except CheckpointCorruptError as e:
                damaged.append((step, e))
        raise CheckpointCorruptError("no intact checkpoint in " f"{self.directory}: "
                                     + "; ".join(str(e) for _, e in damaged))

    def read_data(self, step: int | None = None) -> dict:
        """The JSON item alone (no arrays read)."""
        step = self.latest_step() if step is None else step
        return self._manager.restore(step, args=ocp.args.Composite(data=ocp.args.JsonRestore()))["data"]

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
