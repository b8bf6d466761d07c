"""Multi-layer perceptron."""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax


class MLP(nn.Module):
    """Dense layers of sizes ``features``; ``activation`` between them (and after the last if asked)."""

    features: Sequence[int]
    activation: Callable[[jax.Array], jax.Array] = nn.relu
    activate_final: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, width in enumerate(self.features):
            x = nn.Dense(width, name=f"dense_{i}")(x)
            if i < len(self.features) - 1 or self.activate_final:
                x = self.activation(x)
        return x
