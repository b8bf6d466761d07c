"""Diffusion on the 2-D toys: a 3 x 256 score MLP with a sinusoidal time embedding on the VP process,
eps-prediction (DDPM's loss), EMA 0.999, sampled by the PF-ODE's Heun steps; the evaluation reports the
PF-ODE test NLL against the true entropy, MMD / sliced W2 with their noise floor and mode coverage:

``python experiments/train.py --config configs/diffusion_toy2d.py --workdir runs/diffusion_ring8
--config.data.name=ring8 [--config.model.process=rectified_flow --config.model.prediction=velocity]``
"""

from gen_jax.train.config import default_config, smoke_train_settings


def get_config(variant: str = ""):
    c = default_config("diffusion")
    c.data.name = "ring8"
    c.model.process = "vp"
    c.model.prediction = "eps"
    c.model.hidden = (256, 256, 256)
    c.optim.learning_rate = 1e-3
    c.optim.schedule = "cosine"
    c.optim.grad_clip_norm = 1.0
    c.train.steps = 20_000
    c.train.batch_size = 512
    c.train.ema_decay = 0.999
    c.train.log_every = 500
    c.train.checkpoint_every = 5000
    c.train.sample_every = 20_000
    c.train.progress_bar = False
    c.evals.two_sample = dict(type="two_sample", num_samples=5000)
    if variant == "smoke":
        c.data.toy_num_train = 2000
        c.data.toy_num_eval = 1000
        c.model.hidden = (16, 16)
        c.model.time_dim = 8
        c.model.sample_steps = 4
        c.model.likelihood_steps = 4
        c.train.ema_decay = 0.0
        smoke_train_settings(c, steps=10, batch_size=64)
        c.eval.num_examples = 100
        c.evals.two_sample.num_samples = 200
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'smoke'")
    return c
