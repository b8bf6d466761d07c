"""Adversarial losses (per example) and the discriminator's gradient penalties.

A discriminator (critic) ``D`` returns one *logit* per example; every loss here takes logits, never
probabilities, and is written in log space (``softplus(-l) = -log sigmoid(l)``), so a confident discriminator
gives finite losses and gradients.

========================  ==================================  ===============================
``kind``                  discriminator, per (real, fake)     generator, per fake
========================  ==================================  ===============================
``minimax``               ``-log D(x) - log(1 - D(G(z)))``    ``log(1 - D(G(z)))`` (saturating)
``non_saturating``        as ``minimax``                      ``-log D(G(z))``
``least_squares``         ``((l_r - 1)^2 + l_f^2) / 2``       ``(l_f - 1)^2 / 2``
``hinge``                 ``relu(1 - l_r) + relu(1 + l_f)``   ``-l_f``
``wasserstein``           ``l_f - l_r``                       ``-l_f``
========================  ==================================  ===============================

Minimax and non-saturating: Goodfellow et al. 2014 (the generator's ``log(1 - D)`` has no gradient where
``D(G(z)) -> 0``, early in training; ``-log D`` has the same fixed point and a strong gradient there). Least
squares: Mao et al. 2017 (the a-b-c = 0-1-1 coding). Hinge: Lim & Ye 2017, Miyato et al. 2018. Wasserstein:
Arjovsky et al. 2017, with the gradient penalty of Gulrajani et al. 2017 (:func:`gradient_penalty`) for the
1-Lipschitz constraint. R1 / R2 (:func:`gradient_norm_squared` on real / fake data): Mescheder et al. 2018,
lazily every few steps in StyleGAN2 (Karras et al. 2020).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

ADVERSARIAL_LOSSES = ("minimax", "non_saturating", "least_squares", "hinge", "wasserstein")


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array, *, kind: str) -> jax.Array:
    """Per-pair discriminator (critic) loss.

    Args:
      real_logits: ``D`` on data, ``(B,)``.
      fake_logits: ``D`` on generated samples, ``(B,)``.
      kind: one of :data:`ADVERSARIAL_LOSSES`.
    Returns:
      ``(B,)``: the loss the discriminator minimises, one per (real, fake) pair.
    """
    r, f = real_logits, fake_logits
    if kind in ("minimax", "non_saturating"):
        return jax.nn.softplus(-r) + jax.nn.softplus(f)
    if kind == "least_squares":
        return 0.5 * ((r - 1.0) ** 2 + f ** 2)
    if kind == "hinge":
        return jax.nn.relu(1.0 - r) + jax.nn.relu(1.0 + f)
    if kind == "wasserstein":
        return f - r
    raise ValueError(f"unknown adversarial loss {kind!r}; known: {ADVERSARIAL_LOSSES}")


def generator_loss(fake_logits: jax.Array, *, kind: str) -> jax.Array:
    """Per-example generator loss of ``D``'s logits on generated samples, ``(B,) -> (B,)``.

    ``minimax`` is the saturating ``log(1 - sigmoid(l)) = -softplus(l)``: what the original game minimises,
    kept to show its vanishing gradient."""
    f = fake_logits
    if kind == "minimax":
        return -jax.nn.softplus(f)
    if kind == "non_saturating":
        return jax.nn.softplus(-f)
    if kind == "least_squares":
        return 0.5 * (f - 1.0) ** 2
    if kind in ("hinge", "wasserstein"):
        return -f
    raise ValueError(f"unknown adversarial loss {kind!r}; known: {ADVERSARIAL_LOSSES}")


def _input_gradient(critic: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    """``d D(x_i) / d x_i`` for every example (the critic is per-example, so the gradient of the sum is it)."""
    return jax.grad(lambda v: jnp.sum(critic(v)))(x)


def gradient_norm_squared(critic: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    """Per-example ``|| grad_x D(x) ||^2``: R1 on real data, R2 on generated data (Mescheder et al. 2018);
    the loss adds ``gamma / 2`` times its mean.

    Args:
      critic: ``(B, ...) -> (B,)`` logits (with a minibatch feature, the gradient also carries the other
        examples' share, as in StyleGAN).
      x: ``(B, ...)`` inputs.
    Returns:
      ``(B,)``.
    """
    g = _input_gradient(critic, x)
    return jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=-1)


def gradient_penalty(critic: Callable[[jax.Array], jax.Array], real: jax.Array, fake: jax.Array,
                     u: jax.Array, *, target: float = 1.0) -> jax.Array:
    """WGAN-GP's per-example ``(|| grad D(x_hat) || - target)^2`` at the interpolates ``x_hat = u x + (1 - u) x~``
    (Gulrajani et al. 2017, with ``u ~ U(0, 1)`` per example; the loss adds ``lambda = 10`` times its mean).

    Args:
      critic: ``(B, ...) -> (B,)`` logits.
      real, fake: ``(B, ...)`` each.
      u: ``(B,)`` interpolation weights, drawn by the caller with a key of their own (not the one that drew the
        fakes): the caller decides how the draw is shared between devices.
      target: the norm the gradient is pulled to.
    Returns:
      ``(B,)``.
    """
    u = jnp.reshape(u, (real.shape[0],) + (1,) * (real.ndim - 1)).astype(real.dtype)
    x_hat = u * real + (1.0 - u) * fake
    g = _input_gradient(critic, x_hat)
    # sqrt with a floor: the norm's gradient at g = 0 would be NaN
    norm = jnp.sqrt(jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=-1) + 1e-12)
    return (norm - target) ** 2


def dirac_gan_trajectory(theta: float, psi: float, *, loss: str = "non_saturating", steps: int = 500,
                         learning_rate: float = 0.1, d_learning_rate: float | None = None,
                         update: str = "alternating", r1_gamma: float = 0.0, gradient_penalty: float = 0.0,
                         n_critic: int = 1) -> jax.Array:
    """The Dirac-GAN (Mescheder et al. 2018, "Which training methods for GANs do actually converge?"): data
    a point mass at 0, the generator a point mass at ``theta``, the discriminator ``D(x) = psi x``; the unique
    equilibrium is ``(0, 0)``. Plays the game by gradient steps of this module's losses.

    Args:
      theta, psi: the start.
      loss: one of :data:`ADVERSARIAL_LOSSES`.
      steps: generator steps.
      learning_rate, d_learning_rate: the generator's and the discriminator's (TTUR when they differ).
      update: ``simultaneous`` (both players from the same point) or ``alternating`` (the discriminator
        first, the generator against the updated one).
      r1_gamma: R1, ``gamma / 2 * psi^2`` (the gradient of ``D`` at the data is ``psi``).
      gradient_penalty: WGAN-GP's lambda, ``(|psi| - 1)^2``.
      n_critic: discriminator steps per generator step (alternating only).
    Returns:
      ``(steps + 1, 2)``: ``(theta, psi)`` after each step, the start first.
    """
    if update not in ("simultaneous", "alternating"):
        raise ValueError(f"update must be 'simultaneous' or 'alternating', got {update!r}")
    d_lr = learning_rate if d_learning_rate is None else d_learning_rate

    def d_loss(psi, theta):
        value = discriminator_loss(jnp.zeros(1), psi * theta[None], kind=loss)[0]
        return value + 0.5 * r1_gamma * psi ** 2 + gradient_penalty * (jnp.abs(psi) - 1.0) ** 2

    def g_loss(theta, psi):
        return generator_loss(psi * theta[None], kind=loss)[0]

    def body(state, _):
        theta, psi = state
        if update == "simultaneous":
            new = (theta - learning_rate * jax.grad(g_loss)(theta, psi), psi - d_lr * jax.grad(d_loss)(psi, theta))
        else:
            for _ in range(n_critic):
                psi = psi - d_lr * jax.grad(d_loss)(psi, theta)
            new = (theta - learning_rate * jax.grad(g_loss)(theta, psi), psi)
        return new, jnp.stack(new)

    start = (jnp.asarray(theta, jnp.float32), jnp.asarray(psi, jnp.float32))
    _, path = jax.lax.scan(body, start, None, length=steps)
    return jnp.concatenate([jnp.stack(start)[None], path])
