"""The textbook's explicit-density models, fitted in closed form by maximum likelihood.

They explain everything after them: a density ``p(x)``, its log-likelihood on data, the maximum-likelihood
estimate, sampling, and (for the joint table) inference by Bayes' rule. None of them is trained by gradient
descent, so they are small immutable dataclasses of arrays with a ``fit`` constructor rather than Flax modules.

Vocabulary (the functions below the models):

* ``log_likelihood(log_prob, data) = sum_i log p(x_i)``: how probable the whole dataset is under the model.
* ``negative_log_likelihood(log_prob, data) = -mean_i log p(x_i)``: the per-example loss every explicit-density
  family minimises (nats); on held-out data it is the *test NLL*, and it is never below the data's entropy.
* Maximum likelihood = the parameters that maximise the log-likelihood of the training data; for the models
  here they have closed forms (the ``fit`` methods).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import numpy as np


def log_likelihood(log_prob: Callable[[np.ndarray], np.ndarray], data: np.ndarray) -> float:
    """``sum_i log p(x_i)`` in nats."""
    return float(np.sum(log_prob(data)))


def negative_log_likelihood(log_prob: Callable[[np.ndarray], np.ndarray], data: np.ndarray) -> float:
    """``-(1/N) sum_i log p(x_i)`` in nats per example (``inf`` if any example has zero probability)."""
    return float(-np.mean(log_prob(data)))


# ---------------------------------------------------------------------------------------------- box


@dataclasses.dataclass(frozen=True)
class BoxUniform:
    """Uniform density on an axis-aligned box. Its maximum-likelihood fit to points is their bounding box:
    the likelihood ``(1 / volume)^N`` grows as the box shrinks, until it would exclude a point."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def fit(cls, points: np.ndarray) -> "BoxUniform":
        points = np.asarray(points, np.float64)
        return cls(points.min(0), points.max(0))

    @property
    def log_volume(self) -> float:
        return float(np.sum(np.log(self.high - self.low)))

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        inside = np.all((x >= self.low) & (x <= self.high), axis=-1)
        return np.where(inside, -self.log_volume, -np.inf)

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        u = np.random.default_rng(seed).random((n, len(self.low)))
        return self.low + u * (self.high - self.low)


# ---------------------------------------------------------------------------------------------- Gaussian


@dataclasses.dataclass(frozen=True)
class GaussianMLE:
    """Full-covariance Gaussian; maximum likelihood gives the sample mean and the *biased* (1/N) covariance."""

    mean: np.ndarray
    covariance: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, *, jitter: float = 0.0) -> "GaussianMLE":
        x = np.asarray(x, np.float64)
        mean = x.mean(0)
        centred = x - mean
        cov = centred.T @ centred / len(x) + jitter * np.eye(x.shape[1])
        return cls(mean, cov)

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        chol = np.linalg.cholesky(self.covariance)
        sol = np.linalg.solve(chol, (x - self.mean).T)
        d = len(self.mean)
        return -0.5 * np.sum(sol**2, 0) - np.sum(np.log(np.diag(chol))) - 0.5 * d * math.log(2 * math.pi)

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        eps = np.random.default_rng(seed).standard_normal((n, len(self.mean)))
        return self.mean + eps @ np.linalg.cholesky(self.covariance).T

    def entropy(self) -> float:
        d = len(self.mean)
        return 0.5 * (d * (1 + math.log(2 * math.pi)) + np.linalg.slogdet(self.covariance)[1])


# ---------------------------------------------------------------------------------------------- joint table


def binary_image_index(images: np.ndarray) -> np.ndarray:
    """Row-major bits of binary images ``(N, ...)`` -> integer index into a ``2^D`` table (pixel 0 = MSB)."""
    bits = np.asarray(images).reshape(len(images), -1).astype(np.int64)
    d = bits.shape[1]
    if d > 62:
        raise ValueError(f"a table over {d} binary pixels has 2^{d} entries: too many to index")
    return bits @ (1 << np.arange(d - 1, -1, -1, dtype=np.int64))


