"""Diffusion, score and flow-matching models seen as one idea: a Gaussian path ``x_t = alpha(t) x_0 + sigma(t)
eps`` from data (t = t_min) to noise (t = t_max), and a network that predicts the clean data (or the noise, the
velocity, ...) from ``x_t``.

One object per formulation (score_sde's SDE classes, diffuse_nnx's interfaces): :class:`VP` (DDPM's
variance-preserving process, Ho et al. 2020; Song et al. 2021), :class:`VE` (NCSN's variance-exploding process,
Song & Ermon 2019), :class:`EDM` (``sigma = t``, Karras et al. 2022, with its preconditioning) and
:class:`RectifiedFlow` (the linear interpolant ``(1 - t) x_0 + t eps`` of rectified flow / conditional flow
matching, Liu et al. 2023; Lipman et al. 2023). Each gives ``alpha``, ``sigma`` and their time derivatives,
the training-time distribution and the prior; everything else follows from them once, here:

* the reverse SDE's drift and diffusion: ``f(x, t) = (alpha'/alpha) x``, ``g(t)^2 = d sigma^2/dt - 2
  (alpha'/alpha) sigma^2`` (:meth:`GaussianPath.sde`);
* the probability-flow ODE ``dx/dt = alpha' E[x_0 | x_t] + sigma' E[eps | x_t]`` (:meth:`GaussianPath.velocity`),
  the same for every formulation;
* conversions between predictions (:func:`denoise`): eps, x0, v (Salimans & Ho 2022), velocity, score.

Samplers (:mod:`gen_jax.sampling.diffusion`) and losses (:mod:`gen_jax.losses.score_matching`) take a path and
a *denoiser* ``(x, t) -> (x0_hat, eps_hat)``.
"""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.nn.embeddings import sinusoidal_embedding
from gen_jax.nn.mlp import MLP

PREDICTIONS = ("eps", "x0", "v", "velocity", "edm")


def _bcast(a, x):
    """``a`` of shape ``(B,)`` (or a scalar) broadcast against ``x`` of shape ``(B, ...)``."""
    a = jnp.asarray(a, x.dtype)
    return a.reshape(a.shape + (1,) * (x.ndim - a.ndim)) if a.ndim else a


@dataclasses.dataclass(frozen=True)
class GaussianPath:
    """Base class: subclasses define ``alpha``, ``sigma``, ``d_alpha``, ``d_sigma`` on ``[t_min, t_max]``."""

    t_min: float = 1e-3
    t_max: float = 1.0

    def alpha(self, t):
        raise NotImplementedError

    def sigma(self, t):
        raise NotImplementedError

    def d_alpha(self, t):
        return jax.grad(lambda s: jnp.sum(self.alpha(s)))(jnp.asarray(t, jnp.float32))

    def d_sigma(self, t):
        return jax.grad(lambda s: jnp.sum(self.sigma(s)))(jnp.asarray(t, jnp.float32))

    def marginal(self, x0, eps, t):
        """``x_t = alpha(t) x0 + sigma(t) eps`` (``t`` of shape ``(B,)`` or scalar)."""
        return _bcast(self.alpha(t), x0) * x0 + _bcast(self.sigma(t), x0) * eps

    def sample_t(self, rng, n: int):
        """Training times: uniform on ``[t_min, t_max]``."""
        return jax.random.uniform(rng, (n,), minval=self.t_min, maxval=self.t_max)

    @property
    def prior_std(self) -> float:
        """The standard deviation of ``x_{t_max}`` for data of unit scale (its mean is ``alpha(t_max) x0``,
        treated as 0: ``alpha(t_max)`` is at most ~0.007 for VP and 0 for rectified flow)."""
        with jax.ensure_compile_time_eval():  # constants, also when called under jit
            a, s = float(self.alpha(self.t_max)), float(self.sigma(self.t_max))
        return math.sqrt(a * a + s * s)

    def prior_sample(self, rng, shape):
        return self.prior_std * jax.random.normal(rng, shape)

    def prior_log_prob(self, x):
        """log N(x; 0, prior_std^2 I), summed over all but the batch axis."""
        d = x[0].size
        s = self.prior_std
        return -0.5 * jnp.sum((x / s) ** 2, axis=tuple(range(1, x.ndim))) - d * (math.log(s) + 0.5 * math.log(2 * math.pi))

    def sde(self, x, t):
        """Forward SDE ``dx = f(x, t) dt + g(t) dw`` with the path's marginals: ``(f, g)``."""
        a, s = self.alpha(t), self.sigma(t)
        da, ds = self.d_alpha(t), self.d_sigma(t)
        g2 = 2 * s * ds - 2 * (da / a) * s * s
        return _bcast(da / a, x) * x, jnp.sqrt(jnp.maximum(g2, 0.0))

    def denoise(self, prediction: str, out, x, t):
        """The network output read as ``prediction``, as ``(x0_hat, eps_hat)``: :func:`denoise`."""
        return denoise(self, prediction, out, x, t)

    def target(self, prediction: str, x0, eps, t):
        """The regression target of ``prediction`` for ``(x0, eps)`` at ``t``: :func:`training_target`."""
        return training_target(self, prediction, x0, eps, t)

    def velocity(self, x0_hat, eps_hat, t):
        """The probability-flow ODE's ``dx/dt`` given the predictions of ``x0`` and ``eps`` at ``(x_t, t)``."""
        return _bcast(self.d_alpha(t), x0_hat) * x0_hat + _bcast(self.d_sigma(t), eps_hat) * eps_hat


