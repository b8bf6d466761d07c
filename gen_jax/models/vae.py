"""Variational autoencoders: MLP and convolutional, beta-VAE (a loss weight) and conditional p(x|y).

Kingma & Welling 2014, "Auto-Encoding Variational Bayes"; Sohn et al. 2015 (conditional VAE);
Higgins et al. 2017 (beta-VAE: the same model, the KL weighted by beta in :func:`gen_jax.losses.elbo`);
Tomczak & Welling 2018, "VAE with a VampPrior" (the prior a mixture of the encoder's posteriors at learned
pseudo-inputs: ``p(z) = (1/K) sum_k q(z | u_k)``).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.nn import MLP, ConvDecoder, ConvEncoder
from gen_jax.nn.distributions import log_normal_diag


PRIORS = ("normal", "vampprior")


def log_normal_diag_mixture(z: jax.Array, means: jax.Array, log_vars: jax.Array) -> jax.Array:
    """``log (1/K) sum_k N(z; means[k], diag(exp(log_vars[k])))`` for z of shape (..., D), components (K, D).

    The squared distance is expanded into matrix products, so memory is O(N K) rather than O(N K D): the
    k = 5000 evaluation scores 125,000 latents against 500 components per chunk. The expansion cancels in
    float32 when precisions are large; on the trained ``vampprior_binarized_mnist`` model its error against a
    float64 direct sum was at most 2.6e-5 nats (500 test posteriors, one-off check).
    """
    lead, d = z.shape[:-1], z.shape[-1]
    zf = z.reshape(-1, d)
    prec = jnp.exp(-log_vars)  # (K, D)
    quad = (zf**2) @ prec.T - 2.0 * zf @ (means * prec).T + jnp.sum(means**2 * prec, -1)  # (N, K)
    log_comp = -0.5 * (quad + jnp.sum(log_vars, -1) + d * np.log(2 * np.pi))
    return (jax.nn.logsumexp(log_comp, axis=-1) - np.log(means.shape[0])).reshape(lead)


class VAE(nn.Module):
    """Gaussian encoder q(z|x[,y]), a prior p(z), decoder returning the likelihood's parameters.

    Attributes:
      image_shape: (H, W, C) of the data.
      latent_dim: size of z.
      decoder_params_per_dim: how many numbers the decoder emits per data dimension (1 for Bernoulli
        logits, 2 for a location and a log-scale).
      architecture: ``mlp`` or ``conv``.
      hidden: MLP hidden sizes (encoder order; the decoder mirrors them), or the conv stacks' dense width.
      conv_channels: channels of the conv encoder (the decoder mirrors them).
      num_classes: > 0 makes it conditional: the one-hot label joins the encoder input and z.
      prior: ``normal`` (standard normal) or ``vampprior`` (a uniform mixture of ``q(z | u_k)`` over
        ``num_pseudo_inputs`` learned pseudo-images ``u_k``, clipped to [0, 1] like the paper's hardtanh).
    """

    image_shape: Sequence[int]
    latent_dim: int = 32
    decoder_params_per_dim: int = 1
    architecture: str = "mlp"
    hidden: Sequence[int] = (512, 256)
    conv_channels: Sequence[int] = (32, 64)
    num_classes: int = 0
    prior: str = "normal"
    num_pseudo_inputs: int = 500

    def setup(self):
        h, w, c = self.image_shape
        if self.prior not in PRIORS:
            raise ValueError(f"unknown VAE prior {self.prior!r}; use one of {PRIORS}")
        if self.prior == "vampprior":
            if self.num_classes:
                raise ValueError("prior='vampprior' needs an unconditional VAE: its pseudo-inputs have no labels")
            if self.num_pseudo_inputs < 1:
                raise ValueError(f"num_pseudo_inputs must be >= 1, got {self.num_pseudo_inputs}")
            init = lambda key, shape: 0.5 + 0.01 * jax.random.normal(key, shape)
            self.pseudo_inputs = self.param("pseudo_inputs", init, (self.num_pseudo_inputs, h, w, c))
        if self.architecture == "mlp":
            self.encoder = MLP((*self.hidden, 2 * self.latent_dim))
            self.decoder = MLP((*reversed(self.hidden), h * w * c * self.decoder_params_per_dim))
        elif self.architecture == "conv":
            self.encoder = ConvEncoder(tuple(self.conv_channels), self.hidden[0], 2 * self.latent_dim)
            self.decoder = ConvDecoder(tuple(self.image_shape), c * self.decoder_params_per_dim,
                                       tuple(reversed(self.conv_channels)), self.hidden[0])
        else:
            raise ValueError(f"unknown VAE architecture {self.architecture!r}; use 'mlp' or 'conv'")

    def _with_label(self, v: jax.Array, y: jax.Array | None) -> jax.Array:
        if not self.num_classes:
            return v
        if y is None:
            raise ValueError("this VAE is conditional (num_classes > 0): pass labels y")
        return jnp.concatenate([v, jax.nn.one_hot(y, self.num_classes, dtype=v.dtype)], axis=-1)

    def encode(self, x: jax.Array, y: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        """x in [0, 1], (B, H, W, C) -> (mean, log_var) of q(z|x), each (B, latent_dim)."""
        if self.architecture == "mlp" or self.num_classes:
            inp = self._with_label(x.reshape(x.shape[0], -1), y)
            if self.architecture == "conv":  # labels enter a conv encoder as constant feature maps
                onehot = inp[:, -self.num_classes:]
                maps = jnp.broadcast_to(onehot[:, None, None, :], (*x.shape[:3], self.num_classes))
                inp = jnp.concatenate([x, maps], axis=-1)
        else:
            inp = x
        stats = self.encoder(inp)
        mean, log_var = jnp.split(stats, 2, axis=-1)
        return mean, log_var

    def decode(self, z: jax.Array, y: jax.Array | None = None) -> jax.Array:
        """z (B, latent_dim) -> decoder output (B, H, W, C * decoder_params_per_dim)."""
        out = self.decoder(self._with_label(z, y))
        h, w, c = self.image_shape
        return out.reshape(z.shape[0], h, w, c * self.decoder_params_per_dim)

    def _prior_components(self) -> tuple[jax.Array, jax.Array]:
        return self.encode(jnp.clip(self.pseudo_inputs, 0.0, 1.0))

    def log_prior(self, z: jax.Array) -> jax.Array:
        """``log p(z)`` for z of shape (..., latent_dim), summed over the last axis."""
        if self.prior == "normal":
            return log_normal_diag(z, 0.0, jnp.zeros_like(z))
        return log_normal_diag_mixture(z, *self._prior_components())

    def sample_prior(self, rng: jax.Array, n: int) -> jax.Array:
        """n draws of z from the prior, (n, latent_dim)."""
        if self.prior == "normal":
            return jax.random.normal(rng, (n, self.latent_dim))
        k_eps, k_comp = jax.random.split(rng)
        eps = jax.random.normal(k_eps, (n, self.latent_dim))
        means, log_vars = self._prior_components()
        k = jax.random.randint(k_comp, (n,), 0, self.num_pseudo_inputs)
        return means[k] + jnp.exp(0.5 * log_vars[k]) * eps

    def __call__(self, x: jax.Array, rng: jax.Array, y: jax.Array | None = None):
        """One reparameterised pass: returns (decoder output, mean, log_var, z)."""
        mean, log_var = self.encode(x, y)
        z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(rng, mean.shape, mean.dtype)
        return self.decode(z, y), mean, log_var, z
