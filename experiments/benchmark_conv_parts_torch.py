"""Where the U-Net's step loses to PyTorch: each 3x3 convolution shape of ``configs/diffusion_mnist.py``'s U-Net
split into its three parts (forward, input gradient, weight gradient), XLA:CPU against PyTorch on the same CPU,
side by side in one invocation:

``python experiments/benchmark_conv_parts_torch.py [--torch_python .venv-torch/bin/python] [--batch 128]``

Each (shape, part) is one race of ``torch_peer.race``: gen_jax's side is ``lax.conv_general_dilated`` (what
``nn.Conv`` calls; NHWC, "SAME"), and gen_jax's native CPU kernels (``gen_jax.nn.cpu_conv.conv_same``,
``--conv xla,native``), or their VJP for one operand, jitted as the diffusion configs compile the step
(``train.cpu_ynn_fusion=False``: YNNPACK's fusions off for the program) and, with ``--ynn_fusion on,off``, also
with XLA's default; the peer is ``F.conv2d`` / ``aten.convolution_backward`` for the same operand (NCHW). No bias,
no activation: the convolution alone. PyTorch is a benchmark-only tool, never a dependency of gen_jax (see
``benchmark_unet_torch.py``).
"""

import json
import sys
import time

import jax
from absl import app, flags

from gen_jax.nn.cpu_conv import conv_same
from gen_jax.train.parallel import cpu_compiler_options

from torch_peer import race  # experiments/torch_peer.py, beside this script

_TORCH = flags.DEFINE_string("torch_python", ".venv-torch/bin/python", "Python of a venv with torch==2.13.0.")
_BATCH = flags.DEFINE_integer("batch", 128, "Batch size.")
_SHAPES = flags.DEFINE_list("shapes", ["28:16:16", "28:32:16", "14:32:32", "14:64:32", "7:64:64", "7:128:64"],
                            "side:in_maps:out_maps of each 3x3 layer (the MNIST U-Net's, 16/32/64 maps).")
_PARTS = flags.DEFINE_list("parts", ["forward", "input_grad", "weight_grad"], "Which parts to time.")
_YNN = flags.DEFINE_list("ynn_fusion", ["off"], "gen_jax sides: XLA's YNNPACK fusions on and/or off.")
_CONV = flags.DEFINE_list("conv", ["xla", "native"], "gen_jax sides: XLA's convolution (what nn.Conv runs) and/or "
                          "gen_jax.nn.cpu_conv's native kernels.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per round.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Alternating rounds.")

PARTS = ("forward", "input_grad", "weight_grad")

TORCH_SCRIPT = r'''
import json, sys, time
import torch
import torch.nn.functional as F
torch.manual_seed(0)
cfg = json.loads(sys.argv[1])
B, S, ci, co, part = cfg["batch"], cfg["size"], cfg["cin"], cfg["cout"], cfg["part"]
x, k, g = torch.randn(B, ci, S, S), torch.randn(co, ci, 3, 3) * 0.1, torch.randn(B, co, S, S)
mask = {"input_grad": (True, False, False), "weight_grad": (False, True, False)}.get(part)
def step():
    if mask is None:
        return F.conv2d(x, k, padding=1)
    return torch.ops.aten.convolution_backward(g, x, k, None, (1, 1), (1, 1), (1, 1), False, (0, 0), 1, mask)
for _ in range(3):
    step()
print(json.dumps({"params": k.numel()}), flush=True)
for line in sys.stdin:
    n = int(line)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    print(json.dumps({"seconds_per_step": (time.perf_counter() - t0) / n}), flush=True)
'''


def _conv(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def jax_part(part: str, batch: int, size: int, cin: int, cout: int, ynn_fusion: bool, conv: str = "xla"):
    """``run(n) -> seconds per call`` of one part of the convolution (``conv``: ``xla`` or ``native``), and the
    kernel's parameter count."""
    cf = {"xla": _conv, "native": conv_same}[conv]
    x = jax.random.normal(jax.random.key(0), (batch, size, size, cin))
    k = jax.random.normal(jax.random.key(1), (3, 3, cin, cout)) * 0.1
    g = jax.random.normal(jax.random.key(2), (batch, size, size, cout))
    fns = {"forward": lambda x, k, g: cf(x, k),
           "input_grad": lambda x, k, g: jax.vjp(cf, x, k)[1](g)[0],
           "weight_grad": lambda x, k, g: jax.vjp(cf, x, k)[1](g)[1]}
    fn = jax.jit(fns[part], compiler_options=cpu_compiler_options(ynn_fusion))
    for _ in range(3):
        jax.block_until_ready(fn(x, k, g))

    def run(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            out = fn(x, k, g)
        jax.block_until_ready(out)
        return (time.perf_counter() - t0) / n

    return run, int(k.size)


def main(argv):
    del argv
    unknown = set(_PARTS.value) - set(PARTS)
    if unknown:
        raise app.UsageError(f"unknown parts {sorted(unknown)}; known: {PARTS}")
    if set(_CONV.value) - {"xla", "native"}:
        raise app.UsageError(f"--conv takes xla and/or native, not {_CONV.value}")
    if set(_YNN.value) - {"on", "off"}:
        raise app.UsageError(f"--ynn_fusion takes on and/or off, not {_YNN.value}")
    rows = []
    for shape in _SHAPES.value:
        size, cin, cout = (int(v) for v in shape.split(":"))
        for part in _PARTS.value:
            sides = {f"gen_jax {conv} (YNN fusions {s})": jax_part(part, _BATCH.value, size, cin, cout, s == "on",
                                                                    conv)
                     for conv in _CONV.value for s in _YNN.value}
            cfg = {"batch": _BATCH.value, "size": size, "cin": cin, "cout": cout, "part": part}
            res = race(_TORCH.value, TORCH_SCRIPT, cfg, sides, repeats=_REPEATS.value, rounds=_ROUNDS.value)
            med = {name: round(1e3 * s, 2) for name, s in res["seconds_per_step_median"].items()}
            ratio = {name: round(r, 2) for name, r in res["ratio_to_pytorch"].items()}
            rows.append({"shape": shape, "part": part, "ms_median": med, "ratio_to_pytorch": ratio})
            print(f"{shape:>9} {part:>11}  " + "  ".join(f"{n} {m} ms" for n, m in med.items())
                  + "  ratio " + " / ".join(str(r) for r in ratio.values()), flush=True)
    print(json.dumps({"batch": _BATCH.value, "rows": rows, "jax": jax.__version__,
                      "python": sys.version.split()[0]}, indent=2))


if __name__ == "__main__":
    app.run(main)
