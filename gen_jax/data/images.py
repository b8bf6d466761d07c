"""Image datasets, all offline, all as integer levels (see :mod:`gen_jax.data.conventions`).

| name | source | levels | splits |
| --- | --- | --- | --- |
| ``digits`` | scikit-learn's 8x8 digits, embedded in the wheel (the default; no download) | 17 | train / test (fixed 80/20) |
| ``mnist`` | TFDS ``mnist``, prepared from the IDX files in ``<data_dir>/mnist`` | 256 | train / test |
| ``fashion_mnist`` | Debian's ``dataset-fashion-mnist`` IDX files, read directly (TFDS rejects their checksums) | 256 | train / test |
| ``binarized_mnist`` | Larochelle & Murray's fixed binarization, ``<data_dir>/binarized_mnist/*.mat`` | 2 | train / valid / test |
| ``stacked_mnist`` | three MNIST digits of the same split as the channels of one image (1000 modes), a fixed draw | 256 | train / test |
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np

from gen_jax.data.cache import CacheEntryError, cache_dir, cached_arrays

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are not where gen_jax looked for them."""


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """A split held in memory: ``image`` uint8 levels ``(N, H, W, C)`` and ``label`` int32 ``(N,)``."""

    name: str
    split: str
    image: np.ndarray
    label: np.ndarray
    num_levels: int
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.image.shape[1:])

    @property
    def num_dims(self) -> int:
        return int(np.prod(self.image.shape[1:]))

    def __len__(self) -> int:
        return len(self.image)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"image": self.image, "label": self.label}

    def take(self, n: int) -> "ImageDataset":
        """The first ``n`` examples."""
        return dataclasses.replace(self, image=self.image[:n], label=self.label[:n])


