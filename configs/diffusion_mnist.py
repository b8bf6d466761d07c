"""A diffusion model on MNIST's 256 grey levels: a U-Net (maps 16/32/64 at 28/14/7 pixels, one residual block
per resolution and side, self-attention at 7x7) on the VP process with eps-prediction (DDPM's loss), EMA 0.999,
sampled by Heun's method on the PF-ODE over EDM's noise levels (25 steps, 51 network evaluations); the
evaluation reports the variational bound with a discretized decoder (16 noise levels per image) in bits/dim.

``python experiments/train.py --config configs/diffusion_mnist.py --workdir runs/diffusion_mnist``
(``--config.data.name=fashion_mnist`` for Fashion-MNIST; ``--config.model.conditional=True`` for p(x | label)
with classifier-free guidance). Quality against the number of network evaluations per sampler:
``experiments/diffusion_samplers.py``; FD / KID / precision-recall, OOD detection and inpainting:
``experiments/evaluate_metrics.py``.

The path starts at ``t_min = 1e-5`` (noise std 0.001, an eighth of a grey level's bin) rather than VP's 1e-3
(std 0.01, more than a bin): the discretized decoder of the bound then costs almost nothing.
"""

from gen_jax.train.config import default_config, smoke_train_settings


def get_config(variant: str = ""):
    c = default_config("diffusion")
    c.data.name = "mnist"
    c.model.process = "vp"
    c.model.prediction = "eps"
    c.model.t_min = 1e-5
    c.model.channels = (16, 32, 64)
    c.model.sampler = "heun"
    c.model.time_grid = "edm"
    c.model.sample_steps = 25
    c.optim.learning_rate = 5e-4
    c.optim.schedule = "warmup_cosine"
    c.optim.warmup_steps = 200
    c.optim.grad_clip_norm = 1.0
    c.train.ema_decay = 0.999
    c.train.steps = 6000
    c.train.batch_size = 128
    c.train.log_every = 200
    c.train.checkpoint_every = 500
    c.train.sample_every = 1000
    c.train.progress_bar = False
    # with nn.Conv (model.conv=flax) the U-Net's step 1.4x and its sampler 1.5x faster without XLA:CPU's YNNPACK
    # fusions; with the native kernels (the default) the same either way (BENCHMARKS)
    c.train.cpu_ynn_fusion = False
    c.eval.num_examples = 1000
    if variant == "smoke":
        c.model.channels = (8, 16)
        c.model.attention = False
        c.model.time_dim = 16
        c.model.sample_steps = 3
        c.model.likelihood_samples = 2
        c.train.ema_decay = 0.0
        c.train.cpu_ynn_fusion = True  # a compile-bound test: XLA compiles the tiny U-Net faster with them
        smoke_train_settings(c, steps=4, batch_size=16)
        c.eval.num_examples = 50
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'smoke'")
    return c
