"""The diffusion family: a Gaussian path (``model.process``: vp | ve | edm | rectified_flow) and a network that
predicts ``model.prediction`` (eps | x0 | v | velocity | edm), trained by the matching regression
(:func:`gen_jax.losses.make_diffusion_loss`); samples by any sampler of :mod:`gen_jax.sampling.diffusion`.

* **Vectors** (the 2-D toys): a score MLP; data standardised per feature (the fixed map's log-determinant is
  part of ``log_prob``); ``log_prob`` is the probability-flow ODE's log-likelihood (exact divergence, RK4 with
  ``num_steps``: the exact density of the ODE model up to the solver's error); encode/decode by the PF-ODE.
* **Images**: a U-Net (:class:`gen_jax.nn.UNet`) on levels mapped to bin centres in ``[-1, 1]``; samples are
  rounded back to levels. ``log_prob`` is a bound on ``log P(levels)`` (:mod:`gen_jax.data.conventions`):
  ``estimator="vlb"`` the continuous-time variational bound with a discretized decoder
  (:func:`gen_jax.losses.diffusion_variational_bound`, ``num_samples`` noise levels per image; the decoder at
  the time where the noise is a quarter of a level's bin), or
  ``estimator="pf_ode"`` the PF-ODE log-density of uniformly dequantized images (Hutchinson's divergence
  estimator). ``model.num_classes > 0`` (or ``model.conditional``) trains with label dropout
  (``model.label_dropout``) and samples with classifier-free guidance ``guidance``; ``impute`` fills the missing
  pixels by replacement or RePaint (``model.impute_resample`` rounds per step); encode/decode by the PF-ODE.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gen_jax.data.conventions import dequantized_nll, from_bin_centres, to_bin_centres, uniform_dequantize
from gen_jax.data.images import ImageDataset
from gen_jax.data.toy2d import world_land_raster
from gen_jax.data.vectors import VectorDataset
from gen_jax.families.base import Family, LogProb, loss_trainer
from gen_jax.families.common import image_labels, optimizer_from_config
from gen_jax.losses import diffusion_variational_bound, make_diffusion_loss
from gen_jax.models.diffusion import EDM, PREDICTIONS, ScoreMLP, make_path, network_inputs
from gen_jax.nn.unet import UNet
from gen_jax.sampling import (ddim_sample, guided, inpaint, ode_sample, ode_solve, pf_ode_log_likelihood,
                              reverse_sde_sample, time_grid)
from gen_jax.train.parallel import cpu_compiler_options
from gen_jax.viz import save_density_picture

NAME = "diffusion"
SAMPLERS = ("heun", "euler", "ddim", "ddpm", "sde")


def config_defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict(dict(
        family=NAME,
        process="vp",  # vp | ve | edm | rectified_flow (gen_jax.models.diffusion)
        prediction="eps",  # eps | x0 | v | velocity | edm (edm needs process=edm)
        t_min=0.0,  # the path's smallest time (0: the process's default; images: see configs/diffusion_mnist.py)
        time_dim=64,  # sinusoidal time embedding
        hidden=(256, 256, 256),  # vectors: the score MLP
        channels=(32, 64, 64),  # images: the U-Net's maps per resolution
        num_res_blocks=1,  # ... residual blocks per resolution and side
        attention=True,  # ... self-attention at the lowest resolution
        dropout=0.0,
        conv="native",  # ... stride-1 convolutions: native (gen_jax.nn.cpu_conv) | flax (nn.Conv) | patch (PatchConv)
        conditional=False,  # images: p(x | label), trained with label dropout for classifier-free guidance
        label_dropout=0.1,
        guidance=1.0,  # default guidance scale of conditional samples (0: unconditional, 1: conditional)
        sampler="heun",  # heun | euler (PF-ODE) | ddim (eta 0) | ddpm (ancestral) | sde (Euler-Maruyama + corrector)
        sample_steps=50,  # steps of the sampler (Heun: 2 network evaluations a step)
        time_grid="",  # uniform | edm (EDM's rho=7 noise levels on any path); "": edm for EDM, else uniform
        likelihood_steps=100,  # RK4 steps of the PF-ODE log-likelihood
        likelihood_samples=16,  # images: noise levels per image of the variational bound (log_prob num_samples)
        impute_resample=1,  # images: RePaint rounds per step of the imputation (1 = replacement)
    ))
    c.evals = ml_collections.ConfigDict({"nll": {"type": "log_likelihood"}})
    return c


def sampler_evaluations(sampler: str, steps: int) -> int:
    """Network evaluations of ``sampler`` with ``steps`` steps, the final denoising included (Heun: two a
    step; guidance doubles every one)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; known: {SAMPLERS}")
    return {"heun": 2 * steps, "sde": 2 * steps}.get(sampler, steps) + 1


