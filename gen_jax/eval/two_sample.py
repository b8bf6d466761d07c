"""Two-sample statistics for 2-D and tabular data: kernel MMD and sliced Wasserstein, with their noise floor.

A distance between a model's samples and the data means little without the same distance between two
independent samples of the data (the *noise floor*): a model "matches" the data when its distance is at the
floor. :func:`two_sample_report` returns both, computed with the same sample sizes and kernel bandwidths.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _sq_dists(x: jax.Array, y: jax.Array) -> jax.Array:
    d = jnp.sum(x**2, 1)[:, None] + jnp.sum(y**2, 1)[None, :] - 2.0 * x @ y.T
    return jnp.maximum(d, 0.0)


def median_bandwidth(reference: np.ndarray, max_points: int = 2000) -> float:
    """The median pairwise distance of (the first ``max_points`` of) ``reference``: the usual RBF scale.
    It depends on the reference alone, so every model compared on the same reference gets the same kernel."""
    r = jnp.asarray(reference[:max_points], jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
    d = np.sqrt(np.asarray(_sq_dists(r, r)))
    return float(np.median(d[np.triu_indices(len(r), k=1)]))


@jax.jit
def _mmd_terms(x, y, bandwidths):
    def mean_off_diagonal(k):
        n = k.shape[0]
        return (jnp.sum(k) - jnp.trace(k)) / (n * (n - 1))

    dxx, dyy, dxy = _sq_dists(x, x), _sq_dists(y, y), _sq_dists(x, y)

    def one(h):
        g = -0.5 / h**2
        return (mean_off_diagonal(jnp.exp(g * dxx)) + mean_off_diagonal(jnp.exp(g * dyy))
                - 2.0 * jnp.mean(jnp.exp(g * dxy)))

    return jax.vmap(one)(bandwidths)


def mmd_rbf(x: np.ndarray, y: np.ndarray, *, bandwidths: Sequence[float]) -> dict[str, float]:
    """Unbiased estimate of the squared kernel MMD (Gretton et al. 2012, eq. 3) with RBF kernels
    ``k(a, b) = exp(-|a - b|^2 / (2 h^2))``, one per bandwidth ``h``.

    Args:
      x: ``(m, d)`` samples, m >= 2.
      y: ``(n, d)`` samples, n >= 2.
      bandwidths: the ``h`` values; pass the same ones to every comparison (e.g. multiples of
        :func:`median_bandwidth` of the reference).
    Returns:
      ``{"mmd2_h=<h>": value, ..., "mmd2_sum": sum over bandwidths}`` (the sum is the MMD of the sum kernel).
      Unbiased, so it can be slightly negative when the distributions are equal.
    """
    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"mmd_rbf needs (m, d) and (n, d) arrays, got {x.shape} and {y.shape}")
    if len(x) < 2 or len(y) < 2:
        raise ValueError("mmd_rbf needs at least two samples on each side")
    values = np.asarray(_mmd_terms(jnp.asarray(x), jnp.asarray(y), jnp.asarray(bandwidths, jnp.float32)),
                        np.float64)
    out = {f"mmd2_h={h:.4g}": float(v) for h, v in zip(bandwidths, values)}
    out["mmd2_sum"] = float(values.sum())
    return out


def _quantile_indices(m: int, n: int):
    """Exact 1-D W_p between empirical measures of sizes m and n: both quantile functions are steps, constant
    between consecutive points of {i/m} U {j/n}; returns each interval's width and the two sorted indices."""
    levels = np.union1d(np.arange(1, m + 1) / m, np.arange(1, n + 1) / n)
    widths = np.diff(levels, prepend=0.0)
    mid = levels - widths / 2
    ix = np.minimum(np.floor(mid * m).astype(int), m - 1)
    iy = np.minimum(np.floor(mid * n).astype(int), n - 1)
    return widths, ix, iy


def sliced_wasserstein(x: np.ndarray, y: np.ndarray, *, num_projections: int = 500, p: int = 2,
                       seed: int = 0) -> float:
    """Sliced p-Wasserstein distance (Rabin et al. 2011; Bonneel et al. 2015):
    ``(E_theta W_p^p(theta . X, theta . Y))^(1/p)`` over directions uniform on the unit sphere, Monte Carlo
    over ``num_projections`` directions fixed by ``seed``; each 1-D W_p is exact (sizes may differ)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"sliced_wasserstein needs (m, d) and (n, d) arrays, got {x.shape} and {y.shape}")
    theta = np.random.default_rng(seed).standard_normal((x.shape[1], num_projections))
    theta /= np.linalg.norm(theta, axis=0, keepdims=True)
    px, py = np.sort(x @ theta, axis=0), np.sort(y @ theta, axis=0)
    widths, ix, iy = _quantile_indices(len(x), len(y))
    wpp = widths @ np.abs(px[ix] - py[iy]) ** p
    return float(np.mean(wpp) ** (1.0 / p))


def two_sample_report(samples: np.ndarray, reference: np.ndarray, reference_2: np.ndarray, *,
                      bandwidth_scales: Sequence[float] = (0.25, 0.5, 1.0, 2.0), num_projections: int = 500,
                      seed: int = 0) -> dict:
    """MMD^2 and sliced W2 of ``samples`` against ``reference``, and the same statistics between ``reference``
    and an independent ``reference_2`` of the same size as ``samples`` (the noise floor).

    Bandwidths are ``bandwidth_scales`` times the median pairwise distance of ``reference``; all are returned.
    """
    if len(reference_2) != len(samples):
        raise ValueError(f"the noise floor needs reference_2 of the samples' size ({len(samples)}), "
                         f"got {len(reference_2)}")
    h0 = median_bandwidth(reference)
    bandwidths = [s * h0 for s in bandwidth_scales]
    return {
        "num_samples": len(samples), "num_reference": len(reference), "bandwidths": bandwidths,
        "mmd": mmd_rbf(samples, reference, bandwidths=bandwidths),
        "sliced_w2": sliced_wasserstein(samples, reference, num_projections=num_projections, seed=seed),
        "noise_floor": {
            "mmd": mmd_rbf(reference_2, reference, bandwidths=bandwidths),
            "sliced_w2": sliced_wasserstein(reference_2, reference, num_projections=num_projections, seed=seed),
        },
    }
