"""XLA:CPU's slow convolution gradients, measured on the gated PixelCNN: ``nn.Conv`` against ``PatchConv``
(the same function as one matrix product; tests/test_nn.py and tests/test_autoregressive.py check it):

``python experiments/benchmark_patch_conv.py [--channels 32,64] [--layers 8] [--batch 64] [--size 28]``

For each width: the jitted forward pass and the jitted gradient of the mean log-likelihood (what a training
step computes) of a Bernoulli PixelCNN on ``size x size`` images; the mean of ``repeats`` timed calls after a
warm-up, in milliseconds.
"""

import json
import time

import jax
import numpy as np
from absl import app, flags

from gen_jax.models.autoregressive import PixelCNN

_CHANNELS = flags.DEFINE_list("channels", ["32", "64"], "PixelCNN widths.")
_LAYERS = flags.DEFINE_integer("layers", 8, "Gated layers.")
_BATCH = flags.DEFINE_integer("batch", 64, "Batch size.")
_SIZE = flags.DEFINE_integer("size", 28, "Image height and width.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls per measurement.")


def _time(fn, *args):
    jax.block_until_ready(fn(*args))
    t0 = time.perf_counter()
    for _ in range(_REPEATS.value):
        jax.block_until_ready(fn(*args))
    return 1000 * (time.perf_counter() - t0) / _REPEATS.value


def main(argv):
    del argv
    s = _SIZE.value
    x = np.random.default_rng(0).integers(0, 2, (_BATCH.value, s, s, 1))
    for channels in map(int, _CHANNELS.value):
        row = {"channels": channels, "layers": _LAYERS.value, "batch": _BATCH.value, "image": f"{s}x{s}"}
        for conv in ("flax", "patch"):
            model = PixelCNN(num_levels=2, channels=channels, num_layers=_LAYERS.value, conv=conv)
            params = model.init(jax.random.key(0), x[:1])

            def mean_log_prob(p, v, model=model):
                return model.apply(p, v).mean()

            row[f"{conv}_forward_ms"] = _time(jax.jit(mean_log_prob), params, x)
            row[f"{conv}_gradient_ms"] = _time(jax.jit(jax.grad(mean_log_prob)), params, x)
        row["gradient_speedup"] = row["flax_gradient_ms"] / row["patch_gradient_ms"]
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}), flush=True)


if __name__ == "__main__":
    app.run(main)
