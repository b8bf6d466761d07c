"""Topics and factors of a real corpus: LDA and matrix factorisation on the BSD fortune database
(``apt-get install -y fortunes``, BSD licence; :mod:`gen_jax.data.corpus`).

``python experiments/topics.py --workdir runs/topics``

* LDA (batch variational EM, :mod:`gen_jax.models.factorization`) for each ``--num_topics``: the training
  bound per word at every EM step, the test documents' perplexity by the bound (an upper bound), their
  document-completion perplexity (topic proportions from a random half of each document's words, the other half
  predicted), each beside the unigram model's (the words' add-one training frequencies), fit time, and each topic's top words with the fortune category
  that holds most of its weight (LDA never sees the categories).
* Matrix factorisation of two matrices of the training documents, each with 10 % of its entries held out: the
  document-term ``log(1 + count)`` matrix and the word co-occurrence matrix ``log(1 + documents holding both
  words)``: column means, truncated SVD of the mean-filled matrix, and probabilistic MF (ALS) at several ranks;
  RMSE on all held-out entries and on the held-out non-zero ones.

Writes ``topics.json`` and ``topics.md``.
"""

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from gen_jax.data.corpus import load_fortunes
from gen_jax.models import factorization as fz

_WORKDIR = flags.DEFINE_string("workdir", "runs/topics", "Output folder.")
_TOPICS = flags.DEFINE_list("num_topics", ["10", "20", "40"], "Topic counts to fit.")
_VOCAB = flags.DEFINE_integer("vocab_size", 2000, "Vocabulary (most frequent training words).")
_EM = flags.DEFINE_integer("em_iters", 40, "Variational EM steps.")
_ESTEP = flags.DEFINE_integer("e_step_iters", 30, "Fixed-point iterations per E-step.")
_ALPHA = flags.DEFINE_float("alpha", 0.0, "Documents' Dirichlet prior (0 = 1 / K).")
_ETA = flags.DEFINE_float("eta", 1.0, "Topics' Dirichlet prior (0 = 1 / K, which overfits the short fortunes: "
                           "document completion 1248-1449 against 1037-1068 with 1.0, BENCHMARKS).")
_SKIP_MF = flags.DEFINE_bool("skip_mf", False, "Fit LDA only.")
_RANKS = flags.DEFINE_list("ranks", ["5", "10", "20", "40"], "Matrix factorisation ranks.")
_PMF_REG = flags.DEFINE_float("pmf_reg", 5.0, "PMF's prior precision ratio (ridge penalty).")
_MAX_DOCS = flags.DEFINE_integer("max_docs", 0, "Use at most this many documents per split (0 = all).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed.")


def matrix_factorisation(counts):
    """Held-out RMSE of column means, truncated SVD and PMF on two matrices of the training documents:
    ``(results, markdown lines)``."""
    binary = (counts > 0).astype(jnp.float32)
    cooc = binary.T @ binary
    matrices = {"document-term log(1 + count)": jnp.log1p(counts),
                "word co-occurrence log(1 + documents with both words)": jnp.log1p(cooc * (1 - jnp.eye(len(cooc))))}
    rng = np.random.default_rng(_SEED.value)
    res, lines = {}, []
    for matrix_name, x in matrices.items():
        held = (rng.random(x.shape) < 0.1).astype(np.float32)
        mask, held_j = jnp.asarray(1 - held), jnp.asarray(held)
        nonzero_held = held_j * (x > 0)
        fill, _ = fz.column_mean_fill(x, mask)
        table = res[matrix_name] = {
            "shape": list(x.shape), "nonzero_fraction": float(jnp.mean(x > 0)),
            "column_means": {"rmse": float(fz.masked_rmse(x, fill, held_j)),
                             "rmse_nonzero": float(fz.masked_rmse(x, fill, nonzero_held))}}
        lines += [f"## Matrix factorisation: {matrix_name}, {x.shape[0]} x {x.shape[1]} "
                  f"({table['nonzero_fraction']:.1%} non-zero), 10 % of entries held out", "",
                  "| model | rank | held-out RMSE | on non-zero entries | fit s |", "| --- | --- | --- | --- | --- |",
                  f"| column means | - | {table['column_means']['rmse']:.4f} | "
                  f"{table['column_means']['rmse_nonzero']:.4f} | - |"]
        for r in map(int, _RANKS.value):
            t0 = time.perf_counter()
            svd = jax.block_until_ready(fz.truncated_svd_reconstruction(x, mask, r))
            svd_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            params, _ = fz.fit_pmf(jax.random.key(_SEED.value), x, mask, r, reg=_PMF_REG.value, num_iters=15)
            pmf = jax.block_until_ready(fz.pmf_reconstruction(params))
            pmf_s = time.perf_counter() - t0
            for name, est, sec in (("truncated SVD", svd, svd_s), ("PMF (ALS)", pmf, pmf_s)):
                row = {"rmse": float(fz.masked_rmse(x, est, held_j)),
                       "rmse_nonzero": float(fz.masked_rmse(x, est, nonzero_held)), "fit_seconds": sec}
                table[f"{name} rank {r}"] = row
                lines.append(f"| {name} | {r} | {row['rmse']:.4f} | {row['rmse_nonzero']:.4f} | {sec:.1f} |")
            print(f"MF {matrix_name} rank {r}: SVD {table[f'truncated SVD rank {r}']['rmse']:.4f}, PMF "
                  f"{table[f'PMF (ALS) rank {r}']['rmse']:.4f}", flush=True)
        lines.append("")
    return res, lines


