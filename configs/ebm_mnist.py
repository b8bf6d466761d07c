"""A convolutional energy on MNIST (28x28, 256 levels, 32/64/128 maps) by contrastive divergence;
``--config.data.name=fashion_mnist`` for Fashion-MNIST.

The default is the **short-run** recipe of Nijkamp et al. 2019 ("Learning non-convergent non-persistent
short-run MCMC toward energy-based model"): every update draws its negatives by 40 Langevin steps from uniform
noise on ``[-1, 1]^D`` (no replay buffer), a step of 1 x the energy's gradient plus noise of 0.01
(``step_size=2``: ``x += step / 2 * (-grad E) + noise``), no energy-magnitude regulariser (``alpha=0``), so the
energy's scale grows until those 40 steps carry noise to digits; ``sample`` runs the same 40 steps. The energy is
then a sampler, not a density: AIS's NLL means little for it.

``configs/ebm_mnist.py:persistent`` is the density regime of ``ebm_digits.py`` (exact Langevin, step 1e-3, a
buffer of 10,000 persistent chains, 20 steps per update, 100 for ``sample``); the JEM runs of BENCHMARKS.md start
from it (``--config.model.loss=jem``: the network classifies the ten digits and its logsumexp is the energy).

``python experiments/train.py --config configs/ebm_mnist.py --workdir runs/ebm_mnist``
"""

from pathlib import Path

from gen_jax.train.config import load_config_file, smoke_train_settings


def get_config(variant: str = ""):
    c = load_config_file(Path(__file__).with_name("ebm_digits.py"))
    c.data.name = "mnist"
    c.model.features = (32, 64, 128)  # 28 -> 14 -> 7
    c.model.hidden = 128
    c.model.ais_chains = 200
    c.train.log_every = 200
    c.eval.num_examples = 2000
    c.eval.batch_size = 2000
    variants = set(filter(None, variant.split(",")))
    if variants - {"persistent", "smoke"}:
        raise ValueError(f"unknown variant {variant!r}; use '', 'persistent', either with ',smoke', or 'smoke'")
    if "persistent" in variants:
        c.model.sampler_steps = 20
        c.model.buffer_size = 10_000
        c.model.sample_steps = 100
        c.train.steps = 4000
        c.train.checkpoint_every = 1000
        c.train.sample_every = 1000
    else:  # short-run (Nijkamp et al. 2019)
        c.model.alpha = 0.0
        c.model.step_size = 2.0
        c.model.noise_scale = 0.01
        c.model.sampler_steps = 40
        c.model.sample_steps = 40
        c.model.buffer_size = 0
        c.model.ais_steps = 100
        c.train.steps = 2000
        c.train.checkpoint_every = 200
        c.train.sample_every = 500
    if "smoke" in variants:
        c.model.features = (4, 8, 8)
        c.model.hidden = 16
        c.model.buffer_size = min(c.model.buffer_size, 64)
        c.model.sampler_steps = 2
        c.model.sample_steps = 2
        c.model.ais_steps = 5
        c.model.ais_chains = 8
        smoke_train_settings(c, steps=3, batch_size=16)
        c.eval.num_examples = 32
    return c
