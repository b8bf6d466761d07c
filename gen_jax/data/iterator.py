"""One deterministic, shardable, resumable batch iterator for every in-memory dataset.

Epoch ``e`` visits the examples in the order ``permutation(seed, e)``: every example once per epoch (the last
``N mod batch_size`` of each epoch's order are dropped, a different few every epoch). The position is two
integers ``(epoch, batch)``, saved with checkpoints, so a resumed run sees exactly the batches it would have.
"""

from __future__ import annotations

from typing import Iterator, Mapping

import numpy as np


class BatchIterator(Iterator[dict]):
    """Yields dicts of numpy arrays, ``(batch_size, ...)`` or, with ``num_devices > 1``, ``(num_devices,
    batch_size // num_devices, ...)`` for ``jax.pmap``: device ``d`` gets the ``d``-th contiguous slice.

    Args:
      arrays: name -> array, all with the same leading length ``N``.
      batch_size: global batch size (over all devices).
      seed: shuffling seed.
      num_devices: size of the leading device axis (1: no device axis).
      shuffle: ``False`` visits examples in order (evaluation).
      process_index, process_count: in a multi-process job (``num_devices`` counting every process's
        devices), process ``p`` gets only the rows of its own devices, the ``p``-th of ``process_count``
        contiguous blocks of the device axis: the processes' rows are disjoint and make up the global batch
        one process with all the devices would see. The position is the same on every process.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], batch_size: int, *, seed: int = 0,
                 num_devices: int = 1, shuffle: bool = True, process_index: int = 0, process_count: int = 1):
        lengths = {k: len(v) for k, v in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"arrays have different lengths: {lengths}")
        self.num_examples = next(iter(lengths.values()))
        if batch_size <= 0 or batch_size > self.num_examples:
            raise ValueError(f"batch_size={batch_size} must be in [1, {self.num_examples}] (the dataset size)")
        if batch_size % num_devices:
            raise ValueError(
                f"batch_size={batch_size} is not divisible by the device count {num_devices}: "
                f"choose a batch size that is a multiple of {num_devices}")
        if num_devices % process_count or not 0 <= process_index < process_count:
            raise ValueError(f"process {process_index} of {process_count} cannot take an equal share of "
                             f"{num_devices} devices")
        self.process_index, self.process_count = process_index, process_count
        self.arrays = dict(arrays)
        self.batch_size = batch_size
        self.seed = seed
        self.num_devices = num_devices
        self.shuffle = shuffle
        self.batches_per_epoch = self.num_examples // batch_size
        self.epoch = 0
        self.batch = 0
        self._order = None

    def _epoch_order(self) -> np.ndarray:
        if self._order is None or self._order[0] != self.epoch:
            order = (np.random.default_rng([self.seed, self.epoch]).permutation(self.num_examples)
                     if self.shuffle else np.arange(self.num_examples))
            self._order = (self.epoch, order)
        return self._order[1]

    def next_indices(self) -> np.ndarray:
        """The example indices of the next batch (advances the position)."""
        start = self.batch * self.batch_size
        idx = self._epoch_order()[start:start + self.batch_size]
        self.batch += 1
        if self.batch == self.batches_per_epoch:
            self.epoch, self.batch = self.epoch + 1, 0
        return idx

    def __next__(self) -> dict:
        idx = np.sort(self.next_indices())  # sorted gathers are faster; order within a batch is irrelevant
        share = len(idx) // self.process_count
        idx = idx[self.process_index * share:(self.process_index + 1) * share]  # this process's devices' rows
        out = {k: v[idx] for k, v in self.arrays.items()}
        if self.num_devices > 1:
            local_devices = self.num_devices // self.process_count
            out = {k: v.reshape(local_devices, -1, *v.shape[1:]) for k, v in out.items()}
        return out

    def get_state(self) -> dict:
        return {"epoch": int(self.epoch), "batch": int(self.batch)}

    def set_state(self, state: Mapping[str, int]) -> None:
        if not 0 <= state["batch"] < self.batches_per_epoch:
            raise ValueError(f"iterator state {dict(state)} does not fit {self.batches_per_epoch} batches/epoch")
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])
