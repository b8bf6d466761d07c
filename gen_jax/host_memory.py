"""glibc's ``malloc`` tuned so that XLA:CPU's per-execution buffers reuse freed memory instead of fresh pages.

XLA:CPU allocates a program's temporary buffers at every execution, from its worker threads, and frees them at
its end. With glibc's defaults blocks of 128 KiB and more (a threshold that adapts only up to 32 MiB) come as
fresh ``mmap`` pages and go back at ``free``, and the heap is trimmed when much of it is free: every training
step faults in and zeroes new pages, 12,861 minor page faults (50 MiB) per DCGAN step here (PyTorch's same step
8,849).

:func:`reuse_freed_host_memory` keeps blocks below :data:`HOST_HEAP_THRESHOLD` on the heap and the freed heap
mapped (``M_MMAP_THRESHOLD``, ``M_TRIM_THRESHOLD``): the DCGAN step's faults fall to 0 and the step from 0.072-0.076
to 0.061-0.065 s (2026-12-04, ``experiments/benchmark_gan_torch.py``, BENCHMARKS.md "Host memory"). A worker
thread's arena holds at most 64 MiB, so larger temporaries still come as fresh pages (66,600 faults per U-Net step
at batch 128; making every thread use the main arena, ``M_ARENA_MAX`` 1, removed those too but made that step
slower, 0.42 against 0.40 s: not done).

:func:`run_cpu_programs_inline` reaches those as well: JAX runs a single-device CPU program on a worker thread
(asynchronous dispatch), so its buffers come from that thread's arena; with ``jax_cpu_enable_async_dispatch``
off it runs on the calling thread, whose heap (the main arena) has no such bound, and the U-Net step's faults
fall from 66,900 to 280 and its system time from 0.17 to 0.04 s. A multi-device (``pmap``, sharded) program is
dispatched asynchronously either way (JAX's rule). The call returns only when such a program has finished, so
the host no longer prepares the next step meanwhile: the engine's U-Net and style-GAN steps got 20-25 % faster,
steps of a few milliseconds (``vae_digits``) 8-16 % slower (2026-12-05, BENCHMARKS.md "CPU programs run inline").

The heap keeps its peak size while the process lives; the computation is the same (only where its buffers come
from and which thread runs it). ``import gen_jax`` calls both first thing; ``GEN_JAX_MALLOC_DEFAULTS=1`` keeps
glibc's malloc and JAX's dispatch as they are, ``GEN_JAX_CPU_ASYNC_DISPATCH=1`` keeps JAX's asynchronous
dispatch only.
"""

from __future__ import annotations

import ctypes
import os
import sys

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
HOST_HEAP_THRESHOLD = 1 << 30  # bytes: blocks below it come from (and go back to) the heap, never mmap
OPT_OUT = "GEN_JAX_MALLOC_DEFAULTS"  # set to 1: leave glibc's malloc (and JAX's CPU dispatch) as they are
ASYNC_OPT_OUT = "GEN_JAX_CPU_ASYNC_DISPATCH"  # set to 1: keep JAX's asynchronous CPU dispatch
# the same settings in glibc's environment form, for another process (the PyTorch peer of the benchmarks)
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(HOST_HEAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(HOST_HEAP_THRESHOLD)}

applied = False  # whether this process runs with the settings (set by reuse_freed_host_memory)
inline = False  # whether single-device CPU programs run on the calling thread (set by run_cpu_programs_inline)


def _opted_out(variable: str) -> bool:
    return os.environ.get(variable, "") not in ("", "0")


def reuse_freed_host_memory() -> bool:
    """Applies the settings (see the module) unless ``GEN_JAX_MALLOC_DEFAULTS=1``; True where applied, False
    where opted out or the C library has no ``mallopt`` (not glibc). Process-wide; idempotent."""
    global applied
    if _opted_out(OPT_OUT) or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library: no ldconfig lookup at import
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    applied = all([mallopt(M_MMAP_THRESHOLD, HOST_HEAP_THRESHOLD), mallopt(M_TRIM_THRESHOLD, HOST_HEAP_THRESHOLD)])
    return applied


def run_cpu_programs_inline() -> bool:
    """Turns JAX's asynchronous dispatch of single-device CPU programs off (``jax_cpu_enable_async_dispatch``,
    see the module) where :func:`reuse_freed_host_memory` applied and neither ``GEN_JAX_CPU_ASYNC_DISPATCH=1`` nor
    a started JAX backend (the setting is read when the CPU client is made) rules it out. True where done."""
    global inline
    if not applied or _opted_out(ASYNC_OPT_OUT):
        return False
    import jax
    from jax._src import xla_bridge  # no public way to ask whether the backends exist yet

    if xla_bridge.backends_are_initialized():
        return False
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    inline = True
    return True
