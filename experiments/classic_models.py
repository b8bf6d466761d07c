"""The textbook's explicit-density models, fitted in closed form, with their pictures and numbers:

``python experiments/classic_models.py --workdir runs/classic``

* ``world_box.png``: the maximum-likelihood box over ``world_land`` training points, with data and box samples
  on the world map; its test NLL next to the true entropy (log land area): the gap deep models must close.
* Joint tables over 2x2 / 3x3 / 4x4 binarized MNIST (block-averaged, thresholded): train/test NLL, how many
  test images the unsmoothed MLE table has never seen (infinite NLL), samples and a Bayes-rule inpainting.
* Full-covariance Gaussian MLE and scikit-learn's 10-component GaussianMixture on the 8x8 digits (uniformly
  dequantized, gen_jax's fixed 80/20 split): test bits/dim, the classical baselines of the digits table.
* A character n-gram (interpolated absolute discounting) on the ``words`` list, order and discount chosen on
  the validation split: test bits per character, the baseline of the character-level Transformer, and
  samples at two temperatures (``char_ngram_samples.txt``).

Writes ``classic.json`` with every number.
"""

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
from absl import app, flags

from gen_jax.data import bits_per_dim, get_toy, load_image_dataset, load_text_dataset, world_land_raster
from gen_jax.models.classic import (BoxUniform, CharNGram, GaussianMLE, JointTable, joint_table_size,
                                    negative_log_likelihood, tiny_binary_images)
from gen_jax.viz import save_2d_panels, save_image_grid

_WORKDIR = flags.DEFINE_string("workdir", "runs/classic", "Output folder.")
_N_TRAIN = flags.DEFINE_integer("num_train", 50000, "world_land training points.")
_N_TEST = flags.DEFINE_integer("num_test", 10000, "world_land test points.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed.")
_MAX_ORDER = flags.DEFINE_integer("ngram_max_order", 8, "Highest character n-gram order tried.")


def world_box(out: Path, seed: int) -> dict:
    toy = get_toy("world_land")
    train, test = toy.sample(_N_TRAIN.value, seed=seed), toy.sample(_N_TEST.value, seed=seed + 1)
    box = BoxUniform.fit(train)
    lp = box.log_prob(test)
    outside = int(np.sum(~np.isfinite(lp)))
    entropy = toy.entropy()
    res = {"box_low": box.low.tolist(), "box_high": box.high.tolist(),
           "test_nll": negative_log_likelihood(box.log_prob, test), "test_points_outside_box": outside,
           "true_entropy": entropy, "num_train": len(train), "num_test": len(test)}
    res["gap_nats"] = res["test_nll"] - entropy
    # The MLE box is infinite on any test point outside the training points' range; the NLL of the points
    # inside, and of the whole map (the box a researcher would pick knowing the support), are the finite views.
    res["test_nll_inside_box"] = float(-lp[np.isfinite(lp)].mean())
    xmin, xmax, ymin, ymax = toy.bounds
    res["map_box_test_nll"] = math.log((xmax - xmin) * (ymax - ymin))
    res["map_box_gap_nats"] = res["map_box_test_nll"] - entropy
    save_2d_panels([
        {"title": f"world_land data ({len(train)} train points)", "points": train[:20000]},
        {"title": f"MLE box: test NLL {res['test_nll_inside_box']:.3f} on the {len(test) - outside} test points\n"
                  f"inside it ({outside} outside: NLL = inf); entropy {entropy:.3f} nats",
         "points": box.sample(20000, seed=seed + 2), "color": "tab:orange", "box": (box.low, box.high)},
    ], out / "world_box.png", bounds=toy.bounds, background=world_land_raster(), panel_size=6.0,
        title="The 'box' model: maximum-likelihood uniform density over the bounding box of the land points")
    return res


def joint_tables(out: Path, seed: int) -> dict:
    train = load_image_dataset("binarized_mnist", "train")
    test = load_image_dataset("binarized_mnist", "test")
    res = {"table_size": {f"{s}x{s}": joint_table_size(s, s) for s in (2, 3, 4, 5)},
           "table_size_28x28": f"2^784 - 1 = {2**784 - 1:.3e}"}
    for size in (2, 3, 4):
        tr = tiny_binary_images(train.image, size, threshold=0.25)
        te = tiny_binary_images(test.image, size, threshold=0.25)
        mle = JointTable.fit(tr)
        smooth = JointTable.fit(tr, pseudo_count=1.0)
        lp = mle.log_prob(te)
        row = {"entries": 2 ** (size * size), "train_nll_mle": negative_log_likelihood(mle.log_prob, tr),
               "test_images_unseen_in_train": int(np.sum(~np.isfinite(lp))),
               "test_nll_mle": float(-lp.mean()), "test_nll_laplace": negative_log_likelihood(smooth.log_prob, te),
               "distinct_train_images": int(np.sum(mle.probs > 0))}
        row["test_bits_per_dim_laplace"] = float(bits_per_dim(row["test_nll_laplace"], num_dims=size * size))
        res[f"{size}x{size}"] = row
        samples = smooth.sample(64, seed=seed)
        save_image_grid(samples[..., None].astype(np.float32), out / f"joint_table_{size}x{size}_samples.png",
                        title=f"samples of the {size}x{size} joint table")
    # Bayes-rule inpainting on 3x3: observe the top row, fill the rest.
    tr3, te3 = tiny_binary_images(train.image, 3, threshold=0.25), tiny_binary_images(test.image, 3, threshold=0.25)
    table = JointTable.fit(tr3, pseudo_count=1.0)
    mask = np.zeros((3, 3))
    mask[0] = 1
    filled = np.stack([table.inpaint(x, mask, mode="mean") for x in te3[:1000]])
    res["3x3_inpaint_top_row_observed"] = {
        "mse_on_missing": float(np.mean((filled - te3[:1000])[:, 1:] ** 2)),
        "mse_predicting_train_pixel_means": float(np.mean((tr3.mean(0)[None, 1:] - te3[:1000, 1:]) ** 2))}
    pairs = np.concatenate([te3[:16], (mask * te3[:16]) + (1 - mask) * 0.5, filled[:16]])
    save_image_grid(pairs[..., None].astype(np.float32), out / "joint_table_3x3_inpainting.png", ncols=16,
                    title="3x3 test images / top row observed / Bayes-rule conditional mean")
    return res


