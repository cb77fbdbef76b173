"""ImageNet-format folders with ImageNet preprocessing, without torchvision.

Layout: ``root/train/<class>/*.JPEG`` and ``root/val/<class>/*.JPEG`` (and
optionally ``root/test/<class>/...``), the layout of the ILSVRC 2012 folders
that torchvision's ``ImageFolder`` and Once-for-All's data provider read.

Preprocessing follows the reference's data provider
(``ofa/imagenet_classification/data_providers/imagenet.py``), reimplemented
with Pillow and NumPy:

* evaluation (``val/``, ``test/``): resize the shorter side to
  ``ceil(r / 0.875)`` (bilinear, the longer side scaled and truncated to an
  integer), centre-crop ``r x r``, scale to [0, 1], normalise with the
  ImageNet mean and standard deviation;
* BN re-calibration (``train/``): Once-for-All re-estimates BatchNorm
  statistics on 2000 training images drawn with a fixed seed, transformed
  like training images (random-resized crop, scale 0.08-1, aspect 3/4-4/3,
  and a random horizontal flip; see ``build_sub_train_loader`` and
  ``set_running_statistics`` there). Here the same: the fixed subset is
  :func:`ofa.data.fixed_subset`, and each training image's crop box and
  flip are drawn from a generator seeded by ``(seed, image index)``, so the
  calibration set is identical in every run and covers the same image
  regions at every resolution. ``calib_crop="center"`` uses the evaluation
  transform instead. (The reference's tutorial helper adds colour jitter;
  that is not reproduced.)

Labels are the index of the class folder in sorted order (the standard
ImageNet class index when all 1000 class folders are present). For a folder
with a subset of the classes, pass ``class_list`` - every class name of the
model in its label order (e.g. the 1000 WordNet ids of the ILSVRC devkit,
sorted) - so the labels stay those the supernet was trained with.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import DataError
from .sources import FolderSource

# The ImageNet training-set channel statistics used with torchvision-style
# normalisation (torchvision's documented ImageNet transforms; the same values
# in the reference's data provider).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_FRACTION = 0.875
RANDOM_CROP_SCALE = (0.08, 1.0)
RANDOM_CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)
CALIB_CROPS = ("random-resized", "center")


def eval_resize_size(resolution: int, crop_fraction: float = CROP_FRACTION) -> int:
    """The shorter-side length before the centre crop: ``ceil(r / 0.875)``."""
    return int(math.ceil(resolution / crop_fraction))


def center_crop(image, resolution: int, crop_fraction: float = CROP_FRACTION) -> np.ndarray:
    """Evaluation transform of one PIL image: ``(r, r, C)`` uint8."""
    from PIL import Image

    size = eval_resize_size(resolution, crop_fraction)
    width, height = image.size
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), Image.BILINEAR)
    top = int(round((new_h - resolution) / 2.0))
    left = int(round((new_w - resolution) / 2.0))
    return np.asarray(image.crop((left, top, left + resolution, top + resolution)), dtype=np.uint8)


def random_resized_box(width: int, height: int, rng: np.random.Generator, scale=RANDOM_CROP_SCALE,
                       ratio=RANDOM_CROP_RATIO) -> tuple[int, int, int, int]:
    """``(left, top, crop_width, crop_height)`` of a random-resized crop: up to
    10 draws of an area fraction in ``scale`` and a log-uniform aspect ratio in
    ``ratio`` that fit the image, else the largest centred crop of an allowed
    aspect ratio (torchvision's ``RandomResizedCrop.get_params`` rule)."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, w, h
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def random_resized_crop(image, resolution: int, rng: np.random.Generator) -> np.ndarray:
    """Random-resized crop and random horizontal flip of one PIL image: ``(r, r, C)`` uint8."""
    from PIL import Image

    left, top, w, h = random_resized_box(*image.size, rng)
    crop = image.resize((resolution, resolution), Image.BILINEAR, box=(left, top, left + w, top + h))
    array = np.asarray(crop, dtype=np.uint8)
    return array[:, ::-1] if rng.random() < 0.5 else array


class ImageNetFolderSource(FolderSource):
    """An ImageNet-layout folder decoded at the requested resolution.

    Unlike :class:`FolderSource` (one fixed size, square resize), every
    image is decoded from its file and cropped for the resolution asked
    (``get(indices, resolution)``): centre crop for ``val``/``test``, the
    calibration crop for ``train`` (see the module docstring). Nothing is
    cached here (full-size ImageNet images do not fit in memory);
    :class:`~ofa.evaluation.SubnetEvaluator` keeps the tensors it reuses."""

    crops_at_resolution = True
    default_augment = "none"

    def __init__(self, root: str | os.PathLike, channels: int = 3, calib_crop: str = "random-resized",
                 seed: int = 0, class_list: Sequence[str] | None = None):
        root = Path(root)
        if not (root / "train").is_dir() or not (root / "val").is_dir():
            raise DataError(f"{str(root)!r} is not an ImageNet-format folder: it needs train/<class>/... and "
                            f"val/<class>/... sub-folders (found: "
                            f"{sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else 'nothing'})")
        if channels != 3:
            raise DataError(f"ImageNet preprocessing normalises 3 colour channels; the model wants {channels}")
        if calib_crop not in CALIB_CROPS:
            raise DataError(f"calib_crop {calib_crop!r} unknown; allowed: {CALIB_CROPS}")
        super().__init__(root, image_size=224, channels=channels, cache=False)
        self.calib_crop = calib_crop
        self.seed = int(seed)
        if class_list is not None:
            self._relabel(list(class_list))
        self._is_train = np.zeros(len(self.labels), dtype=bool)
        self._is_train[self.splits["train"]] = True

    def _verify_files(self) -> None:
        """Check the evaluation images up front; not ``train/``: ImageNet's 1.28 M
        training images would take longer to open than an evaluation runs, and
        BN re-calibration reads only a fixed subset (checked as it is decoded)."""
        from PIL import Image

        bad = []
        for split in ("val", "test"):
            for index in self.splits.get(split, ()):
                try:
                    with Image.open(self.files[index]) as image:
                        image.verify()
                except Exception as error:  # Pillow raises many types for corrupt files
                    bad.append(f"{self.files[index]} ({type(error).__name__})")
        if bad:
            raise DataError(f"ImageNet folder {str(self.root)!r}: {len(bad)} evaluation file(s) are not readable "
                            f"images: {'; '.join(bad[:20])}{' ...' if len(bad) > 20 else ''}. Remove or replace them")

    def _relabel(self, class_list: list[str]) -> None:
        if len(set(class_list)) != len(class_list):
            raise DataError("class_list names a class twice")
        position = {name: i for i, name in enumerate(class_list)}
        unknown = [name for name in self.class_names if name not in position]
        if unknown:
            raise DataError(f"class folders {unknown[:10]} are not in the class list ({len(class_list)} classes)")
        self.labels = np.array([position[self.class_names[y]] for y in self.labels], dtype=np.int64)
        self.class_names = tuple(class_list)

    def _decode_at(self, index: int, resolution: int) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        path = self.files[index]
        try:
            with Image.open(path) as image:
                image = image.convert("RGB")
                if self._is_train[index] and self.calib_crop == "random-resized":
                    array = random_resized_crop(image, resolution, np.random.default_rng([self.seed, index]))
                else:
                    array = center_crop(image, resolution)
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise DataError(f"cannot read image {str(path)!r}: {error}") from None
        return torch.from_numpy(array.copy()).permute(2, 0, 1)  # a writable, contiguous copy

    def get(self, indices: Sequence[int], resolution: int = 224) -> torch.Tensor:
        """Float32 images in [0, 1], ``(N, 3, resolution, resolution)``."""
        batch = [self._decode_at(i, int(resolution)) for i in np.asarray(indices, dtype=np.int64).tolist()]
        return torch.stack(batch).float() / 255.0


def read_class_list(path: str | os.PathLike) -> list[str]:
    """Class names, one per line (the first whitespace-separated word of each
    non-empty line, so the devkit's ``LOC_synset_mapping.txt`` works as is)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no class list at {str(path)!r}")
    names = [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise DataError(f"the class list {str(path)!r} is empty")
    return names


def imagenet_datasets(root: str | os.PathLike, resolution: int = 224, channels: int = 3,
                      calib_crop: str = "random-resized", class_list: Sequence[str] | str | None = None,
                      seed: int = 0):
    """:class:`~ofa.data.DataSplits` of an ImageNet-format folder with
    ImageNet preprocessing: ``train`` = ``train/`` (the BN re-calibration
    pool), ``val`` = ``val/``, ``test`` = ``test/`` if present, else ``val/``
    (ImageNet's test labels are not public). ``class_list``: a list of class
    names or a file of them (see the module docstring)."""
    from .datasets import DataSplits, ImageDataset

    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 8:
        raise DataError(f"resolution must be an integer >= 8, got {resolution!r}")
    if isinstance(class_list, (str, os.PathLike)):
        class_list = read_class_list(class_list)
    source = ImageNetFolderSource(root, channels, calib_crop, seed, class_list)
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    common = dict(resolution=resolution, channels=channels, mean=mean, std=std)
    val = ImageDataset(source, source.splits["val"], split="val", **common)
    test = (ImageDataset(source, source.splits["test"], split="test", **common) if "test" in source.splits
            else ImageDataset(source, source.splits["val"], split="test", **common))
    return DataSplits(train=ImageDataset(source, source.splits["train"], split="train", **common), val=val,
                      test=test, class_names=tuple(source.class_names), name=str(source.name))


__all__ = ["CALIB_CROPS", "IMAGENET_MEAN", "IMAGENET_STD", "ImageNetFolderSource", "center_crop",
           "eval_resize_size", "imagenet_datasets", "random_resized_box", "random_resized_crop",
           "read_class_list"]
