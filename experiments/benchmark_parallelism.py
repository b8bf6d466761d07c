"""Steps/s of one config's training step on 1 device, ``pmap`` over N devices and the mesh-sharded path
(``jax.jit`` + ``shard_map``) over N devices, alternating repeats in one process so that all three see the
same machine load:

``python experiments/benchmark_parallelism.py --configs vae_binarized_mnist,conv_vae_mnist --devices 4``

On a CPU the N devices are simulated host devices (``--xla_force_host_platform_device_count``, set here before
JAX starts) sharing the same cores: no speed-up is possible, and the figure is each path's overhead.
"""

import os
import sys

_N = next((int(a.split("=", 1)[1]) for a in sys.argv if a.startswith("--devices=")), 4)
if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_force_host_platform_device_count={_N}").strip()

from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from step_runner import engine_runner, steps_per_second  # noqa: E402  (experiments/step_runner.py)
from gen_jax.train.config import load_config_file  # noqa: E402

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
_CONFIGS = flags.DEFINE_list("configs", ["vae_binarized_mnist", "conv_vae_mnist"], "Config names in configs/.")
_DEVICES = flags.DEFINE_integer("devices", 4, "Devices of the pmap and sharded paths (--devices=N on the command "
                                "line also sets the simulated host device count).")
_SECONDS = flags.DEFINE_float("seconds", 10.0, "Seconds per timed repeat.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Repeats per path (median reported), alternating between paths.")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    n = _DEVICES.value
    if jax.local_device_count() < n:
        raise ValueError(f"{n} devices asked, {jax.local_device_count()} available")
    for name in _CONFIGS.value:
        config = load_config_file(CONFIG_DIR / f"{name}.py")
        paths = {"1 device": engine_runner(config), f"pmap x{n}": engine_runner(config, n, "pmap"),
                 f"sharded x{n}": engine_runner(config, n, "sharded")}
        for k, go in paths.items():
            go(3)  # compile, warm up
            logging.warning("%s: %s compiled", name, k)
        rates = {k: [] for k in paths}
        for _ in range(_REPEATS.value):
            for k, go in paths.items():
                rates[k].append(steps_per_second(go, _SECONDS.value))
        med = {k: float(np.median(v)) for k, v in rates.items()}
        base = med["1 device"]
        print(f"{name} (global batch {config.train.batch_size}): " + ", ".join(
            f"{k} {v:.1f} steps/s ({v / base:.2f}x)" for k, v in med.items()), flush=True)


if __name__ == "__main__":
    app.run(main)
