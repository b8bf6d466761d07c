"""The style generator's two pictures (StyleGAN, Karras et al. 2019) from a trained workdir
(``model.generator=style``):

``python experiments/style_grid.py --workdir runs/stylegan_mnist [--crossovers 2,4]``

* ``style_mixing_<k>.png``: the first row holds the column sources' images, the first column the row sources';
  cell (r, c) takes its styles from column c's code for layers ``< k`` (the coarse, low-resolution layers) and
  from row r's code for the rest.
* ``truncation.png``: one row per code, one column per truncation ``psi`` (1 = the model, 0 = the average style).

Noise is fixed per picture (one key), so the cells differ by their styles alone. A conditional generator (class
or cluster labels, ``data.clusters``) maps each code with a label drawn from the training split's label shares,
one per code, so a row or column keeps its label across the picture.
"""

from pathlib import Path

import jax
import numpy as np
from absl import app, flags, logging

from gen_jax.families import draw_labels_by_shares, label_shares
from gen_jax.models.gan import StyleGenerator, style_mixing_grid
from gen_jax.train import restore_run
from gen_jax.viz import save_image_grid

_WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir of a GAN with model.generator=style.")
_ROWS = flags.DEFINE_integer("rows", 5, "Row sources (fine styles).")
_COLS = flags.DEFINE_integer("cols", 6, "Column sources (coarse styles).")
_CROSSOVERS = flags.DEFINE_list("crossovers", ["2", "4"], "Layers taken from the column source, one picture each.")
_PSI = flags.DEFINE_list("truncation", ["1", "0.8", "0.6", "0.4", "0.2", "0"], "Truncation values.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the codes and the noise.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    config, family, state, data = restore_run(_WORKDIR.value)
    generator = family.model["generator"]
    if not isinstance(generator, StyleGenerator):
        raise SystemExit("style_grid.py needs a GAN trained with model.generator=style")
    variables = state.eval_params["generator"]
    seed_key = jax.random.key(_SEED.value)
    k_rows, k_cols, k_noise, k_trunc = jax.random.split(seed_key, 4)  # (as before labels: the same pictures)
    k_labels = jax.random.fold_in(seed_key, 1)
    z_rows = jax.random.normal(k_rows, (_ROWS.value, config.model.latent_dim))
    z_cols = jax.random.normal(k_cols, (_COLS.value, config.model.latent_dim))
    l_rows = l_cols = l_trunc = None
    if generator.num_classes:  # labels from the training split's shares (cluster labels: p(x) = sum_k pi_k p(x|k))
        shares = label_shares(data)
        l_rows, l_cols, l_trunc = (draw_labels_by_shares(k, shares, n) for k, n in
                                   zip(jax.random.split(k_labels, 3), (_ROWS.value, _COLS.value, _ROWS.value)))
    to_unit = lambda x: np.clip((np.asarray(x) + 1) / 2, 0, 1)
    out = Path(_WORKDIR.value)
    row_imgs = to_unit(generator.apply(variables, z_rows, l_rows, rng=k_noise))
    col_imgs = to_unit(generator.apply(variables, z_cols, l_cols, rng=k_noise))
    for k in map(int, _CROSSOVERS.value):
        if not 0 < k < generator.num_ws:
            raise SystemExit(f"a crossover must be in 1 .. {generator.num_ws - 1}, got {k}")
        grid = to_unit(style_mixing_grid(generator, variables, z_rows, z_cols, k, rng=k_noise, labels_rows=l_rows,
                                         labels_cols=l_cols))
        blank = np.ones_like(row_imgs[:1])
        cells = [np.concatenate([blank, col_imgs])]
        cells += [np.concatenate([row_imgs[r:r + 1], grid[r]]) for r in range(_ROWS.value)]
        path = save_image_grid(np.concatenate(cells), out / f"style_mixing_{k}.png", ncols=_COLS.value + 1,
                               title=f"layers < {k} from the top row's code, the rest from the left column's")
        print(f"style mixing (crossover {k}): {path}")
    psis = [float(p) for p in _PSI.value]
    z = jax.random.normal(k_trunc, (_ROWS.value, config.model.latent_dim))
    rows = [to_unit(generator.apply(variables, z, l_trunc, rng=k_noise, truncation=p)) for p in psis]
    path = save_image_grid(np.stack(rows, axis=1).reshape(-1, *rows[0].shape[1:]), out / "truncation.png",
                           ncols=len(psis), title="truncation psi = " + ", ".join(_PSI.value))
    print(f"truncation: {path}")


if __name__ == "__main__":
    app.run(main)
