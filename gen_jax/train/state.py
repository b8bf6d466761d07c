"""The train state: one pytree that checkpoints, replicates and donates as a whole."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


class TrainState(flax.struct.PyTreeNode):
    """``params`` and ``opt_state`` are any pytrees: a two-player family keeps ``{"generator": ...,
    "discriminator": ...}`` in both, each player with its own optimizer; ``ema_params`` is ``None`` unless an
    EMA decay is configured.

    ``aux`` holds state that is not parameters (a replay buffer, normalisation statistics, a sampler's
    chains); it checkpoints, restores and resumes with the rest. **Rule under pmap:** the state is replicated,
    so a step must leave ``aux`` identical on every device: build it from values averaged (``lax.pmean``) or
    gathered (``lax.all_gather``) over the device axis, and from the step's *shared* key
    (``fold_in(rng, step)``, before the device index is folded in), never from per-device values alone. The
    loop checks this at every checkpoint and stops, naming the leaf, if the copies differ (only device 0's
    would otherwise be saved).
    """

    step: jax.Array
    params: Any
    opt_state: Any
    ema_params: Any = None
    aux: Any = None

    @property
    def eval_params(self) -> Any:
        """The parameters to evaluate and sample with: the EMA ones when kept, else the trained ones. An EMA of
        part of a dict of parameters (one player's, ``{"<player>": {"params": ...}}``) replaces that part only;
        the rest (the other players, normalisation statistics) comes from ``params``."""
        return self.params if self.ema_params is None else _overlay(self.params, self.ema_params)


def _overlay(base: Any, top: Any) -> Any:
    """``top`` where it has an entry, ``base`` elsewhere (dicts merged key by key, anything else replaced)."""
    if isinstance(top, dict) and isinstance(base, dict):
        return {**base, **{k: _overlay(base[k], v) if k in base else v for k, v in top.items()}}
    return top


def create_train_state(params: Any, optimizer: optax.GradientTransformation, *, ema: bool = False,
                       aux: Any = None) -> TrainState:
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params),
                      ema_params=jax.tree.map(jnp.copy, params) if ema else None, aux=aux)
