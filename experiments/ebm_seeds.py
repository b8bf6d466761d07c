"""Stability of an EBM config over seeds: each seed trained by the engine (``gen_jax.train.run``, its own
workdir), a divergence (the engine's non-finite stop) counted, the end-of-training evaluation collected, and the
energy gap ``E(data) - E(samples)`` of every seed over training in one plot (the CD loss alone does not show
convergence: the gap should settle near 0 as samples reach the data's energy).

``python experiments/ebm_seeds.py --config configs/ebm_toy2d.py --out runs/ebm_seeds_ring8 --seeds 5
[--config.data.name=grid25]``

Writes ``<out>/seed<k>/`` (a normal workdir: re-running resumes finished seeds at no cost), ``<out>/seeds.json``
(per seed: diverged, the evaluation, wall time), ``<out>/seeds.md`` and ``<out>/energy_gap.png``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import matplotlib
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

import gen_jax.train as gt
from gen_jax.train.metrics import NonFiniteError

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "An EBM config (configs/ebm_*.py[:variant]).",
                                          lock_config=True)
_OUT = flags.DEFINE_string("out", None, "Output directory (one workdir per seed inside).")
_SEEDS = flags.DEFINE_integer("seeds", 5, "Number of seeds (config.seed + 0, 1, ...).")
flags.mark_flags_as_required(["config", "out"])

REPORTED = ("nll", "gap_nats", "gap_nats_paired", "bits_per_dim", "mmd2", "mmd2_floor", "modes_hit", "high_quality_fraction")


def run_seeds(config, out: Path, seeds: int) -> list[dict]:
    rows = []
    for k in range(seeds):
        c = config.copy_and_resolve_references()
        c.seed = config.seed + k
        workdir = out / f"seed{k}"
        start = time.time()
        try:
            res = gt.run(c, workdir)
            row = {"seed": c.seed, "diverged": False, **{m: res["eval"][m] for m in REPORTED if m in res["eval"]}}
        except NonFiniteError as err:
            row = {"seed": c.seed, "diverged": True, "error": str(err).splitlines()[0]}
        row["wall_s"] = round(time.time() - start, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def plot_energy_gap(out: Path, seeds: int, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k in range(seeds):
        rows = [r for r in gt.read_metrics(out / f"seed{k}") if "energy_gap" in r]
        ax.plot([r["step"] for r in rows], [r["energy_gap"] for r in rows], lw=1, label=f"seed {k}")
    ax.axhline(0.0, color="k", lw=0.5)
    ax.set_xlabel("step")
    ax.set_ylabel("E(data) - E(samples)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "energy_gap.png", dpi=100)
    plt.close(fig)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    config, out = _CONFIG.value, Path(_OUT.value)
    if config.model.family != "ebm":
        raise ValueError(f"ebm_seeds.py takes an EBM config (model.family='ebm'), got {config.model.family!r}")
    out.mkdir(parents=True, exist_ok=True)
    rows = run_seeds(config, out, _SEEDS.value)
    (out / "seeds.json").write_text(json.dumps(rows, indent=1))
    ok = [r for r in rows if not r["diverged"]]
    lines = [f"{config.data.name}, loss {config.model.loss}: {len(ok)}/{len(rows)} seeds did not diverge", "",
             "| seed | " + " | ".join(REPORTED) + " | wall s |", "|---" * (len(REPORTED) + 2) + "|"]
    for r in rows:
        cells = [("diverged" if r["diverged"] else f"{r[m]:.4g}" if m in r else "") for m in REPORTED]
        lines.append(f"| {r['seed']} | " + " | ".join(cells) + f" | {r['wall_s']} |")
    for m in REPORTED:
        vals = [r[m] for r in ok if m in r]
        if vals:
            lines.append(f"- {m}: mean {np.mean(vals):.4g}, min {np.min(vals):.4g}, max {np.max(vals):.4g}")
    (out / "seeds.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot_energy_gap(out, len(rows), f"{config.data.name}, EBM ({config.model.loss}), {len(rows)} seeds")


if __name__ == "__main__":
    app.run(main)
