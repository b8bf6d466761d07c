"""Metropolis-adjusted samplers and annealed importance sampling, for densities known up to a constant
(energy-based models; any ``log_prob_fn`` on a batch).

Every sampler is a ``lax.scan`` over steps, vectorised over a batch of independent chains, deterministic given a
key; a target restricted to a box (``bounds``: images) rejects every proposal that leaves it, so the chain stays
exact. Proven on closed forms in ``tests/test_ebm.py``: each reaches N(0, I) and a Gaussian mixture, and AIS
brackets a Gaussian's log Z (ebmkit's checks).

* MALA: Roberts & Tweedie 1996 (Langevin proposal, Metropolis-Hastings correction).
* HMC: Duane et al. 1987; Neal 2011, "MCMC using Hamiltonian dynamics" (leapfrog, identity mass).
* AIS: Neal 2001, "Annealed importance sampling"; run backwards from exact target samples it gives the
  reverse estimate of Grosse et al. 2015 (BDMC), and the two bracket ``log Z`` in expectation.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

LogProbFn = Callable[[jax.Array], jax.Array]  # (B, ...) -> (B,)


def _value_and_grad(log_prob_fn: LogProbFn, x: jax.Array):
    """Per-example ``log p`` ``(B,)`` and its gradient ``(B, ...)`` in one pass."""
    lp, vjp = jax.vjp(log_prob_fn, x)
    return lp, vjp(jnp.ones_like(lp))[0]


def _sum_rest(v: jax.Array) -> jax.Array:
    return jnp.sum(v.reshape(v.shape[0], -1), axis=-1)


def _inside(x: jax.Array, bounds) -> jax.Array:
    if bounds is None:
        return jnp.ones(x.shape[0], bool)
    return jnp.all(((x >= bounds[0]) & (x <= bounds[1])).reshape(x.shape[0], -1), axis=-1)


def _accept(key, log_alpha, inside):
    log_alpha = jnp.where(inside, log_alpha, -jnp.inf)
    return jnp.log(jax.random.uniform(key, log_alpha.shape)) < log_alpha


def _where(mask, a, b):
    return jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)


def mala_step(log_prob_fn: LogProbFn, x, lp, grad, key, step_size, bounds=None):
    """One Metropolis-adjusted Langevin step from ``x`` (with its ``lp`` and ``grad``). Returns
    ``(x, lp, grad, accepted)``."""
    k_prop, k_acc = jax.random.split(key)
    y = x + 0.5 * step_size * grad + jnp.sqrt(step_size) * jax.random.normal(k_prop, x.shape)
    lp_y, grad_y = _value_and_grad(log_prob_fn, y)
    log_q_fwd = -_sum_rest((y - x - 0.5 * step_size * grad) ** 2) / (2 * step_size)
    log_q_bwd = -_sum_rest((x - y - 0.5 * step_size * grad_y) ** 2) / (2 * step_size)
    accepted = _accept(k_acc, lp_y + log_q_bwd - lp - log_q_fwd, _inside(y, bounds))
    return _where(accepted, y, x), jnp.where(accepted, lp_y, lp), _where(accepted, grad_y, grad), accepted


def hmc_step(log_prob_fn: LogProbFn, x, lp, grad, key, step_size, num_leapfrog: int, bounds=None):
    """One Hamiltonian Monte Carlo step (``num_leapfrog`` leapfrog steps of ``step_size``, a fresh Gaussian
    momentum, a Metropolis test on the Hamiltonian). Returns ``(x, lp, grad, accepted)``."""
    k_mom, k_acc = jax.random.split(key)
    p0 = jax.random.normal(k_mom, x.shape)

    def leapfrog(carry, _):
        y, p, g = carry
        p = p + 0.5 * step_size * g
        y = y + step_size * p
        lp_y, g = _value_and_grad(log_prob_fn, y)
        p = p + 0.5 * step_size * g
        return (y, p, g), lp_y

    (y, p, grad_y), lps = jax.lax.scan(leapfrog, (x, p0, grad), None, length=num_leapfrog)
    lp_y = lps[-1]
    log_alpha = (lp_y - 0.5 * _sum_rest(p ** 2)) - (lp - 0.5 * _sum_rest(p0 ** 2))
    accepted = _accept(k_acc, jnp.nan_to_num(log_alpha, nan=-jnp.inf), _inside(y, bounds))
    return _where(accepted, y, x), jnp.where(accepted, lp_y, lp), _where(accepted, grad_y, grad), accepted


def mala_sample(log_prob_fn: LogProbFn, x, rng, *, step_size: float, num_steps: int, bounds=None):
    """``num_steps`` MALA steps from ``x`` ``(B, ...)``. Returns ``(x, acceptance)``: the final chains and each
    chain's fraction of accepted proposals ``(B,)`` (about 0.57 at the optimal step in high dimension)."""
    lp, grad = _value_and_grad(log_prob_fn, x)

    def step(carry, key):
        x, lp, grad = carry
        x, lp, grad, acc = mala_step(log_prob_fn, x, lp, grad, key, step_size, bounds)
        return (x, lp, grad), acc

    (x, _, _), acc = jax.lax.scan(step, (x, lp, grad), jax.random.split(rng, num_steps))
    return x, jnp.mean(acc, axis=0)


