"""2-D toy distributions: the field's small worlds, each with ``sample(n, seed)`` and, where it exists, ``log_prob``.

``world_land`` is the "hello world" of generative modelling: points uniform over the Earth's land mass on a
world map. Coordinates are (longitude, latitude) in degrees and the density is uniform in that *map plane*
(plate carree), so its exact density is ``1 / (land area in square degrees)`` on land and its entropy is
``log(area)``: the floor for every model's NLL there. (Uniform per square degree, not per square kilometre:
that is the distribution a world map shows, and it keeps the density exactly constant.)
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.special import logsumexp

from gen_jax.data.cache import cache_dir, cached_arrays

# Resolution of the rasterised land mask used by world_land, in degrees: 0.25 deg -> 720 x 1440 cells.
WORLD_LAND_RESOLUTION = 0.25


@dataclasses.dataclass(frozen=True)
class Toy2D:
    """A 2-D distribution: a sampler and, where the density is known in closed form, its log density."""

    name: str
    sample_fn: Callable[[int, np.random.Generator], np.ndarray]
    log_prob_fn: Callable[[np.ndarray], np.ndarray] | None = None
    # (xmin, xmax, ymin, ymax) for plots.
    bounds: tuple[float, float, float, float] = (-3.0, 3.0, -3.0, 3.0)
    # Gaussian mixtures only: the component means (K, 2) and their common standard deviation, for the
    # mode-coverage diagnostic (gen_jax.eval.mode_coverage).
    modes: np.ndarray | None = None
    mode_std: float | None = None

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` float32 points, shape ``(n, 2)``, deterministic given ``seed``."""
        return self.sample_fn(n, np.random.default_rng(seed)).astype(np.float32)

    @property
    def has_log_prob(self) -> bool:
        return self.log_prob_fn is not None

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        """Exact log density (nats) at ``x`` of shape ``(n, 2)``; ``-inf`` off the support."""
        if self.log_prob_fn is None:
            raise NotImplementedError(f"{self.name} has no closed-form density")
        return self.log_prob_fn(np.asarray(x, dtype=np.float64))

    def entropy(self, n: int = 200_000, seed: int = 12345) -> float:
        """Differential entropy in nats: the NLL floor a perfect model reaches (Monte Carlo, exact if uniform)."""
        return float(-np.mean(self.log_prob(self.sample(n, seed))))


def _mixture(centers: np.ndarray, std: float, name: str, bounds) -> Toy2D:
    def sample_fn(n, rng):
        idx = rng.integers(len(centers), size=n)
        return centers[idx] + std * rng.standard_normal((n, 2))

    def log_prob_fn(x):
        sq = ((x[:, None, :] - centers[None]) ** 2).sum(-1)
        comp = -sq / (2 * std**2) - math.log(2 * math.pi * std**2)
        return logsumexp(comp, axis=1) - math.log(len(centers))

    return Toy2D(name, sample_fn, log_prob_fn, bounds, modes=np.asarray(centers, np.float64), mode_std=float(std))


def ring_of_gaussians(num_modes: int = 8, radius: float = 2.0, std: float = 0.1) -> Toy2D:
    angles = 2 * np.pi * np.arange(num_modes) / num_modes
    centers = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return _mixture(centers, std, f"ring{num_modes}", (-3, 3, -3, 3))


def grid_of_gaussians(size: int = 5, spacing: float = 1.0, std: float = 0.1) -> Toy2D:
    ticks = (np.arange(size) - (size - 1) / 2) * spacing
    centers = np.stack(np.meshgrid(ticks, ticks), axis=-1).reshape(-1, 2)
    half = ticks[-1] + 1.0
    return _mixture(centers, std, f"grid{size * size}", (-half, half, -half, half))


def checkerboard() -> Toy2D:
    """Uniform over the 8 dark squares of a 4x4 board on [-2, 2]^2: density 1/8 there."""

    def sample_fn(n, rng):
        x1 = rng.uniform(-2, 2, n)
        x2 = rng.uniform(0, 1, n) + rng.integers(0, 2, n) * 2.0 - 2.0  # in [-2,-1) or [0,1)
        x2 = x2 + (np.floor(x1) % 2)  # shift by one square on odd columns
        return np.stack([x1, x2], axis=1)

    def log_prob_fn(x):
        inside = np.all((x >= -2) & (x < 2), axis=1)
        dark = (np.floor(x[:, 0]) + np.floor(x[:, 1])) % 2 == 0
        return np.where(inside & dark, -math.log(8.0), -np.inf)

    return Toy2D("checkerboard", sample_fn, log_prob_fn, (-2.5, 2.5, -2.5, 2.5))


