"""Out-of-distribution detection from an anomaly score: AUROC, AUPRC and the typicality score.

Convention: a *higher* score means *more anomalous*, and the out-of-distribution examples are the positive
class. For a likelihood model the score is ``-log p(x)``; the typicality test (Nalisnick et al. 2019) scores
``|-log p(x) - H|`` with ``H`` the model's mean NLL on its training data, which also flags inputs that are
*too likely* (the known failure of raw likelihood on MNIST-like pairs).
"""

from __future__ import annotations

import numpy as np


def _labels_scores(in_scores, out_scores):
    s = np.concatenate([np.asarray(in_scores, np.float64), np.asarray(out_scores, np.float64)])
    y = np.concatenate([np.zeros(len(in_scores)), np.ones(len(out_scores))])
    if not np.all(np.isfinite(s)):
        raise ValueError("anomaly scores must be finite")
    return y, s


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Area under the ROC curve = P(score_out > score_in) + P(tie) / 2 (Mann-Whitney U, ties averaged)."""
    import scipy.stats  # here, not at the top: it takes ~0.7 s to import, and every entry point imports this module

    y, s = _labels_scores(in_scores, out_scores)
    ranks = scipy.stats.rankdata(s)
    n_out, n_in = int(y.sum()), int(len(y) - y.sum())
    return float((ranks[y == 1].sum() - n_out * (n_out + 1) / 2) / (n_out * n_in))


def auprc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Area under the precision-recall curve as average precision, ``sum_n (R_n - R_{n-1}) P_n`` over the
    distinct score thresholds (scikit-learn's ``average_precision_score`` definition)."""
    y, s = _labels_scores(in_scores, out_scores)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(y)[last_of_tie]
    precision = tp / (last_of_tie + 1)
    recall = tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def typicality_score(nll: np.ndarray, train_mean_nll: float) -> np.ndarray:
    """``|nll - train_mean_nll|`` per example: distance from the typical set's NLL level."""
    return np.abs(np.asarray(nll, np.float64) - train_mean_nll)


def detection_report(in_nll: np.ndarray, out_nll: np.ndarray, train_mean_nll: float) -> dict:
    """AUROC/AUPRC of the NLL score and of the typicality score."""
    t_in, t_out = typicality_score(in_nll, train_mean_nll), typicality_score(out_nll, train_mean_nll)
    return {"nll": {"auroc": auroc(in_nll, out_nll), "auprc": auprc(in_nll, out_nll)},
            "typicality": {"auroc": auroc(t_in, t_out), "auprc": auprc(t_in, t_out)},
            "num_in": len(in_nll), "num_out": len(out_nll), "train_mean_nll": float(train_mean_nll),
            "mean_nll_in": float(np.mean(in_nll)), "mean_nll_out": float(np.mean(out_nll))}


def classifier_anomaly_scores(logits_fn, x) -> dict:
    """JEM's three anomaly scores of inputs ``x`` for a classifier read as an energy (Grathwohl et al. 2020,
    Table 3), each higher = more anomalous:

    * ``energy``: ``-logsumexp_y f(x)[y]`` = ``-log p(x)`` up to the constant ``log Z``;
    * ``max_softmax``: ``-max_y p(y | x)`` (the classifier's confidence, Hendrycks & Gimpel 2017);
    * ``grad_norm``: ``||d log p(x) / dx||`` per example (JEM's "approximate mass": in-distribution inputs sit
      where the density is flat).

    ``logits_fn`` maps a batch to ``(batch, classes)`` logits; returns arrays of shape ``(batch,)`` (jittable).
    """
    import jax
    import jax.numpy as jnp

    def total_log_p(v):
        logits = logits_fn(v)
        lp = jax.nn.logsumexp(logits, -1)
        return jnp.sum(lp), (lp, logits)

    # one forward pass for the scores and the gradient (per example: examples do not interact)
    (_, (lp, logits)), grad = jax.value_and_grad(total_log_p, has_aux=True)(x)
    return {"energy": -lp, "max_softmax": -jnp.max(jax.nn.softmax(logits, -1), -1),
            "grad_norm": jnp.sqrt(jnp.sum(grad.reshape(len(grad), -1) ** 2, -1))}
