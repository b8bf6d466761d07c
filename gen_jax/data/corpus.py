"""A real text corpus that installs offline, as bags of words: the BSD ``fortune`` database.

Debian's ``fortunes`` package (``apt-get install -y fortunes``; BSD licence, Copyright (c) 1991 The Regents of
the University of California, see ``/usr/share/doc/fortunes/copyright``) holds about 15,000 quotations,
jokes, definitions and poems in 40-odd category files (computers, politics, science, food, startrek, ...),
one entry per ``%``-separated block. Each entry is a document; its file is its category (a label LDA never
sees, used to read the topics). The offensive collection (``off/``) is not read.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

from gen_jax.data.images import DatasetNotFoundError

FORTUNES_DIR = Path("/usr/share/games/fortunes")
_HINT = "Install it with `apt-get install -y fortunes` (the BSD fortune database)."
_TOKEN = re.compile(r"[a-z][a-z']+")


@dataclasses.dataclass(frozen=True)
class BagOfWords:
    """Documents as word counts ``(D, V)`` (float32) over ``vocab``, with each document's category index."""

    counts: np.ndarray
    vocab: list[str]
    category: np.ndarray
    categories: list[str]

    def __len__(self) -> int:
        return len(self.counts)

    def take(self, index) -> "BagOfWords":
        return dataclasses.replace(self, counts=self.counts[index], category=self.category[index])


def read_fortunes(directory: str | Path = FORTUNES_DIR) -> tuple[list[str], list[str]]:
    """``(documents, category of each)`` from the fortune files in ``directory``, in a fixed order."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetNotFoundError(f"fortunes: looked for {directory} and it does not exist. {_HINT}")
    docs, cats = [], []
    for path in sorted(p for p in directory.iterdir() if p.is_file() and not p.suffix):
        text = path.read_text(encoding="latin-1")
        for entry in re.split(r"^%\s*$", text, flags=re.M):
            if entry.strip():
                docs.append(entry.strip())
                cats.append(path.name)
    if not docs:
        raise DatasetNotFoundError(f"fortunes: no fortune files in {directory}. {_HINT}")
    return docs, cats


def bag_of_words(docs: list[str], *, vocab_size: int = 2000, min_tokens: int = 5, vocab: list[str] | None = None
                 ) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Counts of the ``vocab_size`` most frequent lower-case words (scikit-learn's English stop words and
    one-letter tokens dropped; ties broken alphabetically), or of the given ``vocab``. Returns ``(counts (D, V),
    vocab, kept)`` with ``kept`` the indices of the documents with at least ``min_tokens`` vocabulary words."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    tokenised = [[t.strip("'") for t in _TOKEN.findall(d.lower())] for d in docs]
    tokenised = [[t for t in ts if len(t) > 1 and t not in ENGLISH_STOP_WORDS] for ts in tokenised]
    if vocab is None:
        freq: dict[str, int] = {}
        for ts in tokenised:
            for t in ts:
                freq[t] = freq.get(t, 0) + 1
        vocab = [w for w, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))[:vocab_size]]
    index = {w: i for i, w in enumerate(vocab)}
    counts = np.zeros((len(docs), len(vocab)), np.float32)
    for d, ts in enumerate(tokenised):
        for t in ts:
            if t in index:
                counts[d, index[t]] += 1
    kept = np.flatnonzero(counts.sum(1) >= min_tokens)
    return counts[kept], vocab, kept


def load_fortunes(split: str, *, vocab_size: int = 2000, min_tokens: int = 5, test_fraction: float = 0.2,
                  directory: str | Path = FORTUNES_DIR) -> BagOfWords:
    """A fixed split (seed 0, independent of any run's seed) of the fortunes as bags of words; the vocabulary
    is chosen on the training documents only."""
    if split not in ("train", "test"):
        raise ValueError(f"the fortunes corpus has splits 'train' and 'test', not {split!r}")
    docs, cats = read_fortunes(directory)
    categories = sorted(set(cats))
    perm = np.random.default_rng(0).permutation(len(docs))
    n_test = int(round(test_fraction * len(docs)))
    train_idx, test_idx = np.sort(perm[n_test:]), np.sort(perm[:n_test])
    _, vocab, _ = bag_of_words([docs[i] for i in train_idx], vocab_size=vocab_size, min_tokens=min_tokens)
    idx = train_idx if split == "train" else test_idx
    counts, _, kept = bag_of_words([docs[i] for i in idx], vocab=vocab, min_tokens=min_tokens)
    category = np.array([categories.index(cats[i]) for i in idx[kept]], np.int32)
    return BagOfWords(counts, vocab, category, categories)
