"""beta-VAE (beta = 4) on the 8x8 digits: a stronger KL weight for more disentangled, blurrier codes."""

from pathlib import Path

from gen_jax.train.config import load_config_file


def get_config(variant: str = ""):
    c = load_config_file(Path(__file__).with_name("vae_digits.py"), variant)
    c.loss.beta = 4.0
    return c
