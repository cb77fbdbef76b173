"""Where images come from: raw, un-normalised images of one fixed size per
source, with integer labels. Three kinds:

* :func:`digits_source` - scikit-learn's ``load_digits`` (1797 real 8x8
  handwritten digits, shipped with scikit-learn; nothing is downloaded);
* :func:`cifar_source` - CIFAR-10/100 in the standard "python version" pickle
  layout, read by a restricted unpickler that only rebuilds numpy arrays and
  plain containers (anything else is refused with :class:`DataError`);
* :class:`FolderSource` - an image folder, one sub-folder per class, decoded
  with Pillow (no torchvision needed).
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


@dataclass
class ArraySource:
    """Images held in memory: ``images`` is (N, C, H, W), uint8 (0..255) or
    float32 (0..1); ``labels`` is (N,) int64. ``splits`` optionally maps
    "train"/"val"/"test" to the index arrays the data set itself defines."""

    name: str
    images: torch.Tensor
    labels: np.ndarray
    class_names: tuple[str, ...]
    splits: dict[str, np.ndarray] = field(default_factory=dict)
    default_augment: str = "crop_flip"

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        """Float32 images in [0, 1] at the source's own size."""
        batch = self.images[torch.as_tensor(np.asarray(indices, dtype=np.int64))]
        return batch.float() / 255.0 if batch.dtype == torch.uint8 else batch.float()


