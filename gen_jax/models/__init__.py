"""Model families, one file each; pure ``flax.linen`` modules."""

from gen_jax.models.vae import VAE