@dataclasses.dataclass(frozen=True)
class VP(GaussianPath):
    """Variance preserving (DDPM in continuous time, Song et al. 2021): ``beta(t)`` linear from ``beta_min`` to
    ``beta_max``, ``alpha = exp(-int beta / 2)``, ``sigma = sqrt(1 - alpha^2)``."""

    beta_min: float = 0.1
    beta_max: float = 20.0

    def _log_alpha(self, t):
        return -0.25 * t * t * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def alpha(self, t):
        return jnp.exp(self._log_alpha(t))

    def sigma(self, t):
        return jnp.sqrt(-jnp.expm1(2 * self._log_alpha(t)))

    def d_alpha(self, t):
        return -0.5 * (self.beta_min + t * (self.beta_max - self.beta_min)) * self.alpha(t)

    def d_sigma(self, t):
        a = self.alpha(t)
        return -a * self.d_alpha(t) / self.sigma(t)


@dataclasses.dataclass(frozen=True)
class VE(GaussianPath):
    """Variance exploding (NCSN / SMLD): ``alpha = 1``, ``sigma = sigma_min (sigma_max / sigma_min)^t``."""

    sigma_min: float = 0.01
    sigma_max: float = 10.0
    t_min: float = 0.0

    def alpha(self, t):
        return jnp.ones_like(jnp.asarray(t, jnp.float32))

    def sigma(self, t):
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** jnp.asarray(t, jnp.float32)

    def d_alpha(self, t):
        return jnp.zeros_like(jnp.asarray(t, jnp.float32))

    def d_sigma(self, t):
        return self.sigma(t) * math.log(self.sigma_max / self.sigma_min)


@dataclasses.dataclass(frozen=True)
class EDM(GaussianPath):
    """Karras et al. 2022: ``alpha = 1``, ``sigma = t`` on ``[sigma_min, sigma_max]``; training noise levels
    log-normal (``p_mean``, ``p_std``), clipped to the range; preconditioning by :meth:`preconditioning`."""

    t_min: float = 0.002
    t_max: float = 80.0
    sigma_data: float = 0.5
    p_mean: float = -1.2
    p_std: float = 1.2

    def alpha(self, t):
        return jnp.ones_like(jnp.asarray(t, jnp.float32))

    def sigma(self, t):
        return jnp.asarray(t, jnp.float32)

    def d_alpha(self, t):
        return jnp.zeros_like(jnp.asarray(t, jnp.float32))

    def d_sigma(self, t):
        return jnp.ones_like(jnp.asarray(t, jnp.float32))

    def sample_t(self, rng, n: int):
        return jnp.clip(jnp.exp(self.p_mean + self.p_std * jax.random.normal(rng, (n,))), self.t_min, self.t_max)

    def loss_weight(self, t):
        """``lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2``: unit-variance targets."""
        s, d = self.sigma(t), self.sigma_data
        return (s * s + d * d) / (s * d) ** 2

    def preconditioning(self, t):
        """``(c_skip, c_out, c_in, c_noise)`` of ``D(x) = c_skip x + c_out F(c_in x, c_noise)`` (EDM Table 1)."""
        s, d = self.sigma(t), self.sigma_data
        c_skip = d * d / (s * s + d * d)
        c_out = s * d / jnp.sqrt(s * s + d * d)
        c_in = 1 / jnp.sqrt(s * s + d * d)
        return c_skip, c_out, c_in, 0.25 * jnp.log(s)

    def schedule(self, num_steps: int, rho: float = 7.0):
        """EDM's sampling noise levels (eq. 5), ``num_steps`` from ``sigma_max`` down to ``sigma_min``."""
        i = jnp.arange(num_steps) / max(num_steps - 1, 1)
        lo, hi = self.t_min ** (1 / rho), self.t_max ** (1 / rho)
        return (hi + i * (lo - hi)) ** rho


