"""A convolutional energy on MNIST (28x28, 256 levels) by persistent contrastive divergence, or JEM
(``--config.model.loss=jem``: the network classifies the ten digits and its logsumexp is the energy);
``--config.data.name=fashion_mnist`` for Fashion-MNIST. The settings of ``ebm_digits.py``: exact Langevin
(step 1e-3) on the dequantized pixels in ``[-1, 1]``, a buffer of persistent chains, Adam with b1 = 0.

``python experiments/train.py --config configs/ebm_mnist.py --workdir runs/ebm_mnist [--config.model.loss=jem]``
"""

from pathlib import Path

from gen_jax.train.config import load_config_file, smoke_train_settings


def get_config(variant: str = ""):
    c = load_config_file(Path(__file__).with_name("ebm_digits.py"))
    c.data.name = "mnist"
    c.model.features = (32, 64, 128)  # 28 -> 14 -> 7
    c.model.hidden = 128
    c.model.sampler_steps = 20
    c.model.buffer_size = 10_000
    c.model.sample_steps = 100
    c.model.ais_chains = 200
    c.train.steps = 4000
    c.train.log_every = 200
    c.train.checkpoint_every = 1000
    c.train.sample_every = 1000
    c.eval.num_examples = 2000
    c.eval.batch_size = 2000
    if variant == "smoke":
        c.model.features = (4, 8, 8)
        c.model.hidden = 16
        c.model.buffer_size = 64
        c.model.sampler_steps = 2
        c.model.sample_steps = 2
        c.model.ais_steps = 5
        c.model.ais_chains = 8
        smoke_train_settings(c, steps=3, batch_size=16)
        c.eval.num_examples = 32
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'smoke'")
    return c
