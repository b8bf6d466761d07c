"""Samplers for diffusion, score and flow-matching models: functions of a Gaussian path
(:mod:`gen_jax.models.diffusion`) and a *denoiser* ``(x, t) -> (x0_hat, eps_hat)`` (``t`` a scalar time), each a
``lax.scan`` that runs under ``jax.jit`` and is deterministic given its key.

* :func:`ddim_sample`: DDIM (Song et al. 2021) for any number of steps and ``eta``; ``eta = 1`` is DDPM's
  ancestral sampler (the posterior ``q(x_s | x_t, x0_hat)``, Ho et al. 2020).
* :func:`ode_solve` / :func:`ode_sample`: the probability-flow ODE (Euler, Heun = EDM's 2nd-order sampler,
  Karras et al. 2022; flow matching's ODE), both ways: data -> noise encodes, noise -> data decodes.
* :func:`reverse_sde_sample`: reverse-SDE Euler-Maruyama with an optional Langevin corrector (Song et al. 2021's
  predictor-corrector).
* :func:`pf_ode_log_likelihood`: exact log-likelihood by the instantaneous change of variables along the
  PF-ODE (exact divergence in low dimension, Hutchinson's estimator otherwise; FFJORD, Grathwohl et al. 2019).
* :func:`guided`: classifier-free guidance (Ho & Salimans 2022).

Time grids: ``ts`` runs from ``t_max`` down to ``t_min`` for sampling (:func:`time_grid`).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

Denoiser = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def time_grid(path, num_steps: int, kind: str = "uniform", *, rho: float = 7.0):
    """``num_steps + 1`` times from ``t_max`` down to ``t_min``: ``uniform`` in t, or ``edm``: EDM's noise levels
    (Karras et al. 2022, eq. 5: uniform in ``sigma^(1/rho)``), on any path through its EDM-equivalent noise
    level ``sigma(t) / alpha(t)`` (the time of an EDM path is its noise level)."""
    if kind == "uniform":
        return jnp.linspace(path.t_max, path.t_min, num_steps + 1)
    if kind == "edm":
        if hasattr(path, "schedule"):
            return path.schedule(num_steps + 1, rho)
        u = jnp.linspace(0.0, 1.0, 4097) ** 4  # dense near both ends, where the level changes fastest
        fine = path.t_min + (path.t_max - path.t_min) * jnp.sort(jnp.concatenate([u, 1 - u]))
        level = (path.sigma(fine) / path.alpha(fine)) ** (1 / rho)  # increasing in t
        return jnp.interp(jnp.linspace(level[-1], level[0], num_steps + 1), level, fine)
    raise ValueError(f"unknown time grid {kind!r}; use 'uniform' or 'edm'")


def _b(v, x):
    return jnp.reshape(v, (1,) * x.ndim)


def ddim_sample(denoiser: Denoiser, path, x, ts, rng, *, eta: float = 0.0):
    """DDIM sampling from ``x`` at ``ts[0]``: :func:`ddim_solve`, then ``x0_hat`` at the last time
    (``len(ts)`` network evaluations)."""
    return denoiser(ddim_solve(denoiser, path, x, ts, rng, eta=eta), ts[-1])[0]


def ddim_solve(denoiser: Denoiser, path, x, ts, rng=None, *, eta: float = 0.0):
    """DDIM steps through ``ts``: ``x_s = alpha_s x0_hat + sqrt(sigma_s^2 - c^2) eps_hat + c z`` with
    ``c = eta sigma_s sqrt(sigma_t^2 - (alpha_t / alpha_s)^2 sigma_s^2) / sigma_t`` (the DDPM posterior's standard
    deviation times ``eta``). With ``eta = 0`` it is deterministic and runs both ways (increasing ``ts``
    encodes data into noise). Returns the state at ``ts[-1]``."""
    if rng is None:
        if eta:
            raise ValueError("DDIM with eta > 0 needs rng")
        rng = jax.random.key(0)

    def step(carry, ts_pair):
        x, key = carry
        t, s = ts_pair
        key, sub = jax.random.split(key)
        x0, eps = denoiser(x, t)
        at, st, as_, ss = path.alpha(t), path.sigma(t), path.alpha(s), path.sigma(s)
        c = eta * ss * jnp.sqrt(jnp.maximum(st ** 2 - (at / as_) ** 2 * ss ** 2, 0.0)) / st if eta else 0.0
        x = _b(as_, x) * x0 + _b(jnp.sqrt(jnp.maximum(ss ** 2 - c ** 2, 0.0)), x) * eps \
            + _b(c, x) * jax.random.normal(sub, x.shape)
        return (x, key), None

    (x, _), _ = jax.lax.scan(step, (x, rng), (ts[:-1], ts[1:]))
    return x


def ode_solve(denoiser: Denoiser, path, x, ts, *, method: str = "heun"):
    """Integrates the probability-flow ODE ``dx/dt = alpha' x0_hat + sigma' eps_hat`` from ``ts[0]`` through
    ``ts`` (increasing: data -> noise, encoding; decreasing: noise -> data) with ``euler`` or ``heun`` steps;
    returns the state at ``ts[-1]``."""
    if method not in ("euler", "heun"):
        raise ValueError(f"unknown ODE method {method!r}; use 'euler' or 'heun'")

    def u(x, t):
        return path.velocity(*denoiser(x, t), t)

    def step(x, ts_pair):
        t, s = ts_pair
        h = s - t
        d = u(x, t)
        if method == "euler":
            return x + h * d, None
        x_e = x + h * d
        return x + 0.5 * h * (d + u(x_e, s)), None

    x, _ = jax.lax.scan(step, x, (ts[:-1], ts[1:]))
    return x


def ode_sample(denoiser: Denoiser, path, x, ts, *, method: str = "heun"):
    """PF-ODE sampling from noise ``x`` at ``ts[0]``; returns ``x0_hat`` at the last time."""
    return denoiser(ode_solve(denoiser, path, x, ts, method=method), ts[-1])[0]


def reverse_sde_sample(denoiser: Denoiser, path, x, ts, rng, *, corrector_steps: int = 0, snr: float = 0.16):
    """Euler-Maruyama on the reverse SDE ``dx = [f - g^2 score] dt + g dw`` (score ``= -eps_hat / sigma``), with
    ``corrector_steps`` Langevin steps after each predictor step at signal-to-noise ratio ``snr`` (score_sde's
    LangevinCorrector); returns ``x0_hat`` at the last time."""

    def score(x, t):
        return -denoiser(x, t)[1] / _b(path.sigma(t), x)

    def step(carry, ts_pair):
        x, key = carry
        t, s = ts_pair
        key, k_pred, k_corr = jax.random.split(key, 3)
        f, g = path.sde(x, t)
        dt = s - t  # negative
        x = x + (f - _b(g, x) ** 2 * score(x, t)) * dt + _b(g, x) * jnp.sqrt(-dt) * jax.random.normal(k_pred, x.shape)

        def correct(i, x):
            z = jax.random.normal(jax.random.fold_in(k_corr, i), x.shape)
            sc = score(x, s)
            eps_step = 2 * (snr * jnp.linalg.norm(z) / jnp.linalg.norm(sc)) ** 2
            return x + eps_step * sc + jnp.sqrt(2 * eps_step) * z

        return (jax.lax.fori_loop(0, corrector_steps, correct, x), key), None

    (x, _), _ = jax.lax.scan(step, (x, rng), (ts[:-1], ts[1:]))
    return denoiser(x, ts[-1])[0]


def pf_ode_log_likelihood(denoiser: Denoiser, path, x, *, num_steps: int = 100, rng=None,
                          exact_divergence: bool = True, ts=None):
    """``log p(x)`` of the model defined by the probability-flow ODE, per example: integrates ``x`` from
    ``t_min`` to ``t_max`` with ``d log p / dt = -div u`` (RK4, ``num_steps`` steps) and adds the prior's
    log-density at the end (FFJORD's instantaneous change of variables); ``ts`` overrides the uniform grid. ``exact_divergence`` takes the trace of
    the Jacobian (one forward-mode pass per dimension); otherwise Hutchinson's estimator with one Gaussian probe
    per example held fixed along the path (needs ``rng``): unbiased for the divergence, so the result is an
    unbiased estimate of the log-likelihood up to the solver's error."""

    def u(x, t):
        return path.velocity(*denoiser(x, t), t)

    flat = lambda v: v.reshape(v.shape[0], -1)
    if exact_divergence:
        def div(x, t):
            def one(xi):
                jac = jax.jacfwd(lambda v: flat(u(v[None], t))[0])(xi)
                return jnp.trace(jac.reshape(xi.size, xi.size))
            return jax.vmap(one)(x)
    else:
        if rng is None:
            raise ValueError("Hutchinson's estimator needs rng")
        probe = jax.random.normal(rng, x.shape)

        def div(x, t):
            _, jvp = jax.jvp(lambda v: u(v, t), (x,), (probe,))
            return jnp.sum(flat(jvp * probe), axis=-1)

    def rhs(state, t):
        x, _ = state
        return u(x, t), div(x, t)

    def step(state, ts_pair):
        t, s = ts_pair
        h = s - t
        add = lambda st, k, c: (st[0] + c * h * k[0], st[1] + c * h * k[1])
        k1 = rhs(state, t)
        k2 = rhs(add(state, k1, 0.5), t + h / 2)
        k3 = rhs(add(state, k2, 0.5), t + h / 2)
        k4 = rhs(add(state, k3, 1.0), s)
        x = state[0] + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        integral = state[1] + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
        return (x, integral), None

    if ts is None:  # increasing times; for EDM pass its own grid reversed (uniform steps in t are too coarse)
        ts = jnp.linspace(path.t_min, path.t_max, num_steps + 1)
    (z, integral), _ = jax.lax.scan(step, (x, jnp.zeros(x.shape[0])), (ts[:-1], ts[1:]))
    return path.prior_log_prob(z) + integral


def guided(denoiser_cond: Denoiser, denoiser_uncond: Denoiser, path, scale: float) -> Denoiser:
    """Classifier-free guidance: ``eps = eps_u + scale (eps_c - eps_u)`` (``scale = 0``: the unconditional
    model, ``1``: the conditional one, more: sharper), with ``x0_hat`` made consistent with it. A scale of
    exactly 0 given as a Python number evaluates the unconditional model alone (half the network evaluations)."""
    unconditional_only = isinstance(scale, (int, float)) and scale == 0

    def denoiser(x, t):
        _, eps_u = denoiser_uncond(x, t)
        if unconditional_only:
            eps = eps_u
        else:
            _, eps_c = denoiser_cond(x, t)
            eps = eps_u + scale * (eps_c - eps_u)
        return (x - _b(path.sigma(t), x) * eps) / _b(path.alpha(t), x), eps

    return denoiser


def inpaint(denoiser: Denoiser, path, x_known, mask, ts, rng, *, resample: int = 1):
    """Fills the pixels where ``mask == 0`` by ancestral (DDPM) sampling with the known pixels replaced, at each
    time, by a fresh draw of ``q(x_s | x_known)`` ("replacement", Song et al. 2021); with ``resample > 1``
    each step is repeated after renoising ``x_s`` back to ``x_t`` (RePaint, Lugmayr et al. 2022), which lets
    the generated part agree with the known part. ``x_known`` is at the data scale, 0 where unknown; returns
    ``x0_hat`` with the known pixels put back."""

    def known_at(t, key):
        return _b(path.alpha(t), x_known) * x_known + _b(path.sigma(t), x_known) * jax.random.normal(key, x_known.shape)

    def step(carry, ts_pair):
        x, key = carry
        t, s = ts_pair

        def one_round(r, x):
            k_rev, k_known, k_back = jax.random.split(jax.random.fold_in(key, r), 3)
            x_s = ddim_solve(denoiser, path, x, jnp.stack([t, s]), k_rev, eta=1.0)
            x_s = mask * known_at(s, k_known) + (1 - mask) * x_s
            # back to t through the forward process q(x_t | x_s) unless this is the last round
            ratio = path.alpha(t) / path.alpha(s)
            back_std = jnp.sqrt(jnp.maximum(path.sigma(t) ** 2 - ratio ** 2 * path.sigma(s) ** 2, 0.0))
            x_t = _b(ratio, x) * x_s + _b(back_std, x) * jax.random.normal(k_back, x.shape)
            return jnp.where(r < resample - 1, x_t, x_s)

        x = jax.lax.fori_loop(0, resample, lambda r, x: one_round(r, x), x) if resample > 1 else one_round(0, x)
        return (x, jax.random.fold_in(key, resample)), None

    k_init, k_run = jax.random.split(rng)
    x = path.prior_sample(k_init, x_known.shape)
    (x, _), _ = jax.lax.scan(step, (x, k_run), (ts[:-1], ts[1:]))
    return mask * x_known + (1 - mask) * denoiser(x, ts[-1])[0]
