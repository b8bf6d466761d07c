"""Score matching and the diffusion / flow-matching regression losses (per example).

* Denoising score matching (Vincent 2011): ``E || s(x + sigma eps, sigma) + eps / sigma ||^2``; with the NCSN
  weighting ``lambda(sigma) = sigma^2`` over many noise levels (Song & Ermon 2019) it is the eps-regression.
* Sliced score matching (Song et al. 2019), variance-reduced: ``E_v [v^T (ds/dx) v] + ||s||^2 / 2`` with the
  second term in closed form, for data without a noise model.
* The diffusion family's regression on a Gaussian path (:mod:`gen_jax.models.diffusion`): eps-prediction
  (DDPM's simplified loss, Ho et al. 2020), v-prediction (Salimans & Ho 2022), EDM's preconditioned denoiser
  with log-normal noise levels (Karras et al. 2022), conditional flow matching (Lipman et al. 2023; Liu et al.
  2023), each built by :func:`make_diffusion_loss` from the path and the network's prediction.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def _sum_except_batch(v):
    return jnp.sum(v.reshape(v.shape[0], -1), axis=-1)


def denoising_score_matching(score: jax.Array, eps: jax.Array, sigma: jax.Array, *,
                             weight: str = "sigma2") -> jax.Array:
    """Per-example DSM loss of a score ``s(x + sigma eps, sigma)`` (Vincent 2011).

    Args:
      score: the model's score at the noised data, ``(B, ...)``.
      eps: the standard-normal noise that was added (times ``sigma``).
      sigma: noise level per example, ``(B,)``.
      weight: ``sigma2`` (NCSN's ``lambda = sigma^2``, Song & Ermon 2019) or ``none``.
    Returns:
      ``(B,)``: ``lambda(sigma) * 0.5 * || score + eps / sigma ||^2``.
    """
    s = jnp.reshape(sigma, (-1,) + (1,) * (score.ndim - 1))
    per = 0.5 * _sum_except_batch((score + eps / s) ** 2)
    if weight == "sigma2":
        return per * jnp.reshape(sigma, (-1,)) ** 2
    if weight == "none":
        return per
    raise ValueError(f"unknown weight {weight!r}; use 'sigma2' or 'none'")


def sliced_score_matching(score_fn: Callable[[jax.Array], jax.Array], x: jax.Array, rng: jax.Array, *,
                          num_projections: int = 1) -> jax.Array:
    """Per-example variance-reduced sliced score matching (Song et al. 2019, "SSM-VR"):
    ``E_v[v^T J_s(x) v] + 0.5 ||s(x)||^2`` with ``v ~ N(0, I)``; in expectation equal to Hyvarinen's
    ``tr(J_s(x)) + 0.5 ||s(x)||^2``. ``score_fn`` maps a batch ``(B, D)`` to scores ``(B, D)``."""
    v = jax.random.normal(rng, (num_projections, *x.shape))
    jvps = jax.vmap(lambda vi: _sum_except_batch(vi * jax.jvp(score_fn, (x,), (vi,))[1]))(v)
    return jnp.mean(jvps, 0) + 0.5 * _sum_except_batch(score_fn(x) ** 2)


def exact_score_matching(score_fn: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    """Hyvarinen's (2005) objective ``tr(J_s(x)) + 0.5 ||s(x)||^2`` per example, with the full Jacobian
    (D backward passes: low dimension only)."""
    jac = jax.vmap(jax.jacfwd(lambda v: score_fn(v[None])[0]))(x)
    return jnp.trace(jac, axis1=-2, axis2=-1) + 0.5 * _sum_except_batch(score_fn(x) ** 2)


def make_diffusion_loss(apply_fn: Callable, path, prediction: str
                        ) -> Callable[[object, dict, jax.Array], tuple[jax.Array, dict]]:
    """``loss_fn(params, batch, rng) -> (mean loss, metrics)``: regress the network's output on its target
    (``path.target``) for ``x_t = alpha x0 + sigma eps`` at times drawn by ``path.sample_t``; per example
    ``0.5 || out - target ||^2``.

    With ``prediction="eps"`` this is DDPM's simplified loss (and DSM with NCSN's sigma^2 weighting); ``v`` is
    v-prediction; ``velocity`` on a rectified-flow path is conditional flow matching; ``edm`` on an EDM path is
    EDM's loss (its weight ``lambda(sigma) c_out(sigma)^2`` is 1 for the F-regression, and ``sample_t`` draws
    its log-normal noise levels).

    Args:
      apply_fn: ``(params, x_t, t, labels, rng) -> network output`` (it applies any preconditioning itself).
      path: a Gaussian path (:mod:`gen_jax.models.diffusion`).
      prediction: ``eps`` | ``x0`` | ``v`` | ``velocity`` | ``edm``.
    The batch holds ``x`` (and ``label`` when the network is conditional). Metrics: ``loss``.
    """

    def loss_fn(params, batch, rng):
        x0 = batch["x"]
        k_t, k_eps, k_net = jax.random.split(rng, 3)
        t = path.sample_t(k_t, x0.shape[0])
        eps = jax.random.normal(k_eps, x0.shape)
        out = apply_fn(params, path.marginal(x0, eps, t), t, batch.get("label"), k_net)
        loss = (0.5 * _sum_except_batch((out - path.target(prediction, x0, eps, t)) ** 2)).mean()
        return loss, {"loss": loss}

    return loss_fn
