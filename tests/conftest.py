"""Four CPU devices for every test, so pmap paths run here; set before JAX initialises its backend.

Tests run tiny models for a few steps, so their time is mostly XLA compilation: the backend's optimisation
level 0 compiles much faster (tests/test_text.py + test_autoregressive.py: 104 s -> 65 s here; 71 s -> 51 s
against level 1) and computes the same functions; subprocesses of the CLI tests inherit the flags. Benchmarks
and real runs keep the default level. Its programs run slower, though (the feature network's training 8.6x):
compute-bound loops that tests run at length compile at the default level by their own ``compiler_options``
(gen_jax.eval.features). The whole suite without the flag took 12:08 against 9:32 with it.

``--xla_cpu_use_fusion_emitters=false`` has XLA:CPU emit its fusions with the older loop emitters instead of
the MLIR fusion emitters, which compile much more slowly at this size: the diffusion_mnist smoke run compiles
its 28 programs in 5.5 s instead of 9.1 s, and the whole suite took 8:56 against 15:54 on 2026-12-04's machine
(summed test time 1024 s against 1849 s; no test got slower). The functions are the same; rounding may
differ in the last bit between two programs XLA fuses differently (the pmap and mesh-sharded duel, 1 ulp,
so that test compiles those two runs with the emitters on, per program).

The session also shares one persistent XLA compilation cache (a fresh temporary directory, removed at the
end): the tests rebuild the same tiny programs many times (a run, its twin with the same seed, the resumed one,
the CLI's subprocesses), and a cache hit loads the executable instead of compiling it again (the EBM resume
test: 53 s -> 32 s). A cached executable is the one XLA compiled, so no result changes; the test that counts
compilations turns the cache off for itself."""

import os
import shutil
import tempfile
from pathlib import Path

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
                           " --xla_backend_optimization_level=0 --xla_cpu_use_fusion_emitters=false").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# set by the first interpreter that loads this file (pytest's controller); xdist workers and CLI subprocesses
# inherit it, so they all share one cache
if "GEN_JAX_TEST_XLA_CACHE" not in os.environ:
    os.environ["GEN_JAX_TEST_XLA_CACHE"] = tempfile.mkdtemp(prefix="gen_jax_xla_cache_")
    _OWNS_XLA_CACHE = True
else:
    _OWNS_XLA_CACHE = False
# likewise one cache of derived data (prepared MNIST, feature networks, the land raster) for all workers: the
# first to need an entry builds it under a lock (gen_jax.data.cache.locked), the others wait and read it
if "GEN_JAX_TEST_CACHE" not in os.environ:
    os.environ["GEN_JAX_TEST_CACHE"] = tempfile.mkdtemp(prefix="gen_jax_data_cache_")
    _OWNS_DATA_CACHE = True
else:
    _OWNS_DATA_CACHE = False
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ["GEN_JAX_TEST_XLA_CACHE"]
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import jax  # noqa: E402
import pytest  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def pytest_unconfigure(config):
    if hasattr(config, "workerinput"):
        return
    for owned, name in ((_OWNS_XLA_CACHE, "GEN_JAX_TEST_XLA_CACHE"), (_OWNS_DATA_CACHE, "GEN_JAX_TEST_CACHE")):
        if owned:
            shutil.rmtree(os.environ[name], ignore_errors=True)


def smoke(name: str = "vae_digits", **overrides):
    """A config's smoke variant on one device; ``section__key=value`` overrides (``train__steps=5``)."""
    from gen_jax.train.config import load_config_file

    c = load_config_file(CONFIGS / f"{name}.py", "smoke")
    c.train.num_devices = 1
    for key, value in overrides.items():
        section, field = key.split("__")
        c[section][field] = value
    return c


def check_engine_guarantees(config, tmp_path, *, crash_at: int = 6):
    """The engine's promises for a family's config, each checked: the same seed twice gives bit-identical
    states (every player, optimizer state, EMA, ``aux``); a run interrupted at ``crash_at`` resumes to the
    same state; the run on 4 devices (same global batch) is returned for the caller to compare.
    Returns ``(state of one device, state of four devices)``."""
    import chex

    import gen_jax.train as gt

    gt.run(config, tmp_path / "a")
    gt.run(config, tmp_path / "b")
    a = gt.restore_run(tmp_path / "a")[2]
    chex.assert_trees_all_equal(a, gt.restore_run(tmp_path / "b")[2])

    def crash(step):
        if step == crash_at:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        gt.run(config, tmp_path / "r", stop_requested=crash)
    gt.run(config, tmp_path / "r")
    chex.assert_trees_all_equal(a, gt.restore_run(tmp_path / "r")[2])
    four = config.copy_and_resolve_references()
    four.train.num_devices = 4
    gt.run(four, tmp_path / "p")
    return a, gt.restore_run(tmp_path / "p")[2]


def perturb(params, scale: float, seed: int = 0):
    """``params`` plus ``scale`` times standard-normal noise, one key per leaf: random parameters far from a
    network's near-identity initialisation, for tests that need a generic function."""
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree.unflatten(tree, [l + scale * jax.random.normal(k, l.shape, l.dtype) for l, k in zip(leaves, keys)])


@pytest.fixture(autouse=True)
def _isolated_cache(monkeypatch):
    """Derived data (prepared TFDS, the digits, land raster, feature networks) goes to one cache shared by the session's
    tests and workers, never the user's."""
    monkeypatch.setenv("GEN_JAX_CACHE", os.environ["GEN_JAX_TEST_CACHE"])
