"""Image data for training and evaluating supernets - no torchvision needed.

    >>> from ofa.data import build_datasets, make_loader
    >>> data = build_datasets("digits", resolution=28)      # or an image folder / CIFAR directory
    >>> data.num_classes, len(data.train), len(data.val), len(data.test)
(10, 1297, 230, 270)

    >>> images, labels = data.val.tensors()                  # the whole split, model-ready
    >>> for images, labels in make_loader(data.test, batch_size=256):
    ...     ...

``build_datasets(source="digits", resolution=32, channels=3, augmentation="auto",
val_fraction=0.15, test_fraction=0.15, image_size=None) -> DataSplits`` with
``.train``, ``.val``, ``.test`` (:class:`ImageDataset`), ``.class_names``,
``.num_classes``. Sources:

* ``"digits"`` - scikit-learn's ``load_digits`` (1797 real 8x8 handwritten
  digits that ship with scikit-learn), upscaled bilinearly to the resolution,
  grey repeated to 3 channels; fixed stratified 70/15/15 train/val/test split;
  light augmentation (random rotation +-10 degrees, zoom 0.9-1.1, shift +-10%).
* a CIFAR-10/100 directory in the standard "python version" pickle layout
  (read by a restricted unpickler: only numpy arrays and plain containers);
  its own test split, 15% of the training part held out as validation.
* an image folder: ``root/<class>/*.png|jpg|...`` (split 70/15/15, stratified)
  or ``root/train/<class>/...`` with ``root/val`` and/or ``root/test``;
  decoded with Pillow and resized to ``image_size`` (default: ``resolution``).

An :class:`ImageDataset` item is ``(float32 (C, R, R) normalised image, int
label)``; ``get_batch(positions, resolution=None, generator=None)`` builds a
batch (augmented on the train split when a ``torch.Generator`` is given),
``tensors(limit=None)`` returns a whole split, ``at_resolution(r)`` the same
split at another resolution. ``make_loader(dataset, batch_size, shuffle=False,
seed=0, augment=False, rank=0, world_size=1, drop_last=False)`` iterates
``(images, labels)`` batches in an order fixed by (seed, epoch);
``fixed_subset(dataset, n=2000)`` is the BN re-calibration subset. Bad paths
and files raise :class:`ofa.errors.DataError`.

ImageNet-format folders (``train/`` + ``val/``) with ImageNet's
resize/centre-crop and normalisation: ``imagenet_datasets(root, resolution)``
or ``build_datasets(root, resolution, preprocessing="imagenet")``
(:mod:`ofa.data.imagenet`).
"""

from .datasets import (BatchLoader, DataSplits, ImageDataset, build_datasets, epoch_batches, fixed_subset,
                       make_loader, open_source, stratified_split)
from .imagenet import IMAGENET_MEAN, IMAGENET_STD, ImageNetFolderSource, imagenet_datasets, read_class_list
from .sources import ArraySource, FolderSource, cifar_source, digits_source
from .transforms import AUGMENTATIONS, prepare_batch, resize

__all__ = [
    "AUGMENTATIONS", "ArraySource", "BatchLoader", "DataSplits", "FolderSource", "IMAGENET_MEAN", "IMAGENET_STD",
    "ImageDataset", "ImageNetFolderSource", "build_datasets", "imagenet_datasets", "read_class_list",
    "cifar_source", "digits_source", "epoch_batches", "fixed_subset", "make_loader", "open_source",
    "prepare_batch", "resize", "stratified_split",
]
