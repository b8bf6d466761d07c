"""The importance-weighted binarized-MNIST VAE of ``iwae_binarized_mnist`` (MLP 784-512-256-32, Bernoulli
decoder, IWAE bound k = 5, selection on the validation split) with a VampPrior (Tomczak & Welling 2018): the
prior is the mixture of the encoder's posteriors at 500 learned pseudo-images instead of N(0, I).
The benchmark run of BENCHMARKS.md.
"""

from pathlib import Path

from gen_jax.train.config import load_config_file


def get_config(variant: str = ""):
    c = load_config_file(Path(__file__).with_name("iwae_binarized_mnist.py"), variant)
    c.model.prior = "vampprior"
    c.model.num_pseudo_inputs = 500
    if variant == "smoke":
        c.model.num_pseudo_inputs = 8
    return c
