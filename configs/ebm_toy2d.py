"""Energy-based models on the 2-D toys: an MLP energy (3 x 128 Swish) on a Gaussian base N(0, 2^2) in
standard units, trained by noise-contrastive estimation against the base (4 noise draws per point), or by
contrastive divergence with 10,000 persistent Langevin chains (``--config.model.loss=cd``: 50 steps of 1e-3
per update, 5 % restarted from the base).

``python experiments/train.py --config configs/ebm_toy2d.py --workdir runs/ebm_ring8 [--config.data.name=grid25]
[--config.model.loss=cd]``

Measured (BENCHMARKS.md, "Energy-based models"): NCE's AIS test NLL within 0.03 nats of the entropy on ring8 and
grid25; CD's samples cover every mode but its density does not weigh them (Langevin chains never cross between
modes, so CD never sees a mode's mass): gaps of 1.3 and 22.5 nats.

The evaluation reports the AIS-estimated test NLL beside the true entropy (``gap_nats``), the two-sample
metrics with their noise floor and mode coverage; the picture puts the data, ``exp(-E)`` and short-run samples
with a few chains side by side.
"""

from gen_jax.train.config import default_config, smoke_train_settings


def get_config(variant: str = ""):
    c = default_config("ebm")
    c.data.name = "ring8"
    c.data.toy_num_eval = 5000
    c.model.loss = "nce"
    c.model.noise_ratio = 4
    c.model.features = (128, 128, 128)
    c.model.base_scale = 2.0
    c.model.sampler_steps = 50
    c.model.step_size = 1e-3
    c.model.sample_steps = 1000
    c.model.buffer_size = 10_000
    c.model.reinit_prob = 0.05
    c.model.alpha = 0.0
    c.optim.learning_rate = 1e-3
    c.optim.b1 = 0.5
    c.optim.schedule = "cosine"
    c.train.steps = 10_000
    c.train.batch_size = 256
    c.train.log_every = 500
    c.train.checkpoint_every = 5000
    c.train.sample_every = 10_000
    c.train.progress_bar = False
    c.model.ais_steps = 4000  # 1000 temperatures: NLL 0.262 +- 0.016 against 0.276 by quadrature (ebm_partition.py)
    c.eval.batch_size = 5000  # one AIS estimate of log Z for the whole split
    c.evals.two_sample = dict(type="two_sample", num_samples=5000)
    if variant == "smoke":
        c.data.toy_num_train = 2000
        c.data.toy_num_eval = 500
        c.model.features = (16, 16)
        c.model.buffer_size = 256
        c.model.sampler_steps = 5
        c.model.sample_steps = 10
        c.model.ais_steps = 20
        c.model.ais_chains = 64
        smoke_train_settings(c, steps=10, batch_size=64)
        c.evals.two_sample.num_samples = 200
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; use '' or 'smoke'")
    return c
