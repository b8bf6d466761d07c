"""Masked dense layers and MADE connectivity (Germain et al. 2015, "MADE: Masked Autoencoder for Distribution
Estimation").

Every input dimension gets an *order* ``o(d)`` (a permutation of ``1..D``) and every hidden unit a degree
``m(k)`` in ``1..D-1``. A hidden unit may see inputs of order ``<= m(k)``; output ``d`` may see hidden units of
degree ``< o(d)``. So output ``d`` depends only on inputs that come strictly before it in the order: the
autoregressive property, tested by gradients in ``tests/test_flows.py``.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def made_degrees(num_inputs: int, hidden: Sequence[int], *, order: np.ndarray | None = None,
                 seed: int | None = None) -> list[np.ndarray]:
    """Degrees of the input units (the order, 1-based) and of each hidden layer.

    Args:
      num_inputs: D.
      hidden: hidden layer widths.
      order: input order as a permutation of ``1..D``; default ``1..D`` (natural order) or, with ``seed``, a
        random permutation (MADE's order-agnostic training draws one per mask).
      seed: with ``seed`` the hidden degrees are drawn at random (connectivity-agnostic); without, they cycle
        through ``1..D-1`` deterministically.
    """
    if order is None:
        order = np.arange(1, num_inputs + 1) if seed is None else np.random.default_rng(seed).permutation(num_inputs) + 1
    order = np.asarray(order)
    if sorted(order.tolist()) != list(range(1, num_inputs + 1)):
        raise ValueError(f"order must be a permutation of 1..{num_inputs}")
    degrees = [order]
    rng = None if seed is None else np.random.default_rng(seed + 1)
    low = 1
    for width in hidden:
        if num_inputs == 1:
            deg = np.ones(width, np.int64)  # no input can be seen: the masks below cut everything
        elif rng is None:
            # Evenly spread over 1..D-1, so every input prefix has hidden units even when width < D - 1
            # (cycling 1, 2, ... would leave the later pixels no hidden unit that sees their predecessors).
            deg = np.arange(width) * (num_inputs - 1) // width + 1
        else:
            deg = rng.integers(min(low, num_inputs - 1), num_inputs, size=width)
            low = int(deg.min())
        degrees.append(deg)
    return degrees


def made_masks(degrees: list[np.ndarray], num_outputs_per_input: int = 1) -> list[np.ndarray]:
    """Dense-layer masks ``(in, out)`` from :func:`made_degrees`: hidden layers use ``>=``, the output layer
    ``>`` (strict), and the output layer is repeated ``num_outputs_per_input`` times (blocks of D)."""
    masks = [(d_out[None, :] >= d_in[:, None]).astype(np.float32) for d_in, d_out in zip(degrees[:-1], degrees[1:])]
    out = (degrees[0][None, :] > degrees[-1][:, None]).astype(np.float32)
    masks.append(np.tile(out, (1, num_outputs_per_input)))
    return masks


class MaskedDense(nn.Module):
    """``x @ (W * mask) + b``."""

    mask: np.ndarray  # (in, out)
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        mask = jnp.asarray(self.mask, x.dtype)
        kernel = self.param("kernel", self.kernel_init, mask.shape)
        bias = self.param("bias", nn.initializers.zeros, (mask.shape[1],))
        return x @ (kernel * mask) + bias


class MADE(nn.Module):
    """Masked MLP ``D -> hidden -> (num_outputs_per_input * D)``; output block ``j`` holds the ``j``-th
    parameter of every dimension, shaped ``(..., D, num_outputs_per_input)`` on return.

    ``context_dim > 0`` adds an unmasked input (e.g. a one-hot class) to the first hidden layer.
    """

    num_inputs: int
    hidden: Sequence[int]
    num_outputs_per_input: int = 1
    order: tuple[int, ...] | None = None
    mask_seed: int | None = None
    zero_init_output: bool = False

    def masks(self) -> list[np.ndarray]:
        order = None if self.order is None else np.asarray(self.order)
        degrees = made_degrees(self.num_inputs, self.hidden, order=order, seed=self.mask_seed)
        return made_masks(degrees, self.num_outputs_per_input)

    @nn.compact
    def __call__(self, x: jax.Array, context: jax.Array | None = None) -> jax.Array:
        masks = self.masks()
        h = x
        for i, mask in enumerate(masks[:-1]):
            h = MaskedDense(mask, name=f"masked_{i}")(h)
            if i == 0 and context is not None:
                h = h + nn.Dense(mask.shape[1], use_bias=False, name="context")(context)
            h = nn.relu(h)
        init = nn.initializers.zeros if self.zero_init_output else nn.initializers.lecun_normal()
        out = MaskedDense(masks[-1], kernel_init=init, name=f"masked_{len(masks) - 1}")(h)
        # Output unit j * D + d is parameter j of dimension d.
        return out.reshape(*x.shape[:-1], self.num_outputs_per_input, self.num_inputs).swapaxes(-1, -2)
