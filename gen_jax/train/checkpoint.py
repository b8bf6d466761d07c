"""Orbax checkpoints of the train state and the data position; a restarted run resumes from the latest."""

from __future__ import annotations

from pathlib import Path

import jax
import orbax.checkpoint as ocp


class CheckpointStore:
    """Numbered checkpoints in ``directory``: item ``state`` (the TrainState pytree) and item ``data`` (the
    batch iterator's position, JSON). Keeps the newest ``max_to_keep``."""

    def __init__(self, directory: str | Path, *, max_to_keep: int = 3):
        self._manager = ocp.CheckpointManager(
            Path(directory).absolute(),
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
            item_names=("state", "data"))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state, data_position: dict) -> None:
        # A host copy first: the device buffers are donated to the next step while Orbax writes.
        host_state = jax.device_get(state)
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(host_state), data=ocp.args.JsonSave(data_position)))

    def restore(self, target_state, step: int | None = None):
        """Returns ``(state, data_position)`` of ``step`` (default: latest), shaped like ``target_state``."""
        step = self.latest_step() if step is None else step
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target_state)
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), data=ocp.args.JsonRestore()))
        return restored["state"], restored["data"]

    def read_data(self, step: int | None = None) -> dict:
        """The JSON item alone (no arrays read)."""
        step = self.latest_step() if step is None else step
        return self._manager.restore(step, args=ocp.args.Composite(data=ocp.args.JsonRestore()))["data"]

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
