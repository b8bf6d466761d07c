"""Test accuracy of a JEM workdir's classifier (``model.loss='jem'``: the energy network's logits give
p(y | x)), on the images at their bins' centres, the inputs the energy sees.

``python experiments/jem_accuracy.py --workdir runs/jem_mnist [--batch_size 1000]``
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

import gen_jax.train as gt
from gen_jax.data.conventions import to_bin_centres

_WORKDIR = flags.DEFINE_string("workdir", None, "A JEM workdir (model.family='ebm', model.loss='jem').")
_BATCH = flags.DEFINE_integer("batch_size", 1000, "Test images per forward pass.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    config, family, state, test = gt.restore_run(_WORKDIR.value, "test")
    if config.model.family != "ebm" or config.model.loss != "jem":
        raise ValueError(f"{_WORKDIR.value} is not a JEM run (model.family='ebm', model.loss='jem')")
    params = state.eval_params["net"]
    logits = jax.jit(lambda p, v: family.model.apply(p, to_bin_centres(v, num_levels=test.num_levels)))
    pred = np.concatenate([np.asarray(jnp.argmax(logits(params, jnp.asarray(test.image[i:i + _BATCH.value])), -1))
                           for i in range(0, len(test), _BATCH.value)])
    per_class = [float(np.mean(pred[test.label == c] == c)) for c in range(test.num_classes)]
    print(json.dumps({"workdir": _WORKDIR.value, "step": int(state.step), "test_accuracy": float(np.mean(pred == test.label)),
                      "accuracy_per_class": per_class, "num_test": len(test)}, indent=1))


if __name__ == "__main__":
    app.run(main)
