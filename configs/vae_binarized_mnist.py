"""MLP VAE 784-512-256-32 on the fixed binarized MNIST (Larochelle & Murray), Bernoulli decoder.

The benchmark run of BENCHMARKS.md; test NLL by the IWAE bound with k = 5000 at the end of training.
"""

from gen_jax.train.config import default_config, smoke_train_settings


def get_config(variant: str = ""):
    c = default_config()
    c.data.name = "binarized_mnist"
    c.model.architecture = "mlp"
    c.model.hidden = (512, 256)
    c.model.latent_dim = 32
    c.model.likelihood = "bernoulli"
    c.optim.learning_rate = 1e-3
    c.optim.schedule = "cosine"
    c.train.steps = 100_000
    c.train.batch_size = 128
    c.train.log_every = 500
    c.train.checkpoint_every = 10_000
    c.train.sample_every = 10_000
    c.train.progress_bar = False
    c.eval.batch_size = 500
    c.evals.iwae = dict(type="log_likelihood", num_samples=5000)
    c.eval.importance_chunk = 250
    if variant == "smoke":
        c.model.hidden = (64,)
        c.model.latent_dim = 4
        smoke_train_settings(c, steps=10)
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'smoke'")
    return c
