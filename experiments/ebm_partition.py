"""How good is AIS's log Z? On a 2-D EBM workdir the normaliser is also a quadrature: ``exp(-E)`` summed on a
fine grid over a box far wider than the data. This script reports the test NLL with ``log Z`` from the
quadrature (the model's NLL up to the grid's error) beside the AIS estimates for several settings (each a
stochastic lower bound on log Z, so an NLL estimate biased low), NCE's learned log-normaliser where the run has
one, and the true density's NLL of the same test points. On an image workdir there is no quadrature: the AIS
estimates for growing numbers of temperatures show whether they have converged (bits/dim beside nats).

``python experiments/ebm_partition.py --workdir runs/ebm_ring8 [--ais 1000x1000,4000x1000] [--seeds 3]``
"""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

import gen_jax.train as gt

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained 2-D EBM workdir.")
_AIS = flags.DEFINE_list("ais", ["1000x1000", "4000x1000"], "AIS settings, temperatures x chains.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "AIS runs per setting (their keys differ).")
_BOX = flags.DEFINE_float("box", 8.0, "Quadrature over [-box, box]^2 in data units.")
_GRID = flags.DEFINE_integer("grid", 2000, "Quadrature points per axis.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    config, family, state, test = gt.restore_run(_WORKDIR.value, "test")
    if config.model.family != "ebm":
        raise ValueError("ebm_partition.py takes an EBM workdir")
    params = state.eval_params
    if not hasattr(test, "x"):  # images
        batch = {"image": jnp.asarray(test.image)}
        out = {"workdir": _WORKDIR.value, "data": test.name, "loss": config.model.loss}
        _ais_rows(family, params, batch, test.num_dims, out)
        print(json.dumps(out, indent=1))
        return
    if test.x.shape[1] != 2:
        raise ValueError("the quadrature is 2-D only")
    x = jnp.asarray(test.x)
    energy = lambda v: np.asarray(family.anomaly_score(params, {"x": jnp.asarray(v, jnp.float32)}, None))
    g = np.linspace(-_BOX.value, _BOX.value, _GRID.value)
    gx, gy = np.meshgrid(g, g)
    pts = np.stack([gx.ravel(), gy.ravel()], 1)
    e = np.concatenate([energy(pts[i:i + 250_000]) for i in range(0, len(pts), 250_000)])
    log_z = float(np.log(np.sum(np.exp(-(e - e.min())))) - e.min() + 2 * np.log(g[1] - g[0]))  # log ∫ exp(-E) dx
    mean_e = float(np.mean(energy(test.x)))
    out = {"workdir": _WORKDIR.value, "data": test.name, "loss": config.model.loss,
           "true_nll_same_points": -float(np.mean(test.toy.log_prob(np.asarray(test.x)))),
           "true_entropy": test.toy.entropy(), "nll_quadrature": mean_e + log_z,
           "quadrature": f"{_GRID.value}^2 points on [-{_BOX.value}, {_BOX.value}]^2"}
    if config.model.loss == "nce":  # NCE's own estimate of log Z_f (0 if its model were self-normalised)
        out["nce_log_normalizer"] = float(params["c"])
    _ais_rows(family, params, {"x": x}, 2, out)
    print(json.dumps(out, indent=1))


def _ais_rows(family, params, batch, num_dims, out):
    for setting in _AIS.value:
        steps, chains = (int(v) for v in setting.split("x"))
        vals, start = [], time.time()
        for s in range(_SEEDS.value):
            lp = family.log_prob(params, batch, jax.random.key(100 + s), num_chains=chains, num_steps=steps)
            vals.append(-float(jnp.mean(lp)))
        out[f"nll_ais{steps}x{chains}"] = {"mean": float(np.mean(vals)), "min": float(np.min(vals)),
                                           "max": float(np.max(vals)),
                                           "bits_per_dim_mean": float(np.mean(vals)) / (num_dims * np.log(2)),
                                           "seconds_per_run": round((time.time() - start) / _SEEDS.value, 1)}


if __name__ == "__main__":
    app.run(main)
