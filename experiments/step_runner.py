"""The engine's training step as a benchmark sees it, shared by ``benchmark_steps.py`` and
``benchmark_parallelism.py`` (a module beside them, without flags of its own)."""

import time

import jax
from absl import app

from gen_jax.data import BatchIterator
from gen_jax.families import build_family
from gen_jax.train import parallel
from gen_jax.train.loop import init_state, load_data, run_keys


YNN_SETTINGS = {"config": None, "on": True, "off": False}  # a --ynn_fusion entry -> engine_runner's ynn_fusion


def ynn_settings(values) -> dict[str, bool | None]:
    """The ``--ynn_fusion`` entries (config, on, off) of a benchmark, each with its ``ynn_fusion`` override
    (``None``: the config's ``train.cpu_ynn_fusion``); an unknown entry is a usage error naming it."""
    unknown = sorted(set(values) - set(YNN_SETTINGS))
    if unknown:
        raise app.UsageError(f"--ynn_fusion: unknown setting(s) {unknown}; use config, on or off")
    return {v: YNN_SETTINGS[v] for v in values}


def engine_runner(config, num_devices: int = 1, parallelism: str = "pmap", ynn_fusion: bool | None = None):
    """``go(n)``: ``n`` engine steps on ``num_devices`` devices (``parallelism`` when more than one; in a
    multi-process job every process calls ``go`` with the same ``n``); ``ynn_fusion`` overrides the config's
    ``train.cpu_ynn_fusion``."""
    data = load_data(config, "train")
    family = build_family(config, data)
    ynn = config.train.cpu_ynn_fusion if ynn_fusion is None else ynn_fusion
    step = parallel.compile_step(family.trainer.make_step(parallel.AXIS_NAME if num_devices > 1 else None),
                                 num_devices, parallelism=parallelism,
                                 compiler_options=parallel.cpu_compiler_options(ynn))
    state = parallel.replicate(init_state(config, family, data), num_devices, parallelism)
    batches = BatchIterator(data.arrays(), config.train.batch_size, seed=config.seed, num_devices=num_devices,
                            process_index=jax.process_index(), process_count=jax.process_count())
    key = run_keys(config.seed)["loop"]
    holder = {"state": state}

    def go(n):
        s = holder["state"]
        for i in range(n):
            s, metrics = step(s, next(batches), key)
            if (i + 1) % config.train.log_every == 0:
                jax.device_get(metrics)
        jax.block_until_ready(s)
        holder["state"] = s

    return go


def steps_per_second(go, seconds: float) -> float:
    """Steps/s of ``go`` run in batches of steps (doubling) for at least ``seconds``."""
    done, n, t0 = 0, 1, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        go(n)
        done += n
        n *= 2
    return done / (time.perf_counter() - t0)
