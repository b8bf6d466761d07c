"""A JEM workdir's classifier and its out-of-distribution scores (``model.loss='jem'``: the energy network's
logits give p(y | x), their logsumexp log p(x) up to log Z), on images at their bins' centres, the inputs the
energy sees:

* test accuracy, overall and per class;
* for each ``--ood`` dataset (default: Fashion-MNIST for MNIST runs and the reverse), AUROC / AUPRC of JEM's
  three anomaly scores (``gen_jax.eval.classifier_anomaly_scores``: the energy, the classifier's confidence
  ``max_y p(y | x)``, and ``||d log p(x) / dx||``) on the first ``--num_examples`` test images of each side.

``python experiments/jem_accuracy.py --workdir runs/jem_mnist [--batch_size 1000] [--ood fashion_mnist]``

Writes ``<workdir>/metrics_jem.json`` and prints it.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

import gen_jax.train as gt
from gen_jax.data import load_image_dataset, requantize
from gen_jax.data.conventions import to_bin_centres
from gen_jax.eval import auprc, auroc, classifier_anomaly_scores
from gen_jax.train.workdir import write_text_atomic

_WORKDIR = flags.DEFINE_string("workdir", None, "A JEM workdir (model.family='ebm', model.loss='jem').")
_BATCH = flags.DEFINE_integer("batch_size", 1000, "Test images per forward pass.")
_OOD = flags.DEFINE_list("ood", [], "Out-of-distribution datasets (default: fashion_mnist for MNIST runs, mnist "
                         "for Fashion-MNIST runs).")
_NUM_EXAMPLES = flags.DEFINE_integer("num_examples", 2000, "Test images of each side for the OOD scores.")
flags.mark_flags_as_required(["workdir"])

DEFAULT_OOD = {"mnist": ["fashion_mnist"], "fashion_mnist": ["mnist"]}


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    config, family, state, test = gt.restore_run(_WORKDIR.value, "test")
    if config.model.family != "ebm" or config.model.loss != "jem":
        raise app.UsageError(f"{_WORKDIR.value} is not a JEM run (model.family='ebm', model.loss='jem')")
    params, k, bs = state.eval_params["net"], test.num_levels, _BATCH.value
    logits_fn = lambda v: family.model.apply(params, v)
    logits = jax.jit(lambda v: logits_fn(to_bin_centres(v, num_levels=k)))
    pred = np.concatenate([np.asarray(jnp.argmax(logits(jnp.asarray(test.image[i:i + bs])), -1))
                           for i in range(0, len(test), bs)])
    per_class = [float(np.mean(pred[test.label == c] == c)) for c in range(test.num_classes)]
    out = {"workdir": _WORKDIR.value, "step": int(state.step), "test_accuracy": float(np.mean(pred == test.label)),
           "accuracy_per_class": per_class, "num_test": len(test)}

    score_fn = jax.jit(lambda v: classifier_anomaly_scores(logits_fn, to_bin_centres(v, num_levels=k)))

    def scores(images):
        parts = [score_fn(jnp.asarray(images[i:i + bs])) for i in range(0, len(images), bs)]
        return {name: np.concatenate([np.asarray(p[name]) for p in parts]) for name in parts[0]}

    n = _NUM_EXAMPLES.value
    in_scores = scores(test.image[:n])
    for name in _OOD.value or DEFAULT_OOD.get(test.name, []):
        ood = load_image_dataset(name, "test", data_dir=config.data.data_dir or None,
                                 tfds_dir=config.data.tfds_dir or None)
        out_scores = scores(requantize(ood.image[:n], from_levels=ood.num_levels, to_levels=k))
        out[f"ood_{name}"] = {s: {"auroc": auroc(in_scores[s], out_scores[s]), "auprc": auprc(in_scores[s], out_scores[s])}
                              for s in in_scores}
        out[f"ood_{name}"].update(num_in=len(test.image[:n]), num_out=len(out_scores["energy"]))
    text = json.dumps(out, indent=1)
    write_text_atomic(f"{_WORKDIR.value}/metrics_jem.json", text)
    print(text)


if __name__ == "__main__":
    app.run(main)
