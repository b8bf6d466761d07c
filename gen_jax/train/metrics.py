"""Metric writers (JSON lines + TensorBoard event files) and the non-finite guard."""

from __future__ import annotations

import json
import math
from pathlib import Path

from gen_jax.train.workdir import write_text_atomic


class NonFiniteError(FloatingPointError):
    """Training produced NaN or inf; the run stopped before checkpointing it."""


def check_finite(step: int, metrics: dict, *, first_bad_step: int | None = None,
                 last_checkpoint: int | None = None) -> None:
    """Raises :class:`NonFiniteError` if ``first_bad_step`` is set or any metric is not finite, naming the
    first non-finite step (the step's metrics are fetched only every ``log_every`` steps; the step function
    records the first bad one on device) and what is kept."""
    bad = [k for k, v in metrics.items() if not math.isfinite(float(v))]
    if not bad and first_bad_step is None:
        return
    first = first_bad_step if first_bad_step is not None else step
    seen = (f"non-finite {', '.join(f'{k}={float(metrics[k])}' for k in bad)} at step {step}" if bad
            else f"finite metrics at step {step}")
    kept = (f"the last checkpoint, step {last_checkpoint}, is kept" if last_checkpoint is not None
            else "no checkpoint had been written")
    raise NonFiniteError(
        f"training became non-finite at step {first} ({seen}); stopped before writing a checkpoint, {kept} "
        f"(lower optim.learning_rate or set optim.grad_clip_norm)")


def _parse_lines(path: Path) -> list[dict]:
    """The records of a metrics file; a torn last line (a crash or full disk mid-write) is dropped, any other
    unreadable line is an error naming the file and line."""
    lines = [l for l in path.read_text().splitlines() if l.strip()]
    out = []
    for i, line in enumerate(lines):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:
                print(f"{path}: dropping a torn last line ({line[:60]!r})", flush=True)
                continue
            raise ValueError(f"{path} line {i + 1} is not JSON ({e}); fix or delete that line") from e
    return out


class MetricWriter:
    """Appends ``{"step": s, ...}`` lines to ``<workdir>/metrics.jsonl`` and scalars to
    ``<workdir>/tensorboard``. Resuming at step ``s`` first drops records after ``s`` (they belong to the
    lost tail of the interrupted run), so the history reads as one run."""

    def __init__(self, workdir: str | Path, *, resume_step: int = 0):
        from tensorboardX import SummaryWriter

        self.path = Path(workdir) / "metrics.jsonl"
        if self.path.exists():
            kept = [r for r in _parse_lines(self.path) if r["step"] <= resume_step]
            write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self._file = self.path.open("a")
        self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"), purge_step=resume_step + 1 or None)

    def write(self, step: int, metrics: dict) -> None:
        scalars = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) or hasattr(v, "dtype")}
        self._file.write(json.dumps({"step": step, **scalars}) + "\n")
        self._file.flush()
        for k, v in scalars.items():
            self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._file.close()
        self._tb.close()


def read_metrics(workdir: str | Path) -> list[dict]:
    path = Path(workdir) / "metrics.jsonl"
    return _parse_lines(path) if path.exists() else []