def all_binary_images(num_pixels: int) -> np.ndarray:
    """Every binary image of ``num_pixels`` pixels, ``(2^D, D)``, in table order."""
    idx = np.arange(2**num_pixels, dtype=np.int64)
    return ((idx[:, None] >> np.arange(num_pixels - 1, -1, -1)) & 1).astype(np.uint8)


def joint_table_size(height: int, width: int, num_levels: int = 2) -> int:
    """Free parameters of an explicit joint table over ``height x width`` pixels: ``K^(HW) - 1``."""
    return num_levels ** (height * width) - 1


@dataclasses.dataclass(frozen=True)
class JointTable:
    """An explicit probability table over every binary image of a tiny grid: ``2^(H W)`` entries.

    The maximum-likelihood fit is counting (``p = count / N``); ``pseudo_count > 0`` adds Laplace smoothing so
    that unseen images keep non-zero probability (otherwise the test NLL is infinite whenever a test image
    never occurred in training - the table memorises).
    """

    probs: np.ndarray  # (2^D,)
    shape: tuple[int, int]

    @classmethod
    def fit(cls, images: np.ndarray, *, pseudo_count: float = 0.0) -> "JointTable":
        images = np.asarray(images)
        shape = images.shape[1:3]
        d = int(np.prod(shape))
        counts = np.bincount(binary_image_index(images), minlength=2**d).astype(np.float64) + pseudo_count
        return cls(counts / counts.sum(), tuple(shape))

    @property
    def num_pixels(self) -> int:
        return int(np.prod(self.shape))

    def log_prob(self, images: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.probs[binary_image_index(images)])

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        idx = np.random.default_rng(seed).choice(len(self.probs), size=n, p=self.probs)
        return all_binary_images(self.num_pixels)[idx].reshape(n, *self.shape)

    def conditional(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bayes' rule for inpainting: ``p(x_missing | x_observed) = p(x) / sum_{x' agreeing on observed} p(x')``.

        Args:
          image: one ``(H, W)`` binary image; only its observed pixels are read.
          mask: ``(H, W)``, 1 where observed.
        Returns:
          ``(candidates (M, H, W), probabilities (M,))``: every completion with non-zero probability.
        Raises:
          ValueError: the observed pixels have probability zero under the table.
        """
        table = all_binary_images(self.num_pixels)
        m = np.asarray(mask).reshape(-1).astype(bool)
        agree = np.all(table[:, m] == np.asarray(image).reshape(-1)[m], axis=1)
        p = self.probs * agree
        total = p.sum()
        if total == 0:
            raise ValueError("the observed pixels have probability 0 under this table (fit with pseudo_count > 0)")
        keep = p > 0
        return table[keep].reshape(-1, *self.shape), p[keep] / total

    def inpaint(self, image: np.ndarray, mask: np.ndarray, *, mode: str = "mean", seed: int = 0) -> np.ndarray:
        """Fills the missing pixels by the conditional ``mean`` (per-pixel probability of 1), the most probable
        completion (``map``) or a ``sample``; observed pixels are returned as given."""
        candidates, p = self.conditional(image, mask)
        if mode == "mean":
            fill = np.tensordot(p, candidates.astype(np.float64), axes=1)
        elif mode == "map":
            fill = candidates[np.argmax(p)].astype(np.float64)
        elif mode == "sample":
            fill = candidates[np.random.default_rng(seed).choice(len(p), p=p)].astype(np.float64)
        else:
            raise ValueError(f"unknown mode {mode!r}; use 'mean', 'map' or 'sample'")
        mask = np.asarray(mask, np.float64)
        return mask * image + (1 - mask) * fill


def tiny_binary_images(images: np.ndarray, size: int, *, threshold: float = 0.5) -> np.ndarray:
    """Shrinks ``(N, H, W[, 1])`` images in [0, 1] to ``size x size`` binary ones: crop to a multiple of
    ``size``, average each block, threshold. The joint table's data (2x2 and 3x3 MNIST)."""
    x = np.asarray(images, np.float64)
    if x.ndim == 4:
        x = x[..., 0]
    n, h, w = x.shape
    bh, bw = h // size, w // size
    top, left = (h - bh * size) // 2, (w - bw * size) // 2
    x = x[:, top:top + bh * size, left:left + bw * size].reshape(n, size, bh, size, bw).mean((2, 4))
    return (x > threshold).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class CharNGram:
    """Character n-gram model over token sequences (the baseline of the character-level Transformer).

    ``p(c | h)`` with interpolated absolute discounting (Ney, Essen & Kneser 1994): at each context length
    ``m = 0 .. order - 1``, ``p_m(c | h) = (max(n(h, c) - D, 0) + D * T(h) * p_{m-1}(c | h')) / n(h)`` where
    ``n`` counts training continuations, ``T(h)`` is the number of distinct ones and ``h'`` drops the oldest
    token; an unseen context falls back to ``p_{m-1}``, and ``p_{-1}`` is uniform. It sums to 1 over the
    ``num_tokens - 1`` predictable tokens for every context (token 0 is padding, never predicted).

    Rows of ``tokens`` follow :class:`gen_jax.data.TextDataset`: ``[newline, chars..., newline, pad...]``;
    every token after the first up to the row's padding is predicted, from at most ``order - 1`` predecessors.
    """

    order: int
    num_tokens: int
    discount: float
    counts: tuple  # counts[m]: {context tuple of length m: {token: count}}

    @classmethod
    def fit(cls, tokens: np.ndarray, order: int, num_tokens: int, *, discount: float = 0.75) -> "CharNGram":
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        if not 0.0 < discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {discount}")
        counts = [dict() for _ in range(order)]
        for seq in _unpadded(tokens):
            for i in range(1, len(seq)):
                for m in range(min(order - 1, i) + 1):
                    table = counts[m].setdefault(tuple(seq[i - m:i]), {})
                    table[seq[i]] = table.get(seq[i], 0) + 1
        return cls(order, num_tokens, discount, tuple(counts))

    def with_order(self, order: int) -> "CharNGram":
        """The same counts read as a lower-order model (fit once at the highest order, compare orders)."""
        if not 1 <= order <= self.order:
            raise ValueError(f"order must be in 1..{self.order}, got {order}")
        return dataclasses.replace(self, order=order, counts=self.counts[:order])

    def _prob(self, history: tuple, token: int) -> float:
        p = 1.0 / (self.num_tokens - 1)
        for m in range(min(self.order - 1, len(history)) + 1):
            table = self.counts[m].get(history[len(history) - m:])
            if table is None:
                break  # a longer context containing an unseen one is unseen too
            total = sum(table.values())
            p = (max(table.get(token, 0) - self.discount, 0.0) + self.discount * len(table) * p) / total
        return p

    def distribution(self, history) -> np.ndarray:
        """``p(. | history)`` over tokens ``1 .. num_tokens - 1`` (index ``t - 1`` holds token ``t``)."""
        history = tuple(int(t) for t in history)
        return np.array([self._prob(history, t) for t in range(1, self.num_tokens)])

    def log_prob(self, tokens: np.ndarray) -> np.ndarray:
        """Per-row log p (nats) of every predicted token."""
        out = []
        for seq in _unpadded(tokens):
            out.append(sum(math.log(self._prob(seq[:i], seq[i])) for i in range(1, len(seq))))
        return np.asarray(out)

    def sample(self, n: int, stop_token: int, max_len: int, seed: int = 0, temperature: float = 1.0
               ) -> list[tuple]:
        """n sequences after ``stop_token`` (the row start), each ending at the next ``stop_token`` or at
        ``max_len`` tokens; ``temperature`` rescales the log-probabilities."""
        rng = np.random.default_rng(seed)
        rows = []
        for _ in range(n):
            seq = (stop_token,)
            while len(seq) < max_len:
                p = self.distribution(seq[max(0, len(seq) - self.order + 1):]) ** (1.0 / temperature)
                seq += (int(rng.choice(len(p), p=p / p.sum())) + 1,)
                if seq[-1] == stop_token:
                    break
            rows.append(seq)
        return rows


def _unpadded(tokens: np.ndarray) -> list[tuple]:
    return [tuple(int(t) for t in row[row != 0]) for row in np.asarray(tokens)]
