"""Do generative classifiers handle missing pixels better than discriminative ones? Test accuracy as the
fraction of missing pixels grows (random pixels and one square block), every classifier trained on complete
images:

``python experiments/missing_data_classification.py --workdir runs/missing_data``

* generative (the classic family, ``conditional=True``, fitted by :mod:`gen_jax.families.classic`): Bayes' rule
  over ``log p(x_obs | y) + log p(y)``, the missing pixels **marginalised exactly** (a Gaussian's marginal of
  the observed coordinates; a product of Bernoullis drops them);
* discriminative: scikit-learn's logistic regression and the evaluation suite's CNN
  (:class:`gen_jax.eval.FeatureClassifier`), the missing pixels filled with the training mean (the usual
  recipe: a discriminative model has no way to marginalise).

Data: the 8x8 digits (17 levels; Gaussian models on the uniformly dequantized levels, scored at the levels' bin
centres) and MNIST binarized at 128 (Bernoulli models; the CNN is the MNIST feature network, fed the binary
images). Writes ``missing_data.json``, ``missing_data.md`` (the table) and ``missing_data.png``.
"""

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from gen_jax.data import load_image_dataset
from gen_jax.eval import load_feature_network
from gen_jax.eval.generative_classifier import (bayes_posterior, class_conditional_log_probs, class_log_prior,
                                               hidden_fraction, missing_mask)
from gen_jax.families import classic
from gen_jax.train import restore_run
from gen_jax.train.config import default_config

_WORKDIR = flags.DEFINE_string("workdir", "runs/missing_data", "Output folder.")
_DATASETS = flags.DEFINE_list("datasets", ["digits", "mnist"], "digits and/or mnist (binarized at 128).")
_FRACTIONS = flags.DEFINE_list("fractions", ["0", "0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"],
                               "Fractions of missing pixels.")
_MASKS = flags.DEFINE_list("masks", ["random", "block"], "Mask kinds.")
_NUM_TEST = flags.DEFINE_integer("num_test", 0, "Test images per dataset (0 = the whole test split).")
_NUM_TRAIN = flags.DEFINE_integer("num_train", 0, "Training images per dataset (0 = the whole train split).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the fits and the masks.")
_DEEP = flags.DEFINE_list("deep_workdirs", [], "Workdirs of class-conditional models of the library trained on the "
                          "digits (conditional MADE, conditional VAE, ...): classified by Bayes' rule over their "
                          "log_prob, the missing pixels filled with the training mean (no exact marginal).")
_DEEP_SAMPLES = flags.DEFINE_integer("deep_num_samples", 100, "Importance samples of a bound's estimator (a VAE's).")
_FEATURE_STEPS = flags.DEFINE_integer("feature_steps", 2000, "Training steps of the CNN (the evaluation suite's "
                                      "cached feature classifier).")

# name -> classic-family model settings (all conditional)
GENERATIVE = {
    "digits": {
        "gaussian naive Bayes": dict(kind="gaussian", covariance="diag"),
        "full Gaussian per class": dict(kind="gaussian", covariance="full"),
        "PPCA per class (k=8)": dict(kind="ppca", latent_dim=8),
        "FA per class (k=8)": dict(kind="fa", latent_dim=8, num_iters=100),
        "diag GMM per class (5)": dict(kind="gmm", covariance="diag", num_components=5, num_iters=50,
                                       num_restarts=3),
    },
    "mnist": {
        "Bernoulli naive Bayes": dict(kind="bernoulli"),
        "Bernoulli mixture per class (10)": dict(kind="bernoulli_mixture", num_components=10, num_iters=30),
    },
}


def load(name: str, split: str, n: int):
    data = load_image_dataset(name, split)
    if n:
        data = data.take(n)
    if name == "mnist":  # binarized at 128, labels kept
        data = type(data)("mnist_binary", split, (data.image >= 128).astype(np.uint8), data.label, num_levels=2,
                          num_classes=10)
    return data


def fit_generative(settings: dict, train, seed: int):
    config = default_config("classic")
    config.model.update(dict(conditional=True, **settings))
    family = classic.build(config, train)
    state = family.trainer.init_state(jax.random.key(seed), {"image": train.image[:2], "label": train.label[:2]})
    t0 = time.perf_counter()
    state, metrics = family.trainer.fit(state, train.arrays(), jax.random.key(seed))
    return state.params, time.perf_counter() - t0


def model_rows(test, masks):
    """Test images as the generative models see them: bin centres of the levels (binary: 0/1), flattened."""
    flat = test.image.reshape(len(test), -1).astype(np.float32)
    x = flat if test.num_levels == 2 else (flat + 0.5) / test.num_levels
    return jnp.asarray(x), jnp.asarray(masks.reshape(len(test), -1))


def generative_accuracy(kind, params, test, masks, batch=500):
    x, m = model_rows(test, masks)
    fn = jax.jit(lambda p, xb, mb: bayes_posterior(classic.masked_log_prob(kind, p, xb, mb), p["log_prior"]))
    pred = np.concatenate([np.asarray(jnp.argmax(fn(params, x[i:i + batch], m[i:i + batch]), axis=1))
                           for i in range(0, len(test), batch)])
    return float(np.mean(pred == test.label))


def deep_accuracy(family, params, options, log_prior, levels, labels, num_classes, batch=120):
    """Bayes' rule over a library family's class-conditional ``log_prob`` on integer images ``levels``."""
    pred = []
    for i in range(0, len(levels), batch):
        per_class = class_conditional_log_probs(family.log_prob, params, {"image": jnp.asarray(levels[i:i + batch])},
                                                jax.random.key(0), num_classes, **options)
        pred.append(np.asarray(jnp.argmax(bayes_posterior(per_class, log_prior), axis=1)))
    return float(np.mean(np.concatenate(pred) == labels))


