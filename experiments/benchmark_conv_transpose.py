"""XLA:CPU's slow path, measured: a strided ``nn.ConvTranspose`` against ``Col2ImConvTranspose`` (the same
function, see tests/test_nn.py):

``python experiments/benchmark_conv_transpose.py [--sizes 7,14] [--repeats 5]``

For each input size: 4x4 stride-2 transposed convolution 128 -> 64 channels, batch 128, float32; the jitted
forward, the jitted gradient with respect to the kernel alone (the slow path), and forward + both gradients;
the mean of ``repeats`` timed calls after a warm-up, in milliseconds.
"""

import json
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
from absl import app, flags

from gen_jax.nn import Col2ImConvTranspose

_SIZES = flags.DEFINE_list("sizes", ["7", "14"], "Input heights/widths.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per measurement.")
_BATCH = flags.DEFINE_integer("batch", 128, "Batch size.")


def _time(fn, *args):
    jax.block_until_ready(fn(*args))
    t0 = time.perf_counter()
    for _ in range(_REPEATS.value):
        jax.block_until_ready(fn(*args))
    return 1000 * (time.perf_counter() - t0) / _REPEATS.value


def main(argv):
    del argv
    rows = []
    for size in map(int, _SIZES.value):
        x = jax.random.normal(jax.random.key(0), (_BATCH.value, size, size, 128))
        row = {"input": f"{size}x{size}", "output": f"{2 * size}x{2 * size}"}
        for name, layer in (("flax", nn.ConvTranspose(64, (4, 4), (2, 2), padding="SAME")),
                            ("col2im", Col2ImConvTranspose(64, (4, 4), (2, 2), padding="SAME"))):
            params = layer.init(jax.random.key(1), x)

            def loss(p, v):
                return jnp.sum(layer.apply(p, v) ** 2)

            row[f"{name}_forward_ms"] = _time(jax.jit(layer.apply), params, x)
            row[f"{name}_kernel_grad_ms"] = _time(jax.jit(jax.grad(loss)), params, x)
            row[f"{name}_forward_backward_ms"] = _time(jax.jit(jax.grad(loss, argnums=(0, 1))), params, x)
        row["kernel_grad_speedup"] = row["flax_kernel_grad_ms"] / row["col2im_kernel_grad_ms"]
        rows.append({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()})
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    app.run(main)
