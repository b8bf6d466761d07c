"""The diffusion U-Net's training step in gen_jax against the same U-Net written in PyTorch, on the same CPU,
side by side in one invocation:

``python experiments/benchmark_unet_torch.py [--torch_python .venv-torch/bin/python] [--batch 128]``

PyTorch is a benchmark-only tool, never a dependency of gen_jax: ``python3 -m venv .venv-torch &&
.venv-torch/bin/pip install torch==2.13.0 numpy`` (a CPU wheel from local disk here). The PyTorch side runs in
that interpreter as a child process, fed this file's ``TORCH_SCRIPT``; both sides build the architecture of
``configs/diffusion_mnist.py`` (``gen_jax.nn.UNet``: group norm, 3x3 convolutions, SiLU, a sinusoidal time
embedding MLP, average-pool down, nearest up + conv, self-attention at 7x7) with the same parameter count
(checked), and time one training step: eps-prediction DDPM loss, backward, Adam. The two alternate for
``--rounds`` rounds of ``--repeats`` timed steps after a warm-up; the medians are reported, with both of
gen_jax's convolution paths (``nn.Conv`` and ``PatchConv``), and ``nn.Conv`` compiled as the diffusion configs
compile it (``train.cpu_ynn_fusion=False``: XLA:CPU's YNNPACK fusions off for this program alone).
"""

import json
import sys
import time

import jax
import jax.numpy as jnp
import optax
from absl import app, flags

from gen_jax.nn.unet import UNet
from gen_jax.train.parallel import cpu_compiler_options

from torch_peer import race  # experiments/torch_peer.py, beside this script

_TORCH = flags.DEFINE_string("torch_python", ".venv-torch/bin/python", "Python of a venv with torch==2.13.0.")
_BATCH = flags.DEFINE_integer("batch", 128, "Batch size.")
_CHANNELS = flags.DEFINE_list("channels", ["16", "32", "64"], "U-Net maps per resolution.")
_SIZE = flags.DEFINE_integer("size", 28, "Image side.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed steps per round.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Alternating rounds.")
_PEER_MALLOC = flags.DEFINE_bool("torch_reuse_freed_memory", False, "Run the PyTorch child with glibc's malloc "
                                  "tuned as import gen_jax tunes its own (gen_jax.host_memory.MALLOC_ENV).")

TORCH_SCRIPT = r'''
import json, math, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F
torch.manual_seed(0)
cfg = json.loads(sys.argv[1])
chans, B, S, time_dim = cfg["channels"], cfg["batch"], cfg["size"], 64

def gn(c):
    return nn.GroupNorm(math.gcd(8, c), c)

def sinusoidal(t, dim):
    t = t * 1000.0
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half) / half)
    a = t[:, None] * freqs[None]
    return torch.cat([torch.sin(a), torch.cos(a)], -1)

class Res(nn.Module):
    def __init__(self, cin, c, emb):
        super().__init__()
        self.n1, self.c1, self.d = gn(cin), nn.Conv2d(cin, c, 3, padding=1), nn.Linear(emb, c)
        self.n2, self.c2 = gn(c), nn.Conv2d(c, c, 3, padding=1)
        self.skip = nn.Identity() if cin == c else nn.Conv2d(cin, c, 1)
    def forward(self, x, e):
        h = self.c1(F.silu(self.n1(x))) + self.d(F.silu(e))[:, :, None, None]
        return self.skip(x) + self.c2(F.silu(self.n2(h)))

class Attn(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n, self.q, self.k, self.v, self.o = gn(c), nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c)
    def forward(self, x):
        b, c, h, w = x.shape
        t = self.n(x).flatten(2).transpose(1, 2)
        a = F.scaled_dot_product_attention(self.q(t)[:, None], self.k(t)[:, None], self.v(t)[:, None])[:, 0]
        return x + self.o(a).transpose(1, 2).reshape(b, c, h, w)

class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        e = 4 * chans[0]
        self.t1, self.t2 = nn.Linear(time_dim, e), nn.Linear(e, e)
        self.inp = nn.Conv2d(1, chans[0], 3, padding=1)
        self.down, self.up, self.upconv = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        c_prev = chans[0]
        for c in chans:
            self.down.append(Res(c_prev, c, e)); c_prev = c
        self.mid1, self.attn, self.mid2 = Res(c_prev, c_prev, e), Attn(c_prev), Res(c_prev, c_prev, e)
        for i in reversed(range(len(chans))):
            if i < len(chans) - 1:
                self.upconv.append(nn.Conv2d(c_prev, chans[i], 3, padding=1)); c_prev = chans[i]
            self.up.append(Res(c_prev + chans[i], chans[i], e)); c_prev = chans[i]
        self.out_n, self.out = gn(c_prev), nn.Conv2d(c_prev, 1, 3, padding=1)
    def forward(self, x, t):
        e = self.t2(F.silu(self.t1(sinusoidal(t, time_dim))))
        h, skips = self.inp(x), []
        for i, blk in enumerate(self.down):
            h = blk(h, e); skips.append(h)
            if i < len(chans) - 1:
                h = F.avg_pool2d(h, 2)
        h = self.mid2(self.attn(self.mid1(h, e)), e)
        j = 0
        for n, i in enumerate(reversed(range(len(chans)))):
            if i < len(chans) - 1:
                size = skips[i].shape[2:]
                h = F.interpolate(h, scale_factor=2, mode="nearest")
                h = F.pad(h, (0, size[1] - h.shape[3], 0, size[0] - h.shape[2]), mode="replicate")
                h = self.upconv[j](h); j += 1
            h = self.up[n](torch.cat([h, skips[i]], 1), e)
        return self.out(F.silu(self.out_n(h)))

net = UNet()
opt = torch.optim.Adam(net.parameters(), 1e-3)
x0 = torch.randn(B, 1, S, S)
def step():
    t = torch.rand(B)
    a = torch.exp(-0.25 * t * t * 19.9 - 0.05 * t)[:, None, None, None]
    eps = torch.randn_like(x0)
    loss = 0.5 * ((net(a * x0 + torch.sqrt(1 - a * a) * eps, t) - eps) ** 2).sum((1, 2, 3)).mean()
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
for _ in range(2):
    step()
print(json.dumps({"params": sum(p.numel() for p in net.parameters())}), flush=True)
for line in sys.stdin:  # one round per line: time `repeats` steps
    n = int(line)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    print(json.dumps({"seconds_per_step": (time.perf_counter() - t0) / n}), flush=True)
'''


