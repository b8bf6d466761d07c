"""The DCGAN training step (both players) in gen_jax against the same architecture written in PyTorch, on the
same CPU, side by side in one invocation:

``python experiments/benchmark_gan_torch.py [--torch_python .venv-torch/bin/python] [--batch 64]``

PyTorch is a benchmark-only tool, never a dependency of gen_jax: ``python3 -m venv .venv-torch &&
.venv-torch/bin/pip install torch==2.13.0 numpy`` (a CPU wheel from local disk here). The PyTorch side runs in
that interpreter as a child process fed this file's ``TORCH_SCRIPT``. Both build ``configs/gan_mnist.py``'s
players (generator: dense to 7x7x128, batch norm, ReLU, two 4x4 stride-2 transposed convolutions to 28x28,
tanh; discriminator: two 4x4 stride-2 convolutions with 64 and 128 maps, LeakyReLU 0.2, batch norm after the
second, a dense logit) with the same parameter count (checked), and time one training step: a discriminator
update on real and generated images and a generator update, non-saturating loss, Adam for each player.
gen_jax's side is the family's own step (``gen_jax.families.gan``), jitted with its state donated, once with the
strided layers as exact stride-1 equivalents (``model.conv="fast"``: ``Col2ImConvTranspose``,
``SpaceToDepthConv``) and once with Flax's strided layers (``"flax"``), compiled as the config says
(``train.cpu_ynn_fusion``; ``--ynn_fusion on,off`` times a side per setting). The sides alternate for
``--rounds`` rounds of ``--repeats`` timed steps after a warm-up; medians are reported.
"""

import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from gen_jax.data.images import ImageDataset
from gen_jax.families import build_family
from gen_jax.train.config import load_config_file
from gen_jax.train.parallel import cpu_compiler_options

from step_runner import ynn_settings  # experiments/step_runner.py, beside this script
from torch_peer import race  # experiments/torch_peer.py, beside this script

_TORCH = flags.DEFINE_string("torch_python", ".venv-torch/bin/python", "Python of a venv with torch==2.13.0.")
_BATCH = flags.DEFINE_integer("batch", 64, "Batch size.")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Timed steps per round.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Alternating rounds.")
_CONVS = flags.DEFINE_list("convs", ["fast", "flax"], "gen_jax's strided-layer paths to time.")
_PEER_MALLOC = flags.DEFINE_bool("torch_reuse_freed_memory", False, "Run the PyTorch child with glibc's malloc "
                                  "tuned as import gen_jax tunes its own (gen_jax.host_memory.MALLOC_ENV).")
_YNN = flags.DEFINE_list("ynn_fusion", ["config"], "XLA:CPU's YNNPACK fusions for gen_jax's step: config (the "
                         "config's train.cpu_ynn_fusion), on or off; one side per entry.")

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gan_mnist.py"

TORCH_SCRIPT = r'''
import json, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F
torch.manual_seed(0)
cfg = json.loads(sys.argv[1])
B, Z, (g0, g1), (d0, d1) = cfg["batch"], cfg["latent_dim"], cfg["g_channels"], cfg["d_channels"]

G = nn.Sequential(
    nn.Linear(Z, 7 * 7 * g0, bias=False), nn.Unflatten(1, (g0, 7, 7)), nn.BatchNorm2d(g0), nn.ReLU(),
    nn.ConvTranspose2d(g0, g1, 4, 2, 1, bias=False), nn.BatchNorm2d(g1), nn.ReLU(),
    nn.ConvTranspose2d(g1, 1, 4, 2, 1), nn.Tanh())
D = nn.Sequential(
    nn.Conv2d(1, d0, 4, 2, 1), nn.LeakyReLU(0.2),
    nn.Conv2d(d0, d1, 4, 2, 1, bias=False), nn.BatchNorm2d(d1), nn.LeakyReLU(0.2),
    nn.Flatten(), nn.Linear(d1 * 7 * 7, 1))
count = sum(p.numel() for p in G.parameters()) + sum(p.numel() for p in D.parameters())
opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
real = torch.rand(B, 1, 28, 28) * 2 - 1

def step():
    fake = G(torch.randn(B, Z)).detach()
    d_loss = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()
    opt_d.zero_grad(set_to_none=True); d_loss.backward(); opt_d.step()
    g_loss = F.softplus(-D(G(torch.randn(B, Z)))).mean()
    opt_g.zero_grad(set_to_none=True); g_loss.backward(); opt_g.step()

for _ in range(3):
    step()
print(json.dumps({"params": count}), flush=True)
for line in sys.stdin:  # one round per line: time `repeats` steps
    n = int(line)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    print(json.dumps({"seconds_per_step": (time.perf_counter() - t0) / n}), flush=True)
'''


def jax_step(conv: str, batch: int, ynn_fusion: bool | None = None):
    """The family's jitted step on random images, ``ynn_fusion`` overriding the config's ``train.cpu_ynn_fusion``
    (``None``: the config's); returns (``run(n)`` -> seconds per step, parameter count, config)."""
    c = load_config_file(CONFIG)
    c.model.conv = conv
    rng = np.random.default_rng(0)
    data = ImageDataset("mnist", "train", rng.integers(0, 256, (batch, 28, 28, 1)).astype(np.uint8),
                        np.zeros(batch, np.int32), num_levels=256, num_classes=10)
    family = build_family(c, data)
    state = family.trainer.init_state(jax.random.key(0), data.arrays())
    ynn = c.train.cpu_ynn_fusion if ynn_fusion is None else ynn_fusion
    step = jax.jit(family.trainer.make_step(None), donate_argnums=0, compiler_options=cpu_compiler_options(ynn))
    batch_arrays = {"image": jnp.asarray(data.image)}
    for i in range(3):
        state, _ = step(state, batch_arrays, jax.random.key(i))
    jax.block_until_ready(state)
    count = sum(int(p.size) for p in jax.tree.leaves({p: state.params[p]["params"] for p in state.params}))
    holder = [state]

    def run(n: int) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            holder[0], _ = step(holder[0], batch_arrays, jax.random.key(100 + i))
        jax.block_until_ready(holder[0])
        return (time.perf_counter() - t0) / n

    return run, count, c


def main(argv):
    del argv
    sides, cfg = {}, None
    settings = ynn_settings(_YNN.value)
    for conv in _CONVS.value:
        for name, ynn in settings.items():
            run, count, c = jax_step(conv, _BATCH.value, ynn)
            sides[f"gen_jax ({conv}, ynn {name})" if len(settings) > 1 else f"gen_jax ({conv})"] = (run, count)
        cfg = {"batch": _BATCH.value, "latent_dim": c.model.latent_dim, "g_channels": list(c.model.g_channels),
               "d_channels": list(c.model.d_channels)}
    res = race(_TORCH.value, TORCH_SCRIPT, cfg, sides, repeats=_REPEATS.value, rounds=_ROUNDS.value,
               peer_reuse_freed_memory=_PEER_MALLOC.value)
    print(json.dumps({**cfg, **res, "jax": jax.__version__, "python": sys.version.split()[0]}, indent=2))


if __name__ == "__main__":
    app.run(main)
