"""Data sets: digits split, image folders, CIFAR pickles, reproducible batches, bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from ofa.data import build_datasets, cifar_source, epoch_batches, fixed_subset, make_loader
from ofa.errors import DataError


@pytest.fixture(scope="module")
def digits():
    return build_datasets("digits", resolution=28)


def test_digits_split_is_fixed_stratified_and_complete(digits):
    parts = [digits.train.indices, digits.val.indices, digits.test.indices]
    assert sum(len(p) for p in parts) == 1797
    assert len(np.unique(np.concatenate(parts))) == 1797  # disjoint
    for part in (digits.train, digits.val, digits.test):
        assert set(part.labels.tolist()) == set(range(10))  # every class in every split
    again = build_datasets("digits", resolution=24)
    assert np.array_equal(again.test.indices, digits.test.indices)
    assert digits.num_classes == 10 and digits.class_names[3] == "3"


def test_batches_have_model_shape_and_augmentation_is_reproducible(digits):
    images, labels = digits.val.get_batch([0, 1, 2])
    assert images.shape == (3, 3, 28, 28) and images.dtype == torch.float32 and labels.dtype == torch.int64
    assert digits.val.get_batch([0], resolution=32)[0].shape == (1, 3, 32, 32)
    plain = digits.train.get_batch([5, 6])[0]
    a = digits.train.get_batch([5, 6], generator=torch.Generator().manual_seed(1))[0]
    b = digits.train.get_batch([5, 6], generator=torch.Generator().manual_seed(1))[0]
    c = digits.train.get_batch([5, 6], generator=torch.Generator().manual_seed(2))[0]
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, plain)
    image, label = digits.train[5]
    assert torch.equal(image, plain[0]) and label == int(digits.train.labels[5])


def test_epoch_order_depends_on_seed_and_epoch_and_ranks_are_disjoint():
    full = epoch_batches(100, 10, seed=3, epoch=1)
    assert [b.tolist() for b in full] == [b.tolist() for b in epoch_batches(100, 10, seed=3, epoch=1)]
    assert full[0].tolist() != epoch_batches(100, 10, seed=3, epoch=2)[0].tolist()
    r0 = np.concatenate(epoch_batches(100, 5, seed=3, epoch=1, rank=0, world_size=2))
    r1 = np.concatenate(epoch_batches(100, 5, seed=3, epoch=1, rank=1, world_size=2))
    assert len(r0) == len(r1) == 50 and not set(r0) & set(r1)
    assert len(epoch_batches(23, 10, drop_last=False)) == 3 and len(epoch_batches(23, 10)) == 2


def test_loader_and_fixed_subset(digits):
    loader = make_loader(digits.train, batch_size=100, shuffle=True, seed=0, augment=True)
    first = [y.tolist() for _, y in loader]
    assert len(first) == len(loader) == 13 and first == [y.tolist() for _, y in loader]
    loader.set_epoch(1)
    assert first != [y.tolist() for _, y in loader]
    subset = fixed_subset(digits.train, 50)
    assert len(subset) == 50 and subset.augmentation == "none"
    assert np.array_equal(subset.indices, fixed_subset(digits.train, 50).indices)
    assert len(fixed_subset(digits.val, 10_000)) == len(digits.val)


# --- image folders ---------------------------------------------------------------------------------------------
def _write_folder(root, classes=("cat", "dog", "fish"), per_class=7, size=(20, 14)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            array = np.full((size[1], size[0], 3), 40 * c, dtype=np.uint8)
            array[..., c] = rng.integers(100, 255)
            Image.fromarray(array).save(root / name / f"{i}.png")


def test_image_folder_with_and_without_split_folders(tmp_path):
    _write_folder(tmp_path / "flat")
    data = build_datasets(tmp_path / "flat", resolution=16)
    assert data.class_names == ("cat", "dog", "fish") and data.num_classes == 3
    assert len(data.train) + len(data.val) + len(data.test) == 21
    images, labels = data.train.tensors()
    assert images.shape == (len(data.train), 3, 16, 16)
    # class 2 images are brightest in channel 2 (0.5/0.25 normalisation): decoding kept the channel order
    red_green_blue = images[labels == 2].mean(dim=(0, 2, 3))
    assert red_green_blue[2] > red_green_blue[0]
    _write_folder(tmp_path / "split" / "train")
    _write_folder(tmp_path / "split" / "test", per_class=2)
    split = build_datasets(tmp_path / "split", resolution=12)
    assert len(split.test) == 6 and len(split.train) + len(split.val) == 21


def test_image_folder_errors(tmp_path):
    with pytest.raises(DataError, match="neither a built-in"):
        build_datasets(tmp_path / "missing")
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(DataError, match="at least 2"):
        build_datasets(tmp_path / "one")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir(parents=True)
    with pytest.raises(DataError, match="holds no images"):
        build_datasets(tmp_path / "empty")
    _write_folder(tmp_path / "bad", classes=("a", "b"), per_class=3)
    (tmp_path / "bad" / "a" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "bad" / "b" / "broken2.png").write_bytes(b"")
    # found before any work, every bad file at once
    with pytest.raises(DataError, match="2 file\\(s\\) are not readable images.*broken.png.*broken2.png"):
        build_datasets(tmp_path / "bad", resolution=8, val_fraction=0.3, test_fraction=0.3)
    with pytest.raises(DataError, match="resolution"):
        build_datasets("digits", resolution=0)
    with pytest.raises(DataError, match="augmentation"):
        build_datasets("digits", augmentation="mixup")


# --- CIFAR pickles -----------------------------------------------------------------------------------------------
def _cifar_batch(n, seed, label_key=b"labels", classes=10):
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"generated", label_key: [int(v) for v in rng.integers(0, classes, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}


def _dump(path, value):
    path.write_bytes(pickle.dumps(value, protocol=2))  # the protocol of the published files


def test_cifar10_layout(tmp_path):
    batches = [_cifar_batch(50, s) for s in range(2)]
    for i, batch in enumerate(batches, 1):
        _dump(tmp_path / f"data_batch_{i}", batch)
    _dump(tmp_path / "test_batch", _cifar_batch(20, 9))
    _dump(tmp_path / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})
    source = cifar_source(tmp_path)
    assert len(source) == 120 and source.class_names[4] == "c4"
    # row-major 3x32x32 layout: the first 1024 bytes are the red plane
    first = batches[0][b"data"][0]
    assert torch.equal(source.images[0, 0], torch.from_numpy(first[:1024].reshape(32, 32)))
    data = build_datasets(tmp_path, resolution=32)
    assert len(data.test) == 20 and len(data.train) + len(data.val) == 100
    _dump(tmp_path / "data_batch_2", _cifar_batch(2, 5))
    with pytest.raises(DataError, match="use more images per class"):
        build_datasets(tmp_path, resolution=32, val_fraction=0.01)
    assert data.train.augmentation == "crop_flip"
    assert data.train.get_batch([0, 1], generator=torch.Generator().manual_seed(0))[0].shape == (2, 3, 32, 32)


def test_cifar100_layout(tmp_path):
    _dump(tmp_path / "train", _cifar_batch(200, 1, b"fine_labels", 100))
    _dump(tmp_path / "test", _cifar_batch(100, 2, b"fine_labels", 100))
    _dump(tmp_path / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)]})
    source = cifar_source(tmp_path)
    assert len(source.class_names) == 100 and len(source) == 300


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_cifar_refuses_code_truncation_and_bad_arrays(tmp_path):
    marker = tmp_path / "pwned"
    _dump(tmp_path / "data_batch_1", {b"data": _Exploit(marker), b"labels": [0]})
    _dump(tmp_path / "test_batch", _cifar_batch(5, 0))
    with pytest.raises(DataError, match="refusing to unpickle"):
        cifar_source(tmp_path)
    assert not marker.exists()
    good = pickle.dumps(_cifar_batch(5, 0), protocol=2)
    (tmp_path / "data_batch_1").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="not a readable CIFAR"):
        cifar_source(tmp_path)
    _dump(tmp_path / "data_batch_1", {b"data": np.zeros((5, 100), np.uint8), b"labels": [0] * 5})
    with pytest.raises(DataError, match=r"shape \(N, 3072\)"):
        cifar_source(tmp_path)
    _dump(tmp_path / "data_batch_1", {b"data": np.zeros((5, 3072), np.uint8), b"labels": [0] * 4})
    with pytest.raises(DataError, match="4 labels for 5 images"):
        cifar_source(tmp_path)
    (tmp_path / "data_batch_1").unlink()
    with pytest.raises(DataError, match="not a CIFAR directory"):
        cifar_source(tmp_path)
