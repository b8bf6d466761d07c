"""Optimizers from a config: optax chains with a learning-rate schedule and global-norm clipping."""

from __future__ import annotations

import optax


def make_schedule(cfg, total_steps: int) -> optax.Schedule:
    """``constant``, ``cosine`` (to 0 over ``total_steps``) or ``warmup_cosine``, with ``cfg.warmup_steps``
    (only ``warmup_cosine`` reads it; :func:`check_optim_config` rejects a warm-up it would ignore)."""
    if cfg.schedule == "constant":
        return optax.constant_schedule(cfg.learning_rate)
    if cfg.schedule == "cosine":
        return optax.cosine_decay_schedule(cfg.learning_rate, max(total_steps, 1))
    if cfg.schedule == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, cfg.warmup_steps,
                                                  max(total_steps, cfg.warmup_steps + 1))
    raise ValueError(f"unknown schedule {cfg.schedule!r}; use constant, cosine or warmup_cosine")


def check_optim_config(cfg) -> None:
    """Raises for settings the optimizer would silently ignore."""
    if cfg.warmup_steps and cfg.schedule != "warmup_cosine":
        raise ValueError(f"optim.warmup_steps={cfg.warmup_steps} needs optim.schedule='warmup_cosine' "
                         f"(got {cfg.schedule!r}, which has no warm-up)")


def make_optimizer(cfg=None, total_steps: int = 1, **settings) -> optax.GradientTransformation:
    """An optax optimizer from a config block ``cfg`` and/or keyword ``settings`` (which override it; missing
    ones take :data:`gen_jax.train.config.OPTIM_DEFAULTS`): ``name`` (adam/adamw/sgd), ``learning_rate``,
    ``schedule`` over ``total_steps``, ``warmup_steps``, ``weight_decay``, ``grad_clip_norm`` (0 = no
    clipping), ``b1``, ``b2``. ``make_optimizer(learning_rate=3e-4, grad_clip_norm=1.0)`` works without a
    config; an unknown setting is an error."""
    import ml_collections

    from gen_jax.train.config import OPTIM_DEFAULTS

    unknown = set(settings) - set(OPTIM_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown optimizer settings {sorted(unknown)}; known: {sorted(OPTIM_DEFAULTS)}")
    base = dict(OPTIM_DEFAULTS) if cfg is None else {**OPTIM_DEFAULTS, **dict(cfg.items())}
    cfg = ml_collections.ConfigDict({**base, **settings})
    if settings:  # the loop checks a run's config before training (not on restore: old workdirs still load)
        check_optim_config(cfg)
    lr = make_schedule(cfg, total_steps)
    if cfg.name == "adam":
        opt = optax.adam(lr, b1=cfg.b1, b2=cfg.b2)
    elif cfg.name == "adamw":
        opt = optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay)
    elif cfg.name == "sgd":
        opt = optax.sgd(lr, momentum=cfg.b1)
    else:
        raise ValueError(f"unknown optimizer {cfg.name!r}; use adam, adamw or sgd")
    if cfg.grad_clip_norm:
        opt = optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), opt)
    return opt
