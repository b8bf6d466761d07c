"""The train state: one pytree that checkpoints, replicates and donates as a whole."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


class TrainState(flax.struct.PyTreeNode):
    """``params`` and ``opt_state`` are any pytrees: a GAN keeps ``{"generator": ..., "discriminator": ...}``
    in both, each with its own optimizer; ``ema_params`` is ``None`` unless an EMA decay is configured."""

    step: jax.Array
    params: Any
    opt_state: Any
    ema_params: Any = None

    @property
    def eval_params(self) -> Any:
        """The parameters to evaluate and sample with: the EMA ones when kept, else the trained ones."""
        return self.ema_params if self.ema_params is not None else self.params


def create_train_state(params: Any, optimizer: optax.GradientTransformation, *, ema: bool = False) -> TrainState:
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params),
                      ema_params=jax.tree.map(jnp.copy, params) if ema else None)
