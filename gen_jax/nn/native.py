"""gen_jax's native CPU kernels (``csrc/conv.cc``), built on first use with the machine's C++ compiler.

XLA:CPU runs a convolution's weight gradient on one core through an Eigen convolution with an image-sized window
(2-5x the time of a kernel written for it, per layer of the diffusion U-Net), and splits per-channel sums (bias
and group-norm parameter gradients) into slow loops (BENCHMARKS.md, "The U-Net's training step against
PyTorch"). ``csrc/conv.cc`` holds XLA FFI handlers for a stride-1 convolution's forward pass and weight gradient,
group norm + SiLU forward and backward, and per-channel sums: register tiles over each example in cache, the
batch split over XLA's intra-op threads. :mod:`gen_jax.nn.cpu_conv` and :mod:`gen_jax.nn.cpu_norm` lower their
primitives to them on CPU.

The source is compiled (``$CXX``, else ``c++``; ``-O3 -march=native``, plus ``$GEN_JAX_NATIVE_FLAGS``) into
``$GEN_JAX_CACHE/native/`` the first time a program needs it (about 3 s), keyed by the source, the compiler
command, jaxlib's version and the CPU, under the cache's lock so that concurrent processes build it once; later
processes load the built library. :func:`available` says whether it could be built and loaded: without a
compiler (or with ``GEN_JAX_NATIVE=0``) the primitives lower to XLA's own operations, the same functions, and a
warning says why once.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shlex
import shutil
import subprocess
from pathlib import Path

import jax
import jax.numpy as jnp
from jax.extend.core import Primitive
from jax.interpreters import mlir

from gen_jax.data.cache import cache_dir, locked

FORWARD_TARGET = "gen_jax_conv_forward"  # the FFI targets' names
WEIGHT_GRAD_TARGET = "gen_jax_conv_weight_grad"
NORM_FORWARD_TARGET = "gen_jax_group_norm_forward"
NORM_BACKWARD_TARGET = "gen_jax_group_norm_backward"
CHANNEL_SUM_TARGET = "gen_jax_channel_sum"
# each target's handler symbol in the library (XLA_FFI_DEFINE_HANDLER_SYMBOL in csrc/conv.cc)
HANDLERS = {FORWARD_TARGET: "GenJaxConvForward", WEIGHT_GRAD_TARGET: "GenJaxConvWeightGrad",
            NORM_FORWARD_TARGET: "GenJaxGroupNormForward", NORM_BACKWARD_TARGET: "GenJaxGroupNormBackward",
            CHANNEL_SUM_TARGET: "GenJaxChannelSum"}
SOURCE = Path(__file__).parent / "csrc" / "conv.cc"
OPT_OUT = "GEN_JAX_NATIVE"  # set to 0: never build or use the kernels (XLA's own operations everywhere)
EXTRA_FLAGS = "GEN_JAX_NATIVE_FLAGS"  # compiler flags appended to the command (e.g. -march=haswell: AVX2 only)

_log = logging.getLogger(__name__)


class NativeBuildError(RuntimeError):
    """The kernel could not be compiled or loaded (the message says which command failed and why)."""


def _cpu_signature() -> str:
    """The CPU's model and feature flags (``-march=native`` compiles for exactly these)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    keep = [ln for ln in lines if ln.split(":")[0].strip() in ("model name", "flags", "Features", "CPU part")]
    return "\n".join(dict.fromkeys(keep))  # one copy per distinct line (every core repeats them)


def compile_command(output: str | Path) -> list[str]:
    """The compiler command that builds the kernel into ``output``."""
    cxx = shlex.split(os.environ.get("CXX", "")) or [shutil.which("c++") or shutil.which("g++") or "c++"]
    flags = ["-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-w"]
    if platform.machine() in ("x86_64", "AMD64"):
        flags.append("-mprefer-vector-width=512")  # whole AVX-512 vectors where the CPU has them
    flags += shlex.split(os.environ.get(EXTRA_FLAGS, ""))
    return [*cxx, *flags, "-I", jax.ffi.include_dir(), str(SOURCE), "-o", str(output)]


def library_path() -> Path:
    """Where the built library for this source, compiler, jaxlib and CPU lives."""
    import jaxlib

    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(compile_command("OUT")).encode(), jaxlib.__version__.encode(),
                 _cpu_signature().encode()):
        key.update(part)
        key.update(b"\0")
    return cache_dir() / "native" / f"conv_{key.hexdigest()[:16]}.so"


def build() -> Path:
    """Compiles the kernel unless this machine's build is already cached; returns the library's path."""
    path = library_path()
    with locked(path):
        if not path.exists():
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            cmd = compile_command(tmp)
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise NativeBuildError(f"{shlex.join(cmd)} failed: {e}") from e
            if done.returncode != 0:
                tmp.unlink(missing_ok=True)
                raise NativeBuildError(f"{shlex.join(cmd)} exited with {done.returncode}:\n{done.stderr[-2000:]}")
            os.replace(tmp, path)  # readers see the whole library or none
    return path


@functools.cache
def _load() -> tuple[bool, int, str]:
    """(loaded, vector width in floats, why not); builds, loads and registers the FFI targets at most once."""
    if os.environ.get(OPT_OUT, "") == "0":
        return False, 0, f"{OPT_OUT}=0"
    try:
        lib = ctypes.cdll.LoadLibrary(str(build()))
    except (NativeBuildError, OSError) as e:
        _log.warning("gen_jax's native CPU kernels are unavailable (XLA's operations are used instead): %s", e)
        return False, 0, str(e)
    for target, symbol in HANDLERS.items():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)), platform="cpu")
    return True, int(lib.gen_jax_vector_width()), ""


def available() -> bool:
    """Whether the kernels are built, loaded and registered (building them on the first call)."""
    return _load()[0]


def unavailable_reason() -> str:
    """Why :func:`available` is False ("" where it is True)."""
    return _load()[2]


def vector_width() -> int:
    """Floats per SIMD vector of the built kernels (16 with AVX-512, else 8); they take channel counts (a
    convolution's outputs, a group norm's channels) that are multiples of it."""
    return _load()[1]


def fits(dtype, channels: int) -> bool:
    """Whether the kernels take float32 data whose vectorised axis (a convolution's outputs, a group norm's or a
    channel sum's channels) has ``channels`` entries: built, and a multiple of :func:`vector_width`."""
    return jnp.dtype(dtype) == jnp.float32 and available() and channels % vector_width() == 0


def call(target: str, out, *operands, **attributes):
    """The FFI call of ``target`` (a lowering's body: batching happens before, on the primitives)."""
    return jax.ffi.ffi_call(target, out, vmap_method="sequential")(*operands, **attributes)


def define_primitive(name: str, abstract, xla_impl, native_impl=None, *, multiple_results: bool = False) -> Primitive:
    """A JAX primitive ``name`` with shape rule ``abstract``, lowered to ``xla_impl`` (a JAX function of XLA's
    operations) everywhere and to ``native_impl`` (one that calls the kernels where they apply) on CPU; run
    eagerly, it is compiled as under ``jit``. Differentiation and batching rules are the caller's."""
    p = Primitive(name)
    p.multiple_results = multiple_results
    p.def_impl(lambda *args, **params: jax.jit(functools.partial(p.bind, **params))(*args))
    p.def_abstract_eval(abstract)
    mlir.register_lowering(p, mlir.lower_fun(xla_impl, multiple_results=multiple_results))
    if native_impl is not None:
        mlir.register_lowering(p, mlir.lower_fun(native_impl, multiple_results=multiple_results), platform="cpu")
    return p