def _check_model(m):
    if m.prediction not in PREDICTIONS:
        raise ValueError(f"unknown model.prediction {m.prediction!r}; known: {PREDICTIONS}")
    if (m.prediction == "edm") != (m.process == "edm"):
        raise ValueError("model.prediction='edm' (EDM's preconditioning) goes with model.process='edm' and only")
    if m.sampler not in SAMPLERS:
        raise ValueError(f"unknown model.sampler {m.sampler!r}; known: {SAMPLERS}")
    if m.time_grid not in ("", "uniform", "edm"):
        raise ValueError(f"unknown model.time_grid {m.time_grid!r}; use uniform or edm")


def _grid_kind(m) -> str:
    """The samplers' time grid: ``model.time_grid``, else EDM's noise levels on an EDM path and uniform otherwise."""
    return m.time_grid or ("edm" if m.process == "edm" else "uniform")


def _path(m, sigma_data: float):
    kw = {"t_min": m.t_min} if m.t_min else {}
    return EDM(sigma_data=sigma_data, **kw) if m.process == "edm" else make_path(m.process, **kw)


def _run_sampler(denoiser, path, x_T, ts, rng, sampler):
    if sampler in ("heun", "euler"):
        return ode_sample(denoiser, path, x_T, ts, method=sampler)
    if sampler in ("ddim", "ddpm"):
        return ddim_sample(denoiser, path, x_T, ts, rng, eta=0.0 if sampler == "ddim" else 1.0)
    return reverse_sde_sample(denoiser, path, x_T, ts, rng, corrector_steps=1)


