"""The diffusion family on vectors (the 2-D toys): a Gaussian path (``model.process``: vp | ve | edm |
rectified_flow), a score MLP with a time embedding that predicts ``model.prediction`` (eps | x0 | v | velocity |
edm), trained by the matching regression (:func:`gen_jax.losses.make_diffusion_loss`); samples by any sampler of
:mod:`gen_jax.sampling.diffusion`; ``log_prob`` is the probability-flow ODE's log-likelihood (exact divergence,
RK4 with ``num_steps``: the exact density of the ODE model up to the solver's error).

Data are standardised (per feature, from the training split) before the path, as the flows do: the fixed map's
log-determinant is part of ``log_prob``. Images (a U-Net) are not built yet: an image dataset is an error.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gen_jax.data.toy2d import world_land_raster
from gen_jax.data.vectors import VectorDataset
from gen_jax.families.base import Family, LogProb, loss_trainer
from gen_jax.families.common import optimizer_from_config
from gen_jax.losses import make_diffusion_loss
from gen_jax.models.diffusion import EDM, PREDICTIONS, ScoreMLP, make_path, network_inputs
from gen_jax.sampling import ddim_sample, ode_sample, ode_solve, pf_ode_log_likelihood, reverse_sde_sample, time_grid
from gen_jax.viz import save_density_picture

NAME = "diffusion"
SAMPLERS = ("heun", "euler", "ddim", "ddpm", "sde")


def config_defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict(dict(
        family=NAME,
        process="vp",  # vp | ve | edm | rectified_flow (gen_jax.models.diffusion)
        prediction="eps",  # eps | x0 | v | velocity | edm (edm needs process=edm)
        hidden=(256, 256, 256),  # the score MLP
        time_dim=64,  # sinusoidal time embedding
        sampler="heun",  # heun | euler (PF-ODE) | ddim (eta 0) | ddpm (ancestral) | sde (Euler-Maruyama + corrector)
        sample_steps=50,  # steps of the sampler (Heun: 2 network evaluations a step)
        likelihood_steps=100,  # RK4 steps of the PF-ODE log-likelihood
    ))
    c.evals = ml_collections.ConfigDict({"nll": {"type": "log_likelihood"}})
    return c


def build(config: ml_collections.ConfigDict, data) -> Family:
    if not isinstance(data, VectorDataset):
        raise ValueError(f"model.family='diffusion' takes vector data (the 2-D toys) so far, got {data.name!r}; "
                         "image diffusion (a U-Net) is not built yet")
    m = config.model
    if m.prediction not in PREDICTIONS:
        raise ValueError(f"unknown model.prediction {m.prediction!r}; known: {PREDICTIONS}")
    if (m.prediction == "edm") != (m.process == "edm"):
        raise ValueError("model.prediction='edm' (EDM's preconditioning) goes with model.process='edm' and only")
    if m.sampler not in SAMPLERS:
        raise ValueError(f"unknown model.sampler {m.sampler!r}; known: {SAMPLERS}")
    # data are standardised, so EDM's sigma_data is 1
    path = EDM(sigma_data=1.0) if m.process == "edm" else make_path(m.process)
    dim = data.num_dims
    x = np.asarray(data.x, np.float64)
    shift, scale = jnp.asarray(x.mean(0), jnp.float32), jnp.asarray(np.maximum(x.std(0), 1e-6), jnp.float32)
    log_det = -float(np.sum(np.log(np.maximum(x.std(0), 1e-6))))
    net = ScoreMLP(dim=dim, hidden=tuple(m.hidden), time_dim=m.time_dim)

    def apply(params, xt, t, labels, rng):
        return net.apply(params, *network_inputs(path, m.prediction, xt, t))

    def loss_fn(params, batch, rng):
        return make_diffusion_loss(apply, path, m.prediction)(params, {"x": (batch["x"] - shift) / scale}, rng)

    def init_params(rng, batch):
        return net.init(rng, jnp.zeros((1, dim)), jnp.zeros((1,)))

    def denoiser(params):
        def d(xt, t):
            tb = jnp.full((xt.shape[0],), t)
            return path.denoise(m.prediction, apply(params, xt, tb, None, None), xt, tb)
        return d

    grid_kind = "edm" if m.process == "edm" else "uniform"

    @functools.partial(jax.jit, static_argnames=("n", "sampler", "steps"))
    def _sample(params, rng, n, sampler, steps):
        k_prior, k_run = jax.random.split(rng)
        xT = path.prior_sample(k_prior, (n, dim))
        ts = time_grid(path, steps, grid_kind)
        d = denoiser(params)
        if sampler in ("heun", "euler"):
            z = ode_sample(d, path, xT, ts, method=sampler)
        elif sampler in ("ddim", "ddpm"):
            z = ddim_sample(d, path, xT, ts, k_run, eta=0.0 if sampler == "ddim" else 1.0)
        else:
            z = reverse_sde_sample(d, path, xT, ts, k_run, corrector_steps=1)
        return z * scale + shift

    def sample(params, rng, n, *, labels=None, sampler=None, steps=None):
        """``n`` points; ``sampler`` (heun | euler | ddim | ddpm | sde) and ``steps`` default to the config's."""
        if labels is not None:
            raise ValueError("labels given to an unconditional diffusion model")
        sampler = sampler or m.sampler
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; known: {SAMPLERS}")
        return _sample(params, rng, n=n, sampler=sampler, steps=steps or m.sample_steps)

    def log_prob_fn(params, batch, rng, *, num_steps):
        z = (batch["x"] - shift) / scale
        ts = time_grid(path, num_steps, grid_kind)[::-1]  # increasing: data -> noise
        return pf_ode_log_likelihood(denoiser(params), path, z, ts=ts) + log_det

    ode_grid = lambda up: (lambda ts: ts[::-1] if up else ts)(time_grid(path, m.likelihood_steps, grid_kind))
    encode_jit = jax.jit(lambda p, v: ode_solve(denoiser(p), path, (v - shift) / scale, ode_grid(True)))
    decode_jit = jax.jit(lambda p, z: ode_solve(denoiser(p), path, z, ode_grid(False)) * scale + shift)

    log_prob = LogProb(log_prob_fn, "exact", {"num_steps": m.likelihood_steps},
                       estimator=lambda num_steps: f"pf_ode{num_steps}")
    # the picture's density: half the evaluation's steps (90,000 grid points)
    density = jax.jit(lambda p, v: log_prob_fn(p, {"x": v}, None, num_steps=max(m.likelihood_steps // 2, 1)))
    bounds = data.toy.bounds if data.toy is not None else (*np.percentile(x[:, 0], [0, 100]),
                                                           *np.percentile(x[:, 1], [0, 100]))

    def picture(params, rng, path_out, title):
        save_density_picture(lambda v: np.concatenate([np.asarray(density(params, jnp.asarray(c, jnp.float32)))
                                                       for c in np.array_split(v, 20)]),
                             x[:20000], np.asarray(sample(params, rng, 20000)), path_out, bounds=bounds,
                             title=title, density_title=f"{m.process} PF-ODE density",
                             background=world_land_raster() if data.name == "world_land" else None)

    return Family(NAME, net, loss_trainer(init_params, loss_fn, optimizer_from_config(config),
                                          ema_decay=config.train.ema_decay),
                  sample=sample, log_prob=log_prob,
                  encode=lambda params, batch, rng=None: encode_jit(params, jnp.asarray(batch["x"])),
                  decode=lambda params, z, rng=None: decode_jit(params, jnp.asarray(z)), picture=picture)
