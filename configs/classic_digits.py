"""Classic latent-variable models on scikit-learn's 8x8 digits (uniformly dequantized, 17 levels), fitted once:

``python experiments/train.py --config configs/classic_digits.py --workdir runs/classic_digits_gmm``

``model.kind``: gaussian | ppca | fa | gmm (``model.covariance`` full | diag, ``model.num_components``);
``model.latent_dim`` for PPCA and FA; ``model.conditional=True`` fits one model per class (Gaussian naive
Bayes: ``kind=gaussian covariance=diag conditional=True``). The test bits/dim sit in BENCHMARKS.md beside
the deep models of the digits table.
"""

from gen_jax.train.config import default_config, smoke_train_settings


def get_config(variant: str = ""):
    c = default_config("classic")
    c.data.name = "digits"
    c.model.kind = "gmm"
    c.model.num_components = 10
    c.model.covariance = "full"
    c.model.num_iters = 100
    c.model.num_restarts = 3
    c.model.latent_dim = 16
    c.train.steps = 1  # fitted once (closed form or EM): the checkpoint is step 1
    c.train.batch_size = 64
    c.train.progress_bar = False
    c.train.num_sample_images = 64
    if variant == "smoke":
        c.model.num_components = 3
        c.model.num_iters = 5
        c.model.num_restarts = 1
        smoke_train_settings(c, steps=1)
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'smoke'")
    return c
