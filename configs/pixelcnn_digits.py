"""Gated PixelCNN on scikit-learn's 8x8 digits, 17 grey levels; ``--config.model.output`` picks a
categorical (default) or a discretized logistic mixture per pixel; ``--config.model.conditional=True`` gives
the class-conditional p(x | y)."""

from gen_jax.train.config import default_config, smoke_train_settings


def get_config(variant: str = ""):
    c = default_config("pixelcnn")
    c.data.name = "digits"
    c.model.channels = 64
    c.model.num_layers = 6
    c.model.output = "categorical"
    c.optim.learning_rate = 1e-3
    c.train.steps = 6000
    c.train.batch_size = 64
    c.train.log_every = 250
    c.train.checkpoint_every = 2000
    c.train.sample_every = 6000
    c.train.progress_bar = False
    if variant == "smoke":
        c.model.channels = 8
        c.model.num_layers = 2
        smoke_train_settings(c, steps=6, batch_size=16)
        c.train.num_sample_images = 4
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'smoke'")
    return c
