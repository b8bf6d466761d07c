"""gen_jax: deep generative models in JAX, one functional library for every family."""

__version__ = "0.1.0"
