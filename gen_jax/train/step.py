"""Step factories: a standalone loss + an optax optimizer -> ``step(state, batch, rng) -> (state, metrics)``.

The step is a per-device function. With ``axis_name=None`` it is the whole computation (``jax.jit`` it, or
run it under a mesh-sharded ``jax.jit``); with ``axis_name="batch"`` it averages gradients and metrics over
that axis, for ``jax.pmap`` (:mod:`gen_jax.train.parallel`). Families whose update is not "one loss, one
optimizer" (several players, a sampler inside the update) write their own step with the same signature and reuse
everything else.
"""

from __future__ import annotations

from typing import Callable

import jax
import optax
from jax import lax

from gen_jax.train.state import TrainState

LossFn = Callable[[object, dict, jax.Array], tuple[jax.Array, dict]]


def step_rng(rng: jax.Array, step: jax.Array, axis_name: str | None) -> jax.Array:
    """The step's key: the loop key folded with the step (and the device index under pmap)."""
    rng = jax.random.fold_in(rng, step)
    if axis_name is not None:
        rng = jax.random.fold_in(rng, lax.axis_index(axis_name))
    return rng


def make_train_step(loss_fn: LossFn, optimizer: optax.GradientTransformation, *,
                    ema_decay: float | None = None, axis_name: str | None = None):
    """Builds the per-device step for ``loss_fn(params, batch, rng) -> (loss, metrics)``.

    Metrics returned: the loss's own, plus ``grad_norm`` (of the averaged gradient) and ``param_norm`` (of
    the *updated* parameters, so a non-finite update is caught before it is checkpointed).
    """

    def step(state: TrainState, batch: dict, rng: jax.Array):
        rng = step_rng(rng, state.step, axis_name)
        grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params, batch, rng)
        if axis_name is not None:
            grads = lax.pmean(grads, axis_name)
            metrics = lax.pmean(metrics, axis_name)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = state.ema_params
        if ema_decay is not None:
            ema = optax.incremental_update(params, ema, step_size=1.0 - ema_decay)
        metrics = dict(metrics, grad_norm=optax.tree.norm(grads), param_norm=optax.tree.norm(params))
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema), metrics

    return step
