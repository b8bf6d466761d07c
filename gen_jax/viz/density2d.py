"""2-D pictures: data, samples, boxes and density heat-maps side by side (the toys and the world map)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from gen_jax.viz._pyplot import pyplot


def density_grid(log_prob, bounds: Sequence[float], resolution: int = 200):
    """Evaluates ``log_prob`` on a ``resolution^2`` grid of cell centres over ``bounds``; returns
    ``(log_density (res, res) with rows from ymin up, cell_area)``."""
    xmin, xmax, ymin, ymax = bounds
    xs = xmin + (np.arange(resolution) + 0.5) * (xmax - xmin) / resolution
    ys = ymin + (np.arange(resolution) + 0.5) * (ymax - ymin) / resolution
    gx, gy = np.meshgrid(xs, ys)
    lp = np.asarray(log_prob(np.stack([gx.ravel(), gy.ravel()], 1))).reshape(resolution, resolution)
    return lp, (xmax - xmin) * (ymax - ymin) / resolution**2


def save_2d_panels(panels: Sequence[dict], path: str | Path, *, bounds: Sequence[float], title: str = "",
                   background: np.ndarray | None = None, panel_size: float = 4.0) -> Path:
    """One row of panels. Each panel dict may hold ``title``, ``points`` ``(n, 2)``, ``box`` ``(low, high)``,
    ``log_density`` (a grid from :func:`density_grid`, shown as a heat-map of the density), ``field``
    ``(positions (m, 2), vectors (m, 2))`` (arrows: a score or velocity field) and ``paths`` ``(n, T, 2)``
    (lines from a start dot: sampler trajectories).
    ``background``: a boolean raster over ``bounds`` (rows from the top), drawn in grey (the land mask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    xmin, xmax, ymin, ymax = bounds
    aspect = (ymax - ymin) / (xmax - xmin)
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(panel_size * len(panels), panel_size * max(aspect, 0.4)),
                             squeeze=False)
    for ax, panel in zip(axes[0], panels):
        if background is not None:
            ax.imshow(~background, extent=(xmin, xmax, ymin, ymax), cmap="gray", vmin=-1.5, vmax=1,
                      interpolation="nearest", aspect="auto")
        if "log_density" in panel:
            dens = np.exp(panel["log_density"])
            ax.imshow(dens, extent=(xmin, xmax, ymin, ymax), origin="lower", cmap="magma", aspect="auto",
                      alpha=0.9 if background is not None else 1.0)
        if "points" in panel:
            p = np.asarray(panel["points"])
            ax.scatter(p[:, 0], p[:, 1], s=1.0, alpha=0.5, color=panel.get("color", "tab:blue"), linewidths=0)
        if "field" in panel:
            pos, vec = (np.asarray(a) for a in panel["field"])
            ax.quiver(pos[:, 0], pos[:, 1], vec[:, 0], vec[:, 1], np.linalg.norm(vec, axis=1), cmap="viridis",
                      angles="xy", pivot="mid", width=0.004)
        if "paths" in panel:
            for line in np.asarray(panel["paths"]):
                ax.plot(line[:, 0], line[:, 1], lw=0.6, alpha=0.7, color="tab:green")
                ax.plot(line[0, 0], line[0, 1], ".", ms=2, color="tab:gray")
                ax.plot(line[-1, 0], line[-1, 1], ".", ms=3, color="tab:red")
        if "box" in panel:
            (x0, y0), (x1, y1) = panel["box"]
            ax.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], color="tab:red", lw=1.5)
        ax.set_xlim(xmin, xmax)
        ax.set_ylim(ymin, ymax)
        ax.set_title(panel.get("title", ""), fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def save_density_picture(log_density, data_points: np.ndarray, samples: np.ndarray, path: str | Path, *,
                         bounds: Sequence[float], title: str = "", density_title: str = "density",
                         background: np.ndarray | None = None, extra_panels: Sequence[dict] = ()) -> Path:
    """The 2-D progress picture of a density model: data, the density ``exp(log_density(points))`` on a
    300 x 300 grid over ``bounds``, and samples, side by side (wider panels over a world-map background), then
    any ``extra_panels`` (:func:`save_2d_panels`'s panel dicts)."""
    lp, _ = density_grid(log_density, bounds, resolution=300)
    return save_2d_panels([{"title": "data", "points": data_points},
                           {"title": density_title, "log_density": lp},
                           {"title": "samples", "points": samples, "color": "tab:orange"}, *extra_panels],
                          path, bounds=bounds, title=title, background=background,
                          panel_size=6.0 if background is not None else 4.0)