def default_data_dir() -> Path:
    """``$GEN_JAX_DATA_DIR``, else ``../shared/data`` beside the checkout this package lives in, else beside cwd."""
    if "GEN_JAX_DATA_DIR" in os.environ:
        return Path(os.environ["GEN_JAX_DATA_DIR"])
    repo_root = Path(__file__).resolve().parents[2]
    for candidate in (repo_root.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return repo_root.parent / "shared" / "data"


_DATA_DIR_HINT = ("Point data.data_dir (or $GEN_JAX_DATA_DIR) at the folder holding the offline datasets "
                  "(see ../shared/data/README.md).")


def _require(path: Path, what: str, hint: str = _DATA_DIR_HINT) -> Path:
    if not path.exists():
        raise DatasetNotFoundError(f"{what}: looked for {path} and it does not exist. {hint}")
    return path


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as ``(images (1797, 8, 8, 1) uint8 levels 0..16, labels int32)``, kept in the
    cache after the first load: importing scikit-learn takes about 2 s, which every command-line run on the
    digits paid before its first step."""
    def build():
        from sklearn.datasets import load_digits

        d = load_digits()
        return {"image": d.images.astype(np.uint8)[..., None], "label": d.target.astype(np.int32)}

    arrays = cached_arrays(cache_dir() / "sklearn_digits.npz", build)
    return arrays["image"], arrays["label"]


def _digits(split: str) -> ImageDataset:
    images, labels = _digits_arrays()
    perm = np.random.default_rng(0).permutation(len(images))  # fixed split, independent of any run seed
    n_train = int(0.8 * len(images))
    idx = {"train": perm[:n_train], "test": perm[n_train:]}[split]
    return ImageDataset("digits", split, images[idx], labels[idx], num_levels=17, num_classes=10)


def _binarized_mnist(split: str, data_dir: Path) -> ImageDataset:
    import scipy.io

    path = _require(data_dir / "binarized_mnist" / f"binarized_mnist_{split}.mat", "binarized_mnist")
    x = scipy.io.loadmat(path)["X"].astype(np.uint8).reshape(-1, 28, 28, 1)
    # The fixed binarization carries no labels; -1 says so rather than inventing them.
    return ImageDataset("binarized_mnist", split, x, np.full(len(x), -1, np.int32), num_levels=2, num_classes=0)


def _tfds_image_dataset(name: str, split: str, manual_dir: Path, tfds_dir: Path | None) -> ImageDataset:
    """Prepares TFDS's own builder from local files (once) and reads the split into memory."""
    _require(manual_dir, name)
    tfds_dir = Path(tfds_dir) if tfds_dir else cache_dir() / "tfds"
    # Decoded arrays (TFDS decodes PNGs one by one, slowly), keyed by the source folder too: another
    # data.data_dir is another dataset, not the one prepared first.
    source = hashlib.sha256(str(Path(manual_dir).resolve()).encode()).hexdigest()[:12]
    cached = tfds_dir / f"{name}_{split}_{source}.npz"

    def build():  # processes sharing the cache prepare it once, one at a time
        import tensorflow_datasets as tfds

        builder = tfds.builder(name, data_dir=str(tfds_dir))
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
        ds = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        return {"image": ds["image"].astype(np.uint8), "label": ds["label"].astype(np.int32)}

    try:
        arrays = cached_arrays(cached, build)
    except CacheEntryError as e:  # a truncated or overwritten cache file
        raise ValueError(f"the prepared cache {cached} of {name}/{split} cannot be read ({e.__cause__!r}); "
                         f"delete that file and it is prepared again from {manual_dir}") from e
    return ImageDataset(name, split, arrays["image"], arrays["label"], num_levels=256, num_classes=10)


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST family's format: big-endian dims after a 4-byte magic), gzip'd."""
    import gzip

    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = np.frombuffer(raw, ">u4", count=ndim, offset=4)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _idx_image_dataset(name: str, split: str, folder: Path) -> ImageDataset:
    """Reads the four-file IDX layout directly. Used for Debian's Fashion-MNIST, whose re-compressed ``.gz``
    files TFDS rejects (their checksums differ from the official archives TFDS records)."""
    prefix = {"train": "train", "test": "t10k"}[split]
    images = _read_idx(_require(folder / f"{prefix}-images-idx3-ubyte.gz", name, _FASHION_HINT))
    labels = _read_idx(_require(folder / f"{prefix}-labels-idx1-ubyte.gz", name, _FASHION_HINT))
    return ImageDataset(name, split, images[..., None].copy(), labels.astype(np.int32), num_levels=256,
                        num_classes=10)


_FASHION_HINT = "Install it with `apt-get install -y dataset-fashion-mnist`."

STACKED_MNIST_SEEDS = {"train": 0, "test": 1}


def stack_mnist(mnist: ImageDataset) -> ImageDataset:
    """Stacked MNIST (Metz et al. 2017; VEEGAN; PacGAN): as many images as ``mnist`` has, each three of its
    digits drawn uniformly with replacement (a fixed draw per split) as the red, green and blue channels; the
    label is the mode ``100 d_red + 10 d_green + d_blue`` (1000 classes)."""
    rng = np.random.default_rng(STACKED_MNIST_SEEDS[mnist.split])
    idx = rng.integers(0, len(mnist), size=(len(mnist), 3))
    image = np.moveaxis(mnist.image[idx, ..., 0], 1, -1)  # (N, 3, H, W) -> (N, H, W, 3)
    digits = mnist.label[idx]
    label = (100 * digits[:, 0] + 10 * digits[:, 1] + digits[:, 2]).astype(np.int32)
    return ImageDataset("stacked_mnist", mnist.split, np.ascontiguousarray(image), label, num_levels=256,
                        num_classes=1000)

IMAGE_DATASETS = ("digits", "mnist", "fashion_mnist", "binarized_mnist", "stacked_mnist")


def load_image_dataset(name: str, split: str, *, data_dir: str | Path | None = None,
                       tfds_dir: str | Path | None = None) -> ImageDataset:
    """Loads one split of an image dataset by name (see the module table).

    Args:
      name: one of ``IMAGE_DATASETS``.
      split: ``train`` or ``test`` (``valid`` too for binarized MNIST).
      data_dir: folder with the offline datasets; default :func:`default_data_dir`.
      tfds_dir: where TFDS keeps prepared datasets; default ``$GEN_JAX_CACHE/tfds``.
    Raises:
      ValueError: unknown dataset or split.
      DatasetNotFoundError: the files are missing; the message names where they were looked for.
    """
    splits = {"binarized_mnist": ("train", "valid", "test")}.get(name, ("train", "test"))
    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown image dataset {name!r}; known: {list(IMAGE_DATASETS)}")
    if split not in splits:
        raise ValueError(f"dataset {name!r} has no split {split!r}; it has {list(splits)}")
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    if name == "digits":
        return _digits(split)
    if name == "binarized_mnist":
        return _binarized_mnist(split, data_dir)
    if name == "fashion_mnist":
        return _idx_image_dataset(name, split, FASHION_MNIST_DIR)
    if name == "stacked_mnist":
        return stack_mnist(_tfds_image_dataset("mnist", split, data_dir / "mnist", tfds_dir))
    return _tfds_image_dataset(name, split, data_dir / "mnist", tfds_dir)
