"""``vae_mnist`` on Fashion-MNIST (read from Debian's dataset-fashion-mnist package): the in-distribution side
of the Fashion-MNIST -> MNIST detection benchmark."""

from pathlib import Path

from gen_jax.train.config import load_config_file


def get_config(variant: str = ""):
    c = load_config_file(Path(__file__).with_name("vae_mnist.py"), variant)
    c.data.name = "fashion_mnist"
    return c