def digits_source() -> ArraySource:
    """scikit-learn's 8x8 digits (values 0..16) as one-channel float images."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy((digits.images / 16.0).astype(np.float32)).unsqueeze(1)
    return ArraySource("digits", images, digits.target.astype(np.int64), tuple(str(d) for d in range(10)),
                       default_augment="affine")


# --- CIFAR -----------------------------------------------------------------------------------------------
class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays and plain containers; refuses every other class,
    so a crafted file cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise DataError(f"refusing to unpickle {module}.{name}: a CIFAR file holds only arrays, lists and dicts")


def _read_cifar_pickle(path: Path) -> dict:
    try:
        data = _ArrayOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except DataError as error:
        raise DataError(f"{path}: {error}") from None
    except Exception as error:  # truncated or not a pickle at all
        raise DataError(f"{path} is not a readable CIFAR python pickle ({type(error).__name__}: {error})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} holds a {type(data).__name__}; a CIFAR batch file holds a dict")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in data.items()}


def _cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    batch = _read_cifar_pickle(path)
    if "data" not in batch or label_key not in batch:
        raise DataError(f"{path} lacks the 'data' or {label_key!r} entry of a CIFAR batch file "
                        f"(has {sorted(batch)})")
    data = np.asarray(batch["data"])
    labels = np.asarray(batch[label_key], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: 'data' must be a uint8 array of shape (N, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise DataError(f"{path}: {len(labels)} labels for {data.shape[0]} images")
    return data.reshape(-1, 3, 32, 32), labels


def cifar_source(root: str | Path) -> ArraySource:
    """CIFAR-10 (``data_batch_1..5``, ``test_batch``, ``batches.meta``) or
    CIFAR-100 (``train``, ``test``, ``meta``) from a local directory."""
    root = Path(root)
    if (root / "data_batch_1").is_file():
        train_files = sorted(root.glob("data_batch_*"))
        test_file, meta_file, label_key, names_key = root / "test_batch", root / "batches.meta", "labels", "label_names"
    elif (root / "train").is_file():
        train_files = [root / "train"]
        test_file, meta_file, label_key, names_key = root / "test", root / "meta", "fine_labels", "fine_label_names"
    else:
        raise DataError(f"{root} is not a CIFAR directory: expected data_batch_1..5 and test_batch (CIFAR-10) "
                        f"or train and test (CIFAR-100), in the python pickle layout")
    if not test_file.is_file():
        raise DataError(f"{root}: missing {test_file.name}")
    parts = [_cifar_batch(f, label_key) for f in train_files]
    test_images, test_labels = _cifar_batch(test_file, label_key)
    train_images = np.concatenate([p[0] for p in parts])
    train_labels = np.concatenate([p[1] for p in parts])
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    names = tuple(str(i) for i in range(num_classes))
    if meta_file.is_file():
        meta = _read_cifar_pickle(meta_file)
        if names_key in meta and len(meta[names_key]) >= num_classes:
            names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in meta[names_key])
            num_classes = len(names)
    if train_labels.min() < 0 or test_labels.min() < 0:
        raise DataError(f"{root}: negative class labels")
    images = torch.from_numpy(np.concatenate([train_images, test_images]))
    labels = np.concatenate([train_labels, test_labels])
    n_train = len(train_labels)
    splits = {"train": np.arange(n_train), "test": np.arange(n_train, len(labels))}
    return ArraySource(root.name or "cifar", images, labels, names, splits, default_augment="crop_flip")


# --- image folders ---------------------------------------------------------------------------------------
class FolderSource:
    """An image folder: ``root/<class>/<image>``, or ``root/train/<class>/...``
    plus ``root/val`` and/or ``root/test`` with the same classes. Images are
    decoded with Pillow, converted to RGB (or L for one channel), resized to
    ``image_size`` x ``image_size`` and kept in memory after the first read."""

    default_augment = "crop_flip"

    def __init__(self, root: str | Path, image_size: int, channels: int = 3, cache: bool = True):
        self.root = Path(root)
        self.name = self.root.name
        self.image_size = int(image_size)
        self._channels = channels
        self.cache = cache
        self._decoded: dict[int, torch.Tensor] = {}
        if not self.root.is_dir():
            raise DataError(f"image folder {str(self.root)!r} does not exist or is not a directory")
        split_dirs = {s: self.root / s for s in ("train", "val", "test") if (self.root / s).is_dir()}
        if "train" in split_dirs:
            class_names = self._class_names(split_dirs["train"])
            self.files, labels, self.splits = [], [], {}
            for split, directory in split_dirs.items():
                found = self._scan(directory, class_names)
                start = len(self.files)
                self.files += [f for f, _ in found]
                labels += [y for _, y in found]
                self.splits[split] = np.arange(start, len(self.files))
        else:
            class_names = self._class_names(self.root)
            found = self._scan(self.root, class_names)
            self.files = [f for f, _ in found]
            labels = [y for _, y in found]
            self.splits = {}
        self.class_names = tuple(class_names)
        self.labels = np.asarray(labels, dtype=np.int64)
        self._verify_files()

    def _verify_files(self) -> None:
        """Open every image's header and check its integrity before any work,
        reporting all unreadable files at once (not one at a time mid-training)."""
        from PIL import Image

        bad = []
        for path in self.files:
            try:
                with Image.open(path) as image:
                    image.verify()
            except Exception as error:  # PIL raises many types for corrupt files
                bad.append(f"{path} ({type(error).__name__}: {str(error)[:80]})")
        if bad:
            shown = "; ".join(bad[:20]) + (f"; ... and {len(bad) - 20} more" if len(bad) > 20 else "")
            raise DataError(f"image folder {str(self.root)!r}: {len(bad)} file(s) are not readable images: "
                            f"{shown}. Remove or replace them")

    @staticmethod
    def _class_names(directory: Path) -> list[str]:
        names = sorted(p.name for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
        if len(names) < 2:
            raise DataError(f"image folder {str(directory)!r} needs one sub-folder per class (at least 2); "
                            f"found {names}")
        return names

    @staticmethod
    def _scan(directory: Path, class_names: Sequence[str]) -> list[tuple[Path, int]]:
        found = []
        for label, name in enumerate(class_names):
            class_dir = directory / name
            if not class_dir.is_dir():
                raise DataError(f"{str(directory)!r} lacks the class folder {name!r} that other splits have")
            files = sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            if not files:
                raise DataError(f"class folder {str(class_dir)!r} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            found += [(f, label) for f in files]
        extra = sorted(p.name for p in directory.iterdir() if p.is_dir() and p.name not in class_names
                       and not p.name.startswith("."))
        if extra:
            raise DataError(f"{str(directory)!r} has class folders {extra} that the train split lacks")
        return found

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def channels(self) -> int:
        return self._channels

    def _decode(self, index: int) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        path = self.files[index]
        try:
            with Image.open(path) as image:
                image = image.convert("L" if self._channels == 1 else "RGB")
                image = image.resize((self.image_size, self.image_size), Image.BILINEAR)
                array = np.asarray(image, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise DataError(f"cannot read image {str(path)!r}: {error}") from None
        array = array[:, :, None] if array.ndim == 2 else array
        return torch.from_numpy(array.copy()).permute(2, 0, 1)

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        batch = []
        for i in np.asarray(indices, dtype=np.int64).tolist():
            image = self._decoded.get(i)
            if image is None:
                image = self._decode(i)
                if self.cache:
                    self._decoded[i] = image
            batch.append(image)
        return torch.stack(batch).float() / 255.0


__all__ = ["ArraySource", "FolderSource", "IMAGE_EXTENSIONS", "cifar_source", "digits_source"]
