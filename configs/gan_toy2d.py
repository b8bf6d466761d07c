"""GANs on the 2-D toys, with PacGAN's mode-collapse data and measures (Lin et al. 2018, after VEEGAN) as the
default: the grid of 25 Gaussians (means {-4, -2, 0, 2, 4}^2, sigma 0.05; ``pacgan_ring8``: radius 1, sigma
0.01), 100,000 training points, a 2-D code; 2500 samples are scored: modes hit (>= 1 sample within 3 sigma),
the high-quality fraction, MMD / sliced W2 with their noise floor. The players differ from PacGAN's (4 x 400
with batch norm, 3 x 200 maxout) and train for fewer steps, to fit 10 seeds of every variant on two CPU cores:
a generator of 3 x 128 ReLU units, a discriminator of 3 x 256 LeakyReLU units, Adam (lr 1e-3 to 0 by a cosine,
b1 0.5), batch 100, 10,000 steps. Measured on 4 seeds (``experiments/gan_pathologies.py``'s harness, 5000
steps): batch norm in the generator gave 12-16 modes against 0-24 without; a 2 x 128 discriminator gave 2-18 %
high-quality samples, 3 x 256 61-76 %.

``python experiments/train.py --config configs/gan_toy2d.py --workdir runs/gan_grid25
[--config.model.loss=wasserstein --config.model.gradient_penalty=10 --config.model.n_critic=5]
[--config.model.pack=4] [--config.model.minibatch=stddev]``

``experiments/gan_pathologies.py`` runs the protocol over losses, discriminator options and seeds.
"""

from gen_jax.train.config import default_config, smoke_train_settings


def get_config(variant: str = ""):
    c = default_config("gan")
    c.data.name = "pacgan_grid25"
    c.data.toy_num_train = 100_000
    c.data.toy_num_eval = 2500
    c.model.loss = "non_saturating"
    c.model.latent_dim = 2
    c.model.g_hidden = (128, 128, 128)
    c.model.g_batch_norm = False
    c.model.d_hidden = (256, 256, 256)
    for optim in (c.optim, c.discriminator_optim):
        optim.learning_rate = 1e-3
        optim.b1 = 0.5
        optim.schedule = "cosine"
    c.train.steps = 10_000
    c.train.batch_size = 100
    c.train.log_every = 1000
    c.train.checkpoint_every = 5000
    c.train.sample_every = 10_000
    c.train.progress_bar = False
    c.evals.two_sample = dict(type="two_sample", num_samples=2500)
    if variant == "smoke":
        c.data.toy_num_train = 2000
        c.data.toy_num_eval = 500
        c.model.g_hidden = (16, 16)
        c.model.d_hidden = (16,)
        smoke_train_settings(c, steps=10, batch_size=64)
        c.evals.two_sample.num_samples = 200
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'smoke'")
    return c
