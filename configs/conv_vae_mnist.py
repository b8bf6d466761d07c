"""Convolutional VAE on MNIST (TFDS, prepared offline), discretized logistic over 256 levels."""

from gen_jax.train.config import default_config, smoke_train_settings


def get_config(variant: str = ""):
    c = default_config()
    c.data.name = "mnist"
    c.model.architecture = "conv"
    c.model.conv_channels = (32, 64)
    c.model.hidden = (256,)
    c.model.latent_dim = 16
    c.model.likelihood = "discretized_logistic"
    c.train.steps = 20_000
    c.train.batch_size = 128
    c.train.log_every = 200
    c.train.checkpoint_every = 5000
    c.train.sample_every = 5000
    c.train.progress_bar = False
    c.evals.iwae = dict(type="log_likelihood", num_samples=100)
    if variant == "smoke":
        c.model.conv_channels = (8, 16)
        c.model.hidden = (32,)
        c.model.latent_dim = 4
        smoke_train_settings(c, steps=4, batch_size=16)
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'smoke'")
    return c
