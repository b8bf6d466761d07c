"""Latent-space pictures of a trained VAE workdir (interpolation, attribute arithmetic, scatter):
``python experiments/represent.py --workdir runs/vae_digits`` writes them to ``<workdir>/latent/``."""

from pathlib import Path

from absl import app, flags, logging

from gen_jax.train import restore_run
from gen_jax.viz.representation import write_latent_pictures

_WORKDIR = flags.DEFINE_string("workdir", None, "A VAE training workdir.")
_NUM = flags.DEFINE_integer("num_examples", 2000, "Test examples to encode for the scatter.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    config, task, state, data = restore_run(_WORKDIR.value, "test")
    if config.model.family != "vae" or config.model.conditional:
        raise SystemExit("represent.py needs an unconditional VAE workdir")
    params = state.eval_params
    paths = write_latent_pictures(task.model, params, data.image[:_NUM.value], data.label[:_NUM.value],
                                  likelihood=config.model.likelihood, num_levels=data.num_levels,
                                  outdir=Path(_WORKDIR.value) / "latent")
    for name, path in paths.items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    app.run(main)
