"""Inpainting / missing-data imputation score: PSNR and MSE on the pixels a model had to fill in.

Convention: a mask is 1 where a pixel is *observed* and 0 where it is missing; images are in [0, 1], so PSNR
is ``10 log10(1 / MSE)``. A model exposes ``impute(x, mask, rng) -> x_filled`` (observed pixels may be
returned as they were; only missing ones are scored).
"""

from __future__ import annotations

from typing import Callable

import jax
import numpy as np

MASKS = ("left_half", "right_half", "top_half", "bottom_half", "center_square", "random_half")


def make_mask(name: str, image_shape: tuple[int, int, int], *, seed: int = 0) -> np.ndarray:
    """One of :data:`MASKS` as a float32 ``(H, W, C)`` array; ``left_half`` observes the left half (the model
    fills the right), ``center_square`` hides the central square of half the side, ``random_half`` hides a
    fixed (seeded) random 50% of the pixels."""
    h, w, c = image_shape
    m = np.ones((h, w), np.float32)
    if name == "left_half":
        m[:, w // 2:] = 0
    elif name == "right_half":
        m[:, :w // 2] = 0
    elif name == "top_half":
        m[h // 2:, :] = 0
    elif name == "bottom_half":
        m[:h // 2, :] = 0
    elif name == "center_square":
        m[h // 4:h // 4 + h // 2, w // 4:w // 4 + w // 2] = 0
    elif name == "random_half":
        m = (np.random.default_rng(seed).random((h, w)) < 0.5).astype(np.float32)
    else:
        raise ValueError(f"unknown mask {name!r}; known: {list(MASKS)}")
    return np.repeat(m[:, :, None], c, axis=2)


def masked_errors(x: np.ndarray, x_filled: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """MSE over all missing pixels of all images and the mean per-image PSNR on the missing pixels."""
    x, x_filled = np.asarray(x, np.float64), np.asarray(x_filled, np.float64)
    missing = np.broadcast_to(1.0 - np.asarray(mask, np.float64), x.shape)
    if missing.sum() == 0:
        raise ValueError("the mask hides no pixel")
    sq = (x - x_filled) ** 2 * missing
    axes = tuple(range(1, x.ndim))
    per_image_mse = sq.sum(axes) / missing.sum(axes)
    psnr = 10 * np.log10(1.0 / np.maximum(per_image_mse, 1e-10))
    return {"mse": float(sq.sum() / missing.sum()), "psnr": float(psnr.mean())}


def inpainting_score(impute: Callable[[np.ndarray, np.ndarray, jax.Array], np.ndarray], images: np.ndarray,
                     mask: np.ndarray, rng: jax.Array, *, batch_size: int = 500) -> dict[str, float]:
    """Runs ``impute`` over ``images`` (``(N, H, W, C)`` in [0, 1]) in batches with one mask for all and scores
    the missing pixels."""
    filled = []
    for i, s in enumerate(range(0, len(images), batch_size)):
        x = images[s:s + batch_size]
        m = np.broadcast_to(mask, x.shape).astype(np.float32)
        filled.append(np.asarray(impute(x * m, m, jax.random.fold_in(rng, i))))
    return {**masked_errors(images, np.concatenate(filled), mask), "num_examples": len(images)}
