"""Where gen_jax keeps what it derives once (prepared TFDS datasets, the downsampled land mask, feature
networks), and the two habits that let several processes share that cache: derive under a lock (the first
process builds, the others wait and then read its result) and write by rename (a reader never sees half a file).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Callable

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


def cached_arrays(path: str | Path, build: Callable[[], dict[str, np.ndarray]], *,
                  compressed: bool = False) -> dict[str, np.ndarray]:
    """The arrays of the cache entry ``path`` (an ``.npz``), built by ``build()`` and written by rename the first
    time, under :func:`locked`: check, lock, check again, build, write. Every process sharing the cache reads the
    one result; a process that finds the entry made never takes the lock."""
    path = Path(path)
    if not path.exists():
        with locked(path):
            if not path.exists():
                savez_atomically(path, compressed=compressed, **build())
    try:
        with np.load(path) as arrays:
            return {name: arrays[name] for name in arrays.files}
    except Exception as e:  # truncated or overwritten by something else: say which file, keep it for a look
        raise CacheEntryError(f"the cache entry {path} cannot be read ({type(e).__name__}: {e}); delete that file "
                              "and it is built again") from e


class CacheEntryError(ValueError):
    """A cache entry exists but cannot be read."""
