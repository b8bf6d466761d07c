"""XLA:CPU's slow convolution gradients, measured on the gated PixelCNN: ``nn.Conv`` against ``PatchConv``
(the same function as one matrix product; tests/test_nn.py and tests/test_autoregressive.py check it):

``python experiments/benchmark_patch_conv.py [--channels 32,64] [--layers 8] [--batch 64] [--size 28] [--profile]``

For each width: the jitted forward pass and the jitted gradient of the mean log-likelihood (what a training
step computes) of a Bernoulli PixelCNN on ``size x size`` images; the mean of ``repeats`` timed calls after a
warm-up, in milliseconds.

``--profile``: also trace ``repeats`` calls of the ``PatchConv`` gradient with ``jax.profiler`` and print the
time per call of each kind of XLA operation (the op name without its ``.N`` suffix: ``ynn_fusion`` /
``dot`` are matrix products on CPU, ``*slice*`` / ``*pad*`` / ``concatenate*`` data movement, ``*tanh*`` the
gates), summed over threads, so the total can exceed the wall time.
"""

import collections
import gzip
import json
import re
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from absl import app, flags

from gen_jax.models.autoregressive import PixelCNN

_CHANNELS = flags.DEFINE_list("channels", ["32", "64"], "PixelCNN widths.")
_LAYERS = flags.DEFINE_integer("layers", 8, "Gated layers.")
_BATCH = flags.DEFINE_integer("batch", 64, "Batch size.")
_SIZE = flags.DEFINE_integer("size", 28, "Image height and width.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls per measurement.")
_PROFILE = flags.DEFINE_bool("profile", False, "Also print the PatchConv gradient's time per XLA op kind.")


def _time(fn, *args):
    jax.block_until_ready(fn(*args))
    t0 = time.perf_counter()
    for _ in range(_REPEATS.value):
        jax.block_until_ready(fn(*args))
    return 1000 * (time.perf_counter() - t0) / _REPEATS.value


def op_times(fn, *args, calls: int) -> dict[str, float]:
    """Milliseconds per call of each XLA op kind while running ``fn(*args)`` ``calls`` times (after a warm-up
    call), from a ``jax.profiler`` trace: the op's name without its ``.N`` suffix, summed over threads."""
    jax.block_until_ready(fn(*args))
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp):
            for _ in range(calls):
                jax.block_until_ready(fn(*args))
        traces = sorted(Path(tmp).rglob("*.trace.json.gz"))
        if not traces:
            raise RuntimeError(f"jax.profiler wrote no *.trace.json.gz under {tmp}")
        events = json.loads(gzip.decompress(traces[-1].read_bytes()))["traceEvents"]
    totals = collections.Counter()
    for e in events:
        name = e.get("name", "")
        # XLA ops are lower-case HLO names ("ynn_fusion.86", "dot"); Python frames ("$api.py:...") and the
        # runtime's own spans ("ThunkExecutor::Execute", "DevicePut") are skipped.
        if e.get("ph") != "X" or "dur" not in e or not re.fullmatch(r"[a-z][a-z0-9_-]*(\.\d+)?", name):
            continue
        totals[re.sub(r"\.\d+$", "", name)] += e["dur"] / 1000 / calls
    return dict(totals.most_common())


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
            gradient = jax.jit(jax.grad(mean_log_prob))
            row[f"{conv}_gradient_ms"] = _time(gradient, params, x)
        row["gradient_speedup"] = row["flax_gradient_ms"] / row["patch_gradient_ms"]
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        if _PROFILE.value:
            times = op_times(gradient, params, x, calls=_REPEATS.value)  # the loop's last conv: "patch"
            total = sum(times.values())
            print(f"PatchConv gradient, {channels} maps: ms per call by XLA op kind (sum {total:.1f} ms over threads)")
            for name, ms in times.items():
                if ms >= 0.01 * total:
                    print(f"  {ms:8.2f} ms  {100 * ms / total:5.1f} %  {name}")


if __name__ == "__main__":
    app.run(main)
