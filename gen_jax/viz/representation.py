"""Pictures of a latent space: interpolations, attribute arithmetic and a labelled scatter."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import jax.numpy as jnp
import numpy as np

from gen_jax.sampling import apply_attribute, attribute_vector, lerp, slerp
from gen_jax.viz.images import save_image_grid, save_latent_scatter


def write_latent_pictures(encode: Callable, decode: Callable, images: np.ndarray, labels: np.ndarray, *,
                          num_levels: int, outdir: str | Path, steps: int = 10,
                          attribute=(1, 7, 4)) -> dict[str, Path]:
    """Writes ``interpolation.png`` (rows: lerp, slerp between pairs of inputs), ``arithmetic.png`` (a third
    input plus ``s * (mean code of class a - mean code of class b)``), ``latent_scatter.png`` (codes, first two
    principal axes when the latent has more than two dimensions) and ``reconstruction.png``.

    Args:
      encode: integer-level images ``(N, H, W, C)`` -> codes ``(N, D)`` (a family's ``encode``).
      decode: codes -> images in [0, 1] (a family's ``decode``).
      images, labels: integer-level images and their labels (for the scatter and arithmetic).
      attribute: ``(a, b, c)``: the vector ``mean(a) - mean(b)`` is added to the first input of class ``c``.
    Returns:
      name -> path of each picture written.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    x = jnp.asarray(images, jnp.float32) / (num_levels - 1)
    mean = jnp.asarray(encode(images))
    paths = {}

    n = min(8, len(images))
    recon = decode(mean[:n])
    paths["reconstruction"] = save_image_grid(np.concatenate([np.asarray(x[:n]), np.asarray(recon)]),
                                              outdir / "reconstruction.png", ncols=n,
                                              title="inputs (top) and reconstructions of their mean codes")

    rows = []
    for i in range(3):
        z0, z1 = mean[2 * i], mean[2 * i + 1]
        rows += [decode(lerp(z0, z1, steps)), decode(slerp(z0, z1, steps))]
    paths["interpolation"] = save_image_grid(np.concatenate([np.asarray(r) for r in rows]),
                                             outdir / "interpolation.png", ncols=steps,
                                             title="pairs of test inputs: lerp row, then slerp row")

    a, b, c = attribute
    if all(np.any(labels == k) for k in attribute):
        keep = (labels == a) | (labels == b)
        vec = attribute_vector(mean[keep], jnp.asarray(labels[keep] == a))
        base = mean[int(np.flatnonzero(labels == c)[0])]
        strengths = jnp.linspace(0.0, 1.5, steps)
        paths["arithmetic"] = save_image_grid(np.asarray(decode(apply_attribute(base, vec, strengths))),
                                              outdir / "arithmetic.png", ncols=steps,
                                              title=f"a '{c}' + s * (mean '{a}' - mean '{b}'), s = 0..1.5")

    codes = np.asarray(mean)
    title = "latent codes"
    if codes.shape[1] > 2:
        from sklearn.decomposition import PCA

        codes = PCA(2).fit_transform(codes)
        title += f" (first 2 principal axes of {mean.shape[1]}-D)"
    if labels.min() >= 0:
        paths["latent_scatter"] = save_latent_scatter(codes, labels, outdir / "latent_scatter.png", title=title)
    return paths
