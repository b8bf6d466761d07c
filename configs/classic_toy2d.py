"""A Gaussian mixture (or a single Gaussian) by EM on the 2-D toys:

``python experiments/train.py --config configs/classic_toy2d.py --workdir runs/classic_grid25
--config.data.name=grid25``

grid25 and ring8 are themselves Gaussian mixtures (25 and 8 components), so a mixture with enough components
reaches their entropy; the evaluation reports test NLL, the true density's NLL of the same points and their gap.
"""

from gen_jax.train.config import default_config, smoke_train_settings


def get_config(variant: str = ""):
    c = default_config("classic")
    c.data.name = "grid25"
    c.data.eval_split = "test"
    c.model.kind = "gmm"
    c.model.num_components = 25
    c.model.covariance = "full"
    c.model.num_iters = 200
    c.model.num_restarts = 5
    c.train.steps = 1
    c.train.batch_size = 256
    c.train.progress_bar = False
    c.evals.two_sample = dict(type="two_sample", num_samples=5000)
    if variant == "smoke":
        c.data.toy_num_train = 2000
        c.data.toy_num_eval = 1000
        c.model.num_iters = 10
        c.model.num_restarts = 1
        smoke_train_settings(c, steps=1, batch_size=64)
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'smoke'")
    return c
