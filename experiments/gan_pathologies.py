"""GAN training pathologies, each reproduced on a small exact problem and measured with what fixes it.

``python experiments/gan_pathologies.py --out runs/gan_pathologies [--parts dirac,vanishing,modes,sensitivity]``

* ``dirac``: the Dirac-GAN (Mescheder et al. 2018) in closed form (:func:`gen_jax.losses.dirac_gan_trajectory`):
  the phase plane of simultaneous and alternating gradient steps, TTUR, n_critic = 5, WGAN-GP and R1;
  ``dirac.png`` and the distance from the equilibrium after the run, ``dirac.json``.
* ``vanishing``: the generator's gradient norm under the saturating (minimax) and the non-saturating loss while
  the discriminator alone is trained against a fixed generator on the ring of 8 Gaussians; ``vanishing.png``.
* ``modes``: PacGAN's protocol (``configs/gan_toy2d.py``) on ``pacgan_grid25`` and ``pacgan_ring8`` for each
  variant of ``--variants`` over ``--seeds`` seeds: modes hit, high-quality fraction (within 3 sigma) and the
  reverse KL of the generated mode distribution to the uniform one, from 2500 samples per seed, mean +-
  standard error; ``modes.json`` / ``modes.md`` and a picture of every seed's samples per variant.
* ``sensitivity``: learning rate x loss x n_critic on the grid, the mean modes hit and the fraction of seeds
  that hit all 25, as a heat map (``sensitivity.png``, ``sensitivity.json``).

The seeds of one variant train together, vectorised with ``jax.vmap`` over the family's own per-device step
(each seed its own initialisation, noise and data order; batches drawn with replacement from the 100,000
training points), so a configuration's 10 seeds cost about one run's wall time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from absl import app, flags  # noqa: E402

from gen_jax.eval.modes import kl_to_uniform, mode_coverage  # noqa: E402
from gen_jax.families import build_family  # noqa: E402
from gen_jax.losses.adversarial import dirac_gan_trajectory, generator_loss  # noqa: E402
from gen_jax.train.config import load_config_file  # noqa: E402
from gen_jax.train.loop import load_data  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gan_toy2d.py"

_OUT = flags.DEFINE_string("out", "runs/gan_pathologies", "Output directory.")
_PARTS = flags.DEFINE_list("parts", ["dirac", "vanishing", "modes", "sensitivity"], "What to run.")
_SEEDS = flags.DEFINE_integer("seeds", 10, "Seeds per configuration (modes).")
_STEPS = flags.DEFINE_integer("steps", 0, "Generator steps per run; 0 = the config's.")
_DATASETS = flags.DEFINE_list("datasets", ["pacgan_grid25", "pacgan_ring8"], "Toys of the modes part.")
_VARIANTS = flags.DEFINE_list("variants", ["ns", "ns_r1", "hinge", "ns_pack4", "ns_mbstd", "ns_mbd", "wgan_gp"],
                              "Variants of the modes part (see VARIANTS).")
_SENS_SEEDS = flags.DEFINE_integer("sensitivity_seeds", 4, "Seeds per cell of the sensitivity grid.")
_SENS_STEPS = flags.DEFINE_integer("sensitivity_steps", 3000, "Generator steps per sensitivity run.")
_SAMPLES = 2500

# name -> the model overrides: the losses and the discriminator options against mode collapse
VARIANTS = {
    "ns": {},
    "minimax": {"loss": "minimax"},
    "wgan_gp": {"loss": "wasserstein", "gradient_penalty": 10.0, "n_critic": 5},
    "hinge": {"loss": "hinge"},
    "ns_r1": {"r1_gamma": 0.1},  # in standardised units
    "ns_r1_g0.01": {"r1_gamma": 0.01},
    "ns_r1_g0.005": {"r1_gamma": 0.005},
    "ns_r1_g0.01_ema": {"r1_gamma": 0.01, "ema_decay": 0.999},  # ema_decay: train.ema_decay, samples by the EMA
    "ns_mbd": {"minibatch": "discrimination"},
    "ns_mbstd": {"minibatch": "stddev"},
    "ns_pack2": {"pack": 2},
    "ns_pack4": {"pack": 4},
    "ns_sn": {"spectral_norm": True},
}


def _config(dataset: str, model: dict, steps: int, learning_rate: float | None = None):
    c = load_config_file(CONFIG)
    c.data.name = dataset
    model = dict(model)
    if "ema_decay" in model:  # the one training option of a variant
        c.train.ema_decay = model.pop("ema_decay")
    c.model.update(model)
    if steps:
        c.train.steps = steps
    if learning_rate:
        c.optim.learning_rate = c.discriminator_optim.learning_rate = learning_rate
    return c


def train_seeds(config, seeds: int, seed_offset: int = 0, chunk: int = 500):
    """Trains ``seeds`` runs of ``config`` at once; returns the family, the stacked final states and the wall
    time."""
    data = load_data(config, "train")
    family = build_family(config, data)
    x = jnp.asarray(data.x)
    b, n = config.train.batch_size, len(data.x)
    keys = jax.vmap(lambda s: jax.random.split(jax.random.key(s), 3))(jnp.arange(seeds) + seed_offset)
    example = {"x": x[:b]}
    states = jax.vmap(lambda k: family.trainer.init_state(k, example))(keys[:, 0])
    step = family.trainer.make_step(None)

    def one(states, i):
        idx = jax.vmap(lambda k: jax.random.randint(jax.random.fold_in(k, i), (b,), 0, n))(keys[:, 1])
        states, metrics = jax.vmap(step)(states, {"x": x[idx]}, keys[:, 2])
        return states, metrics["d_loss"]

    run_chunk = jax.jit(lambda states, start: jax.lax.scan(one, states, start + jnp.arange(chunk)),
                        donate_argnums=0)
    t0 = time.perf_counter()
    steps = config.train.steps
    for start in range(0, steps - steps % chunk, chunk):
        states, d_loss = run_chunk(states, start)
    for i in range(steps - steps % chunk, steps):  # a tail shorter than a chunk
        states, _ = jax.jit(one)(states, i)
    jax.block_until_ready(states)
    return family, data, states, time.perf_counter() - t0


def evaluate_seeds(family, data, states, seeds: int) -> list[dict]:
    toy = data.toy
    out = []
    for s in range(seeds):
        params = jax.tree.map(lambda v: v[s], states.eval_params)
        samples = np.asarray(family.sample(params, jax.random.key(10_000 + s), _SAMPLES))
        cov = mode_coverage(samples, toy.modes, toy.mode_std)
        reverse_kl = kl_to_uniform(cov["counts"])  # KL(generated modes || uniform)
        out.append({"modes_hit": cov["modes_hit"], "high_quality_fraction": cov["high_quality_fraction"],
                    "reverse_kl": reverse_kl, "samples": samples})
    return out


def _mean_se(values):
    v = np.asarray(values, np.float64)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def part_modes(out: Path):
    rows = []
    for dataset in _DATASETS.value:
        for name in _VARIANTS.value:
            config = _config(dataset, VARIANTS[name], _STEPS.value)
            family, data, states, seconds = train_seeds(config, _SEEDS.value)
            res = evaluate_seeds(family, data, states, _SEEDS.value)
            row = {"dataset": dataset, "variant": name, "model": VARIANTS[name], "seeds": _SEEDS.value,
                   "steps": config.train.steps, "wall_seconds": seconds,
                   "all_modes_every_seed": all(r["modes_hit"] == len(data.toy.modes) for r in res)}
            for key in ("modes_hit", "high_quality_fraction", "reverse_kl"):
                row[key] = _mean_se([r[key] for r in res])
                row[key + "_per_seed"] = [r[key] for r in res]
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if not k.endswith("per_seed")}), flush=True)
            fig, axes = plt.subplots(1, _SEEDS.value, figsize=(2 * _SEEDS.value, 2.2))
            for ax, r in zip(np.atleast_1d(axes), res):
                ax.scatter(*data.toy.modes.T, s=30, c="tab:blue", alpha=0.4)
                ax.scatter(*r["samples"][:1000].T, s=1, c="tab:orange")
                ax.set_title(f"{r['modes_hit']} modes, {100 * r['high_quality_fraction']:.0f}% HQ", fontsize=7)
                ax.set_xticks([]), ax.set_yticks([])
                ax.set_xlim(data.toy.bounds[:2]), ax.set_ylim(data.toy.bounds[2:])
            fig.suptitle(f"{name} on {dataset}", fontsize=9)
            fig.tight_layout()
            fig.savefig(out / f"modes_{dataset}_{name}.png", dpi=90)
            plt.close(fig)
            (out / "modes.json").write_text(json.dumps(rows, indent=1))
    lines = ["| data | variant | modes (mean +- se) | high quality % | reverse KL | all modes in every seed | wall |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        m, hq, kl = r["modes_hit"], r["high_quality_fraction"], r["reverse_kl"]
        lines.append(f"| {r['dataset']} | {r['variant']} | {m[0]:.1f} +- {m[1]:.1f} | {100 * hq[0]:.1f} +- "
                     f"{100 * hq[1]:.1f} | {kl[0]:.3f} +- {kl[1]:.3f} | {r['all_modes_every_seed']} | "
                     f"{r['wall_seconds'] / 60:.1f} min |")
    (out / "modes.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def part_sensitivity(out: Path):
    lrs = (3e-4, 1e-3, 3e-3)
    settings = [("ns", {}), ("hinge", {"loss": "hinge"}), ("wgan_gp", {"loss": "wasserstein", "gradient_penalty": 10.0})]
    n_critics = (1, 2)
    grid = np.zeros((len(settings) * len(n_critics), len(lrs)))
    fraction = np.zeros_like(grid)
    labels, cells = [], []
    for i, ((name, model), nc) in enumerate([(s, nc) for s in settings for nc in n_critics]):
        labels.append(f"{name}, n_critic={nc}")
        for j, lr in enumerate(lrs):
            config = _config("pacgan_grid25", {**model, "n_critic": nc}, _SENS_STEPS.value, learning_rate=lr)
            family, data, states, seconds = train_seeds(config, _SENS_SEEDS.value, seed_offset=100)
            res = evaluate_seeds(family, data, states, _SENS_SEEDS.value)
            grid[i, j] = np.mean([r["modes_hit"] for r in res])
            fraction[i, j] = np.mean([r["modes_hit"] == 25 for r in res])
            cells.append({"loss": name, "n_critic": nc, "learning_rate": lr, "fraction_all_modes": fraction[i, j],
                          "mean_modes": grid[i, j],
                          "modes_per_seed": [r["modes_hit"] for r in res],
                          "high_quality_per_seed": [r["high_quality_fraction"] for r in res],
                          "wall_seconds": seconds})
            print(json.dumps(cells[-1]), flush=True)
            (out / "sensitivity.json").write_text(json.dumps(cells, indent=1))
    fig, ax = plt.subplots(figsize=(5, 4))
    im = ax.imshow(grid, vmin=0, vmax=25, cmap="viridis")
    ax.set_xticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
    ax.set_yticks(range(len(labels)), labels)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax.text(j, i, f"{grid[i, j]:.1f}\n({fraction[i, j]:.1f})", ha="center", va="center", fontsize=7,
                    color="w" if grid[i, j] < 12.5 else "k")
    ax.set_xlabel("learning rate (both players)")
    ax.set_title(f"grid of 25: mean modes hit over {_SENS_SEEDS.value} seeds (fraction with all 25)\n"
                 f"({_SENS_STEPS.value} generator steps)", fontsize=9)
    fig.colorbar(im)
    fig.tight_layout()
    fig.savefig(out / "sensitivity.png", dpi=100)
    plt.close(fig)


def part_dirac(out: Path):
    runs = {
        "simultaneous": dict(loss="minimax", update="simultaneous"),
        "alternating": dict(loss="minimax", update="alternating"),
        "alternating, TTUR (d lr x5)": dict(loss="minimax", update="alternating", d_learning_rate=0.5),
        "alternating, n_critic = 5": dict(loss="minimax", update="alternating", n_critic=5),
        "WGAN-GP (lambda = 10)": dict(loss="wasserstein", update="alternating", gradient_penalty=10.0),
        "R1 (gamma = 1)": dict(loss="minimax", update="alternating", r1_gamma=1.0),
    }
    fig, axes = plt.subplots(1, len(runs), figsize=(3 * len(runs), 3.2))
    summary = {}
    for ax, (name, kw) in zip(axes, runs.items()):
        path = np.asarray(dirac_gan_trajectory(1.0, 1.0, steps=1000, learning_rate=0.1, **kw))
        ax.plot(path[:, 0], path[:, 1], lw=0.8)
        ax.scatter([path[0, 0]], [path[0, 1]], c="k", s=12)
        ax.scatter([0], [0], marker="*", c="r", s=50)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("theta (generator)", fontsize=7)
        ax.set_ylabel("psi (discriminator)", fontsize=7)
        lim = max(1.6, float(np.abs(path).max()) * 1.05) if np.isfinite(path).all() else 3
        ax.set_xlim(-lim, lim), ax.set_ylim(-lim, lim)
        r = np.linalg.norm(path, axis=1)
        summary[name] = {"start": float(r[0]), "after_1000_steps": float(r[-1]), "max": float(r.max())}
    fig.suptitle("Dirac-GAN: gradient steps of lr 0.1 from (1, 1); equilibrium at the star", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "dirac.png", dpi=100)
    plt.close(fig)
    (out / "dirac.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1))


def part_vanishing(out: Path, d_steps: int = 5000, every: int = 100):
    """Trains the discriminator alone (non-saturating D loss) against the initial generator on the ring of 8
    (the generator's blob sits in the ring's empty centre: disjoint supports, the setting of Arjovsky & Bottou
    2017); every ``every`` steps, the norm of the generator's gradient under each generator loss, and D's
    accuracy."""
    config = _config("pacgan_ring8", {}, 1)
    data = load_data(config, "train")
    family = build_family(config, data)
    m = config.model
    x = jnp.asarray(data.x)
    state = family.trainer.init_state(jax.random.key(0), {"x": x[:100]})
    gen, disc = family.model["generator"], family.model["discriminator"]
    shift, scale = x.mean(0), x.std(0)
    opt = optax.adam(1e-3)
    d_params = state.params["discriminator"]["params"]
    opt_state = opt.init(d_params)
    g_vars = state.params["generator"]

    def fake_batch(k):
        z = jax.random.normal(k, (256, m.latent_dim))
        return gen.apply(g_vars, z, None, train=True, mutable=["batch_stats"])[0]

    @jax.jit
    def d_step(d_params, opt_state, k):
        k1, k2 = jax.random.split(k)
        real = (x[jax.random.randint(k1, (256,), 0, len(x))] - shift) / scale
        fake = fake_batch(k2)

        def loss(p):
            lr, lf = disc.apply({"params": p}, real), disc.apply({"params": p}, fake)
            return jnp.mean(jax.nn.softplus(-lr) + jax.nn.softplus(lf)), (jnp.mean(lr > 0) + jnp.mean(lf < 0)) / 2
        (_, acc), g = jax.value_and_grad(loss, has_aux=True)(d_params)
        updates, opt_state = opt.update(g, opt_state)
        return optax.apply_updates(d_params, updates), opt_state, acc

    @jax.jit
    def g_grad_norms(d_params, k):
        z = jax.random.normal(k, (256, m.latent_dim))

        def g_loss(gp, kind):
            fake = gen.apply({**g_vars, "params": gp}, z, None, train=True, mutable=["batch_stats"])[0]
            return jnp.mean(generator_loss(disc.apply({"params": d_params}, fake), kind=kind))
        return {kind: optax.tree.norm(jax.grad(g_loss)(g_vars["params"], kind))
                for kind in ("minimax", "non_saturating")}

    rows = []
    for i in range(d_steps + 1):
        if i % every == 0:
            norms = g_grad_norms(d_params, jax.random.key(999))
            rows.append({"d_steps": i, **{k: float(v) for k, v in norms.items()}})
        d_params, opt_state, acc = d_step(d_params, opt_state, jax.random.key(i))
        if i % every == 0:
            rows[-1]["d_accuracy"] = float(acc)
    (out / "vanishing.json").write_text(json.dumps(rows, indent=1))
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    steps = [r["d_steps"] for r in rows]
    ax.semilogy(steps, [r["minimax"] for r in rows], label="saturating: log(1 - D(G(z)))")
    ax.semilogy(steps, [r["non_saturating"] for r in rows], label="non-saturating: -log D(G(z))")
    ax.set_xlabel("discriminator steps against a fixed generator")
    ax.set_ylabel("||grad of the generator's loss||")
    ax2 = ax.twinx()
    ax2.plot(steps, [r["d_accuracy"] for r in rows], "k:", lw=1, label="D accuracy")
    ax2.set_ylabel("D accuracy (dotted)")
    ax.legend(fontsize=7, loc="center right")
    ax.set_title("vanishing gradients (ring of 8, initial generator)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "vanishing.png", dpi=100)
    plt.close(fig)
    print(json.dumps([rows[0], rows[len(rows) // 2], rows[-1]]))


def main(argv):
    del argv
    out = Path(_OUT.value)
    out.mkdir(parents=True, exist_ok=True)
    parts = {"dirac": part_dirac, "vanishing": part_vanishing, "modes": part_modes, "sensitivity": part_sensitivity}
    unknown = set(_PARTS.value) - set(parts)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)}; known: {sorted(parts)}")
    for name in _PARTS.value:
        parts[name](out)


if __name__ == "__main__":
    app.run(main)