def main(_):
    out = Path(_WORKDIR.value)
    out.mkdir(parents=True, exist_ok=True)
    train, test = load_fortunes("train", vocab_size=_VOCAB.value), load_fortunes("test", vocab_size=_VOCAB.value)
    if _MAX_DOCS.value:
        train, test = train.take(slice(0, _MAX_DOCS.value)), test.take(slice(0, _MAX_DOCS.value))
    counts, test_counts = jnp.asarray(train.counts), jnp.asarray(test.counts)
    res = {"corpus": "BSD fortunes (Debian package 'fortunes')", "train_docs": len(train), "test_docs": len(test),
           "vocab_size": len(train.vocab), "train_words": float(train.counts.sum()),
           "test_words": float(test.counts.sum()), "lda": {}, "mf": {}}
    freq = (train.counts.sum(0) + 1) / (train.counts.sum() + len(train.vocab))
    res["unigram_test_perplexity"] = float(np.exp(-(test.counts * np.log(freq)).sum() / test.counts.sum()))
    observed, held_out = fz.split_counts(jax.random.key(_SEED.value + 1), test_counts)
    res["unigram_completion_perplexity"] = float(np.exp(-(np.asarray(held_out) * np.log(freq)).sum()
                                                        / float(held_out.sum())))
    lines = [f"# Topics of the fortunes ({len(train)} train / {len(test)} test documents, vocabulary "
             f"{len(train.vocab)})", "",
             f"unigram (add-one training frequencies): test perplexity {res['unigram_test_perplexity']:.1f}; on "
             f"the held-out half of each test document {res['unigram_completion_perplexity']:.1f}", ""]
    for k in map(int, _TOPICS.value):
        t0 = time.perf_counter()
        params, history = fz.fit_lda(jax.random.key(_SEED.value), counts, k, num_iters=_EM.value,
                                     e_step_iters=_ESTEP.value, alpha=_ALPHA.value or None, eta=_ETA.value or None)
        history = np.asarray(history)
        seconds = time.perf_counter() - t0
        perplexity = float(fz.lda_perplexity(params, test_counts))
        train_perplexity = float(fz.lda_perplexity(params, counts))
        completion = float(fz.lda_completion_perplexity(params, observed, held_out))
        gamma, _ = fz.lda_e_step(counts, fz.dirichlet_expectation(params["lambda"]), params["alpha"], 100)
        theta = np.asarray(gamma / gamma.sum(1, keepdims=True))
        by_category = np.zeros((k, len(train.categories)))
        np.add.at(by_category.T, train.category, theta)
        share = by_category / by_category.sum(1, keepdims=True)
        words = fz.top_words(params, train.vocab, 10)
        topics = [{"words": words[j], "category": train.categories[int(share[j].argmax())],
                   "category_share": float(share[j].max())} for j in range(k)]
        res["lda"][k] = {"alpha": float(params["alpha"]), "eta": float(params["eta"]), "test_perplexity": perplexity, "train_perplexity": train_perplexity,
                         "completion_perplexity": completion,
                         "fit_seconds": seconds, "bound_per_word": history.tolist(),
                         "bound_largest_decrease": float(max(0.0, -np.diff(history).min())), "topics": topics}
        print(f"LDA K={k}: test perplexity (bound) {perplexity:.1f} (train {train_perplexity:.1f}, unigram "
              f"{res['unigram_test_perplexity']:.1f}); document completion {completion:.1f} (unigram "
              f"{res['unigram_completion_perplexity']:.1f}), {seconds:.1f} s", flush=True)
        lines += [f"## K = {k}: test perplexity by the bound {perplexity:.1f} (train {train_perplexity:.1f}); "
                  f"document completion {completion:.1f}; fit {seconds:.0f} s", ""] + [f"{j:2d}. [{t['category']} {t['category_share']:.0%}] " + " ".join(t["words"])
                         for j, t in enumerate(topics)] + [""]
    if not _SKIP_MF.value:
        res["mf"], mf_lines = matrix_factorisation(counts)
        lines += mf_lines
    (out / "topics.json").write_text(json.dumps(res, indent=2))
    (out / "topics.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
