"""Four CPU devices for every test, so pmap paths run here; set before JAX initialises its backend."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Derived data (prepared TFDS, land raster) goes to one cache shared by the session's tests."""
    monkeypatch.setenv("GEN_JAX_CACHE", os.environ.get("GEN_JAX_TEST_CACHE",
                                                       str(tmp_path_factory.getbasetemp() / "cache")))