def build(config: ml_collections.ConfigDict, data) -> Family:
    _check_model(config.model)
    if isinstance(data, ImageDataset):
        return _build_images(config, data)
    if not isinstance(data, VectorDataset):
        raise ValueError(f"model.family='diffusion' takes vectors or images, got {data.name!r}")
    m = config.model
    if m.conditional:
        raise ValueError("model.conditional=True is built for images only")
    path = _path(m, sigma_data=1.0)  # data are standardised, so EDM's sigma_data is 1
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

    grid_kind = _grid_kind(m)

    @functools.partial(jax.jit, static_argnames=("n", "sampler", "steps", "grid"))
    def _sample(params, rng, n, sampler, steps, grid):
        k_prior, k_run = jax.random.split(rng)
        z = _run_sampler(denoiser(params), path, path.prior_sample(k_prior, (n, dim)), time_grid(path, steps, grid),
                         k_run, sampler)
        return z * scale + shift

    def sample(params, rng, n, *, labels=None, sampler=None, steps=None, grid=None):
        """``n`` points; ``sampler`` (heun | euler | ddim | ddpm | sde), ``steps`` and ``grid`` (uniform | edm)
        default to the config's."""
        if labels is not None:
            raise ValueError("labels given to an unconditional diffusion model")
        sampler = sampler or m.sampler
        sampler_evaluations(sampler, 1)  # checks the name
        return _sample(params, rng, n=n, sampler=sampler, steps=steps or m.sample_steps, grid=grid or grid_kind)

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

    fine = jnp.linspace(path.t_min, path.t_max, 1000)
    field_t = float(jnp.interp(0.3, path.sigma(fine) / path.alpha(fine), fine))  # the time of noise level 0.3

    @jax.jit
    def score_field(params, v):  # grad_x log p_t in data units at field_t
        z = (v - shift) / scale
        _, eps = denoiser(params)(z, field_t)
        return -eps / path.sigma(field_t) / scale

    step_jit = jax.jit(lambda p, v, pair: ode_solve(denoiser(p), path, v, pair, method="heun"))

    def trajectories(params, rng, n=40, steps=25):
        v = path.prior_sample(rng, (n, dim))
        ts = time_grid(path, steps, "edm")
        states = [v]
        for i in range(steps):
            states.append(step_jit(params, states[-1], ts[i:i + 2]))
        return np.stack([np.asarray(s * scale + shift) for s in states], axis=1)

    def picture(params, rng, path_out, title):
        k_sample, k_paths = jax.random.split(rng)
        xs, ys = np.meshgrid(np.linspace(bounds[0], bounds[1], 24), np.linspace(bounds[2], bounds[3], 24))
        grid = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
        extra = [{"title": f"score at noise level 0.3 (t = {field_t:.3g}) over the data", "points": x[:5000],
                  "field": (grid, np.asarray(score_field(params, jnp.asarray(grid))))},
                 {"title": "PF-ODE trajectories (Heun, 25 steps)", "points": x[:5000],
                  "paths": trajectories(params, k_paths)}]
        save_density_picture(lambda v: np.concatenate([np.asarray(density(params, jnp.asarray(c, jnp.float32)))
                                                       for c in np.array_split(v, 20)]),
                             x[:20000], np.asarray(sample(params, k_sample, 20000)), path_out, bounds=bounds,
                             title=title, density_title=f"{m.process} PF-ODE density",
                             background=world_land_raster() if data.name == "world_land" else None,
                             extra_panels=extra)

    return Family(NAME, net, loss_trainer(init_params, loss_fn, optimizer_from_config(config),
                                          ema_decay=config.train.ema_decay),
                  sample=sample, log_prob=log_prob,
                  encode=lambda params, batch, rng=None: encode_jit(params, jnp.asarray(batch["x"])),
                  decode=lambda params, z, rng=None: decode_jit(params, jnp.asarray(z)), picture=picture)


