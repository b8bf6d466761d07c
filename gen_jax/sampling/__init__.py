"""Sampling algorithms that are not models: latent walks, importance-sampled imputation (more samplers come
with their families)."""

from gen_jax.sampling.imputation import impute_by_importance_sampling
from gen_jax.sampling.latent import apply_attribute, attribute_vector, lerp, slerp
