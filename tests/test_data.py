"""Datasets and the batch iterator."""

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from gen_jax.data import (BatchIterator, DatasetNotFoundError, ImageDataset, bits_per_dim, dequantized_nll,
                          get_toy, load_image_dataset)
from gen_jax.data.cache import cache_dir
from gen_jax.data.images import stack_mnist


def test_iterator_covers_every_example_once_per_epoch():
    arrays = {"x": np.arange(96), "y": np.arange(96) * 10}
    it = BatchIterator(arrays, 16, seed=3)
    for epoch in range(3):
        seen = np.concatenate([next(it)["x"] for _ in range(6)])
        assert sorted(seen.tolist()) == list(range(96)), epoch
    batch = next(it)
    np.testing.assert_array_equal(batch["y"], batch["x"] * 10)  # fields stay aligned


def test_iterator_epochs_differ_and_drop_a_different_remainder():
    it = BatchIterator({"x": np.arange(50)}, 16, seed=0)
    epochs = [np.concatenate([next(it)["x"] for _ in range(3)]) for _ in range(2)]
    assert all(len(set(e.tolist())) == 48 for e in epochs)
    assert set(epochs[0].tolist()) != set(epochs[1].tolist())  # 50 = 3 x 16 + 2: another 2 are left out


def test_iterator_is_deterministic_and_seed_dependent():
    a = [next(BatchIterator({"x": np.arange(64)}, 8, seed=1))["x"] for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])
    b = next(BatchIterator({"x": np.arange(64)}, 8, seed=2))["x"]
    assert not np.array_equal(a[0], b)


def test_iterator_device_shards_are_disjoint_and_cover_the_global_batch():
    flat = BatchIterator({"x": np.arange(64)}, 16, seed=5)
    sharded = BatchIterator({"x": np.arange(64)}, 16, seed=5, num_devices=4)
    for _ in range(5):
        f, s = next(flat)["x"], next(sharded)["x"]
        assert s.shape == (4, 4)
        assert len(set(s.ravel().tolist())) == 16
        np.testing.assert_array_equal(np.sort(s.ravel()), np.sort(f))


def test_iterator_resumes_from_a_saved_position():
    it = BatchIterator({"x": np.arange(40)}, 8, seed=9)
    for _ in range(7):
        next(it)
    state = it.get_state()
    expected = [next(it)["x"] for _ in range(6)]
    resumed = BatchIterator({"x": np.arange(40)}, 8, seed=9)
    resumed.set_state(state)
    for e in expected:
        np.testing.assert_array_equal(next(resumed)["x"], e)


def test_iterator_rejects_batch_not_divisible_by_devices():
    with pytest.raises(ValueError, match="not divisible by the device count 4"):
        BatchIterator({"x": np.arange(64)}, 10, num_devices=4)


def test_unknown_dataset_and_split_are_errors():
    with pytest.raises(ValueError, match="unknown image dataset 'cifar10'"):
        load_image_dataset("cifar10", "train")
    with pytest.raises(ValueError, match="has no split 'valid'"):
        load_image_dataset("mnist", "valid")
    with pytest.raises(ValueError, match="unknown 2-D dataset"):
        get_toy("swiss")


def test_missing_data_directory_names_where_it_looked(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "nowhere" / "binarized_mnist")):
        load_image_dataset("binarized_mnist", "test", data_dir=tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "mnist")):
        load_image_dataset("mnist", "test", data_dir=tmp_path)


def test_digits_split_is_fixed_and_disjoint():
    train, test = load_image_dataset("digits", "train"), load_image_dataset("digits", "test")
    assert len(train) + len(test) == 1797 and train.num_levels == 17 and train.image.max() == 16
    flat = {bytes(r) for r in train.image.reshape(len(train), -1)}
    assert sum(bytes(r) in flat for r in test.image.reshape(len(test), -1)) < 5  # a few exact duplicates exist
    # scikit-learn's digits (read from gen_jax's cache after the first load), the split a fixed permutation
    from sklearn.datasets import load_digits

    d, perm = load_digits(), np.random.default_rng(0).permutation(1797)
    assert (cache_dir() / "sklearn_digits.npz").exists()
    for part, idx in ((train, perm[:len(train)]), (test, perm[len(train):])):
        np.testing.assert_array_equal(part.image[..., 0], d.images[idx].astype(np.uint8))
        np.testing.assert_array_equal(part.label, d.target[idx])


def test_binarized_mnist_is_the_fixed_binarization():
    test = load_image_dataset("binarized_mnist", "test")
    assert test.image.shape == (10000, 28, 28, 1) and set(np.unique(test.image)) == {0, 1}
    assert len(load_image_dataset("binarized_mnist", "train")) == 50000


def test_mnist_through_tfds():
    test = load_image_dataset("mnist", "test")
    assert test.image.shape == (10000, 28, 28, 1) and test.image.dtype == np.uint8
    assert test.image.max() == 255 and np.bincount(test.label).tolist()[:2] == [980, 1135]


