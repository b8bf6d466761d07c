"""DCGAN on scikit-learn's 8x8 digits (embedded, no download): 2x2 -> 4x4 -> 8x8 generator, 8 -> 4 -> 2
discriminator, the non-saturating loss, Adam (2e-4, b1 0.5) for both players, EMA 0.999 of the generator.

``python experiments/train.py --config configs/gan_digits.py --workdir runs/gan_digits
[--config.model.conditional=True]``; ``configs/gan_digits.py:style``: the style generator of ``gan_mnist.py:style``
(its constant at 2x2; the smoke variant's at 4x4).
"""

from pathlib import Path

from gen_jax.train.config import load_config_file


def get_config(variant: str = ""):
    c = load_config_file(Path(__file__).with_name("gan_mnist.py"), variant)
    c.data.name = "digits"
    c.train.steps = 4000 if "smoke" not in variant else c.train.steps
    return c
