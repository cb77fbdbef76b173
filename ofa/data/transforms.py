"""Batch transforms: resize, light augmentation, normalisation.

They work on whole (N, C, H, W) float batches, and every random choice comes
from an explicit ``torch.Generator`` - so a batch is a pure function of its
indices and the generator's seed (what makes resumed and data-parallel runs
reproducible).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import DataError

AUGMENTATIONS = ("none", "affine", "crop_flip")


def resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Bilinear resize (anti-aliased when shrinking) to ``resolution`` squared."""
    if images.shape[-2:] == (resolution, resolution):
        return images
    return F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False,
                         antialias=bool(images.shape[-1] > resolution))


def random_affine(images: torch.Tensor, generator: torch.Generator, degrees: float = 10.0,
                  scale: tuple[float, float] = (0.9, 1.1), translate: float = 0.1) -> torch.Tensor:
    """Small random rotation, zoom and shift per image (zeros fill the border):
    right for digits, where flips would change the class."""
    n = images.shape[0]
    u = torch.rand(n, 4, generator=generator)
    angle = (u[:, 0] * 2 - 1) * math.radians(degrees)
    zoom = scale[0] + u[:, 1] * (scale[1] - scale[0])
    shift = (u[:, 2:] * 2 - 1) * translate * 2  # affine_grid coordinates span [-1, 1]
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_crop_flip(images: torch.Tensor, generator: torch.Generator, padding_fraction: float = 0.125) -> torch.Tensor:
    """Random crop after zero padding (4 px at 32 px) and random horizontal flip."""
    n, _, h, w = images.shape
    pad = max(1, round(padding_fraction * h))
    padded = F.pad(images, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(images)
    for i in range(n):
        y, x = offsets[i].tolist()
        crop = padded[i, :, y:y + h, x:x + w]
        out[i] = crop.flip(-1) if flips[i] else crop
    return out


def augment(images: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    if kind == "affine":
        return random_affine(images, generator)
    if kind == "crop_flip":
        return random_crop_flip(images, generator)
    if kind == "none":
        return images
    raise DataError(f"unknown augmentation {kind!r}; allowed: {AUGMENTATIONS}")


def prepare_batch(images: torch.Tensor, resolution: int, mean: torch.Tensor, std: torch.Tensor,
                  channels: int, augmentation: str = "none", generator: torch.Generator | None = None) -> torch.Tensor:
    """Raw [0, 1] images -> model input: resize, augment (only with a
    generator), repeat grey to ``channels``, normalise per channel."""
    images = resize(images, resolution)
    if generator is not None and augmentation != "none":
        images = augment(images, augmentation, generator)
    if images.shape[1] != channels:
        if images.shape[1] != 1:
            raise DataError(f"images have {images.shape[1]} channels; the model wants {channels}")
        images = images.expand(-1, channels, -1, -1)
    return ((images - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)).contiguous()


__all__ = ["AUGMENTATIONS", "augment", "prepare_batch", "random_affine", "random_crop_flip", "resize"]