def hmc_sample(log_prob_fn: LogProbFn, x, rng, *, step_size: float, num_leapfrog: int, num_steps: int,
               bounds=None):
    """``num_steps`` HMC steps from ``x``. Returns ``(x, acceptance)`` as :func:`mala_sample` (about 0.65-0.9
    at a well-chosen step)."""
    lp, grad = _value_and_grad(log_prob_fn, x)

    def step(carry, key):
        x, lp, grad = carry
        x, lp, grad, acc = hmc_step(log_prob_fn, x, lp, grad, key, step_size, num_leapfrog, bounds)
        return (x, lp, grad), acc

    (x, _, _), acc = jax.lax.scan(step, (x, lp, grad), jax.random.split(rng, num_steps))
    return x, jnp.mean(acc, axis=0)


def log_mean_exp(log_w: jax.Array) -> jax.Array:
    return jax.nn.logsumexp(log_w) - jnp.log(log_w.shape[0])


def annealed_importance_sampling(log_base: LogProbFn, log_target: LogProbFn, x, rng, betas, *,
                                 step_size: float = 0.1, num_leapfrog: int = 5, adapt: bool = False,
                                 target_acceptance: float = 0.65, bounds=None):
    """Annealed importance sampling along ``pi_b ∝ base^(1 - b) target^b`` for ``b`` in ``betas``.

    Started from exact draws ``x`` of ``pi_{betas[0]}``, each chain's log weight estimates
    ``log(Z_{betas[-1]} / Z_{betas[0]})`` with ``E[exp(log_w)] = Z ratio`` exactly: forwards
    (``betas`` 0 -> 1, ``x`` from a normalised ``base``) ``log_mean_exp(log_w)`` is a stochastic lower bound on
    ``log Z_target``; backwards (``betas`` 1 -> 0, ``x`` exact target draws) ``-log_mean_exp(log_w)`` is a
    stochastic upper bound (Grosse et al. 2015).

    Transitions: one HMC step per intermediate distribution. With ``adapt`` the step size (one for all
    chains) grows by 2 % after a step whose mean acceptance exceeds ``target_acceptance`` and shrinks by 2 %
    otherwise (adapting on the population, as Wu et al. 2017). Off by default: on a 5-D Gaussian with 100
    temperatures it drifted the step up while the base was wide, then stalled the chains as the target
    narrowed, and the log Z estimates of 3 seeds spread over 0.54 nats against 0.06 with a fixed step of 0.3.

    Returns:
      ``(log_w (B,), x, mean acceptance, final step size)``.
    """
    betas = jnp.asarray(betas, jnp.float32)
    log_ratio = lambda v: log_target(v) - log_base(v)

    def step(carry, inputs):
        x, log_w, eps = carry
        b_prev, b, key = inputs
        log_w = log_w + (b - b_prev) * log_ratio(x)
        log_pi = lambda v: (1 - b) * log_base(v) + b * log_target(v)
        lp, grad = _value_and_grad(log_pi, x)
        x, _, _, acc = hmc_step(log_pi, x, lp, grad, key, eps, num_leapfrog, bounds)
        rate = jnp.mean(acc)
        if adapt:
            eps = eps * jnp.where(rate > target_acceptance, 1.02, 0.98)
        return (x, log_w, eps), rate

    keys = jax.random.split(rng, betas.shape[0] - 1)
    (x, log_w, eps), rates = jax.lax.scan(step, (x, jnp.zeros(x.shape[0]), jnp.float32(step_size)),
                                          (betas[:-1], betas[1:], keys))
    return log_w, x, jnp.mean(rates), eps


def geometric_betas(num_steps: int, *, start: float = 1e-4):
    """``0, start, ..., 1``: ``num_steps`` + 1 temperatures, geometric after 0 (dense where the base dominates,
    where most of the work of AIS lies for a narrow target)."""
    return jnp.concatenate([jnp.zeros(1), jnp.geomspace(start, 1.0, num_steps)])
