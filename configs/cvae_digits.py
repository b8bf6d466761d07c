"""Conditional VAE p(x|y) on the 8x8 digits: the label joins encoder input and latent code; samples show
class ``i mod 10`` in column ``i mod 10``."""

import importlib.util
from pathlib import Path

# Variants start from the base config file beside them (configs are code; see STYLE.md).
_spec = importlib.util.spec_from_file_location("vae_digits", Path(__file__).with_name("vae_digits.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)


def get_config(variant: str = ""):
    c = _base.get_config(variant)
    c.model.conditional = True
    c.train.num_sample_images = 100 if not variant else 20
    return c
