"""``vae_mnist`` on Fashion-MNIST (read from Debian's dataset-fashion-mnist package): the in-distribution side
of the Fashion-MNIST -> MNIST detection benchmark."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("vae_mnist", Path(__file__).with_name("vae_mnist.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)


def get_config(variant: str = ""):
    c = _base.get_config(variant)
    c.data.name = "fashion_mnist"
    return c
