"""Classic latent-variable models on MNIST (uniformly dequantized, 256 levels) or binarized MNIST, fitted once:

``python experiments/train.py --config configs/classic_mnist.py --workdir runs/classic_mnist_ppca``
``python experiments/train.py --config configs/classic_mnist.py:binarized --workdir runs/classic_bmnist``

Default: probabilistic PCA with 64 latent dimensions (closed form). ``model.kind`` gaussian | ppca | fa | gmm
on MNIST; the ``binarized`` variant is a mixture of 50 Bernoulli products on the fixed binarization
(``model.kind=bernoulli`` is the single product). Test bits/dim in BENCHMARKS.md.
"""

from gen_jax.train.config import default_config, smoke_train_settings


def get_config(variant: str = ""):
    c = default_config("classic")
    c.data.name = "mnist"
    c.model.kind = "ppca"
    c.model.latent_dim = 64
    c.model.num_components = 10
    c.model.covariance = "diag"
    c.model.num_iters = 50
    c.model.num_restarts = 1
    c.train.steps = 1  # fitted once (closed form or EM): the checkpoint is step 1
    c.train.batch_size = 64
    c.train.progress_bar = False
    c.train.num_sample_images = 64
    c.eval.batch_size = 500
    variants = set(filter(None, variant.split(",")))
    if "binarized" in variants:
        c.data.name = "binarized_mnist"
        c.model.kind = "bernoulli_mixture"
        c.model.num_components = 50
        c.model.num_iters = 50
        c.model.num_restarts = 1
    if "smoke" in variants:
        c.model.latent_dim = 4
        c.model.num_components = 3
        c.model.num_iters = 3
        smoke_train_settings(c, steps=1)
    if variants - {"binarized", "smoke"}:
        raise ValueError(f"unknown variant {variant!r}; use '', 'binarized', 'smoke' or 'binarized,smoke'")
    return c
