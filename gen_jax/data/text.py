"""Character-level text: the English word list of Debian's ``wamerican`` package, one word per line.

The corpus is ``/usr/share/dict/american-english`` (``apt-get install wamerican``; SCOWL word list, Copyright
2000-2011 Kevin Atkinson, a permissive license: use, copy, modify, distribute and sell, with the notice kept;
see ``/usr/share/doc/wamerican/copyright``). Its 104,334 words (ASCII letters, apostrophes and a few accented
letters) are split once, by a fixed permutation (seed 1000), into train 80 % / valid 10 % / test 10 %.

Conventions (every character model here uses them):
- The text is the words joined by newlines, so a word is the character sequence ``"\\n" + word + "\\n"``: the
  leading newline is the context of its first letter, the trailing one ends the word and is predicted too.
- Bits per character = total NLL over every predicted character (the letters and the ending newline) divided
  by their count and by ln 2, the convention of text8 / enwik8 tables where the newline is a character.
- Token ids: 0 = padding (never predicted), 1 = newline, 2... = the corpus's other characters in code-point
  order. Sequences are padded to the longest word + 2.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path

import numpy as np

from gen_jax.data.images import DatasetNotFoundError

WORD_LIST = Path("/usr/share/dict/american-english")
TEXT_DATASETS = ("words",)
TEXT_SPLITS = {"train": (0.0, 0.8), "valid": (0.8, 0.9), "test": (0.9, 1.0)}
SPLIT_SEED = 1000
PAD, NEWLINE = 0, 1


@dataclasses.dataclass(frozen=True)
class CharVocabulary:
    """Characters <-> token ids (0 = padding, 1 = newline, then ``chars`` in order)."""

    chars: str

    @property
    def size(self) -> int:
        return len(self.chars) + 2

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {c: i + 2 for i, c in enumerate(self.chars)}

    def encode(self, word: str, length: int) -> np.ndarray:
        index = self._index
        unknown = sorted(set(word) - set(index))
        if unknown:
            raise ValueError(f"characters {unknown} of {word!r} are not in the vocabulary")
        ids = [NEWLINE] + [index[c] for c in word] + [NEWLINE]
        if len(ids) > length:
            raise ValueError(f"{word!r} needs {len(ids)} tokens, more than the sequence length {length}")
        return np.asarray(ids + [PAD] * (length - len(ids)), np.int32)

    def decode(self, tokens) -> str:
        """The word of a token sequence: the characters after the first newline, up to the next one."""
        out = []
        for t in list(np.asarray(tokens))[1:]:
            if t in (NEWLINE, PAD):
                break
            out.append(self.chars[int(t) - 2])
        return "".join(out)


@dataclasses.dataclass(frozen=True)
class TextDataset:
    """``tokens``: int32 ``(N, L)``, one padded word per row; ``arrays()`` feeds the batch iterator."""

    name: str
    split: str
    tokens: np.ndarray
    vocab: CharVocabulary

    @property
    def num_classes(self) -> int:
        return 0

    @property
    def seq_len(self) -> int:
        return int(self.tokens.shape[1])

    @property
    def num_dims(self) -> float:
        """Predicted characters per example, on average (so NLL / num_dims / ln 2 is bits per character)."""
        return self.num_characters / len(self)

    @property
    def num_characters(self) -> int:
        return int(np.sum(self.tokens[:, 1:] != PAD))

    def __len__(self) -> int:
        return len(self.tokens)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"tokens": self.tokens}

    def take(self, n: int) -> "TextDataset":
        return dataclasses.replace(self, tokens=self.tokens[:n])

    def words(self) -> list[str]:
        return [self.vocab.decode(t) for t in self.tokens]


def read_word_list(path: str | Path | None = None) -> list[str]:
    path = Path(path) if path else WORD_LIST
    if not path.is_file():
        raise DatasetNotFoundError(
            f"dataset 'words' not found: looked for the word list at {path}; install it with "
            "'apt-get install wamerican' (or set data.text_file to another one-word-per-line file)")
    words = [w for w in path.read_text(encoding="utf-8").split("\n") if w]
    if not words:
        raise DatasetNotFoundError(f"the word list {path} is empty")
    return words


def load_text_dataset(name: str, split: str, path: str | Path | None = None) -> TextDataset:
    """A split of a text dataset (see the module docstring for the corpus, split and conventions)."""
    if name not in TEXT_DATASETS:
        raise ValueError(f"unknown text dataset {name!r}; known: {list(TEXT_DATASETS)}")
    if split not in TEXT_SPLITS:
        raise ValueError(f"dataset {name!r} has no split {split!r}; it has {list(TEXT_SPLITS)}")
    words = read_word_list(path)
    vocab = CharVocabulary("".join(sorted(set("".join(words)) - {"\n"})))
    length = max(len(w) for w in words) + 2
    order = np.random.default_rng(SPLIT_SEED).permutation(len(words))
    lo, hi = TEXT_SPLITS[split]
    chosen = order[math.floor(lo * len(words)):math.floor(hi * len(words))]
    tokens = np.stack([vocab.encode(words[i], length) for i in chosen])
    return TextDataset(name, split, tokens, vocab)
