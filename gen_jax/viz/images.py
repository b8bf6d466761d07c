"""Pictures of images and latent spaces, written as PNG files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gen_jax.viz._pyplot import pyplot


def image_grid(images: np.ndarray, ncols: int | None = None, pad: int = 1) -> np.ndarray:
    """Tiles ``(N, H, W, C)`` images in [0, 1] into one ``(rows*(H+pad), cols*(W+pad), C)`` array."""
    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    n, h, w, c = images.shape
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    grid = np.ones((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), np.float32)
    for i, img in enumerate(images):
        r, k = divmod(i, ncols)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + k * (w + pad):pad + k * (w + pad) + w] = img
    return grid


def save_image_grid(images: np.ndarray, path: str | Path, *, ncols: int | None = None,
                    title: str | None = None, scale: float = 0.35) -> Path:
    """Writes a grid of ``(N, H, W, C)`` images in [0, 1] to ``path`` (PNG) and returns the path."""
    grid = image_grid(images, ncols)
    fig_w = max(2.0, grid.shape[1] * scale / 8)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(fig_w, fig_w * grid.shape[0] / grid.shape[1] + (0.4 if title else 0)))
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
              interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def save_latent_scatter(points: np.ndarray, labels: np.ndarray, path: str | Path, *, title: str = "") -> Path:
    """2-D scatter of latent codes coloured by label."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    sc = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=6, alpha=0.8)
    fig.colorbar(sc, ax=ax, ticks=range(int(labels.max()) + 1), label="label")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("latent 1")
    ax.set_ylabel("latent 2")
    path = Path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
