"""Conditional VAE p(x|y) on the 8x8 digits: the label joins encoder input and latent code; samples show
class ``i mod 10`` in column ``i mod 10``."""

from pathlib import Path

from gen_jax.train.config import load_config_file


def get_config(variant: str = ""):
    # Variants start from the base config file beside them (configs are code; see STYLE.md).
    c = load_config_file(Path(__file__).with_name("vae_digits.py"), variant)
    c.model.conditional = True
    c.train.num_sample_images = 100 if not variant else 20
    return c
