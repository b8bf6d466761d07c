"""beta-VAE (beta = 4) on the 8x8 digits: a stronger KL weight for more disentangled, blurrier codes."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location("vae_digits", Path(__file__).with_name("vae_digits.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)


def get_config(variant: str = ""):
    c = _base.get_config(variant)
    c.loss.beta = 4.0
    return c
