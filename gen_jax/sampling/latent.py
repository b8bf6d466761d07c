"""Walks through a latent space: interpolation and attribute-vector arithmetic.

White 2016, "Sampling Generative Networks": spherical interpolation keeps intermediate codes at the norm a
Gaussian prior puts its mass at, where linear interpolation cuts through the low-norm interior.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def lerp(z0: jax.Array, z1: jax.Array, num: int) -> jax.Array:
    """``num`` codes on the straight line from ``z0`` to ``z1`` (both included), shape ``(num, D)``."""
    t = jnp.linspace(0.0, 1.0, num)[:, None]
    return (1.0 - t) * z0[None] + t * z1[None]


def slerp(z0: jax.Array, z1: jax.Array, num: int, eps: float = 1e-7) -> jax.Array:
    """``num`` codes on the great-circle arc from ``z0`` to ``z1`` (norms interpolated linearly)."""
    t = jnp.linspace(0.0, 1.0, num)[:, None]
    n0, n1 = jnp.linalg.norm(z0), jnp.linalg.norm(z1)
    u0, u1 = z0 / (n0 + eps), z1 / (n1 + eps)
    omega = jnp.arccos(jnp.clip(jnp.dot(u0, u1), -1.0, 1.0))
    so = jnp.sin(omega)
    # Parallel codes: the arc degenerates into the line.
    w0 = jnp.where(so > eps, jnp.sin((1.0 - t) * omega) / jnp.where(so > eps, so, 1.0), 1.0 - t)
    w1 = jnp.where(so > eps, jnp.sin(t * omega) / jnp.where(so > eps, so, 1.0), t)
    direction = w0 * u0[None] + w1 * u1[None]
    direction = direction / (jnp.linalg.norm(direction, axis=-1, keepdims=True) + eps)
    return direction * ((1.0 - t) * n0 + t * n1)


def attribute_vector(codes: jax.Array, has_attribute: jax.Array) -> jax.Array:
    """Mean code of the examples with the attribute minus the mean code of those without it."""
    has = has_attribute.astype(codes.dtype)[:, None]
    return (codes * has).sum(0) / has.sum() - (codes * (1 - has)).sum(0) / (1 - has).sum()


def apply_attribute(z: jax.Array, vector: jax.Array, strengths: jax.Array) -> jax.Array:
    """``z + s * vector`` for each strength ``s``: shape ``(len(strengths), D)``."""
    return z[None] + strengths[:, None] * vector[None]


def invert_generator(generator, x: jax.Array, z0: jax.Array, *, mask: jax.Array | None = None, steps: int = 200,
                     learning_rate: float = 0.05, prior_weight: float = 1e-3) -> jax.Array:
    """GAN inversion: the code ``z`` whose image ``generator(z)`` matches ``x`` on the observed entries.

    Minimises ``sum(mask * (G(z) - x)^2) + prior_weight * ||z||^2 / 2`` per example by Adam from ``z0``
    (Creswell & Bharath 2018; Zhu et al. 2016): with ``mask`` = the observed pixels it is an inpainting
    method (fill in ``G(z)`` where the mask is 0). The prior term keeps ``z`` where the Gaussian prior puts its
    mass. ``generator`` maps ``(B, D)`` codes to ``x``'s shape; examples are independent (the loss is a sum over
    them, so each code sees only its own gradient).
    """
    mask = jnp.ones_like(x) if mask is None else mask
    opt = optax.adam(learning_rate)

    def loss(z):
        r = (generator(z) - x) * mask
        return jnp.sum(r ** 2) + 0.5 * prior_weight * jnp.sum(z ** 2)

    def body(carry, _):
        z, state = carry
        updates, state = opt.update(jax.grad(loss)(z), state)
        return (optax.apply_updates(z, updates), state), None

    (z, _), _ = jax.lax.scan(body, (z0, opt.init(z0)), None, length=steps)
    return z
