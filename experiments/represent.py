"""Latent-space pictures of a trained workdir whose family has a latent space (``encode`` and ``decode``:
VAEs; flows on images have no decode to pictures yet): interpolation, arithmetic, scatter.
``python experiments/represent.py --workdir runs/vae_digits`` writes them to ``<workdir>/latent/``."""

from pathlib import Path

import jax
from absl import app, flags, logging

from gen_jax.train import restore_run
from gen_jax.viz.representation import write_latent_pictures

_WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir of a family with encode and decode.")
_NUM = flags.DEFINE_integer("num_examples", 2000, "Test examples to encode for the scatter.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    config, family, state, data = restore_run(_WORKDIR.value, "test")
    encode, decode = family.require("encode"), family.require("decode")
    if not hasattr(data, "image") or config.model.get("conditional", False):
        raise SystemExit("represent.py draws images: it needs an unconditional image model with a latent space")
    params = state.eval_params
    images, labels = data.image[:_NUM.value], data.label[:_NUM.value]
    paths = write_latent_pictures(lambda x: encode(params, {"image": x, "label": labels[:len(x)]}, None),
                                  lambda z: jax.device_get(decode(params, z)), images, labels,
                                  num_levels=data.num_levels, outdir=Path(_WORKDIR.value) / "latent")
    for name, path in paths.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    app.run(main)
