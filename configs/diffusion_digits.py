"""A class-conditional diffusion model on scikit-learn's 8x8 digits (17 levels, embedded: no download): a U-Net
(maps 32/64 at 8/4 pixels, self-attention at 4x4) on the VP process with eps-prediction, labels dropped 10 % of
the time so that one network is both p(x | y) and p(x) (classifier-free guidance), EMA 0.999, Heun on EDM's
noise levels. Minutes on a CPU:

``python experiments/train.py --config configs/diffusion_digits.py --workdir runs/diffusion_digits``
``python experiments/diffusion_samplers.py --workdir runs/diffusion_digits --guidance 0,1,2,4``
"""

from pathlib import Path

from gen_jax.train.config import load_config_file


def get_config(variant: str = ""):
    c = load_config_file(Path(__file__).with_name("diffusion_mnist.py"), variant)  # its smoke variant too
    c.data.name = "digits"
    c.model.conditional = True
    if variant != "smoke":
        c.model.channels = (32, 64)
        c.train.steps = 4000
        c.train.checkpoint_every = 1000
        c.eval.num_examples = 0
    return c
