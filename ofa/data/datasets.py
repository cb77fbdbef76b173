"""Train/val/test datasets at a chosen resolution, and reproducible batches."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..errors import DataError
from .sources import FolderSource, cifar_source, digits_source
from .transforms import AUGMENTATIONS, prepare_batch

DEFAULT_DATASETS = ("digits", "cluttered-digits")
SPLIT_SEED = 0  # the train/val/test split is part of the data set's definition, not of a run


class ImageDataset(torch.utils.data.Dataset):
    """One split of a source at one resolution, as model-ready tensors.

    ``dataset[i]`` is ``(image float32 (C, R, R) normalised, label int)``;
    :meth:`get_batch` builds a whole batch at once (optionally at another
    resolution and augmented with an explicit generator). Augmentation is
    only applied by :meth:`get_batch` with a generator, never by ``[i]``.
    """

    def __init__(self, source, indices: np.ndarray, resolution: int, channels: int, mean: torch.Tensor,
                 std: torch.Tensor, augmentation: str = "none", split: str = ""):
        self.source = source
        self.indices = np.asarray(indices, dtype=np.int64)
        self.resolution = int(resolution)
        self.channels = channels
        self.mean, self.std = mean, std
        self.augmentation = augmentation
        self.split = split

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def labels(self) -> np.ndarray:
        return self.source.labels[self.indices]

    @property
    def num_classes(self) -> int:
        return len(self.source.class_names)

    def get_batch(self, positions: Sequence[int], resolution: int | None = None,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels of the dataset positions ``positions``."""
        chosen = self.indices[np.asarray(positions, dtype=np.int64)]
        if getattr(self.source, "crops_at_resolution", False):  # decoded and cropped for this resolution
            raw = self.source.get(chosen, resolution or self.resolution)
        else:
            raw = self.source.get(chosen)
        images = prepare_batch(raw, resolution or self.resolution, self.mean, self.std, self.channels,
                               self.augmentation, generator)
        return images, torch.from_numpy(self.source.labels[chosen])

    def __getitem__(self, position: int) -> tuple[torch.Tensor, int]:
        images, labels = self.get_batch([position])
        return images[0], int(labels[0])

    def subset(self, positions: Sequence[int]) -> "ImageDataset":
        return ImageDataset(self.source, self.indices[np.asarray(positions, dtype=np.int64)], self.resolution,
                            self.channels, self.mean, self.std, self.augmentation, self.split)

    def at_resolution(self, resolution: int) -> "ImageDataset":
        return ImageDataset(self.source, self.indices, resolution, self.channels, self.mean, self.std,
                            self.augmentation, self.split)

    def tensors(self, limit: int | None = None, resolution: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """All (or the first ``limit``) images and labels, unaugmented."""
        n = len(self) if limit is None else min(limit, len(self))
        return self.get_batch(np.arange(n), resolution)


@dataclass
class DataSplits:
    train: ImageDataset
    val: ImageDataset
    test: ImageDataset
    class_names: tuple[str, ...]
    name: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def stratified_split(labels: np.ndarray, fraction: float, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``labels`` split into (rest, held-out ``fraction``), every
    class in both parts in proportion; fixed by ``seed``."""
    from sklearn.model_selection import train_test_split

    positions = np.arange(len(labels))
    counts = np.bincount(labels)
    if (counts[counts > 0] < 2).any():
        raise DataError("every class needs at least 2 images to be split into train/val/test")
    try:
        rest, held = train_test_split(positions, test_size=fraction, stratify=labels, random_state=seed)
    except ValueError as error:  # fewer held-out images than classes
        raise DataError(f"cannot split {len(labels)} images of {int((counts > 0).sum())} classes with a "
                        f"held-out fraction of {fraction}: {error}; use more images per class") from None
    return np.sort(rest), np.sort(held)


def open_source(source: str | os.PathLike, image_size: int = 32, channels: int = 3):
    """The raw source named ``source``: "digits", "cluttered-digits", a CIFAR directory or an image folder."""
    if isinstance(source, str) and source == "digits":
        return digits_source()
    if isinstance(source, str) and source == "cluttered-digits":
        from .cluttered import default_cluttered_digits

        return default_cluttered_digits()
    path = Path(source)
    if not path.exists():
        raise DataError(f"dataset {str(source)!r} is neither a built-in data set {list(DEFAULT_DATASETS)} nor an "
                        f"existing path (an image folder or a CIFAR-10/100 python directory)")
    if (path / "data_batch_1").is_file() or (path / "train").is_file():
        return cifar_source(path)
    return FolderSource(path, image_size, channels)


def build_datasets(source: str | os.PathLike = "digits", resolution: int = 32, channels: int = 3,
                   augmentation: str = "auto", val_fraction: float = 0.15, test_fraction: float = 0.15,
                   image_size: int | None = None, preprocessing: str = "resize") -> DataSplits:
    """Train/val/test datasets of ``source`` at ``resolution``.

    ``source``: "digits" (default, built in), "cluttered-digits" (built in:
    :mod:`ofa.data.cluttered`, its own split by source digit), a CIFAR-10/100
    directory or an image folder. The split is fixed: the data set's own train/test split when
    it has one (CIFAR, ``train/``+``test/`` folders), else a stratified split
    with ``test_fraction``; ``val_fraction`` of the training part is held out as
    validation (unless the folder has ``val/``). ``augmentation``: "auto" (the
    source's default: small affine jitter for digits, crop+flip otherwise),
    "affine", "crop_flip" or "none"; it applies to the train split only.
    Normalisation statistics come from the training split.

    ``preprocessing="imagenet"``: ``source`` is an ImageNet-format folder
    (``train/`` and ``val/``) read with ImageNet's resize/centre-crop and
    normalisation (:func:`ofa.data.imagenet.imagenet_datasets`; the split
    fractions and augmentation do not apply).
    """
    if preprocessing == "imagenet":
        from .imagenet import imagenet_datasets

        return imagenet_datasets(source, resolution, channels)
    if preprocessing != "resize":
        raise DataError(f"preprocessing {preprocessing!r} unknown; allowed: 'resize', 'imagenet'")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 8:
        raise DataError(f"resolution must be an integer >= 8, got {resolution!r}")
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 < value < 0.5:
            raise DataError(f"{name} must be in (0, 0.5), got {value!r}")
    raw = open_source(source, image_size or resolution, channels)
    if augmentation == "auto":
        augmentation = raw.default_augment
    if augmentation not in AUGMENTATIONS:
        raise DataError(f"unknown augmentation {augmentation!r}; allowed: {('auto',) + AUGMENTATIONS}")
    labels = raw.labels
    splits = dict(getattr(raw, "splits", {}) or {})
    if "train" in splits:
        train_pos = splits["train"]
        test_pos = splits.get("test")
        if test_pos is None:  # a folder with train/ and val/ only: carve the test split from train
            rest, held = stratified_split(labels[train_pos], test_fraction)
            train_pos, test_pos = train_pos[rest], train_pos[held]
    else:
        rest, held = stratified_split(labels, test_fraction)
        train_pos, test_pos = rest, held
    if "val" in splits:
        val_pos = splits["val"]
    else:
        rest, held = stratified_split(labels[train_pos], val_fraction)
        train_pos, val_pos = train_pos[rest], train_pos[held]
    mean, std = _channel_stats(raw, train_pos)
    common = dict(resolution=resolution, channels=channels, mean=mean, std=std)
    return DataSplits(
        train=ImageDataset(raw, train_pos, augmentation=augmentation, split="train", **common),
        val=ImageDataset(raw, val_pos, split="val", **common),
        test=ImageDataset(raw, test_pos, split="test", **common),
        class_names=tuple(raw.class_names), name=str(raw.name))


def _channel_stats(raw, train_positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean/std of (up to 5000 of) the training images."""
    if isinstance(raw, FolderSource):  # decoding a whole folder just for statistics is too slow
        return torch.full((raw.channels,), 0.5), torch.full((raw.channels,), 0.25)
    sample = raw.get(train_positions[:5000])
    mean = sample.mean(dim=(0, 2, 3))
    std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return mean, std


# --- reproducible batches ----------------------------------------------------------------------------------
def epoch_batches(num_items: int, batch_size: int, shuffle: bool = True, seed: int = 0, epoch: int = 0,
                  rank: int = 0, world_size: int = 1, drop_last: bool = True) -> list[np.ndarray]:
    """Dataset positions of this rank's batches for one epoch.

    The order is a permutation drawn from ``(seed, epoch)`` alone, so it is
    the same after a resume; each of ``world_size`` ranks takes every
    ``world_size``-th position of it (equal counts on all ranks) and cuts it
    into batches of ``batch_size`` (the per-rank batch size)."""
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    order = np.random.default_rng([seed, epoch]).permutation(num_items) if shuffle else np.arange(num_items)
    per_rank = num_items // world_size
    mine = order[rank::world_size][:per_rank]
    cut = per_rank - per_rank % batch_size if drop_last else per_rank
    return [mine[i:i + batch_size] for i in range(0, cut, batch_size)]


class BatchLoader:
    """Iterates ``(images, labels)`` batches of an :class:`ImageDataset`.

    Re-iterable; a deterministic order from (seed, epoch) when shuffling; with
    ``augment=True`` the batch ``b`` is augmented by a generator seeded from
    ``(seed, epoch, b)``. Call :meth:`set_epoch` between epochs."""

    def __init__(self, dataset: ImageDataset, batch_size: int = 256, shuffle: bool = False, seed: int = 0,
                 augment: bool = False, rank: int = 0, world_size: int = 1, drop_last: bool = False,
                 resolution: int | None = None):
        self.dataset, self.batch_size, self.shuffle, self.seed = dataset, batch_size, shuffle, seed
        self.augment, self.rank, self.world_size, self.drop_last = augment, rank, world_size, drop_last
        self.resolution = resolution
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[np.ndarray]:
        return epoch_batches(len(self.dataset), self.batch_size, self.shuffle, self.seed, self.epoch, self.rank,
                             self.world_size, self.drop_last)

    def __len__(self) -> int:
        return len(self.batches())

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for b, positions in enumerate(self.batches()):
            generator = None
            if self.augment:
                generator = torch.Generator().manual_seed(int(np.random.default_rng(
                    [self.seed, self.epoch, b]).integers(2**62)))
            yield self.dataset.get_batch(positions, self.resolution, generator)


def make_loader(dataset: ImageDataset, batch_size: int = 256, shuffle: bool = False, **kwargs) -> BatchLoader:
    """A :class:`BatchLoader` (see there for the keyword arguments)."""
    return BatchLoader(dataset, batch_size, shuffle, **kwargs)


def fixed_subset(dataset: ImageDataset, num_images: int = 2000, seed: int = 0) -> ImageDataset:
    """The same ``num_images`` images every time (all if fewer), unaugmented:
    what BN re-calibration runs on."""
    n = min(num_images, len(dataset))
    positions = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:n])
    subset = dataset.subset(positions)
    subset.augmentation = "none"
    return subset


__all__ = ["BatchLoader", "DataSplits", "ImageDataset", "build_datasets", "epoch_batches", "fixed_subset",
           "make_loader", "open_source", "stratified_split"]
