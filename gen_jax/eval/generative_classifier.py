"""Generative classifiers: Bayes' rule over any class-conditional model of the library,
``p(y | x) ∝ p(x | y) p(y)``, and the missing-pixel masks of the missing-data comparison.

A class-conditional family (``conditional=True`` of the VAE, MADE, PixelCNN, classic models) scores
``log p(x | y)`` for the labels in its batch; :func:`class_conditional_log_probs` asks it once per class (with the
same key each time, so a stochastic bound's noise is shared across classes: common random numbers), and
:func:`bayes_posterior` adds the log prior. With a lower bound (a conditional VAE's ELBO) the rule compares
bounds, not likelihoods: its accuracy is the bound's, which the caller should say.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


def class_conditional_log_probs(log_prob: Callable, params, batch: dict, rng, num_classes: int,
                                **options) -> jax.Array:
    """``log p(x | y = c)`` for every class, ``(B, C)``: ``log_prob(params, batch, rng, **options)`` (a
    :class:`gen_jax.families.LogProb` or any function of that signature) with the batch's labels set to ``c``."""
    some = next(iter(batch.values()))
    columns = [log_prob(params, {**batch, "label": jnp.full((some.shape[0],), c, jnp.int32)}, rng, **options)
               for c in range(num_classes)]
    return jnp.stack(columns, axis=1)


def bayes_posterior(log_likelihoods, log_prior) -> jax.Array:
    """``log p(y | x)`` from ``log p(x | y)`` ``(B, C)`` and ``log p(y)`` ``(C,)`` by Bayes' rule."""
    return jax.nn.log_softmax(jnp.asarray(log_likelihoods) + jnp.asarray(log_prior), axis=1)


def class_log_prior(labels, num_classes: int) -> np.ndarray:
    """The training labels' frequencies as ``log p(y)``."""
    counts = np.bincount(np.asarray(labels), minlength=num_classes).astype(np.float64)
    return np.log(counts / counts.sum())


def missing_mask(kind: str, fraction: float, image_hw: tuple[int, int], num: int, *, seed: int = 0) -> np.ndarray:
    """``num`` masks ``(num, H, W)`` (1 = observed) hiding ``fraction`` of the pixels:

    * ``random``: each image its own uniformly random set of ``round(fraction * H * W)`` pixels;
    * ``block``: one rectangle at a random place per image, ``round(sqrt(fraction) * H)`` rows by the number of
      columns that brings its area closest to ``fraction * H * W`` (on 8x8 images 90 % is 8 x 7 = 87.5 %:
      :func:`hidden_fraction` says what a set of masks hides).
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    h, w = image_hw
    rng = np.random.default_rng(seed)
    masks = np.ones((num, h, w), np.float32)
    if kind == "random":
        hide = int(round(fraction * h * w))
        for m in masks:
            m.reshape(-1)[rng.permutation(h * w)[:hide]] = 0
    elif kind == "block":
        sh = min(h, int(round(np.sqrt(fraction) * h)))
        sw = min(w, int(round(fraction * h * w / sh))) if sh else 0
        for m in masks:
            top, left = rng.integers(0, h - sh + 1), rng.integers(0, w - sw + 1)
            m[top:top + sh, left:left + sw] = 0
    else:
        raise ValueError(f"unknown mask kind {kind!r}; known: ['random', 'block']")
    return masks


def hidden_fraction(masks) -> float:
    """The fraction of pixels a set of masks hides."""
    return float(1 - np.mean(masks))
