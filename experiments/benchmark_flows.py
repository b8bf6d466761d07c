"""Trains flows on the 2-D toys and tabulates test NLL against the true entropy:

``python experiments/benchmark_flows.py --flows spline,realnvp --toys ring8,checkerboard --steps 10000
--out runs/flows``

Each (flow, toy) pair is an ordinary training run of ``configs/flow_toy2d.py`` in ``<out>/<flow>_<toy>``
(resumable; its eval.json and pictures stay there); the table goes to ``<out>/table.json``.
"""

import json
import time
from pathlib import Path

from absl import app, flags, logging

from gen_jax.train import run
from gen_jax.train.config import load_config_file

_FLOWS = flags.DEFINE_list("flows", ["spline", "realnvp", "glow", "maf"], "Flow kinds.")
_TOYS = flags.DEFINE_list("toys", ["ring8", "grid25", "checkerboard", "two_moons", "spirals", "world_land"],
                          "2-D datasets.")
_STEPS = flags.DEFINE_integer("steps", 20000, "Training steps per run.")
_OUT = flags.DEFINE_string("out", "runs/flows", "Output folder.")

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "flow_toy2d.py"


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    out = Path(_OUT.value)
    table_path = out / "table.json"
    table = json.loads(table_path.read_text()) if table_path.exists() else {}
    for toy in _TOYS.value:
        for kind in _FLOWS.value:
            config = load_config_file(CONFIG)
            config.data.name, config.model.flow, config.train.steps = toy, kind, _STEPS.value
            t0 = time.time()
            out_run = run(config, out / f"{kind}_{toy}")
            res = out_run["eval"]
            row = {k: res[k] for k in ("nll", "true_entropy", "gap_nats", "mmd2", "mmd2_floor", "sliced_w2",
                                       "sliced_w2_floor", "modes_hit", "num_modes", "high_quality_fraction")
                   if k in res}
            row.update(steps=_STEPS.value, seconds=round(time.time() - t0, 1),
                       steps_per_sec=out_run["train"].get("steps_per_sec"))
            table[f"{kind}/{toy}"] = row
            out.mkdir(parents=True, exist_ok=True)
            table_path.write_text(json.dumps(table, indent=2))
            print(f"{kind}/{toy}: {json.dumps(row)}", flush=True)


if __name__ == "__main__":
    app.run(main)