def main(_):
    out = Path(_WORKDIR.value)
    out.mkdir(parents=True, exist_ok=True)
    from sklearn.linear_model import LogisticRegression

    fractions = [float(f) for f in _FRACTIONS.value]
    results = {"fractions": fractions, "masks": _MASKS.value, "datasets": {}}
    for name in _DATASETS.value:
        train, test = load(name, "train", _NUM_TRAIN.value), load(name, "test", _NUM_TEST.value)
        unit = lambda d: d.image.reshape(len(d), -1).astype(np.float32) / (d.num_levels - 1)  # noqa: E731
        train_mean = unit(train).mean(0)
        classifiers, fit_seconds = {}, {}
        for label, settings in GENERATIVE[name].items():
            params, seconds = fit_generative(settings, train, _SEED.value)
            classifiers[label] = ("generative", settings["kind"], params)
            fit_seconds[label] = seconds
            print(f"{name}: fitted {label} in {seconds:.1f} s", flush=True)
        t0 = time.perf_counter()
        logreg = LogisticRegression(max_iter=2000, C=1.0).fit(unit(train), train.label)
        fit_seconds["logistic regression"] = time.perf_counter() - t0
        classifiers["logistic regression (mean fill)"] = ("logreg", None, logreg)
        cnn = load_feature_network("digits" if name == "digits" else "mnist", steps=_FEATURE_STEPS.value)
        classifiers["CNN (mean fill)"] = ("cnn", None, cnn)
        if name == "digits":
            for workdir in _DEEP.value:
                config, family, state, _ = restore_run(workdir)
                if not config.model.get("conditional", False) or config.data.name != "digits":
                    raise ValueError(f"{workdir} is not a class-conditional model of the digits")
                options = {"num_samples": _DEEP_SAMPLES.value} if "num_samples" in family.log_prob.options else {}
                kind = f"{family.log_prob.kind}, {family.log_prob.name(**options)}"
                classifiers[f"{config.model.family} {Path(workdir).name} ({kind}; mean fill)"] = (
                    "deep", options, (family, state.eval_params))
        log_prior = jnp.asarray(class_log_prior(train.label, 10))
        table, hidden = {}, {}
        for mask_kind in _MASKS.value:
            for f in fractions:
                masks = missing_mask(mask_kind, f, test.image_shape[:2], len(test), seed=_SEED.value + 1)
                hidden.setdefault(mask_kind, []).append(hidden_fraction(masks))
                filled = unit(test) * masks.reshape(len(test), -1) + train_mean * (1 - masks.reshape(len(test), -1))
                for label, (how, kind, model) in classifiers.items():
                    if how == "generative":
                        acc = generative_accuracy(kind, model, test, masks)
                    elif how == "deep":
                        family, params = model
                        levels = np.round(filled * (test.num_levels - 1)).astype(np.int32).reshape(test.image.shape)
                        acc = deep_accuracy(family, params, kind, log_prior, levels, test.label, 10)
                    elif how == "logreg":
                        acc = float(np.mean(model.predict(filled) == test.label))
                    else:
                        logits = model.logits(filled.reshape(len(test), *test.image_shape))
                        acc = float(np.mean(logits.argmax(1) == test.label))
                    table.setdefault(label, {}).setdefault(mask_kind, []).append(acc)
                print(f"{name} {mask_kind} {f:.1f}: " + ", ".join(
                    f"{k} {v[mask_kind][-1]:.3f}" for k, v in table.items()), flush=True)
        results["datasets"][name] = {"accuracy": table, "hidden_fraction": hidden, "fit_seconds": fit_seconds,
                                     "num_test": len(test), "num_train": len(train)}
    (out / "missing_data.json").write_text(json.dumps(results, indent=2))
    write_table(results, out / "missing_data.md")
    plot(results, out / "missing_data.png")
    print(f"wrote {out / 'missing_data.json'}, missing_data.md, missing_data.png")


def write_table(results, path: Path):
    lines = []
    fr = results["fractions"]
    for name, res in results["datasets"].items():
        for mask_kind in results["masks"]:
            lines.append(f"**{name}, {mask_kind} missing pixels** (test accuracy, {res['num_test']} images)\n")
            lines.append("| classifier | " + " | ".join(f"{f:.0%}" for f in fr) + " |")
            lines.append("| --- |" + " --- |" * len(fr))
            lines.append("| *pixels hidden* | " + " | ".join(f"*{h:.1%}*" for h in res["hidden_fraction"][mask_kind])
                         + " |")
            for label, accs in res["accuracy"].items():
                lines.append(f"| {label} | " + " | ".join(f"{a:.3f}" for a in accs[mask_kind]) + " |")
            lines.append("")
    path.write_text("\n".join(lines))


def plot(results, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, kinds = list(results["datasets"]), results["masks"]
    fig, axes = plt.subplots(len(names), len(kinds), figsize=(5.5 * len(kinds), 4 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        for j, mask_kind in enumerate(kinds):
            ax = axes[i, j]
            for label, accs in results["datasets"][name]["accuracy"].items():
                style = "--" if "fill" in label else "-"
                ax.plot(results["datasets"][name]["hidden_fraction"][mask_kind], accs[mask_kind], style, marker="o",
                        ms=3, label=label)
            ax.set_title(f"{name}: {mask_kind} missing pixels")
            ax.set_xlabel("fraction of pixels hidden")
            ax.set_ylabel("test accuracy")
            ax.set_ylim(0, 1)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    app.run(main)
