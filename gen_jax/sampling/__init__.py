"""Sampling algorithms that are not models: latent walks (more samplers come with their families)."""

from gen_jax.sampling.latent import apply_attribute, attribute_vector, lerp, slerp
