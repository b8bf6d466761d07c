"""Where gen_jax keeps what it derives once (prepared TFDS datasets, the downsampled land mask)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$GEN_JAX_CACHE`` or ``~/.cache/gen_jax``."""
    return Path(os.environ.get("GEN_JAX_CACHE", Path.home() / ".cache" / "gen_jax"))
