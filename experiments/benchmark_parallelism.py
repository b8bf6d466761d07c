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

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from gen_jax.data import BatchIterator  # noqa: E402
from gen_jax.families import build_family  # noqa: E402
from gen_jax.train import parallel  # noqa: E402
from gen_jax.train.config import load_config_file  # noqa: E402
from gen_jax.train.loop import init_state, load_data, run_keys  # noqa: E402

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
_CONFIGS = flags.DEFINE_list("configs", ["vae_binarized_mnist", "conv_vae_mnist"], "Config names in configs/.")
_DEVICES = flags.DEFINE_integer("devices", 4, "Devices of the pmap and sharded paths (--devices=N on the command "
                                "line also sets the simulated host device count).")
_SECONDS = flags.DEFINE_float("seconds", 10.0, "Seconds per timed repeat.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Repeats per path (median reported), alternating between paths.")


def runner(config, num_devices: int, parallelism: str):
    data = load_data(config, "train")
    family = build_family(config, data)
    axis = parallel.AXIS_NAME if num_devices > 1 else None
    step = parallel.compile_step(family.trainer.make_step(axis), num_devices, parallelism=parallelism)
    state = parallel.replicate(init_state(config, family, data), num_devices, parallelism)
    batches = BatchIterator(data.arrays(), config.train.batch_size, seed=config.seed, num_devices=num_devices)
    key = run_keys(config.seed)["loop"]
    holder = {"state": state}

    def go(n):
        s = holder["state"]
        for i in range(n):
            s, metrics = step(s, next(batches), key)
            if (i + 1) % config.train.log_every == 0:
                jax.device_get(metrics)
            if num_devices > 1 and (i + 1) % parallel.MAX_IN_FLIGHT == 0:
                jax.block_until_ready(s)  # as the loop does: a deeper queue deadlocks on host devices
        jax.block_until_ready(s)
        holder["state"] = s

    return go


def timed(go, seconds):
    done, n, t0 = 0, 1, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        go(n)
        done += n
        n *= 2
    return done / (time.perf_counter() - t0)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    n = _DEVICES.value
    if jax.local_device_count() < n:
        raise ValueError(f"{n} devices asked, {jax.local_device_count()} available")
    for name in _CONFIGS.value:
        config = load_config_file(CONFIG_DIR / f"{name}.py")
        paths = {"1 device": runner(config, 1, "pmap"), f"pmap x{n}": runner(config, n, "pmap"),
                 f"sharded x{n}": runner(config, n, "sharded")}
        for k, go in paths.items():
            go(3)  # compile, warm up
            logging.warning("%s: %s compiled", name, k)
        rates = {k: [] for k in paths}
        for _ in range(_REPEATS.value):
            for k, go in paths.items():
                rates[k].append(timed(go, _SECONDS.value))
        med = {k: float(np.median(v)) for k, v in rates.items()}
        base = med["1 device"]
        print(f"{name} (global batch {config.train.batch_size}): " + ", ".join(
            f"{k} {v:.1f} steps/s ({v / base:.2f}x)" for k, v in med.items()), flush=True)


if __name__ == "__main__":
    app.run(main)
