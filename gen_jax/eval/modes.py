"""Mode coverage, the standard mode-collapse diagnostic (Metz et al. 2017, "Unrolled GANs"; Srivastava et al.
2017, VEEGAN; Lin et al. 2018, PacGAN): of samples from a Gaussian mixture (the 2-D ring and grid), and of
Stacked MNIST images, whose 1000 modes a digit classifier reads channel by channel."""

from __future__ import annotations

import numpy as np


def mode_coverage(samples: np.ndarray, modes: np.ndarray, std: float, *, num_std: float = 3.0,
                  min_count: int = 1) -> dict:
    """A sample is *high quality* when it lies within ``num_std`` standard deviations of its nearest mode; a
    mode is *hit* when at least ``min_count`` high-quality samples are nearest to it.

    Returns ``modes_hit`` (count), ``num_modes``, ``high_quality_fraction`` and ``counts`` (high-quality
    samples per mode, a list).
    """
    samples, modes = np.asarray(samples, np.float64), np.asarray(modes, np.float64)
    d = np.sqrt(((samples[:, None, :] - modes[None]) ** 2).sum(-1))
    nearest = d.argmin(1)
    good = d[np.arange(len(samples)), nearest] <= num_std * std
    counts = np.bincount(nearest[good], minlength=len(modes))
    return {"modes_hit": int((counts >= min_count).sum()), "num_modes": len(modes),
            "high_quality_fraction": float(good.mean()), "counts": counts.tolist()}


def kl_to_uniform(counts) -> float:
    """``KL(q || uniform)`` in nats of the empirical mode distribution ``q = counts / sum(counts)`` over
    ``len(counts)`` modes (PacGAN's and VEEGAN's "KL"; 0 for exactly equal counts, ``log K`` for one mode)."""
    counts = np.asarray(counts, np.float64)
    q = counts / max(counts.sum(), 1.0)
    q = q[q > 0]
    return float(np.sum(q * np.log(q * len(counts))))


def mode_numbers(channel_digits: np.ndarray, num_digits: int = 10) -> np.ndarray:
    """The mode of each Stacked MNIST image from the digit read in each channel, ``channel_digits (N, C)``: its
    digits as a base-``num_digits`` number (``100 d_0 + 10 d_1 + d_2``, the dataset's label)."""
    channel_digits = np.asarray(channel_digits, np.int64)
    return channel_digits @ (num_digits ** np.arange(channel_digits.shape[1] - 1, -1, -1))


def stacked_modes(channel_digits: np.ndarray, num_digits: int = 10) -> dict:
    """Modes of Stacked MNIST images from the digit read in each channel, ``channel_digits (N, C)`` (each image's
    mode: :func:`mode_numbers`). Returns ``modes_hit`` (modes with at least one image), ``num_modes``
    (``num_digits ** C``), ``kl_to_uniform`` and ``counts`` (images per mode, a list)."""
    c = np.shape(channel_digits)[1]
    counts = np.bincount(mode_numbers(channel_digits, num_digits), minlength=num_digits ** c)
    return {"modes_hit": int((counts > 0).sum()), "num_modes": num_digits ** c,
            "kl_to_uniform": kl_to_uniform(counts), "counts": counts.tolist()}


def classify_channels(logits_fn, images: np.ndarray) -> np.ndarray:
    """The digit of every channel of ``images (N, H, W, C)`` in [0, 1] by ``logits_fn`` (single-channel images
    ``(M, H, W, 1)`` -> logits ``(M, classes)``, e.g. ``FeatureNetwork.logits`` of the MNIST network):
    ``(N, C)``."""
    images = np.asarray(images, np.float32)
    n, h, w, c = images.shape
    logits = logits_fn(np.moveaxis(images, -1, 1).reshape(n * c, h, w, 1))
    return np.asarray(logits).argmax(-1).reshape(n, c)
