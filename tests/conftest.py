"""Four CPU devices for every test, so pmap paths run here; set before JAX initialises its backend.

Tests run tiny models for a few steps, so their time is mostly XLA compilation: the backend's optimisation
level 0 compiles much faster (tests/test_text.py + test_autoregressive.py: 104 s -> 65 s here) and computes
the same functions; subprocesses of the CLI tests inherit the flags. Benchmarks and real runs keep the
default level."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
                           " --xla_backend_optimization_level=0").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Derived data (prepared TFDS, land raster) goes to one cache shared by the session's tests."""
    monkeypatch.setenv("GEN_JAX_CACHE", os.environ.get("GEN_JAX_TEST_CACHE",
                                                       str(tmp_path_factory.getbasetemp() / "cache")))
