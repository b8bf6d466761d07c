"""Vector datasets (the 2-D toys) in the same shape as the image datasets: splits held in memory, ``arrays()``
for the batch iterator.

A toy's splits are fixed samples, independent of any run seed: ``train``, ``valid`` and ``test`` are drawn
with seeds 1000, 1001 and 1002, so every model trained on a toy sees the same points and is scored on the
same held-out ones.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gen_jax.data.toy2d import Toy2D, get_toy

TOY_SPLIT_SEEDS = {"train": 1000, "valid": 1001, "test": 1002}


@dataclasses.dataclass(frozen=True)
class VectorDataset:
    """``x``: float32 ``(N, D)``; ``toy``: the distribution it was drawn from (exact density where it has one)."""

    name: str
    split: str
    x: np.ndarray
    toy: Toy2D | None = None

    @property
    def num_dims(self) -> int:
        return int(self.x.shape[1])

    @property
    def num_classes(self) -> int:
        return 0

    def __len__(self) -> int:
        return len(self.x)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"x": self.x}

    def take(self, n: int) -> "VectorDataset":
        return dataclasses.replace(self, x=self.x[:n])


def load_toy_dataset(name: str, split: str, num_examples: int) -> VectorDataset:
    if split not in TOY_SPLIT_SEEDS:
        raise ValueError(f"dataset {name!r} has no split {split!r}; it has {list(TOY_SPLIT_SEEDS)}")
    toy = get_toy(name)
    return VectorDataset(name, split, toy.sample(num_examples, seed=TOY_SPLIT_SEEDS[split]), toy)
