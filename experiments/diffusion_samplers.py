"""Sample quality against the number of network evaluations (NFE) for each sampler of a trained image diffusion
workdir, and, for a class-conditional one, a guidance grid:

``python experiments/diffusion_samplers.py --workdir runs/diffusion_mnist --nfe 10,20,50,100,250``
``python experiments/diffusion_samplers.py --workdir runs/diffusion_digits --nfe 20 --guidance 0,1,2,4``

* For each ``--samplers`` entry ``sampler:grid`` (default DDPM ancestral and DDIM on the uniform time grid, Heun
  on EDM's noise levels, Euler on the uniform grid: the flow-matching sampler on a rectified-flow workdir) and
  each target NFE, the number of steps whose NFE (:func:`gen_jax.families.diffusion.sampler_evaluations`) is
  nearest; ``--num_samples`` samples, their FD / KID / precision / recall in the feature space of gen_jax's
  classifier against the test split (noise floor: as many real training images), and samples/s measured
  after compilation (the first chunk compiles and is not timed).
* ``--guidance``: one grid picture per scale (one row per class) and the feature classifier's accuracy on
  the generated images per class, with the same quality metrics; sampled by the config's sampler or by
  ``--guidance_sampler sampler:grid:NFE``.

Writes ``<workdir>/samplers.json``, ``samplers.md`` (the table) and ``guidance_<scale>.png``.
"""

import json
import time
from pathlib import Path

import jax
import numpy as np
from absl import app, flags, logging

from gen_jax.data import load_image_dataset
from gen_jax.data.images import ImageDataset
from gen_jax.eval import load_feature_network, sample_quality
from gen_jax.families.diffusion import sampler_evaluations
from gen_jax.train import restore_run
from gen_jax.train.workdir import write_text_atomic
from gen_jax.viz import save_image_grid

_WORKDIR = flags.DEFINE_string("workdir", None, "A diffusion training workdir on images.")
_SAMPLERS = flags.DEFINE_list("samplers", ["ddpm:uniform", "ddim:uniform", "heun:edm", "euler:uniform"],
                              "sampler:time_grid entries.")
_NFE = flags.DEFINE_list("nfe", ["10", "20", "50", "100", "250"], "Target numbers of network evaluations.")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 2000, "Samples per (sampler, NFE).")
_CHUNK = flags.DEFINE_integer("chunk", 500, "Samples per sampling call.")
_GUIDANCE = flags.DEFINE_list("guidance", [], "Guidance scales for a conditional model (sampled by the config's "
                              "sampler, steps and grid).")
_GUIDANCE_SAMPLER = flags.DEFINE_string("guidance_sampler", "", "sampler:time_grid:NFE for the guidance grid "
                                        "(e.g. ddpm:uniform:100; default: the config's sampler, steps and grid).")
_FEATURE_STEPS = flags.DEFINE_integer("feature_steps", 2000, "Training steps of the feature classifier.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the samples.")
flags.mark_flags_as_required(["workdir"])


def steps_for(sampler: str, nfe: int) -> int:
    """The number of steps whose NFE is nearest ``nfe`` (at least one step)."""
    return min(range(1, nfe + 1), key=lambda s: (abs(sampler_evaluations(sampler, s) - nfe), s))