def jax_step(conv: str, channels, batch: int, size: int, ynn_fusion: bool = True):
    net = UNet(channels=channels, conv=conv)
    x0 = jax.random.normal(jax.random.key(0), (batch, size, size, 1))
    params = net.init(jax.random.key(1), x0, jnp.zeros((batch,)))
    opt = optax.adam(1e-3)

    def step(params, opt_state, rng):
        k_t, k_e = jax.random.split(rng)
        t = jax.random.uniform(k_t, (batch,))
        a = jnp.exp(-0.25 * t * t * 19.9 - 0.05 * t)[:, None, None, None]
        eps = jax.random.normal(k_e, x0.shape)

        def loss(p):
            return jnp.mean(0.5 * jnp.sum((net.apply(p, a * x0 + jnp.sqrt(1 - a * a) * eps, t) - eps) ** 2, (1, 2, 3)))

        grads = jax.grad(loss)(params)
        updates, opt_state = opt.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state

    step = jax.jit(step, donate_argnums=(0, 1), compiler_options=cpu_compiler_options(ynn_fusion))
    state = [params, opt.init(params)]
    for i in range(2):
        state = list(step(*state, jax.random.key(i)))
    jax.block_until_ready(state)
    count = sum(int(p.size) for p in jax.tree.leaves(params))

    def run(n: int) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            state[:] = step(*state, jax.random.key(100 + i))
        jax.block_until_ready(state)
        return (time.perf_counter() - t0) / n

    return run, count


def main(argv):
    del argv
    channels = tuple(int(c) for c in _CHANNELS.value)
    cfg = {"channels": list(channels), "batch": _BATCH.value, "size": _SIZE.value}
    sides = {f"gen_jax ({conv}{'' if ynn else ', YNN fusions off'})": jax_step(conv, channels, _BATCH.value,
                                                                              _SIZE.value, ynn)
             for conv, ynn in [("flax", True), ("flax", False), ("native", True), ("native", False)]}
    res = race(_TORCH.value, TORCH_SCRIPT, cfg, sides, repeats=_REPEATS.value, rounds=_ROUNDS.value,
               peer_reuse_freed_memory=_PEER_MALLOC.value)
    out = {"batch": _BATCH.value, "channels": channels, "size": _SIZE.value, **res,
           "jax": jax.__version__, "python": sys.version.split()[0]}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    app.run(main)
