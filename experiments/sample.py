"""Draws samples from a trained workdir's latest checkpoint:
``python experiments/sample.py --workdir runs/vae_digits [--num 64 --seed 1 --out samples.png]``; ``--sample_option
truncation=1.2`` passes options to the family's ``sample`` as ``evaluate_metrics.py`` does."""

from pathlib import Path

import jax
import numpy as np
from absl import app, flags, logging

from gen_jax.train import restore_run
from gen_jax.train.config import options_suffix, parse_key_values
from gen_jax.viz import save_image_grid

_WORKDIR = flags.DEFINE_string("workdir", None, "A training workdir.")
_NUM = flags.DEFINE_integer("num", 64, "Number of samples.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed (a different seed gives different samples).")
_OUT = flags.DEFINE_string("out", "", "Output PNG (default: <workdir>/samples_seed<seed>[_<key><value>...].png).")
_SAMPLE_OPTIONS = flags.DEFINE_list("sample_option", [], "key=value options of the family's sample (images), e.g. "
                                    "truncation=1.2 for a GAN.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    config, family, state, _ = restore_run(_WORKDIR.value)
    params = state.eval_params
    options = parse_key_values(_SAMPLE_OPTIONS.value)
    out = Path(_OUT.value or Path(_WORKDIR.value) / f"samples_seed{_SEED.value}{options_suffix(options)}.png")
    title = f"{config.model.family} on {config.data.name}, step {int(state.step)}"
    if family.picture is not None:  # 2-D data: density beside data and samples; text: columns of words
        if options:
            raise ValueError(f"--sample_option is for image samples; {config.data.name}'s picture takes none")
        family.picture(params, jax.random.key(_SEED.value), out, title)
    else:
        images = np.asarray(family.require("sample")(params, jax.random.key(_SEED.value), _NUM.value, **options),
                            np.float32)
        save_image_grid(images / (family.num_levels - 1), out, title=title)
    print(out)


if __name__ == "__main__":
    app.run(main)
