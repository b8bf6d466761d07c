"""A convolutional energy on scikit-learn's 8x8 digits (embedded, no download), trained by persistent
contrastive divergence with Langevin chains on the dequantized pixels in ``[-1, 1]`` (a uniform base on the
box); ``--config.model.loss=jem`` makes the network a classifier whose logsumexp is the energy (JEM).

``python experiments/train.py --config configs/ebm_digits.py --workdir runs/ebm_digits [--config.model.loss=jem]``

Two regimes (Nijkamp et al. 2020, "On the anatomy of MCMC-based maximum likelihood learning of EBMs"):
by default exact Langevin (noise ``sqrt(step)``, step 1e-3, energy-magnitude weight 0.01), which learns a
density (AIS: 1.92 bits/dim after 2000 steps) whose short-run samples from noise are still noise; the image-EBM
recipe of Du & Mordatch 2019 (``--config.model.step_size=2 --config.model.noise_scale=0.01
--config.model.alpha=1``: large steps, small noise) gives digit-like short-run samples from an energy that is
nearly flat as a density (4.08 bits/dim, the uniform base's 4.09).
"""

from gen_jax.train.config import default_config, smoke_train_settings


def get_config(variant: str = ""):
    c = default_config("ebm")
    c.data.name = "digits"
    c.model.features = (32, 64)
    c.model.hidden = 128
    c.model.alpha = 0.01
    c.model.sampler_steps = 40
    c.model.step_size = 1e-3
    c.model.noise_scale = 0.0
    c.model.buffer_size = 5000
    c.model.reinit_prob = 0.05
    c.model.sample_steps = 200
    c.model.ais_steps = 1000
    c.model.ais_chains = 500
    c.model.ais_step_size = 0.05
    c.optim.learning_rate = 1e-4
    c.optim.b1 = 0.0
    c.optim.b2 = 0.999
    c.train.steps = 5000
    c.train.batch_size = 64
    c.train.log_every = 250
    c.train.checkpoint_every = 2500
    c.train.sample_every = 2500
    c.train.progress_bar = False
    c.eval.batch_size = 1000  # the whole test split: one AIS estimate of log Z
    if variant == "smoke":
        c.model.features = (4, 8)
        c.model.hidden = 16
        c.model.buffer_size = 64
        c.model.sampler_steps = 4
        c.model.sample_steps = 4
        c.model.ais_steps = 10
        c.model.ais_chains = 16
        smoke_train_settings(c, steps=4, batch_size=16)
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'smoke'")
    return c
