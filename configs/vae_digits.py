"""MLP VAE on scikit-learn's 8x8 digits (embedded, no download): the quick-start job.

Discretized-logistic decoder over the 17 grey levels, so the test NLL is a real likelihood of the data.
``--config configs/vae_digits.py:smoke`` is a seconds-long variant for tests.
"""

from gen_jax.train.config import default_config, smoke_train_settings


def get_config(variant: str = ""):
    c = default_config()
    c.data.name = "digits"
    c.model.architecture = "mlp"
    c.model.hidden = (256, 128)
    c.model.latent_dim = 8
    c.model.likelihood = "discretized_logistic"
    c.train.steps = 4000
    c.train.batch_size = 128
    c.train.log_every = 100
    c.train.checkpoint_every = 1000
    c.train.sample_every = 1000
    c.evals.iwae = dict(type="log_likelihood", num_samples=500)
    if variant == "smoke":
        c.model.hidden = (32,)
        c.model.latent_dim = 2
        smoke_train_settings(c, steps=20)
        c.evals.iwae = dict(type="log_likelihood", num_samples=10)
        c.eval.importance_chunk = 10
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'smoke'")
    return c
