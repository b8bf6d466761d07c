"""Where gen_jax keeps what it derives once (prepared TFDS datasets, the downsampled land mask, feature
networks), and the two habits that let several processes share that cache: derive under a lock (the first
process builds, the others wait and then read its result) and write by rename (a reader never sees half a file).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    """``$GEN_JAX_CACHE`` or ``~/.cache/gen_jax``."""
    return Path(os.environ.get("GEN_JAX_CACHE", Path.home() / ".cache" / "gen_jax"))


@contextlib.contextmanager
def locked(path: str | Path):
    """Holds an exclusive ``flock`` on ``<path>.lock`` (created, with its folder, if missing) for the block:
    processes (the ranks of a job on one host, test workers) deriving the same cache entry take turns, so the
    entry is built once and nobody reads or writes it half-made. Check for the entry again inside the block."""
    lock = Path(str(path) + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_atomically(path: str | Path, data: bytes | str) -> None:
    """Writes ``data`` (text or bytes) to a temporary file beside ``path``, flushes it to disk and renames it
    over ``path``: readers see the old content or the new, never a torn file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w" if isinstance(data, str) else "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def savez_atomically(path: str | Path, *, compressed: bool = False, **arrays) -> None:
    """``np.savez`` (or ``savez_compressed``) of ``arrays`` to ``path`` (ending in ``.npz``) by rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
    os.replace(tmp, path)
