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
at batch 128 either way; making every thread use the main arena, ``M_ARENA_MAX`` 1, removed those too but made
that step slower, 0.42 against 0.40 s: not done). The heap keeps its peak size while the process lives; the
computation is the same (only where its buffers come from). ``import gen_jax`` calls it first thing; set
``GEN_JAX_MALLOC_DEFAULTS=1`` to keep glibc's defaults.
"""

from __future__ import annotations

import ctypes
import os
import sys

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
HOST_HEAP_THRESHOLD = 1 << 30  # bytes: blocks below it come from (and go back to) the heap, never mmap
OPT_OUT = "GEN_JAX_MALLOC_DEFAULTS"  # set to 1: leave glibc's malloc as it is
# the same settings in glibc's environment form, for another process (the PyTorch peer of the benchmarks)
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(HOST_HEAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": str(HOST_HEAP_THRESHOLD)}

applied = False  # whether this process runs with the settings (set by reuse_freed_host_memory)


def reuse_freed_host_memory() -> bool:
    """Applies the settings (see the module) unless ``GEN_JAX_MALLOC_DEFAULTS=1``; True where applied, False
    where opted out or the C library has no ``mallopt`` (not glibc). Process-wide; idempotent."""
    global applied
    if os.environ.get(OPT_OUT, "") not in ("", "0") or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library: no ldconfig lookup at import
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    applied = all([mallopt(M_MMAP_THRESHOLD, HOST_HEAP_THRESHOLD), mallopt(M_TRIM_THRESHOLD, HOST_HEAP_THRESHOLD)])
    return applied
