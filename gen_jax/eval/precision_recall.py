"""Improved precision and recall of generative models (Kynkaanniemi et al. 2019).

Each set's manifold is the union of balls around its points, each ball's radius the distance to the point's
k-th nearest neighbour within its own set. Precision: the fraction of generated points inside the real
manifold (quality). Recall: the fraction of real points inside the generated manifold (coverage).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


@jax.jit
def _sq_dists(a, b):
    return jnp.maximum(jnp.sum(a**2, 1)[:, None] + jnp.sum(b**2, 1)[None, :] - 2.0 * a @ b.T, 0.0)


def _blocks(n: int, size: int):
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def knn_radii(points: np.ndarray, k: int, block: int = 1000) -> np.ndarray:
    """Distance from each point to its k-th nearest neighbour among the others (``(n,)``)."""
    p = jnp.asarray(points, jnp.float32)
    out = []
    for s, e in _blocks(len(p), block):
        d = _sq_dists(p[s:e], p)
        out.append(np.sqrt(np.asarray(jnp.sort(d, axis=1)[:, k])))  # column 0 is the point itself
    return np.concatenate(out)


def _inside(queries: np.ndarray, points: np.ndarray, radii: np.ndarray, block: int = 1000) -> np.ndarray:
    q, p, r2 = jnp.asarray(queries, jnp.float32), jnp.asarray(points, jnp.float32), jnp.asarray(radii**2)
    out = []
    for s, e in _blocks(len(q), block):
        out.append(np.asarray(jnp.any(_sq_dists(q[s:e], p) <= r2[None, :], axis=1)))
    return np.concatenate(out)


def precision_recall(real: np.ndarray, generated: np.ndarray, *, k: int = 3) -> dict[str, float]:
    """``{"precision", "recall", "k"}`` of ``generated`` against ``real`` features (each ``(n, d)``)."""
    if len(real) <= k or len(generated) <= k:
        raise ValueError(f"precision_recall needs more than k={k} points on each side")
    precision = _inside(generated, real, knn_radii(real, k)).mean()
    recall = _inside(real, generated, knn_radii(generated, k)).mean()
    return {"precision": float(precision), "recall": float(recall), "k": k}
