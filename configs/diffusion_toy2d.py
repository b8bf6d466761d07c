"""Diffusion on the 2-D toys: a 3 x 256 score MLP with a sinusoidal time embedding on the VP process,
eps-prediction (DDPM's loss), EMA 0.999, sampled by the PF-ODE's Heun steps; the evaluation reports the
PF-ODE test NLL against the true entropy, MMD / sliced W2 with their noise floor and mode coverage:

``python experiments/train.py --config configs/diffusion_toy2d.py --workdir runs/diffusion_ring8
--config.data.name=ring8 [--config.model.process=rectified_flow --config.model.prediction=velocity]``

Data, schedule, training length and evaluations are ``flow_toy2d``'s (one place for the toys' protocol), but
for the gradient clipping (1) and the EMA.
"""

from pathlib import Path

from gen_jax.train.config import default_config, load_config_file


def get_config(variant: str = ""):
    toys = load_config_file(Path(__file__).with_name("flow_toy2d.py"), variant)
    c = default_config("diffusion")
    for section in ("data", "optim", "train", "eval", "evals"):
        c[section] = toys[section]
    c.data.name = "ring8"
    c.model.process = "vp"
    c.model.prediction = "eps"
    c.model.hidden = (256, 256, 256)
    c.optim.grad_clip_norm = 1.0
    c.train.ema_decay = 0.999
    if variant == "smoke":
        c.model.hidden = (16, 16)
        c.model.time_dim = 8
        c.model.sample_steps = 4
        c.model.likelihood_steps = 4
        c.train.ema_decay = 0.0
        c.eval.num_examples = 100
        c.evals.two_sample.num_samples = 200
    return c
