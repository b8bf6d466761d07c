"""Normalizing flows on the 2-D toys, trained by exact NLL:

``python experiments/train.py --config configs/flow_toy2d.py --workdir runs/flow_checkerboard
--config.data.name=checkerboard --config.model.flow=spline``

``model.flow``: realnvp | glow | maf | spline; ``data.name``: two_moons | ring8 | grid25 | checkerboard |
spirals | world_land. The end-of-training evaluation reports test NLL, the true entropy and their gap (where
the density is known), MMD / sliced W2 with their noise floor, and mode coverage on the mixtures; the
pictures put the learned density beside the data and samples.
"""

from gen_jax.train.config import default_config, smoke_train_settings


def get_config(variant: str = ""):
    c = default_config("flow")
    c.data.name = "checkerboard"
    c.data.eval_split = "test"
    c.model.flow = "spline"
    c.model.num_layers = 8
    c.model.hidden = (128, 128)
    c.model.num_bins = 16
    c.optim.learning_rate = 1e-3
    c.optim.schedule = "cosine"
    c.optim.grad_clip_norm = 10.0
    c.train.steps = 20_000
    c.train.batch_size = 512
    c.train.log_every = 500
    c.train.checkpoint_every = 5000
    c.train.sample_every = 20_000
    c.train.progress_bar = False
    c.evals.two_sample = dict(type="two_sample", num_samples=5000)
    if variant == "smoke":
        c.data.toy_num_train = 2000
        c.data.toy_num_eval = 1000
        c.model.num_layers = 2
        c.model.hidden = (16,)
        smoke_train_settings(c, steps=10, batch_size=64)
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'smoke'")
    return c
