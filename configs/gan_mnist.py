"""DCGAN on MNIST (Radford et al. 2016): z of 64 -> 7x7x128 -> 14x14x64 -> 28x28 generator (batch norm, ReLU,
tanh), 28 -> 14 -> 7 discriminator (64, 128 maps, LeakyReLU 0.2, batch norm after the second), the
non-saturating loss, Adam (2e-4, b1 0.5) for both players, batch 64, EMA 0.999 of the generator for samples.
Strided layers run as their exact stride-1 equivalents (``model.conv="fast"``; ``"flax"`` for the plain ones).

``python experiments/train.py --config configs/gan_mnist.py --workdir runs/gan_mnist
[--config.data.name=fashion_mnist] [--config.model.conditional=True]``
then ``experiments/evaluate_metrics.py --workdir runs/gan_mnist --metrics quality`` (FD, KID,
precision/recall in the evaluation suite's feature space).

``configs/gan_mnist.py:style`` is a StyleGAN-style GAN at small scale (Karras et al. 2019): z of 64 -> a 2-layer
mapping network -> w of 64; synthesis from a learned 7x7x128 constant, 14x14x64, 28x28x32 (two AdaIN-modulated
layers per resolution, per-pixel noise, nearest-neighbour upsampling + 3x3 convolutions as matrix products),
style mixing on 90 % of the generated examples; the discriminator without batch norm, with lazy R1 (gamma 1,
every 4 steps: StyleGAN2's regulariser). Then ``experiments/style_grid.py --workdir ...`` draws the style-mixing
and truncation pictures. ``style,smoke`` is its smoke variant.

``configs/gan_mnist.py:r1`` is the best MNIST recipe measured (BENCHMARKS.md): the same players with no batch norm in
the discriminator and R1 on the data (gamma 1, lazily every 4 steps, weighted by 4).

``configs/gan_mnist.py:stacked`` is the same DCGAN on Stacked MNIST (three digits as the channels: 1000 modes,
PacGAN's mode-collapse benchmark; ``--config.model.pack=4`` for PacDCGAN4); ``experiments/evaluate_metrics.py
--workdir ... --num_samples 26000`` counts the modes its samples cover (the ``modes`` metric).
"""

from gen_jax.train.config import default_config, smoke_train_settings


def get_config(variant: str = ""):
    c = default_config("gan")
    c.data.name = "mnist"
    c.model.loss = "non_saturating"
    c.model.latent_dim = 64
    c.model.g_channels = (128, 64)
    c.model.d_channels = (64, 128)
    c.model.d_norm = "batch"
    for optim in (c.optim, c.discriminator_optim):
        optim.learning_rate = 2e-4
        optim.b1 = 0.5
        optim.schedule = "constant"
    c.train.ema_decay = 0.999
    c.train.steps = 20_000
    c.train.batch_size = 64
    c.train.log_every = 500
    c.train.checkpoint_every = 2000
    c.train.sample_every = 2000
    c.train.progress_bar = False
    variants = set(filter(None, variant.split(",")))
    if variants - {"style", "stacked", "r1", "smoke"}:
        raise ValueError(f"unknown variant {variant!r}; use '', 'r1', 'style', 'stacked' or 'stacked,r1', any with "
                         f"',smoke', or 'smoke'")
    if "stacked" in variants:
        c.data.name = "stacked_mnist"
    if variants & {"r1", "style"}:  # D without batch norm, lazy R1 (Mescheder et al. 2018; StyleGAN2's laziness)
        c.model.d_norm = "none"
        c.model.r1_gamma = 1.0
        c.model.r1_every = 4
    if "style" in variants:
        c.model.generator = "style"
        c.model.style_channels = (128, 64, 32)
        c.model.w_dim = 64
        c.model.mapping_layers = 2  # 4 gave lower recall on MNIST and Fashion-MNIST (BENCHMARKS.md)
        c.model.style_mixing = 0.9
    if "smoke" in variants:
        c.model.latent_dim = 8
        c.model.g_channels = (8, 4)
        c.model.d_channels = (4, 8)
        c.model.style_channels = (8, 4)
        c.model.w_dim = 8
        c.model.mapping_layers = 1
        c.train.ema_decay = 0.0
        smoke_train_settings(c, steps=6, batch_size=16)
    return c