def test_stacked_mnist_stacks_three_digits_of_the_split_as_channels():
    """On a small stand-in for MNIST (image k is the constant k, label k % 10): every channel is one of its
    images, the label is the three digits' mode, and the draw is fixed per split."""
    n = 50
    fake = ImageDataset("mnist", "test", np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None],
                                                          (n, 4, 4, 1)).copy(), np.arange(n, dtype=np.int32) % 10,
                        num_levels=256, num_classes=10)
    stacked = stack_mnist(fake)
    assert stacked.image.shape == (n, 4, 4, 3) and stacked.num_classes == 1000 and stacked.name == "stacked_mnist"
    source = stacked.image[:, 0, 0, :].astype(int)  # the index of each channel's image
    assert np.all(stacked.image == stacked.image[:, :1, :1, :])
    np.testing.assert_array_equal(stacked.label, (source % 10) @ np.array([100, 10, 1]))
    assert len(np.unique(source)) > 30  # drawn over the whole split
    np.testing.assert_array_equal(stack_mnist(fake).image, stacked.image)
    other = stack_mnist(dataclasses.replace(fake, split="train"))
    assert not np.array_equal(other.image, stacked.image)


def test_fashion_mnist_from_debian_idx_files():
    test = load_image_dataset("fashion_mnist", "test")
    assert test.image.shape == (10000, 28, 28, 1) and test.image.dtype == np.uint8
    assert np.bincount(test.label).tolist() == [1000] * 10
    assert len(load_image_dataset("fashion_mnist", "train")) == 60000


@pytest.mark.parametrize("name", ["ring8", "grid25", "checkerboard"])
def test_toy_densities_integrate_to_one(name):
    toy = get_toy(name)
    x0, x1, y0, y1 = toy.bounds
    n = 1001
    xs, ys = np.linspace(x0, x1, n), np.linspace(y0, y1, n)
    grid = np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)
    mass = np.exp(toy.log_prob(grid)).sum() * (xs[1] - xs[0]) * (ys[1] - ys[0])
    np.testing.assert_allclose(mass, 1.0, atol=2e-3)


@pytest.mark.parametrize("name", ["two_moons", "ring8", "grid25", "checkerboard", "spirals"])
def test_toy_sampling_is_seeded(name):
    toy = get_toy(name)
    a, b, c = toy.sample(500, 1), toy.sample(500, 1), toy.sample(500, 2)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (500, 2) and not np.array_equal(a, c)
    if toy.has_log_prob:
        assert np.all(np.isfinite(toy.log_prob(a)))


def test_world_land_is_uniform_on_land_with_entropy_log_area():
    toy = get_toy("world_land")
    x = toy.sample(20000, 0)
    lp = toy.log_prob(x)
    assert np.all(np.isfinite(lp)) and np.ptp(lp) == 0  # every sample on land, one density value
    area = math.exp(-lp[0])  # square degrees
    assert 0.25 * 360 * 180 < area < 0.35 * 360 * 180  # land is ~29% of the map's area in lon/lat
    np.testing.assert_allclose(toy.entropy(), math.log(area), rtol=1e-12)
    # Known places: the middle of the Sahara is land, the middle of the Pacific is not.
    probe = toy.log_prob(np.array([[10.0, 23.0], [-150.0, 0.0]]))
    assert np.isfinite(probe[0]) and probe[1] == -np.inf


def test_bits_per_dim_and_dequantization_conventions():
    np.testing.assert_allclose(bits_per_dim(784 * math.log(2), num_dims=784), 1.0)
    # A uniform density on [0,1)^D assigns the discrete uniform over K^D cells: nll = D log K.
    np.testing.assert_allclose(dequantized_nll(0.0, num_dims=3, num_levels=256), 3 * math.log(256))


def test_kmeans_reaches_scikit_learns_inertia_and_is_deterministic():
    from sklearn.cluster import KMeans

    from gen_jax.data.clusters import kmeans

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (6, 3))
    z = (centres[rng.integers(6, size=3000)] + rng.normal(size=(3000, 3)))
    ours, labels, inertia = kmeans(z, 6, seed=1)
    assert inertia == pytest.approx(((z - ours[labels]) ** 2).sum())
    assert labels.shape == (3000,) and labels.dtype == np.int32 and len(np.unique(labels)) == 6
    sk = KMeans(6, n_init=10, random_state=0).fit(z)
    assert inertia <= sk.inertia_ * 1.001  # the optimum scikit-learn finds with 10 restarts
    again = kmeans(z, 6, seed=1)
    np.testing.assert_array_equal(again[1], labels)
    assert kmeans(z, 6, seed=2)[2] == pytest.approx(inertia, rel=1e-3)  # another seeding, the same optimum here
    with pytest.raises(ValueError, match="1 <= k <= n"):
        kmeans(z[:3], 4)


def test_cluster_labels_come_from_the_training_split_for_every_split(tmp_path, monkeypatch):
    from gen_jax.train.config import load_config_file
    from gen_jax.train.loop import load_data

    monkeypatch.setenv("GEN_JAX_CACHE", str(tmp_path))
    c = load_config_file(Path(__file__).resolve().parents[1] / "configs" / "gan_digits.py", "smoke")
    c.data.clusters = 10
    train, test = load_data(c, "train"), load_data(c, "test")
    assert train.num_classes == test.num_classes == 10 and train.label.max() <= 9 and train.label.min() >= 0
    assert len(list((tmp_path / "clusters").glob("*.npz"))) == 1  # one fit, from the training split, kept
    classes = load_image_dataset("digits", "train").label
    purity = sum(np.bincount(classes[train.label == j]).max() for j in range(10)) / len(classes)
    assert purity > 0.6  # k-means of the 8x8 digits mostly follows the digit (chance: ~0.1)
    np.testing.assert_array_equal(load_data(c, "train").label, train.label)
    assert np.bincount(test.label, minlength=10).min() > 0
    c.data.name = "ring8"
    with pytest.raises(ValueError, match="data.clusters=10 is invalid.*'ring8'"):
        load_data(c, "train")