def gaussian_digits(seed: int) -> dict:
    train, test = load_image_dataset("digits", "train"), load_image_dataset("digits", "test")
    rng = np.random.default_rng(seed)
    d, k = train.num_dims, train.num_levels

    def dequant(data):
        return (data.image.reshape(len(data), -1) + rng.random((len(data), d))) / k

    g = GaussianMLE.fit(dequant(train), jitter=1e-4)
    nll = negative_log_likelihood(g.log_prob, dequant(test)) + d * math.log(k)  # shared convention
    return {"test_nll": nll, "test_bits_per_dim": float(bits_per_dim(nll, num_dims=d)), "jitter": 1e-4}


def gmm_digits(seed: int) -> dict:
    """scikit-learn's GaussianMixture (10 full-covariance components) on the same dequantized digits split:
    the classical baseline every deep model on digits is compared with."""
    from sklearn.mixture import GaussianMixture

    train, test = load_image_dataset("digits", "train"), load_image_dataset("digits", "test")
    rng = np.random.default_rng(seed)
    d, k = train.num_dims, train.num_levels

    def dequant(data):
        return (data.image.reshape(len(data), -1) + rng.random((len(data), d))) / k

    gmm = GaussianMixture(10, covariance_type="full", random_state=seed, reg_covar=1e-6).fit(dequant(train))
    nll = float(-gmm.score_samples(dequant(test)).mean()) + d * math.log(k)
    return {"test_nll": nll, "test_bits_per_dim": float(bits_per_dim(nll, num_dims=d)), "components": 10}


def char_ngram(out: Path, seed: int) -> dict:
    splits = {s: load_text_dataset("words", s) for s in ("train", "valid", "test")}
    vocab = splits["train"].vocab
    t0 = time.time()
    full = CharNGram.fit(splits["train"].tokens, _MAX_ORDER.value, vocab.size)
    res = {"fit_seconds": round(time.time() - t0, 1), "valid_bits_per_char": {}}

    def bits_per_char(model, split):
        data = splits[split]
        return float(-model.log_prob(data.tokens).sum() / data.num_characters / math.log(2))

    best = None
    for discount in (0.5, 0.75, 0.9):
        for order in range(1, _MAX_ORDER.value + 1):
            model = dataclasses.replace(full.with_order(order), discount=discount)
            bpc = bits_per_char(model, "valid")
            res["valid_bits_per_char"][f"order{order}_discount{discount}"] = bpc
            if best is None or bpc < best[0]:
                best = (bpc, model)
    model = best[1]
    res.update(order=model.order, discount=model.discount, valid_best=best[0],
               test_bits_per_char=bits_per_char(model, "test"), test_characters=splits["test"].num_characters)
    lines = []
    for temperature in (0.5, 1.0):
        rows = model.sample(20, stop_token=1, max_len=splits["train"].seq_len, seed=seed, temperature=temperature)
        lines.append(f"T = {temperature}: " + " ".join(vocab.decode(r) for r in rows))
    (out / "char_ngram_samples.txt").write_text("\n".join(lines) + "\n")
    res["samples"] = lines
    return res


SECTIONS = {"world_land_box": world_box, "joint_tables": joint_tables,
            "gaussian_mle_digits": lambda out, seed: gaussian_digits(seed),
            "gmm10_digits": lambda out, seed: gmm_digits(seed), "char_ngram_words": char_ngram}
_SECTIONS = flags.DEFINE_list("sections", list(SECTIONS), "Which results to compute (all by default).")


def main(argv):
    del argv
    out = Path(_WORKDIR.value)
    out.mkdir(parents=True, exist_ok=True)
    unknown = sorted(set(_SECTIONS.value) - set(SECTIONS))
    if unknown:
        raise app.UsageError(f"unknown sections {unknown}; known: {list(SECTIONS)}")
    path = out / "classic.json"
    # Recomputing some sections keeps the others' numbers from an earlier run.
    res = json.loads(path.read_text()) if path.exists() else {}
    for name in _SECTIONS.value:
        t0 = time.time()
        res[name] = SECTIONS[name](out, _SEED.value)
        res[name]["seconds"] = round(time.time() - t0, 1)
    res.pop("seconds", None)  # an older whole-run total; times are per section now
    path.write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    app.run(main)
