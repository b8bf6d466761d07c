"""gen_jax's own feature networks for Frechet distance, KID and precision/recall on image datasets.

Inception weights cannot be downloaded here, and a metric is only comparable with the same feature network,
so gen_jax trains one small classifier per image dataset (deterministically, from a fixed seed), caches it,
and names it by a hash of its parameters. Every number computed in its feature space carries that hash,
the classifier's test accuracy, the sample counts and the reference split (see :func:`sample_quality`).

Cache layout: ``$GEN_JAX_CACHE/feature_nets/<dataset>/`` holds ``params.msgpack`` and ``meta.json``;
reference features of a split live beside them as ``reference_<split>_<n>.npz``, keyed by the hash.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization

from gen_jax.data.cache import cache_dir, locked, savez_atomically, write_atomically
from gen_jax.data.images import ImageDataset, load_image_dataset
from gen_jax.eval.frechet import frechet_distance, gaussian_statistics, kernel_distance
from gen_jax.eval.precision_recall import precision_recall

FEATURE_DIM = 128
# The feature network's programs are compute-bound loops (2000 training steps, features of 10,000 images): they
# compile at XLA's default optimisation level even in a process that lowers it for faster compiles (the test
# suite does: its training took 42 s there instead of 5 s). Same function at any level.
_OPTIMIZED = {"compiler_options": {"xla_backend_optimization_level": 2}}


class FeatureClassifier(nn.Module):
    """Two strided 3x3 convolutions and a 128-unit penultimate layer: the feature space is the ReLU output
    of that layer. Inputs are images in [0, 1], ``(B, H, W, C)``."""

    num_classes: int = 10

    @nn.compact
    def __call__(self, x, *, features: bool = False):
        x = nn.relu(nn.Conv(32, (3, 3), strides=(2, 2), padding="SAME")(x * 2.0 - 1.0))
        x = nn.relu(nn.Conv(64, (3, 3), strides=(2, 2), padding="SAME")(x))
        h = nn.relu(nn.Dense(FEATURE_DIM)(x.reshape(x.shape[0], -1)))
        return h if features else nn.Dense(self.num_classes)(h)


def params_hash(params) -> str:
    """SHA-256 (first 16 hex digits) of the parameters' bytes in tree order: the network's identity."""
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(params):
        a = np.ascontiguousarray(np.asarray(leaf, np.float32))
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _unit(data: ImageDataset) -> np.ndarray:
    return data.image.astype(np.float32) / (data.num_levels - 1)


@dataclasses.dataclass
class FeatureNetwork:
    dataset: str
    params: dict
    test_accuracy: float
    train_steps: int
    identity: str  # params_hash(params)
    directory: Path

    def __post_init__(self):
        model = FeatureClassifier()
        self._features = jax.jit(lambda p, x: model.apply(p, x, features=True), **_OPTIMIZED)
        self._logits = jax.jit(lambda p, x: model.apply(p, x), **_OPTIMIZED)

    def features(self, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """Penultimate-layer features ``(N, 128)`` of images in [0, 1], ``(N, H, W, C)``."""
        out = [np.asarray(self._features(self.params, jnp.asarray(images[s:s + batch_size], jnp.float32)))
               for s in range(0, len(images), batch_size)]
        return np.concatenate(out).astype(np.float64)

    def logits(self, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """Class logits ``(N, classes)`` of images in [0, 1], ``(N, H, W, C)``."""
        return np.concatenate([np.asarray(self._logits(self.params, jnp.asarray(images[s:s + batch_size],
                                                                                 jnp.float32)))
                               for s in range(0, len(images), batch_size)])

    def accuracy(self, data: ImageDataset, batch_size: int = 1000) -> float:
        return float((self.logits(_unit(data), batch_size).argmax(1) == data.label).mean())

    def describe(self) -> dict:
        return {"feature_network": f"gen_jax.FeatureClassifier/{self.dataset}", "identity": self.identity,
                "test_accuracy": self.test_accuracy, "train_steps": self.train_steps}

    def reference_features(self, data: ImageDataset, *, num_examples: int = 0) -> np.ndarray:
        """Features of the first ``num_examples`` (0 = all) images of ``data``, computed once and cached
        beside the network (keyed by the dataset, split, count and the network's hash)."""
        n = min(num_examples or len(data), len(data))
        path = self.directory / f"reference_{data.name}_{data.split}_{n}.npz"
        if path.exists():
            cached = np.load(path)
            if str(cached["identity"]) == self.identity:
                return cached["features"]
        feats = self.features(_unit(data)[:n])
        if self.directory.is_dir():
            savez_atomically(path, features=feats, identity=self.identity)
        return feats


def train_feature_network(dataset: str, *, steps: int = 2000, batch_size: int = 128, seed: int = 0,
                          learning_rate: float = 1e-3, data_dir=None, tfds_dir=None) -> tuple[dict, float]:
    """Trains :class:`FeatureClassifier` on ``dataset``'s train split (seeded; Adam, cross-entropy) and returns
    ``(params, test accuracy)``."""
    train = load_image_dataset(dataset, "train", data_dir=data_dir, tfds_dir=tfds_dir)
    test = load_image_dataset(dataset, "test", data_dir=data_dir, tfds_dir=tfds_dir)
    if not train.num_classes:
        raise ValueError(f"dataset {dataset!r} has no labels to train a feature classifier on")
    model = FeatureClassifier(num_classes=train.num_classes)
    x, y = _unit(train), train.label
    key = jax.random.key(seed)
    params = model.init(key, jnp.asarray(x[:2]))
    opt = optax.adam(optax.cosine_decay_schedule(learning_rate, steps))
    opt_state = opt.init(params)

    @functools.partial(jax.jit, **_OPTIMIZED)
    def step(params, opt_state, xb, yb):
        def loss(p):
            return optax.softmax_cross_entropy_with_integer_labels(model.apply(p, xb), yb).mean()
        grads = jax.grad(loss)(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    rng = np.random.default_rng(seed)
    perm, pos = rng.permutation(len(x)), 0
    for _ in range(steps):
        if pos + batch_size > len(x):
            perm, pos = rng.permutation(len(x)), 0
        idx = perm[pos:pos + batch_size]
        pos += batch_size
        params, opt_state = step(params, opt_state, jnp.asarray(x[idx]), jnp.asarray(y[idx]))
    net = FeatureNetwork(dataset, params, 0.0, steps, params_hash(params), Path("."))
    return params, net.accuracy(test)


def load_feature_network(dataset: str, *, steps: int = 2000, directory: str | Path | None = None,
                         data_dir=None, tfds_dir=None) -> FeatureNetwork:
    """The cached feature network of ``dataset``, trained (once, ``steps`` steps) when the cache lacks it.

    The cache is keyed by dataset and ``steps``; delete the folder to retrain. The returned network's
    ``identity`` is the hash of the parameters actually loaded, so a changed network cannot pass unnoticed.
    """
    directory = Path(directory) if directory else cache_dir() / "feature_nets" / f"{dataset}_{steps}"
    params_path, meta_path = directory / "params.msgpack", directory / "meta.json"
    model = FeatureClassifier()

    def read_cached():
        if not (params_path.exists() and meta_path.exists()):  # meta.json is written last
            return None
        meta = json.loads(meta_path.read_text())
        template = model.init(jax.random.key(0), jnp.zeros((1, *meta["image_shape"]), jnp.float32))
        params = serialization.from_bytes(template, params_path.read_bytes())
        identity = params_hash(params)
        if identity != meta["identity"]:
            raise ValueError(f"feature network in {directory} has hash {identity}, its meta.json says "
                             f"{meta['identity']}: the cache is corrupt; delete the folder to retrain")
        return FeatureNetwork(dataset, params, meta["test_accuracy"], meta["train_steps"], identity, directory)

    if (net := read_cached()) is not None:
        return net
    with locked(directory):  # processes sharing the cache train it once; the others read it
        if (net := read_cached()) is not None:
            return net
        params, accuracy = train_feature_network(dataset, steps=steps, data_dir=data_dir, tfds_dir=tfds_dir)
        directory.mkdir(parents=True, exist_ok=True)
        image_shape = list(load_image_dataset(dataset, "test", data_dir=data_dir, tfds_dir=tfds_dir).image_shape)
        identity = params_hash(params)
        write_atomically(params_path, serialization.to_bytes(params))
        write_atomically(meta_path, json.dumps({"dataset": dataset, "identity": identity, "test_accuracy": accuracy,
                                                "train_steps": steps, "image_shape": image_shape}, indent=2))
    return FeatureNetwork(dataset, params, accuracy, steps, identity, directory)


def _feature_metrics(gen: np.ndarray, ref: np.ndarray, k: int) -> dict:
    fd = frechet_distance(*gaussian_statistics(gen), *gaussian_statistics(ref))
    return {"fd": fd, **kernel_distance(gen, ref), **precision_recall(ref, gen, k=k)}


def sample_quality(network: FeatureNetwork, samples: np.ndarray, reference: ImageDataset, *,
                   num_reference: int = 0, k: int = 3, floor: ImageDataset | None = None) -> dict:
    """FD, KID and precision/recall of ``samples`` (images in [0, 1]) against the first ``num_reference``
    (0 = all) images of ``reference`` in ``network``'s feature space, with everything needed to reproduce
    the numbers.

    ``floor``: another split of real images; the same metrics for its first ``len(samples)`` images against the
    same reference are the value a perfect sampler would get at this sample size (the noise floor).
    """
    ref = network.reference_features(reference, num_examples=num_reference)
    gen = network.features(samples)
    out = {**_feature_metrics(gen, ref, k), "num_generated": len(gen), "num_reference": len(ref),
           "reference": f"{reference.name}/{reference.split}", **network.describe()}
    if floor is not None:
        if len(floor) < len(gen):
            raise ValueError(f"the noise floor needs {len(gen)} images of {floor.name}/{floor.split}, it has "
                             f"{len(floor)}")
        real = network.reference_features(floor, num_examples=len(gen))
        out["noise_floor"] = {**_feature_metrics(real, ref, k), "real": f"{floor.name}/{floor.split}"}
    return out
