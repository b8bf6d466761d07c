"""Normalizing flows on scikit-learn's 8x8 digits, uniformly dequantized (17 levels), reported in bits/dim:
``--config.model.flow=realnvp`` (checkerboard affine couplings) or ``glow`` (actnorm + LU-linear + affine
coupling); MLP conditioners over the whole image."""

from gen_jax.train.config import default_config, smoke_train_settings


def get_config(variant: str = ""):
    c = default_config("flow")
    c.data.name = "digits"
    c.model.flow = "realnvp"
    c.model.num_layers = 8
    # 1437 training images: wide conditioners memorise them (hidden (256, 256), 6000 steps: train 1.46, test
    # 25.8 bits/dim); one 64-unit layer and 3000 steps was the best of the few settings tried.
    c.model.hidden = (64,)
    c.optim.learning_rate = 5e-4
    c.optim.grad_clip_norm = 50.0
    c.train.steps = 3000
    c.train.batch_size = 64
    c.train.log_every = 250
    c.train.checkpoint_every = 1000
    c.train.sample_every = 3000
    c.train.progress_bar = False
    if variant == "smoke":
        c.model.num_layers = 2
        c.model.hidden = (16,)
        smoke_train_settings(c, steps=10)
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'smoke'")
    return c