@dataclasses.dataclass(frozen=True)
class RectifiedFlow(GaussianPath):
    """The linear interpolant ``x_t = (1 - t) x_0 + t eps`` (rectified flow, Liu et al. 2023; conditional flow
    matching with the optimal-transport path, Lipman et al. 2023); ``t_max`` < 1 keeps ``alpha > 0``."""

    t_min: float = 0.0
    t_max: float = 0.999

    def alpha(self, t):
        return 1.0 - jnp.asarray(t, jnp.float32)

    def sigma(self, t):
        return jnp.asarray(t, jnp.float32)

    def d_alpha(self, t):
        return -jnp.ones_like(jnp.asarray(t, jnp.float32))

    def d_sigma(self, t):
        return jnp.ones_like(jnp.asarray(t, jnp.float32))


PATHS = {"vp": VP, "ve": VE, "edm": EDM, "rectified_flow": RectifiedFlow}


def make_path(name: str, **kwargs) -> GaussianPath:
    if name not in PATHS:
        raise ValueError(f"unknown diffusion process {name!r}; known: {sorted(PATHS)}")
    return PATHS[name](**kwargs)


def denoise(path: GaussianPath, prediction: str, out, x, t):
    """The network output ``out`` at ``(x_t, t)`` read as ``prediction``, converted to ``(x0_hat, eps_hat)``.

    ``eps``: the noise; ``x0``: the clean data; ``v``: ``alpha eps - sigma x0``; ``velocity``: ``alpha' x0 +
    sigma' eps`` (flow matching's target); ``edm``: EDM's ``F`` with ``x0 = c_skip x + c_out F`` (the network
    must then see ``c_in x`` and ``c_noise``: :class:`ScoreMLP` does so for an :class:`EDM` path)."""
    a, s = _bcast(path.alpha(t), x), _bcast(path.sigma(t), x)
    if prediction == "eps":
        return (x - s * out) / a, out
    if prediction == "x0":
        return out, (x - a * out) / s
    if prediction == "v":  # x = a x0 + s eps, v = a eps - s x0, with a^2 + s^2 = 1 for VP
        norm = a * a + s * s
        x0 = (a * x - s * out) / norm
        return x0, (s * x + a * out) / norm
    if prediction == "velocity":  # u = da x0 + ds eps, x = a x0 + s eps: solve the 2x2 system
        da, ds = _bcast(path.d_alpha(t), x), _bcast(path.d_sigma(t), x)
        det = a * ds - s * da
        return (ds * x - s * out) / det, (a * out - da * x) / det
    if prediction == "edm":
        c_skip, c_out, _, _ = path.preconditioning(t)
        x0 = _bcast(c_skip, x) * x + _bcast(c_out, x) * out
        return x0, (x - a * x0) / s
    raise ValueError(f"unknown prediction {prediction!r}; known: {PREDICTIONS}")


def training_target(path: GaussianPath, prediction: str, x0, eps, t):
    """What the network should output for ``(x0, eps)`` at ``t`` under ``prediction`` (the regression target)."""
    x = path.marginal(x0, eps, t)
    a, s = _bcast(path.alpha(t), x), _bcast(path.sigma(t), x)
    if prediction == "eps":
        return eps
    if prediction == "x0":
        return x0
    if prediction == "v":
        return a * eps - s * x0
    if prediction == "velocity":
        return _bcast(path.d_alpha(t), x) * x0 + _bcast(path.d_sigma(t), x) * eps
    if prediction == "edm":
        c_skip, c_out, _, _ = path.preconditioning(t)
        return (x0 - _bcast(c_skip, x) * x) / _bcast(c_out, x)
    raise ValueError(f"unknown prediction {prediction!r}; known: {PREDICTIONS}")


class ScoreMLP(nn.Module):
    """An MLP on vectors with a sinusoidal embedding of the time (or of EDM's ``c_noise``), and an optional class
    embedding (``num_classes``; label ``num_classes`` is "no label", for classifier-free guidance)."""

    dim: int
    hidden: tuple[int, ...] = (256, 256, 256)
    time_dim: int = 64
    num_classes: int = 0

    @nn.compact
    def __call__(self, x, t_features, y=None):
        h = jnp.concatenate([x, sinusoidal_embedding(t_features, self.time_dim)], axis=-1)
        if self.num_classes:
            label = jnp.full((x.shape[0],), self.num_classes, jnp.int32) if y is None else y
            h = jnp.concatenate([h, nn.Embed(self.num_classes + 1, self.time_dim, name="label")(label)], -1)
        h = MLP(tuple(self.hidden), activation=nn.silu, activate_final=True)(h)
        return nn.Dense(self.dim, name="out")(h)


def network_inputs(path: GaussianPath, prediction: str, x, t):
    """What the network sees: ``(c_in x, c_noise)`` under EDM's preconditioning, else ``(x, t)``."""
    if prediction == "edm":
        _, _, c_in, c_noise = path.preconditioning(t)
        return _bcast(c_in, x) * x, c_noise
    return x, t
