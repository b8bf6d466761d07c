"""Multi-scale convolutional flows on scikit-learn's 8x8 digits, uniformly dequantized (17 levels), in bits/dim:
``model.flow=multiscale_realnvp`` (checkerboard couplings, squeeze, channel couplings, split; Dinh et al.
2017) or ``multiscale_glow`` (squeeze, actnorm + invertible 1x1 convolution + channel coupling, split; Kingma &
Dhariwal 2018); 2 scales (8x8 -> 4x4 -> 2x2), 3 couplings per stage, 3x3/1x1/3x3 conditioners of 32 maps."""

from gen_jax.train.config import default_config, smoke_train_settings


def get_config(variant: str = ""):
    c = default_config()
    c.data.name = "digits"
    c.model.family = "flow"
    c.model.flow = "multiscale_realnvp"
    c.model.num_scales = 2
    c.model.num_layers = 3
    c.model.hidden = (32,)
    c.optim.learning_rate = 1e-3
    c.optim.grad_clip_norm = 50.0
    c.train.steps = 3000
    c.train.batch_size = 64
    c.train.log_every = 250
    c.train.checkpoint_every = 1000
    c.train.sample_every = 3000
    c.train.progress_bar = False
    if variant == "smoke":
        c.model.num_layers = 1
        c.model.hidden = (4,)
        smoke_train_settings(c, steps=10)
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'smoke'")
    return c
