"""Metric writers (JSON lines + TensorBoard event files) and the non-finite guard."""

from __future__ import annotations

import json
import math
from pathlib import Path


class NonFiniteError(FloatingPointError):
    """Training produced NaN or inf; the run stopped before checkpointing it."""


def check_finite(step: int, metrics: dict) -> None:
    bad = [k for k, v in metrics.items() if not math.isfinite(float(v))]
    if bad:
        raise NonFiniteError(
            f"non-finite {', '.join(f'{k}={float(metrics[k])}' for k in bad)} at step {step}; stopped before "
            f"writing a checkpoint, the last good one is kept (lower optim.learning_rate or set "
            f"optim.grad_clip_norm)")


class MetricWriter:
    """Appends ``{"step": s, ...}`` lines to ``<workdir>/metrics.jsonl`` and scalars to
    ``<workdir>/tensorboard``. Resuming at step ``s`` first drops records after ``s`` (they belong to the
    lost tail of the interrupted run), so the history reads as one run."""

    def __init__(self, workdir: str | Path, *, resume_step: int = 0):
        from tensorboardX import SummaryWriter

        self.path = Path(workdir) / "metrics.jsonl"
        if self.path.exists():
            kept = [l for l in self.path.read_text().splitlines() if l and json.loads(l)["step"] <= resume_step]
            self.path.write_text("".join(l + "\n" for l in kept))
        self._file = self.path.open("a")
        self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"), purge_step=resume_step + 1 or None)

    def write(self, step: int, metrics: dict) -> None:
        scalars = {k: float(v) for k, v in metrics.items()}
        self._file.write(json.dumps({"step": step, **scalars}) + "\n")
        self._file.flush()
        for k, v in scalars.items():
            self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._file.close()
        self._tb.close()


def read_metrics(workdir: str | Path) -> list[dict]:
    path = Path(workdir) / "metrics.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines() if l] if path.exists() else []
