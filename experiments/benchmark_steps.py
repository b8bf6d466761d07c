"""Steps per second of each config's training step, and the engine against a hand-written jit + optax step.

``python experiments/benchmark_steps.py [--configs vae_digits,vae_binarized_mnist] [--seconds 10] [--steps 2000]``
``python experiments/benchmark_steps.py --configs diffusion_mnist,gan_mnist:style --ynn_fusion on,off``
``python experiments/benchmark_steps.py --configs diffusion_mnist,diffusion_digits --model_conv flax,native``

``--ynn_fusion on,off`` times each config's step with XLA:CPU's YNNPACK fusions on and off (the per-program
``train.cpu_ynn_fusion``), alternating the two in every repeat; a config is ``name`` or ``name:variant``.
``--model_conv flax,native`` does the same for the values of ``model.conv`` (the diffusion U-Net's convolutions:
``native`` runs gen_jax's CPU kernels, gen_jax.nn.cpu_conv and cpu_norm), each with the config's YNN setting.

Engine: what ``gen_jax.train.run`` executes per step (BatchIterator batch, compiled engine step with its
extra metrics, a metric fetch every ``log_every`` steps). Hand-written: the same VAE and ELBO in a plain
``jax.jit``-ed value_and_grad + optax adam step fed by numpy slicing. Both run in this process, alternating,
and the median over repeats is reported.
"""

import json
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags, logging

from step_runner import engine_runner, steps_per_second, ynn_settings  # experiments/step_runner.py, beside this script
from gen_jax.train.config import load_config_file
from gen_jax.train.loop import load_data

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

_CONFIGS = flags.DEFINE_list("configs", sorted(p.stem for p in CONFIG_DIR.glob("*.py")),
                             "Config names in configs/ (default: all).")
_STEPS = flags.DEFINE_integer("steps", 2000, "Timed steps per repeat of the engine-vs-hand-written comparison.")
_SECONDS = flags.DEFINE_float("seconds", 10.0, "Per config and repeat: time steps for at least this long.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Repeats (median reported).")
_OUT = flags.DEFINE_string("out", "", "Optional JSON output path.")
_YNN = flags.DEFINE_list("ynn_fusion", ["config"], "config (the config's train.cpu_ynn_fusion), or settings "
                         "among on / off to time side by side.")
_CONV = flags.DEFINE_list("model_conv", [], "Values of model.conv to time side by side (instead of --ynn_fusion).")


def load_config(name):
    """``name`` or ``name:variant`` of a file in configs/."""
    name, _, variant = name.partition(":")
    return load_config_file(CONFIG_DIR / f"{name}.py", variant)


class HandVAE(nn.Module):
    """The 784-512-256-32 Bernoulli VAE written out by hand, as a researcher would without gen_jax."""

    @nn.compact
    def __call__(self, x, eps):
        h = nn.relu(nn.Dense(256)(nn.relu(nn.Dense(512)(x))))
        mean, log_var = jnp.split(nn.Dense(64)(h), 2, axis=-1)
        z = mean + jnp.exp(0.5 * log_var) * eps
        logits = nn.Dense(784)(nn.relu(nn.Dense(512)(nn.relu(nn.Dense(256)(z)))))
        return logits, mean, log_var


def hand_written_runner(config):
    data = load_data(config, "train")
    x_all = data.image.reshape(len(data), -1).astype(np.float32)
    model, opt = HandVAE(), optax.adam(optax.cosine_decay_schedule(1e-3, config.train.steps))
    params = model.init(jax.random.key(0), x_all[:2], jnp.zeros((2, 32)))
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, x, key):
        def loss_fn(p):
            logits, mean, log_var = model.apply(p, x, jax.random.normal(key, (x.shape[0], 32)))
            ll = jnp.sum(x * jax.nn.log_sigmoid(logits) + (1 - x) * jax.nn.log_sigmoid(-logits), axis=1)
            kl = 0.5 * jnp.sum(jnp.exp(log_var) + mean**2 - 1 - log_var, axis=1)
            return -(ll - kl).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    holder = {"p": params, "o": opt_state, "i": 0}
    perm = np.random.default_rng(0).permutation(len(x_all))
    bs, key = config.train.batch_size, jax.random.key(1)

    def go(n):
        p, o, i = holder["p"], holder["o"], holder["i"]
        for _ in range(n):
            start = (i % (len(x_all) // bs)) * bs
            p, o, loss = step(p, o, x_all[perm[start:start + bs]], jax.random.fold_in(key, i))
            i += 1
        jax.block_until_ready(p)
        holder.update(p=p, o=o, i=i)

    return go


def time_runner(go, seconds, repeats):
    """Median over ``repeats`` of steps/s, each repeat running batches of steps (doubling) for ``seconds``."""
    go(3)  # compile and warm up
    return float(np.median([steps_per_second(go, seconds) for _ in range(repeats)]))


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    results = {}
    settings = ynn_settings(_YNN.value)
    for name in _CONFIGS.value:
        config = load_config(name)
        if _CONV.value:
            runners = {}
            for conv in _CONV.value:
                c = load_config(name)
                c.model.conv = conv
                runners[f"model.conv={conv}"] = engine_runner(c)
        elif _YNN.value == ["config"]:
            rate = time_runner(engine_runner(config), _SECONDS.value, _REPEATS.value)
            results[name] = {"engine_steps_per_sec": rate, "batch_size": config.train.batch_size}
            print(f"{name}: {rate:.1f} steps/s (batch {config.train.batch_size})", flush=True)
            continue
        else:
            runners = {f"YNN fusions {s}": engine_runner(config, ynn_fusion=settings[s]) for s in _YNN.value}
        rates = {s: [] for s in runners}
        for go in runners.values():
            go(3)  # compile and warm up
        for _ in range(_REPEATS.value):  # alternate so every setting sees the same machine load
            for s, go in runners.items():
                rates[s].append(steps_per_second(go, _SECONDS.value))
        results[name] = {f"{s}: steps_per_sec": float(np.median(r)) for s, r in rates.items()}
        results[name]["batch_size"] = config.train.batch_size
        print(f"{name} (batch {config.train.batch_size}): " + ", ".join(
            f"{s} {float(np.median(r)):.2f}" for s, r in rates.items()) + " steps/s", flush=True)
    if "vae_binarized_mnist" in _CONFIGS.value:
        config = load_config("vae_binarized_mnist")
        engine, hand = engine_runner(config), hand_written_runner(config)
        engine(50), hand(50)
        e_rates, h_rates = [], []
        for _ in range(_REPEATS.value):  # alternate so both see the same machine load
            for go, rates in ((engine, e_rates), (hand, h_rates)):
                t0 = time.perf_counter()
                go(_STEPS.value)
                rates.append(_STEPS.value / (time.perf_counter() - t0))
        e, h = float(np.median(e_rates)), float(np.median(h_rates))
        results["engine_vs_hand_written"] = {"engine": e, "hand_written": h, "engine_overhead": h / e - 1}
        print(f"binarized-MNIST VAE: engine {e:.1f} steps/s, hand-written jit+optax {h:.1f} steps/s, "
              f"engine adds {100 * (h / e - 1):+.1f}% time per step", flush=True)
    results["device"] = str(jax.devices()[0].device_kind)
    if _OUT.value:
        Path(_OUT.value).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    app.run(main)
