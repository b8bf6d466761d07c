"""The energy-based family: ``p(x) = q0(x) exp(-f(x)) / Z_f`` with ``f`` an energy network and ``q0`` a
normalised base density, trained by contrastive divergence with Langevin samples, by NCE, or as JEM.

**The base** makes ``Z_f = E_q0[exp(-f)]`` finite and gives AIS its start: on vectors (standardised per
feature) the Gaussian ``N(0, base_scale^2 I)``; on images (dequantized levels in ``[-1, 1)``:
``2 (x + u) / K - 1``) the uniform density on the box ``[-1, 1]^D``, which the samplers never leave (Langevin
clips, HMC rejects). The total energy is ``E = f + ||x||^2 / (2 s^2)`` (vectors) or ``f`` on the box.

**Losses** (``model.loss``, :mod:`gen_jax.losses.contrastive_divergence`):

* ``cd``: ``f(x+) - f(x-) + alpha (f(x+)^2 + f(x-)^2)``; ``x-`` from ``model.sampler_steps`` Langevin steps
  (step ``model.step_size``; noise ``model.noise_scale``, 0 = ``sqrt(step)``, the sampler of ``p`` itself) started
  from a replay buffer of ``model.buffer_size`` persistent chains, ``model.reinit_prob`` of them restarted from
  ``q0`` each step (Du & Mordatch 2019), or from ``q0`` every step when ``buffer_size = 0`` (short-run,
  Nijkamp et al. 2019).
* ``nce``: the base is the noise (``model.noise_ratio`` draws per example); a learned scalar ``c`` is the
  log-normaliser, ``log p = log q0 - f - c``.
* ``jem``: the network gives class logits, ``f = -logsumexp(logits)``; cross-entropy on the labels plus
  ``model.generative_weight`` times CD (Grathwohl et al. 2020).

**State**: ``params = {"net": the network's Flax variables (spectral-norm vectors beside the weights), "c":
NCE's log-normaliser}``; ``aux = {"buffer": (buffer_size, ...)}``: the persistent chains checkpoint with the run.
Under ``jax.pmap`` every random draw (chain starts, Langevin noise, dequantization) is made for the global batch
from the step's shared key and sliced per device, and the buffer is written from the gathered chains, so N
devices make the update of one and keep identical buffers.

**Capabilities**: ``sample`` (``model.sample_steps`` Langevin steps from ``q0``: short-run samples, not the
buffer's), ``log_prob`` of kind ``estimate``: ``log q0(x) - f(x) - log Z_f`` with ``log Z_f`` from forward AIS
(``model.ais_chains`` HMC chains over ``model.ais_steps`` temperatures, recomputed for each evaluation batch):
``E[log Z_hat] <= log Z_f``, so the reported NLL is a stochastic *lower* bound, optimistic by AIS's gap (the
sampler tests measure it on Gaussians), images through the dequantization bound; ``anomaly_score`` = the energy
``E(x)``; ``impute`` (images): Langevin on the missing pixels with the observed ones clamped.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax import lax

from gen_jax.data.conventions import dequantized_nll, from_bin_centres, to_bin_centres
from gen_jax.data.images import ImageDataset
from gen_jax.data.vectors import VectorDataset
from gen_jax.families.base import Family, LogProb, Trainer
from gen_jax.families.common import global_draw, standardiser
from gen_jax.losses.contrastive_divergence import (contrastive_divergence, energy_from_logits, joint_energy_loss,
                                                   noise_contrastive_estimation)
from gen_jax.models.ebm import EnergyNet
from gen_jax.sampling.langevin import langevin_sample
from gen_jax.sampling.mcmc import annealed_importance_sampling, geometric_betas, log_mean_exp
from gen_jax.sampling.replay import replay_draw, replay_update
from gen_jax.train.optim import make_optimizer
from gen_jax.train.state import TrainState
from gen_jax.train.step import step_rng
from gen_jax.viz import save_2d_panels
from gen_jax.viz.density2d import density_grid

NAME = "ebm"
LOSSES = ("cd", "nce", "jem")


def config_defaults() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.model = ml_collections.ConfigDict(dict(
        family=NAME,
        loss="cd",  # cd | nce | jem
        net="auto",  # mlp | conv | auto (mlp on vectors, conv on images)
        features=(128, 128, 128),  # mlp widths, or conv maps (3x3, then one 4x4 stride-2 layer per further entry)
        hidden=128,  # conv: the Dense layer after the convolutions
        activation="swish",
        spectral_norm=False,
        alpha=0.1,  # the energy-magnitude regulariser of CD (Du & Mordatch 2019)
        base_scale=3.0,  # vectors: q0 = N(0, base_scale^2 I) in standard units (images: uniform on [-1, 1]^D)
        sampler_steps=40,  # Langevin steps per training step
        step_size=0.01,  # Langevin's eps: x += eps / 2 * (-grad E) + noise
        noise_scale=0.0,  # the noise's std; 0 = sqrt(eps) (Langevin for p itself)
        buffer_size=10_000,  # persistent chains (0 = short-run chains from q0 every step)
        reinit_prob=0.05,  # fraction of the drawn chains restarted from q0
        sample_steps=0,  # the sample capability's Langevin steps from q0; 0 = sampler_steps
        noise_ratio=1,  # nce: noise draws per example
        generative_weight=1.0,  # jem: the CD term's weight
        ais_steps=1000,  # log_prob: AIS temperatures
        ais_chains=1000,
        ais_step_size=0.05,  # HMC's step (fixed: see gen_jax.sampling.mcmc.annealed_importance_sampling)
        ais_leapfrog=5,
    ))
    c.evals = ml_collections.ConfigDict({"nll": {"type": "log_likelihood"}})
    return c


def _check_model(m):
    if m.loss not in LOSSES:
        raise ValueError(f"unknown model.loss {m.loss!r}; known: {LOSSES}")
    if m.net not in ("auto", "mlp", "conv"):
        raise ValueError(f"unknown model.net {m.net!r}; use auto, mlp or conv")
    rules = [("model.sampler_steps", m.sampler_steps >= 1), ("model.step_size", m.step_size > 0),
             ("model.noise_scale", m.noise_scale >= 0), ("model.buffer_size", m.buffer_size >= 0),
             ("model.reinit_prob", 0 <= m.reinit_prob <= 1), ("model.noise_ratio", m.noise_ratio >= 1),
             ("model.base_scale", m.base_scale > 0), ("model.ais_steps", m.ais_steps >= 1),
             ("model.ais_chains", m.ais_chains >= 1)]
    for name, ok in rules:
        if not ok:
            raise ValueError(f"{name} is out of range: {m[name.split('.')[1]]!r}")


def buffer_images(aux, n: int, *, num_levels: int) -> np.ndarray:
    """The first ``n`` persistent chains of an image run's replay buffer (``state.aux``) as images in ``[0, 1]``:
    each pixel the level whose bin holds it, over ``num_levels - 1``: what the quality metrics score beside
    short-run samples."""
    if not aux or "buffer" not in aux:
        raise ValueError("the run has no replay buffer (an energy-based model with model.buffer_size > 0)")
    buffer = np.asarray(aux["buffer"])
    if buffer.ndim != 4 or len(buffer) < n:
        raise ValueError(f"the replay buffer holds {len(buffer)} chains of shape {buffer.shape[1:]}: not {n} images")
    return np.asarray(from_bin_centres(buffer[:n], num_levels=num_levels), np.float32) / (num_levels - 1)


def build(config: ml_collections.ConfigDict, data) -> Family:
    m = config.model
    _check_model(m)
    if isinstance(data, ImageDataset):
        k, shape, num_dims = data.num_levels, tuple(data.image_shape), data.num_dims
        kind, bounds = "image", (-1.0, 1.0)
        num_classes = data.num_classes if m.loss == "jem" else 0
        log_base_const = -num_dims * math.log(2.0)  # uniform on [-1, 1]^D
        base_energy = lambda z: jnp.zeros(z.shape[0])
        init_fn = lambda key, s: jax.random.uniform(key, s, minval=-1.0, maxval=1.0)
        # log P(levels) >= log p_z(z) + D log 2 - D log K (gen_jax.data.conventions)
        to_data_log_prob = lambda lp: -dequantized_nll(lp + num_dims * math.log(2.0), num_dims=num_dims, num_levels=k)
    elif isinstance(data, VectorDataset):
        k, shape, num_dims = 0, (data.num_dims,), data.num_dims
        kind, bounds, num_classes = "vector", None, 0
        to_std, from_std, log_det = standardiser(data.x)
        s = m.base_scale
        log_base_const = -0.5 * num_dims * math.log(2 * math.pi * s * s)
        base_energy = lambda z: 0.5 * jnp.sum(z.reshape(z.shape[0], -1) ** 2, axis=-1) / s ** 2
        init_fn = lambda key, sh: s * jax.random.normal(key, sh)
        to_data_log_prob = lambda lp: lp + log_det
    else:
        raise ValueError(f"model.family='ebm' takes vectors or images, got {data.name!r}")
    if m.loss == "jem" and not num_classes:
        raise ValueError(f"model.loss='jem' needs labelled images; dataset {data.name!r} has none")
    net_kind = m.net if m.net != "auto" else ("conv" if kind == "image" else "mlp")
    if net_kind == "conv" and kind != "image":
        raise ValueError("model.net='conv' needs images")
    net = EnergyNet(kind=net_kind, features=tuple(m.features), hidden=m.hidden, activation=m.activation,
                    spectral_norm=m.spectral_norm, num_classes=num_classes)
    optimizer = make_optimizer(config.optim, config.train.steps)
    ema_decay = config.train.ema_decay
    use_buffer = m.buffer_size > 0 and m.loss != "nce"
    step_sizes = jnp.full((m.sampler_steps,), m.step_size, jnp.float32)
    noise_scales = None if not m.noise_scale else jnp.full((m.sampler_steps,), m.noise_scale, jnp.float32)

    def f_and_logits(variables, z, update_stats=False):
        """``(f (B,), logits or None, new variables)``."""
        if update_stats and m.spectral_norm:
            out, upd = net.apply(variables, z, update_stats=True, mutable=["batch_stats"])
            variables = {**variables, **upd}
        else:
            out = net.apply(variables, z)
        if num_classes:
            return energy_from_logits(out), out, variables
        return out, None, variables

    def f(variables, z):
        return f_and_logits(variables, z)[0]

    def score_fn(variables):
        """``-grad_z E`` of the total energy (network plus base)."""
        return jax.grad(lambda z: -jnp.sum(f(variables, z) + base_energy(z)))

    def to_model(batch, key, axis_name):
        if kind == "vector":
            return to_std(batch["x"])
        levels = jnp.asarray(batch["image"], jnp.float32)
        u = global_draw(jax.random.uniform, key, levels.shape, axis_name)
        return 2 * (levels + u) / k - 1

    def init_state(rng, batch):
        k_net, k_buf = jax.random.split(rng)
        params = {"net": dict(net.init(k_net, jnp.zeros((1, *shape)))), "c": jnp.zeros((), jnp.float32)}
        trainable = {"net": params["net"]["params"], "c": params["c"]}
        aux = {"buffer": init_fn(k_buf, (m.buffer_size, *shape))} if use_buffer else None
        ema = {"net": {"params": jax.tree.map(jnp.copy, params["net"]["params"])}} if ema_decay else None
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(trainable),
                          ema_params=ema, aux=aux)

    def make_step(axis_name):
        def step(state: TrainState, batch: dict, rng: jax.Array):
            rng = step_rng(rng, state.step, None)  # shared by the devices: every draw is global_draw's
            k_deq, k_init, k_chain = jax.random.split(rng, 3)
            real = to_model(batch, k_deq, axis_name)
            b = real.shape[0]
            variables = state.params["net"]
            aux = state.aux
            if m.loss == "nce":
                neg = global_draw(init_fn, k_init, (b * m.noise_ratio, *shape), axis_name)
            else:
                if use_buffer:
                    devices = 1 if axis_name is None else lax.axis_size(axis_name)
                    starts, slots = replay_draw(aux["buffer"], k_init, b * devices, reinit_prob=m.reinit_prob,
                                                init_fn=init_fn)
                    start = starts if axis_name is None else lax.dynamic_slice_in_dim(
                        starts, lax.axis_index(axis_name) * b, b)
                else:
                    start = global_draw(init_fn, k_init, real.shape, axis_name)
                neg = langevin_sample(score_fn(variables), start, k_chain, step_sizes, noise_scales, bounds=bounds,
                                      noise_fn=lambda key, sh: global_draw(jax.random.normal, key, sh, axis_name))
                neg = lax.stop_gradient(neg)
                if use_buffer:
                    chains = neg if axis_name is None else lax.all_gather(neg, axis_name, tiled=True)
                    aux = {"buffer": replay_update(aux["buffer"], slots, chains)}

            def loss_fn(trainable):
                v = {**variables, "params": trainable["net"]}
                f_real, logits_real, v = f_and_logits(v, real, update_stats=True)
                f_neg, logits_neg, _ = f_and_logits(v, neg)
                metrics = {"e_data": jnp.mean(f_real), "e_samples": jnp.mean(f_neg),
                           "energy_gap": jnp.mean(f_real) - jnp.mean(f_neg)}
                if m.loss == "cd":
                    loss = jnp.mean(contrastive_divergence(f_real, f_neg, alpha=m.alpha))
                elif m.loss == "jem":
                    labels = jnp.asarray(batch["label"], jnp.int32)
                    loss = jnp.mean(joint_energy_loss(logits_real, labels, logits_neg, alpha=m.alpha,
                                                      generative_weight=m.generative_weight))
                    metrics["accuracy"] = jnp.mean(jnp.argmax(logits_real, -1) == labels)
                else:
                    c = trainable["c"]
                    loss = jnp.mean(noise_contrastive_estimation(-f_real - c, (-f_neg - c).reshape(b, m.noise_ratio),
                                                                 noise_ratio=m.noise_ratio))
                    metrics["log_normalizer"] = c
                return loss, (v, dict(metrics, loss=loss))

            trainable = {"net": variables["params"], "c": state.params["c"]}
            grads, (new_vars, metrics) = jax.grad(loss_fn, has_aux=True)(trainable)
            if axis_name is not None:
                grads, metrics = lax.pmean((grads, metrics), axis_name)
            updates, opt_state = optimizer.update(grads, state.opt_state, trainable)
            trainable = optax.apply_updates(trainable, updates)
            params = {"net": {**new_vars, "params": trainable["net"]}, "c": trainable["c"]}
            ema = state.ema_params
            if ema_decay:
                ema = {"net": {"params": optax.incremental_update(trainable["net"], ema["net"]["params"],
                                                                  step_size=1.0 - ema_decay)}}
            metrics = dict(metrics, grad_norm=optax.tree.norm(grads), param_norm=optax.tree.norm(trainable))
            return state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema,
                                 aux=aux), metrics

        return step

    # ------------------------------------------------------------------ capabilities

    sample_steps = m.sample_steps or m.sampler_steps

    def run_chains(params, rng, n, steps, mask=None, observed=None):
        """Langevin from ``q0`` (``mask``: 1 = clamped to ``observed``)."""
        k_init, k_run = jax.random.split(rng)
        z = init_fn(k_init, (n, *shape))
        score, noise = score_fn(params["net"]), jax.random.normal
        if mask is not None:
            z = mask * observed + (1 - mask) * z
            score = lambda v, s=score: s(v) * (1 - mask)
            noise = lambda key, sh: jax.random.normal(key, sh) * (1 - mask)
        sizes = jnp.full((steps,), m.step_size, jnp.float32)
        scales = None if not m.noise_scale else jnp.full((steps,), m.noise_scale, jnp.float32)
        return langevin_sample(score, z, k_run, sizes, scales, bounds=bounds, noise_fn=noise)

    @functools.partial(jax.jit, static_argnames=("n", "steps"))
    def _sample(params, rng, n, steps):
        z = run_chains(params, rng, n, steps)
        return from_bin_centres(z, num_levels=k) if kind == "image" else from_std(z)

    def sample(params, rng, n, *, labels=None, steps=None):
        """``n`` short-run draws: ``steps`` (default ``model.sample_steps``) Langevin steps from ``q0``; images as
        integer levels."""
        if labels is not None:
            raise ValueError("labels given to an unconditional energy-based model (JEM samples p(x))")
        return _sample(params, rng, n=n, steps=steps or sample_steps)

    def log_z(params, rng, num_chains, num_steps):
        """Forward AIS from ``q0`` to ``q0 exp(-f)``: ``(log Z_f estimate, HMC acceptance)``."""
        k_init, k_run = jax.random.split(rng)
        log_q0 = lambda z: log_base_const - base_energy(z)
        log_w, _, acc, _ = annealed_importance_sampling(
            log_q0, lambda z: log_q0(z) - f(params["net"], z), init_fn(k_init, (num_chains, *shape)), k_run,
            geometric_betas(num_steps), step_size=m.ais_step_size, num_leapfrog=m.ais_leapfrog, bounds=bounds)
        return log_mean_exp(log_w), acc

    def log_prob_fn(params, batch, rng, *, num_chains, num_steps):
        k_ais, k_deq = jax.random.split(rng)
        z = to_model(batch, k_deq, None)
        lz, _ = log_z(params, k_ais, num_chains, num_steps)
        return to_data_log_prob(log_base_const - base_energy(z) - f(params["net"], z) - lz)

    log_prob = LogProb(log_prob_fn, "estimate", {"num_chains": m.ais_chains, "num_steps": m.ais_steps},
                       estimator=lambda num_chains, num_steps: f"ais{num_steps}")

    @jax.jit
    def energy(params, batch):
        if kind == "vector":
            z = to_std(batch["x"])
        else:
            z = to_bin_centres(batch["image"], num_levels=k)
        return f(params["net"], z) + base_energy(z)

    def anomaly_score(params, batch, rng=None):
        """The energy ``E(x)`` (images at their bins' centres): higher = less likely under the model."""
        return energy(params, batch)

    @jax.jit
    def _impute(params, x, mask, rng):
        levels = x * (k - 1)  # intensities -> (continuous) levels -> the model's [-1, 1]
        z = run_chains(params, rng, x.shape[0], sample_steps, mask, (2 * levels + 1) / k - 1)
        return jnp.clip(((z + 1) * k / 2 - 0.5) / (k - 1), 0.0, 1.0)

    def impute(params, x, mask, rng):
        """Images in [0, 1], mask 1 = observed: ``model.sample_steps`` Langevin steps on the missing pixels
        (from uniform noise) with the observed ones clamped."""
        x, mask = jnp.asarray(x, jnp.float32), jnp.asarray(mask, jnp.float32)
        return np.asarray(mask * x + (1 - mask) * _impute(params, x, mask, rng))

    picture = None
    if kind == "vector" and num_dims == 2:
        picture = _toy_picture(data, from_std, energy, sample_steps, run_chains, score_fn, m)
    return Family(NAME, net, Trainer(init_state=init_state, make_step=make_step), sample=sample,
                  log_prob=log_prob, anomaly_score_fn=anomaly_score, impute=impute if kind == "image" else None,
                  picture=picture, num_levels=k)


def _toy_picture(data, from_std, energy, steps, run_chains, score_fn, m):
    """Data, the density ``exp(-E)`` normalised on the picture's grid, and short-run samples with the paths of
    20 chains from the base over their first 200 steps."""
    points = np.asarray(data.x[:5000])
    bounds = data.toy.bounds if data.toy is not None else (*np.percentile(points[:, 0], [0, 100]),
                                                           *np.percentile(points[:, 1], [0, 100]))

    @jax.jit
    def paths(params, rng):
        k_init, k_run = jax.random.split(rng)
        score = score_fn(params["net"])
        one = jnp.full((1,), m.step_size, jnp.float32)
        scale = None if not m.noise_scale else jnp.full((1,), m.noise_scale, jnp.float32)

        def advance(z, key):
            z = langevin_sample(score, z, key, one, scale)
            return z, from_std(z)

        z0 = m.base_scale * jax.random.normal(k_init, (20, 2))
        _, states = lax.scan(advance, z0, jax.random.split(k_run, min(steps, 200)))
        return jnp.concatenate([from_std(z0)[None], states]).transpose(1, 0, 2)

    @jax.jit
    def samples(params, rng):
        return from_std(run_chains(params, rng, 5000, steps))

    def picture(params, rng, path_out, title):
        neg_e = lambda v: -np.asarray(energy(params, {"x": jnp.asarray(v, jnp.float32)}))
        lp, area = density_grid(neg_e, bounds, resolution=150)
        lp = lp - (np.log(np.sum(np.exp(lp - lp.max())) * area) + lp.max())
        save_2d_panels([{"title": "data", "points": points},
                        {"title": "exp(-E(x)), normalised on the grid", "log_density": lp},
                        {"title": f"{steps}-step Langevin samples, 20 chains", "color": "tab:orange",
                         "points": np.asarray(samples(params, jax.random.fold_in(rng, 1))),
                         "paths": np.asarray(paths(params, rng))}], path_out, bounds=bounds, title=title)

    return picture
