"""Multi-scale convolutional flows on scikit-learn's 8x8 digits, uniformly dequantized (17 levels), in bits/dim:
``model.flow=multiscale_realnvp`` (checkerboard couplings, squeeze, channel couplings, split; Dinh et al.
2017) or ``multiscale_glow`` (squeeze, actnorm + invertible 1x1 convolution + channel coupling, split; Kingma &
Dhariwal 2018); 2 scales (8x8 -> 4x4 -> 2x2), 3 couplings per stage, 3x3/1x1/3x3 conditioners of 32 maps.
Training settings are ``flow_digits``'s, but for the learning rate."""

from pathlib import Path

from gen_jax.train.config import load_config_file


def get_config(variant: str = ""):
    c = load_config_file(Path(__file__).with_name("flow_digits.py"), variant)
    c.model.flow = "multiscale_realnvp"
    c.model.num_scales = 2
    c.optim.learning_rate = 1e-3
    if variant == "smoke":
        c.model.num_layers = 1
        c.model.hidden = (4,)
    else:
        c.model.num_layers = 3
        c.model.hidden = (32,)
    return c
