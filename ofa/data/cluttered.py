"""Cluttered digits: scikit-learn's real handwritten digits, each placed
several times at a random position, size and rotation on a larger dark canvas
among fragments of other digits, with a little pixel noise.

The 8x8 digits alone are too easy for a supernet to show a trade-off (every
subnet scores 98-100%). Reading a digit through digit-like strokes and noise
needs resolution, receptive field and width, so subnets of one supernet spread out
(the transformation follows "cluttered MNIST" of Mnih et al., "Recurrent
models of visual attention", NeurIPS 2014, and Jaderberg et al., "Spatial
transformer networks", NeurIPS 2015).

Definition (every number is a keyword of :func:`cluttered_digits_source`,
fixed by its defaults for the built-in ``"cluttered-digits"`` data set):

1. The 1797 source digits are split once, stratified by class and seeded,
   into train/val/test source images (70/15/15%). Everything after is done
   per split, so no source digit image - not even a fragment of one - appears
   in two splits.
2. Each source digit gives ``placements`` canvas images (default 8): the
   8x8 digit is scaled to a side of ``digit_size`` px (uniform in [14, 22]),
   rotated by an angle uniform in +-``max_rotation`` degrees (default 20) and
   placed at a random position with its rotated box inside the ``canvas``
   (32 x 32 px; a box too large to fit would be centred).
3. ``fragments`` clutter pieces (uniform integer in [2, 5]) are added: each a
   random 4x4 window of another source digit of the same split (a stroke of
   7-11 px), scaled like a digit, rotated at random and placed anywhere on
   the canvas; layers combine by pixel-wise maximum.
4. Gaussian noise of standard deviation ``noise`` (0.1) is added, values
   clipped to [0, 1] and stored as uint8.

All random choices come from ``numpy.random.default_rng(seed)`` (seed 0), the
resampling is ``torch.nn.functional.grid_sample`` (bilinear), so the data set
is the same on every call (a few CPU-seconds to render). With the defaults: 10056 train, 2160 val and 2160
test images (one point of validation top-1 is about 22 images), classes
balanced as in the source digits.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from .sources import ArraySource

SOURCE_SPLIT_SEED = 0  # the split of source digits is part of the data set's definition
FRAGMENT_SIZE = 4  # side (source pixels) of a clutter window of an 8x8 digit


@dataclass
class ClutteredDigitsSource(ArraySource):
    """An :class:`ArraySource` that also says which of the 1797 source digits
    (``sklearn.datasets.load_digits`` index) each image shows."""

    source_digit: np.ndarray | None = None


def _place(patches: torch.Tensor, canvas: int, size: np.ndarray, angle: np.ndarray,
           centre: np.ndarray) -> torch.Tensor:
    """Render (N, 1, h, w) ``patches`` onto (N, 1, canvas, canvas) canvases:
    each scaled to ``size`` px, rotated by ``angle`` radians about its centre
    and centred at ``centre`` (N, 2) px (x, y); zeros elsewhere."""
    # affine_grid maps output coordinates u in [-1, 1] to input coordinates v:
    # v = R^-1 (pixel(u) - centre) / (size / 2) with pixel(u) = (u + 1) * canvas / 2
    cos, sin = np.cos(angle), np.sin(angle)
    inverse = np.stack([np.stack([cos, sin], 1), np.stack([-sin, cos], 1)], 1)  # R^-1, (N, 2, 2)
    scale = (canvas / size)[:, None, None]
    offset = (canvas - 2.0 * centre) / size[:, None]  # (N, 2)
    theta = torch.from_numpy(np.concatenate([inverse * scale, (inverse @ offset[:, :, None])], axis=2)).float()
    # the grid F.affine_grid(theta, align_corners=False) builds, by broadcasting (much faster on CPU)
    u = (2.0 * torch.arange(canvas, dtype=torch.float32) + 1.0) / canvas - 1.0
    ux, uy = u[None, None, :], u[None, :, None]
    t = theta[:, :, :, None, None]
    grid = torch.stack([t[:, 0, 0] * ux + t[:, 0, 1] * uy + t[:, 0, 2], t[:, 1, 0] * ux + t[:, 1, 1] * uy + t[:, 1, 2]],
                       dim=-1)
    return F.grid_sample(patches, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def render_cluttered(digits: torch.Tensor, rng: np.random.Generator, placements: int, canvas: int = 32,
                     digit_size: tuple[float, float] = (14.0, 22.0), max_rotation: float = 20.0,
                     fragments: tuple[int, int] = (2, 5), noise: float = 0.1) -> torch.Tensor:
    """``placements`` cluttered canvases per digit of ``digits`` ((N, 1, 8, 8)
    floats in [0, 1]), clutter taken from other digits of the same tensor.
    Returns (N * placements, 1, canvas, canvas) floats in [0, 1], digit-major
    (the images of digit ``i`` are rows ``i * placements ... + placements - 1``)."""
    n, _, h, w = digits.shape
    if n < 2:
        raise DataError("cluttered digits need at least 2 source digits per split (clutter comes from the others)")
    count = n * placements
    source = np.repeat(np.arange(n), placements)
    size = rng.uniform(*digit_size, count)
    angle = np.radians(rng.uniform(-max_rotation, max_rotation, count))
    # keep the rotated box on the canvas where it fits: its half extent is size/2 * (|cos| + |sin|)
    half = size / 2 * (np.abs(np.cos(angle)) + np.abs(np.sin(angle)))
    centre = canvas / 2 + (rng.uniform(0, 1, (count, 2)) - 0.5) * np.maximum(canvas - 2 * half, 0)[:, None]
    images = _place(digits[source], canvas, size, angle, centre)
    pieces = rng.integers(fragments[0], fragments[1] + 1, count)
    for layer in range(fragments[1]):
        # another digit of this split (never the image's own digit), a random window of it
        other = (source + rng.integers(1, n, count)) % n
        top, left = rng.integers(0, h - FRAGMENT_SIZE + 1, count), rng.integers(0, w - FRAGMENT_SIZE + 1, count)
        frag_size = rng.uniform(*digit_size, count)
        frag_angle = np.radians(rng.uniform(-180.0, 180.0, count))
        frag_centre = rng.uniform(0, canvas, (count, 2))
        active = layer < pieces
        if not active.any():
            continue
        mask = torch.zeros(count, 1, h, w)
        rows = torch.arange(h)[None, :, None]
        cols = torch.arange(w)[None, None, :]
        top_t, left_t = torch.from_numpy(top)[:, None, None], torch.from_numpy(left)[:, None, None]
        inside = ((rows >= top_t) & (rows < top_t + FRAGMENT_SIZE) & (cols >= left_t)
                  & (cols < left_t + FRAGMENT_SIZE))
        mask[:, 0] = inside.float()
        patch = digits[other] * mask
        rendered = _place(patch[active], canvas, frag_size[active], frag_angle[active], frag_centre[active])
        images[torch.from_numpy(np.flatnonzero(active))] = torch.maximum(images[active], rendered)
    if noise > 0:
        images = images + noise * torch.from_numpy(rng.standard_normal(images.shape, dtype=np.float32))
    return images.clamp_(0.0, 1.0)


def cluttered_digits_source(placements: int = 8, canvas: int = 32, digit_size: tuple[float, float] = (14.0, 22.0),
                            max_rotation: float = 20.0, fragments: tuple[int, int] = (2, 5), noise: float = 0.1,
                            seed: int = 0, name: str = "cluttered-digits") -> ClutteredDigitsSource:
    """The cluttered-digits data set (see the module docstring) as an
    :class:`ArraySource` with its own train/val/test split by source digit."""
    from sklearn.datasets import load_digits

    from .datasets import stratified_split

    if isinstance(placements, bool) or not isinstance(placements, int) or placements < 1:
        raise DataError(f"placements must be an integer >= 1, got {placements!r}")
    if not 8 <= canvas <= 256:
        raise DataError(f"canvas must be between 8 and 256 px, got {canvas!r}")
    if not 0 < digit_size[0] <= digit_size[1] <= canvas:
        raise DataError(f"digit_size must be (low, high) with 0 < low <= high <= canvas, got {digit_size!r}")
    if not 0 <= fragments[0] <= fragments[1]:
        raise DataError(f"fragments must be (low, high) with 0 <= low <= high, got {fragments!r}")
    if not 0 <= max_rotation <= 180 or noise < 0:
        raise DataError(f"max_rotation must be in [0, 180] and noise >= 0, got {max_rotation!r}, {noise!r}")
    digits = load_digits()
    sources = torch.from_numpy((digits.images / 16.0).astype(np.float32)).unsqueeze(1)
    labels = digits.target.astype(np.int64)
    train, held = stratified_split(labels, 0.3, SOURCE_SPLIT_SEED)
    val_part, test_part = stratified_split(labels[held], 0.5, SOURCE_SPLIT_SEED)
    source_splits = {"train": train, "val": held[val_part], "test": held[test_part]}
    rng = np.random.default_rng(seed)
    images, image_labels, splits, source_index, start = [], [], {}, [], 0
    for split, chosen in source_splits.items():
        rendered = render_cluttered(sources[chosen], rng, placements, canvas, digit_size, max_rotation, fragments,
                                    noise)
        images.append((rendered * 255.0).round_().to(torch.uint8))
        image_labels.append(np.repeat(labels[chosen], placements))
        source_index.append(np.repeat(chosen, placements))
        splits[split] = np.arange(start, start + len(rendered))
        start += len(rendered)
    return ClutteredDigitsSource(name, torch.cat(images), np.concatenate(image_labels),
                                 tuple(str(d) for d in range(10)), splits, default_augment="none",
                                 source_digit=np.concatenate(source_index))


@lru_cache(maxsize=1)
def default_cluttered_digits() -> ClutteredDigitsSource:
    """The built-in ``"cluttered-digits"`` data set (rendered once per process)."""
    return cluttered_digits_source()


__all__ = ["ClutteredDigitsSource", "cluttered_digits_source", "default_cluttered_digits", "render_cluttered"]