def draw(family, params, n, chunk, seed, **options):
    """``n`` samples in chunks; returns (levels, samples/s over the chunks after the first, which compiles)."""
    out, times = [], []
    for i in range(-(-n // chunk)):
        t0 = time.perf_counter()
        out.append(np.asarray(family.sample(params, jax.random.fold_in(jax.random.key(seed), i), chunk, **options)))
        times.append(time.perf_counter() - t0)
    timed = times[1:] or times
    return np.concatenate(out)[:n], chunk * len(timed) / sum(timed)


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    workdir = Path(_WORKDIR.value)
    config, family, state, test = restore_run(workdir, "test", "best_if_any")
    if config.model.family != "diffusion" or not isinstance(test, ImageDataset):
        raise ValueError(f"{workdir} is not an image diffusion workdir (family {config.model.family!r})")
    params, k = state.eval_params, family.num_levels
    load = lambda split: load_image_dataset(test.name, split, data_dir=config.data.data_dir or None,
                                            tfds_dir=config.data.tfds_dir or None)
    net = load_feature_network(test.name, steps=_FEATURE_STEPS.value, data_dir=config.data.data_dir or None,
                               tfds_dir=config.data.tfds_dir or None)
    train = load("train")
    n = min(_NUM_SAMPLES.value, len(train))
    chunk = min(_CHUNK.value, n)
    rows, guidance = [], []
    for entry in _SAMPLERS.value:
        sampler, _, grid = entry.partition(":")
        for target in (int(v) for v in _NFE.value):
            steps = steps_for(sampler, target)
            images, rate = draw(family, params, n, chunk, _SEED.value, sampler=sampler, steps=steps,
                                grid=grid or None)
            q = sample_quality(net, images / (k - 1), test, floor=train)
            rows.append({"sampler": sampler, "grid": grid, "steps": steps, "nfe": sampler_evaluations(sampler, steps),
                         "samples_per_sec": rate, **{m: q[m] for m in ("fd", "kid", "precision", "recall")},
                         "floor_fd": q["noise_floor"]["fd"]})
            print(json.dumps(rows[-1]), flush=True)
    guidance_options = {}
    if _GUIDANCE_SAMPLER.value:
        sampler, grid, target = _GUIDANCE_SAMPLER.value.split(":")
        guidance_options = dict(sampler=sampler, grid=grid or None, steps=steps_for(sampler, int(target)))
    for scale in (float(v) for v in _GUIDANCE.value):
        c = test.num_classes
        labels = np.arange(n) % c
        images, rate = draw(family, params, n, chunk, _SEED.value, guidance=scale, **guidance_options)
        generated = ImageDataset(test.name, f"guidance{scale}", images.astype(np.uint8), labels, k, c)
        q = sample_quality(net, images / (k - 1), test, floor=train)
        per_class = [net.accuracy(ImageDataset(test.name, "g", images[labels == y].astype(np.uint8),
                                               labels[labels == y], k, c)) for y in range(c)]
        picture = np.concatenate([images[labels == y][:10] for y in range(c)]) / (k - 1)
        save_image_grid(picture, workdir / f"guidance_{scale:g}.png", ncols=10,
                        title=f"guidance {scale:g}: one row per class")
        guidance.append({"guidance": scale, **guidance_options, "classifier_accuracy": net.accuracy(generated),
                         "accuracy_per_class": per_class, "samples_per_sec": rate,
                         **{m: q[m] for m in ("fd", "kid", "precision", "recall")}, "floor_fd": q["noise_floor"]["fd"]})
        print(json.dumps(guidance[-1]), flush=True)
    out = {"workdir": str(workdir), "step": int(state.step), "num_samples": n, "feature_network": net.describe(),
           "samplers": rows, "guidance": guidance}
    write_text_atomic(workdir / "samplers.json", json.dumps(out, indent=2))
    lines = ["| sampler | grid | steps | NFE | FD | KID | precision | recall | samples/s |", "|" + " --- |" * 9]
    lines += [f"| {r['sampler']} | {r['grid']} | {r['steps']} | {r['nfe']} | {r['fd']:.2f} | {r['kid']:.4f} | "
              f"{r['precision']:.3f} | {r['recall']:.3f} | {r['samples_per_sec']:.1f} |" for r in rows]
    if guidance:
        lines += ["", "| guidance | classifier accuracy | FD | precision | recall |", "|" + " --- |" * 5]
        lines += [f"| {g['guidance']:g} | {g['classifier_accuracy']:.3f} | {g['fd']:.2f} | {g['precision']:.3f} | "
                  f"{g['recall']:.3f} |" for g in guidance]
    write_text_atomic(workdir / "samplers.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    app.run(main)
