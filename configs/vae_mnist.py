"""MLP VAE 784-512-256-32 on MNIST's 256 grey levels (TFDS, prepared offline), discretized logistic decoder.

The VAE entry of the evaluation suite: FD / KID / precision-recall of its samples in the MNIST classifier's
feature space, OOD detection against Fashion-MNIST, inpainting. ``configs/vae_fashion_mnist.py`` is the same
model on Fashion-MNIST (the reverse OOD direction).
"""

from gen_jax.train.config import default_config, smoke_train_settings


def get_config(variant: str = ""):
    c = default_config()
    c.data.name = "mnist"
    c.model.architecture = "mlp"
    c.model.hidden = (512, 256)
    c.model.latent_dim = 32
    c.model.likelihood = "discretized_logistic"
    c.train.steps = 30_000
    c.train.batch_size = 128
    c.train.log_every = 500
    c.train.checkpoint_every = 5000
    c.train.sample_every = 10_000
    c.train.progress_bar = False
    c.evals.iwae = dict(type="log_likelihood", num_samples=100)
    if variant == "smoke":
        c.model.hidden = (64,)
        c.model.latent_dim = 4
        smoke_train_settings(c, steps=10)
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'smoke'")
    return c
