"""Mode coverage of samples from a Gaussian mixture: the standard mode-collapse diagnostic for the 2-D ring
and grid (Metz et al. 2017, "Unrolled GANs"; Srivastava et al. 2017, VEEGAN)."""

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
