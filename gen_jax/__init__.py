"""gen_jax: deep generative models in JAX, one functional library for every family."""

from gen_jax import host_memory as _host_memory

# before anything allocates from XLA's threads: gen_jax.host_memory (GEN_JAX_MALLOC_DEFAULTS=1 opts out)
_host_memory.reuse_freed_host_memory()
_host_memory.run_cpu_programs_inline()  # GEN_JAX_CPU_ASYNC_DISPATCH=1 opts out

__version__ = "0.1.0"