def _build_images(config: ml_collections.ConfigDict, data: ImageDataset) -> Family:
    m = config.model
    k, shape, d = data.num_levels, data.image_shape, data.num_dims
    num_classes = data.num_classes if m.conditional else 0
    if m.conditional and not num_classes:
        raise ValueError(f"model.conditional=True but dataset {data.name!r} has no labels")
    path = _path(m, sigma_data=0.5)  # images in [-1, 1]: EDM's own sigma_data
    net = UNet(channels=tuple(m.channels), num_res_blocks=m.num_res_blocks, attention=m.attention,
               num_classes=num_classes, time_dim=m.time_dim, dropout=m.dropout, conv=m.conv)
    grid_kind = _grid_kind(m)
    # The bound's decoder sits where the noise (sigma / alpha) is a quarter of a bin (2 / K wide), so that
    # +-2 sigma stays in the bin; below that the network would be asked to resolve noise finer than the levels
    # (digits, run at t_min 1e-5 and 1e-2: 6.15 and 1.96 bits/dim, BENCHMARKS).
    fine = jnp.linspace(path.t_min, path.t_max, 100_001)
    t_decoder = max(path.t_min, float(jnp.interp(0.5 / k, path.sigma(fine) / path.alpha(fine), fine)))

    # the U-Net's programs without XLA:CPU's YNNPACK fusions where the config says so (train.cpu_ynn_fusion)
    jit = functools.partial(jax.jit, compiler_options=cpu_compiler_options(config.train.cpu_ynn_fusion))
    to_model = functools.partial(to_bin_centres, num_levels=k)
    to_levels = functools.partial(from_bin_centres, num_levels=k)

    def apply(params, xt, t, labels, rng):
        x_in, t_in = network_inputs(path, m.prediction, xt, t)
        if rng is not None and m.dropout:
            return net.apply(params, x_in, t_in, labels, train=True, rngs={"dropout": rng})
        return net.apply(params, x_in, t_in, labels)

    def loss_fn(params, batch, rng):
        labels = None
        if num_classes:  # label dropout: the null label num_classes trains the unconditional model too
            k_drop, rng = jax.random.split(rng)
            drop = jax.random.bernoulli(k_drop, m.label_dropout, batch["label"].shape)
            labels = jnp.where(drop, num_classes, batch["label"])
        batch = {"x": to_model(batch["image"]), "label": labels}
        return make_diffusion_loss(apply, path, m.prediction)(params, batch, rng)

    def init_params(rng, batch):
        labels = jnp.zeros((1,), jnp.int32) if num_classes else None
        return net.init(rng, jnp.zeros((1, *shape)), jnp.zeros((1,)), labels)

    def denoiser(params, labels=None):
        """``(x, t) -> (x0_hat, eps_hat)`` for ``t`` a scalar or ``(B,)``; ``labels`` (B,) or None (the null
        label of a conditional model)."""
        def den(x, t):
            tb = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (x.shape[0],))
            y = None
            if num_classes:  # the bound's denoiser sees each example num_samples times in a row: repeat
                y = (jnp.full((x.shape[0],), num_classes, jnp.int32) if labels is None
                     else jnp.repeat(labels, x.shape[0] // labels.shape[0]))
            return path.denoise(m.prediction, apply(params, x, tb, y, None), x, tb)
        return den

    def guided_denoiser(params, labels, guidance, clip):
        den = denoiser(params, labels)
        if num_classes and guidance != 1.0:
            den = guided(den, denoiser(params, None), path, guidance)
        if not clip:
            return den

        def clipped(x, t):  # x0_hat in the data's range [-1, 1], eps_hat made consistent with it
            x0 = jnp.clip(den(x, t)[0], -1.0, 1.0)
            a, s = path.alpha(t), path.sigma(t)
            return x0, (x - a * x0) / s
        return clipped

    @functools.partial(jit, static_argnames=("n", "sampler", "steps", "grid", "guidance", "clip"))
    def _sample(params, rng, labels, n, sampler, steps, grid, guidance, clip):
        k_prior, k_run = jax.random.split(rng)
        x = _run_sampler(guided_denoiser(params, labels, guidance, clip), path,
                         path.prior_sample(k_prior, (n, *shape)), time_grid(path, steps, grid), k_run, sampler)
        return to_levels(x)

    def sample(params, rng, n, *, labels=None, sampler=None, steps=None, grid=None, guidance=None, clip=True):
        """``n`` images as integer levels; ``sampler`` (heun | euler | ddim | ddpm | sde), ``steps``, ``grid``
        (uniform | edm) and, for a conditional model, ``labels`` (default: one column per class) and
        ``guidance`` (0 unconditional, 1 conditional, more: sharper) default to the config's. ``clip`` keeps
        each step's ``x0_hat`` in [-1, 1] (DDPM's clipped denoising, Ho et al. 2020)."""
        labels = image_labels(num_classes, n, labels)
        if guidance is not None and not num_classes:
            raise ValueError("guidance needs a conditional model (model.conditional=True)")
        sampler = sampler or m.sampler
        sampler_evaluations(sampler, 1)  # checks the name
        return _sample(params, rng, labels, n=n, sampler=sampler, steps=steps or m.sample_steps,
                       grid=grid or grid_kind, guidance=float(m.guidance if guidance is None else guidance),
                       clip=bool(clip))

    def log_prob_fn(params, batch, rng, *, estimator, num_samples, num_steps):
        labels = jnp.asarray(batch["label"]) if num_classes else None
        den = denoiser(params, labels)
        if estimator == "vlb":
            return -diffusion_variational_bound(den, path, to_model(batch["image"]), rng, num_samples=num_samples,
                                                decoder="discretized", num_levels=k, t_decoder=t_decoder)
        if estimator == "pf_ode":  # uniformly dequantized y in [0, 1) as x = 2 y - 1, back to P(levels)
            k_u, k_probe = jax.random.split(rng)
            x = 2 * uniform_dequantize(jnp.asarray(batch["image"]), k_u, num_levels=k) - 1
            ts = time_grid(path, num_steps, grid_kind)[::-1]
            log_px = pf_ode_log_likelihood(den, path, x, ts=ts, rng=k_probe, exact_divergence=False)
            # y = (x + 1) / 2, so log p(y) = log p(x) + D log 2
            return -dequantized_nll(log_px + d * math.log(2.0), num_dims=d, num_levels=k)
        raise ValueError(f"unknown log_prob estimator {estimator!r}; use 'vlb' or 'pf_ode'")

    log_prob = LogProb(log_prob_fn, "lower_bound",
                       {"estimator": "vlb", "num_samples": m.likelihood_samples, "num_steps": m.likelihood_steps},
                       estimator=lambda estimator, num_samples, num_steps:
                       f"vlb{num_samples}" if estimator == "vlb" else f"pf_ode{num_steps}")

    @functools.partial(jit, static_argnums=(4, 5))
    def impute_jit(params, x01, mask, rng, resample, steps):
        x = to_model(jnp.round(x01 * (k - 1)))
        filled = inpaint(denoiser(params), path, mask * x, mask, time_grid(path, steps, "uniform"), rng,
                         resample=resample)
        return jnp.clip(((filled + 1) * k - 1) / 2 / (k - 1), 0.0, 1.0)

    def impute(params, x, mask, rng, *, resample: int | None = None, steps: int | None = None):
        """Missing pixels (mask 0) of images in [0, 1] by ``steps`` DDPM steps (default ``model.sample_steps``)
        with the known pixels replaced, each step repeated ``resample`` times (RePaint; default
        ``model.impute_resample``, 1 = replacement); a conditional model is used unconditionally (null label)."""
        resample = int(m.impute_resample if resample is None else resample)
        steps = int(m.sample_steps if steps is None else steps)
        if resample < 1 or steps < 1:
            raise ValueError(f"impute needs resample >= 1 and steps >= 1, got resample={resample}, steps={steps}")
        return np.asarray(impute_jit(params, jnp.asarray(x, jnp.float32), jnp.asarray(mask, jnp.float32), rng,
                                     resample, steps))

    ode_grid = lambda up: (lambda ts: ts[::-1] if up else ts)(time_grid(path, m.sample_steps, "edm"))
    encode_jit = jit(lambda p, v: ode_solve(denoiser(p), path, to_model(v), ode_grid(True)))
    decode_jit = jit(lambda p, z: to_levels(ode_sample(denoiser(p), path, z, ode_grid(False))))

    def encode(params, batch, rng=None):
        """The PF-ODE's noise for each image (Heun on the EDM grid of ``sample_steps``), flattened."""
        return encode_jit(params, jnp.asarray(batch["image"])).reshape(len(batch["image"]), d)

    def decode(params, z, rng=None):
        """Images in [0, 1] from flattened noise, by the PF-ODE."""
        z = jnp.asarray(z, jnp.float32).reshape(-1, *shape)
        return decode_jit(params, z).astype(jnp.float32) / (k - 1)

    return Family(NAME, net, loss_trainer(init_params, loss_fn, optimizer_from_config(config),
                                          ema_decay=config.train.ema_decay),
                  sample=sample, log_prob=log_prob, encode=encode, decode=decode, impute=impute, num_levels=k)
