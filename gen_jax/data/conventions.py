"""Dequantization and bits-per-dim: the one place every family takes its conventions from.

Image datasets in gen_jax are stored as integer *levels* ``x in {0, ..., K-1}`` (``K = num_levels``: 256 for
MNIST, 17 for scikit-learn's 8x8 digits, 2 for binarized MNIST). Every reported likelihood is a likelihood of
those discrete levels, so numbers from a discrete model (VAE with a discretized decoder, PixelCNN) and from a
continuous one (a flow) are on one scale:

* **Discrete models** assign ``P(x)`` to the integer levels directly: ``nll = -log P(x)`` in nats.
* **Continuous models** see the dequantized value ``y = (x + u) / K`` with ``u ~ U[0, 1)^D`` (uniform
  dequantization, Theis et al. 2016, "A note on the evaluation of generative models"). Then
  ``log P(x) >= E_u[log p(y)] - D log K`` and gen_jax reports ``nll = -(log p(y) - D log K)``: the change of
  variables from ``[0, K)`` to ``[0, 1)`` is folded in once, here, by :func:`dequantized_nll`.
* ``bits/dim = nll / (D ln 2)`` with ``D`` the number of scalar dimensions (pixels x channels).

Model inputs are ``x / (K - 1)`` in ``[0, 1]`` (:func:`to_unit_interval`) unless a model says otherwise.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def to_unit_interval(levels: jax.Array, *, num_levels: int) -> jax.Array:
    """Maps integer levels ``{0..K-1}`` to floats in ``[0, 1]`` (the default model input)."""
    return levels.astype(jnp.float32) / (num_levels - 1)


def to_bin_centres(levels: jax.Array, *, num_levels: int) -> jax.Array:
    """Integer levels to the centres of ``K`` equal bins tiling ``[-1, 1]``: ``(2 x + 1) / K - 1`` (the input of
    models that work in ``[-1, 1]``: diffusion, a GAN's tanh generator)."""
    return (2 * jnp.asarray(levels, jnp.float32) + 1) / num_levels - 1


def from_bin_centres(x: jax.Array, *, num_levels: int) -> jax.Array:
    """The level whose ``[-1, 1]`` bin holds ``x`` (clipped to ``{0, ..., K-1}``): inverts :func:`to_bin_centres`."""
    return jnp.clip(jnp.floor((x + 1) / 2 * num_levels), 0, num_levels - 1).astype(jnp.int32)


def uniform_dequantize(levels: jax.Array, rng: jax.Array, *, num_levels: int) -> jax.Array:
    """``y = (x + u) / K`` with ``u ~ U[0, 1)``: continuous data in ``[0, 1)`` for continuous models.

    Args:
      levels: integer levels in ``{0, ..., num_levels - 1}``.
      rng: PRNG key.
      num_levels: ``K``.
    Returns:
      float32 array of the same shape.
    """
    u = jax.random.uniform(rng, levels.shape, dtype=jnp.float32)
    return (levels.astype(jnp.float32) + u) / num_levels


def dequantized_nll(log_density: jax.Array, *, num_dims: int, num_levels: int) -> jax.Array:
    """NLL (nats) of the discrete levels from a continuous density on ``[0, 1)^D`` (see module docstring)."""
    return -(log_density - num_dims * math.log(num_levels))


def bits_per_dim(nll_nats: jax.Array, *, num_dims: int) -> jax.Array:
    """Converts a per-example NLL in nats into bits per dimension."""
    return nll_nats / (num_dims * math.log(2.0))


def requantize(levels, *, from_levels: int, to_levels: int):
    """Maps integer levels between level counts through ``[0, 1]`` with rounding (e.g. 256 -> 2 thresholds at
    the middle grey), so a dataset can be scored by a model of another level count (OOD detection)."""
    x = np.asarray(levels, np.float64) / (from_levels - 1)
    return np.rint(x * (to_levels - 1)).astype(np.uint8)
