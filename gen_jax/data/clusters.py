"""Cluster labels: k-means clusters of the training images stand in for class labels, so that a class-conditional
model becomes a model of p(x) that needs no labels, p(x) = sum_k pi_k p(x | k), with pi the clusters' share of
the training split. Self-conditioned GANs (Liu et al. 2020) re-cluster the discriminator's features during
training; here the clusters are fixed before training, from a PCA projection of the pixels, as Sage et al. 2018
conditioned a logo GAN on fixed clusters of image features.

Deterministic given ``seed``: the best of a few runs of greedy k-means++ seeding (Arthur & Vassilvitskii 2007)
from a NumPy generator and Lloyd's iterations; ``tests/test_data.py`` checks the inertia against
scikit-learn's ``KMeans``.
Every split is labelled by the nearest centre of the *training* split's fit (``data.clusters`` in the config,
:func:`gen_jax.train.loop.load_data`).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from gen_jax.data.cache import cache_dir, cached_arrays


@dataclasses.dataclass(frozen=True)
class ClusterFit:
    """The projection (``mean`` ``(D,)``, ``components`` ``(D, d)``) and the centres ``(k, d)`` in it."""

    mean: np.ndarray
    components: np.ndarray
    centres: np.ndarray

    def project(self, x: np.ndarray) -> np.ndarray:
        return (x.reshape(len(x), -1).astype(np.float64) - self.mean) @ self.components

    def assign(self, x: np.ndarray, chunk: int = 10_000) -> np.ndarray:
        """The index of each row's nearest centre (int32)."""
        return np.concatenate([nearest(self.project(x[i:i + chunk]), self.centres)
                               for i in range(0, len(x), chunk)]).astype(np.int32)


def nearest(z: np.ndarray, centres: np.ndarray) -> np.ndarray:
    d = (z ** 2).sum(1, keepdims=True) - 2 * z @ centres.T + (centres ** 2).sum(1)
    return d.argmin(1)


def kmeans(z: np.ndarray, k: int, seed: int = 0, restarts: int = 4, max_iters: int = 300, tol: float = 1e-4):
    """The best of ``restarts`` runs of greedy k-means++ seeding (``2 + log k`` candidates per centre, the one
    that lowers the potential most; Arthur & Vassilvitskii 2007, as scikit-learn) then Lloyd's iterations until
    no assignment changes (or the inertia moves by less than ``tol`` relative). Returns ``(centres (k, d),
    labels (n,), inertia)``; an emptied cluster is re-seeded at the worst-fitted point."""
    n = len(z)
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= n, got k={k} for n={n} points")
    rng = np.random.default_rng(seed)
    best = None
    for _ in range(restarts):
        run = _lloyd(z, _seed_plus_plus(z, k, rng), max_iters, tol)
        if best is None or run[2] < best[2]:
            best = run
    return best


def _seed_plus_plus(z: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    n, trials = len(z), 2 + int(np.log(k))
    centres = [z[rng.integers(n)]]
    d2 = ((z - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        picks = rng.choice(n, trials, p=d2 / total) if total > 0 else rng.integers(n, size=trials)
        cand = np.minimum(d2[None], ((z[None] - z[picks][:, None]) ** 2).sum(-1))  # (trials, n)
        j = int(cand.sum(1).argmin())
        centres.append(z[picks[j]])
        d2 = cand[j]
    return np.stack(centres)


def _lloyd(z: np.ndarray, centres: np.ndarray, max_iters: int, tol: float):
    k = len(centres)
    labels, inertia = None, np.inf
    for _ in range(max_iters):
        new = nearest(z, centres)
        dist = ((z - centres[new]) ** 2).sum(1)
        new_inertia = dist.sum()
        done = labels is not None and (np.array_equal(new, labels) or inertia - new_inertia <= tol * inertia)
        labels, inertia = new, new_inertia
        if done:
            break
        counts = np.bincount(labels, minlength=k)
        sums = (labels[None, :] == np.arange(k)[:, None]).astype(z.dtype) @ z
        for j in np.flatnonzero(counts == 0):  # an empty cluster takes the worst-fitted point
            far = dist.argmax()
            sums[j], counts[j], dist[far] = z[far], 1, 0.0
        centres = sums / counts[:, None]
    return centres, labels.astype(np.int32), float(inertia)


def fit_clusters(images: np.ndarray, k: int, seed: int = 0, dims: int = 50) -> ClusterFit:
    """k-means with ``k`` clusters on the top ``dims`` principal components of ``images`` (flattened)."""
    x = images.reshape(len(images), -1).astype(np.float64)
    mean = x.mean(0)
    xc = x - mean
    _, vectors = np.linalg.eigh(xc.T @ xc)  # ascending eigenvalues
    components = vectors[:, ::-1][:, :min(dims, x.shape[1])]
    # each component's sign fixed (its largest entry positive): the projection does not depend on the solver
    components = components * np.sign(components[np.abs(components).argmax(0), np.arange(components.shape[1])])
    centres, _, _ = kmeans(xc @ components, k, seed)
    return ClusterFit(mean, components, centres)


def cached_fit(train: np.ndarray, k: int, seed: int = 0, dims: int = 50, folder: str | Path | None = None,
               tag: str = "") -> ClusterFit:
    """:func:`fit_clusters` of the training images, computed once per (images, k, seed, dims) and kept in the
    cache (``$GEN_JAX_CACHE/clusters``): every split, process and evaluation of a run labels by one fit."""
    digest = hashlib.sha256(np.ascontiguousarray(train).tobytes()).hexdigest()[:16]
    path = Path(folder or cache_dir() / "clusters") / f"{tag}k{k}_s{seed}_d{dims}_{digest}.npz"
    return ClusterFit(**cached_arrays(path, lambda: dataclasses.asdict(fit_clusters(train, k, seed, dims))))


def relabel_by_clusters(split, train, k: int, seed: int = 0):
    """``split`` (an :class:`~gen_jax.data.images.ImageDataset`) with its labels replaced by the nearest of
    the ``k`` cluster centres fitted on ``train``'s images, and ``num_classes = k``."""
    fit = cached_fit(train.image, k, seed, tag=f"{train.name}_")
    return dataclasses.replace(split, label=fit.assign(split.image), num_classes=k)