def two_moons(noise: float = 0.1) -> Toy2D:
    def sample_fn(n, rng):
        n1 = n // 2
        t = rng.uniform(0, np.pi, n)
        upper = np.stack([np.cos(t), np.sin(t)], 1)
        lower = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1)
        x = np.where((np.arange(n) < n1)[:, None], upper, lower)
        x = x[rng.permutation(n)] + noise * rng.standard_normal((n, 2))
        return (x - np.array([0.5, 0.25])) * 1.5

    return Toy2D("two_moons", sample_fn, None, (-3, 3, -3, 3))


def spirals(noise: float = 0.1) -> Toy2D:
    def sample_fn(n, rng):
        t = np.sqrt(rng.uniform(0, 1, n)) * 3 * np.pi
        arm = rng.integers(0, 2, n) * 2 - 1
        x = np.stack([arm * t * np.cos(t), arm * t * np.sin(t)], 1) / 3.0
        return x + noise * rng.standard_normal((n, 2))

    return Toy2D("spirals", sample_fn, None, (-4, 4, -4, 4))


def _land_cells(resolution: float) -> np.ndarray:
    """Boolean (lat rows from north to south, lon columns from -180) raster of land at ``resolution`` degrees.

    Built once from the 1/120-degree mask in the ``global-land-mask`` wheel (a cell is land when most of its
    fine pixels are) and cached: loading the full mask costs ~6 s and ~2 GB.
    """
    def build():
        import global_land_mask  # the data ships inside the wheel

        src = Path(global_land_mask.__file__).parent / "globe_combined_mask_compressed.npz"
        ocean = np.load(src)["mask"]  # (21600, 43200), True = ocean, row 0 = 90N, column 0 = 180W
        block = int(round(resolution * 120))
        rows, cols = ocean.shape[0] // block, ocean.shape[1] // block
        land_count = np.zeros((rows, cols), np.int32)
        for r in range(rows):  # row by row: the full mask as integers would need ~8 GB
            chunk = ~ocean[r * block:(r + 1) * block]
            land_count[r] = chunk.reshape(block, cols, block).sum(axis=(0, 2))
        return {"land": land_count * 2 > block * block}

    return cached_arrays(cache_dir() / f"world_land_{resolution:g}deg.npz", build, compressed=True)["land"]


def world_land_raster(resolution: float = WORLD_LAND_RESOLUTION) -> np.ndarray:
    """The boolean land raster behind ``world_land`` (rows from 90N south, columns from 180W east)."""
    return _land_cells(resolution)


def world_land(resolution: float = WORLD_LAND_RESOLUTION) -> Toy2D:
    """Uniform over land in the (longitude, latitude) plane, in degrees; exact density 1 / land area."""
    land = _land_cells(resolution)
    rows, cols = np.nonzero(land)
    cell_area = resolution * resolution
    log_density = -math.log(len(rows) * cell_area)

    def sample_fn(n, rng):
        idx = rng.integers(len(rows), size=n)
        lon = -180.0 + (cols[idx] + rng.uniform(0, 1, n)) * resolution
        lat = 90.0 - (rows[idx] + rng.uniform(0, 1, n)) * resolution
        return np.stack([lon, lat], axis=1)

    def log_prob_fn(x):
        c = np.floor((x[:, 0] + 180.0) / resolution).astype(np.int64)
        r = np.floor((90.0 - x[:, 1]) / resolution).astype(np.int64)
        ok = (c >= 0) & (c < land.shape[1]) & (r >= 0) & (r < land.shape[0])
        on_land = np.zeros(len(x), bool)
        on_land[ok] = land[r[ok], c[ok]]
        return np.where(on_land, log_density, -np.inf)

    return Toy2D("world_land", sample_fn, log_prob_fn, (-180.0, 180.0, -90.0, 90.0))


def _renamed(toy: Toy2D, name: str, bounds) -> Toy2D:
    return dataclasses.replace(toy, name=name, bounds=bounds)


TOY_DATASETS: dict[str, Callable[[], Toy2D]] = {
    "two_moons": two_moons,
    "ring8": ring_of_gaussians,
    "grid25": grid_of_gaussians,
    # PacGAN's mode-collapse benchmarks (Lin et al. 2018, after VEEGAN): ring radius 1, sigma 0.01; grid means
    # {-4, -2, 0, 2, 4}^2, sigma 0.05
    "pacgan_ring8": lambda: _renamed(ring_of_gaussians(8, radius=1.0, std=0.01), "pacgan_ring8", (-1.5, 1.5, -1.5, 1.5)),
    "pacgan_grid25": lambda: _renamed(grid_of_gaussians(5, spacing=2.0, std=0.05), "pacgan_grid25",
                                      (-5.5, 5.5, -5.5, 5.5)),
    "checkerboard": checkerboard,
    "spirals": spirals,
    "world_land": world_land,
}


def get_toy(name: str) -> Toy2D:
    if name not in TOY_DATASETS:
        raise ValueError(f"unknown 2-D dataset {name!r}; known: {sorted(TOY_DATASETS)}")
    return TOY_DATASETS[name]()
