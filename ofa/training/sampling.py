"""Subnet sampling that every data-parallel rank reproduces exactly.

The generator of a step is seeded from ``(seed, phase, epoch, step)`` - never
the global ``random`` - so every rank draws the same subnets and the same
resolution, and a resumed run draws what an uninterrupted run drew.

A training phase may allow only some choices of each decision (elastic
kernel first, then depth, ...). :func:`sample_restricted_genes` draws genes
uniformly among the allowed choice *indices* of the full space, so the
architectures stay values of the full space (same fingerprint).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ConfigError
from ..spaces import SearchSpace


def step_generator(seed: int, *keys: int) -> np.random.Generator:
    """A numpy generator determined by ``seed`` and the integer ``keys``
    (e.g. phase, epoch, step)."""
    return np.random.default_rng([int(seed), *(int(k) for k in keys)])


def sample_restricted_genes(space: SearchSpace, n: int, rng: np.random.Generator,
                            allowed: Sequence[Sequence[int]]) -> np.ndarray:
    """``n`` gene rows, gene ``g`` uniform over the choice indices ``allowed[g]``;
    genes the architecture does not use are set to -1."""
    if len(allowed) != space.num_genes:
        raise ConfigError(f"allowed choices given for {len(allowed)} genes; the space has {space.num_genes}")
    genes = np.empty((n, space.num_genes), dtype=np.int64)
    for g, options in enumerate(allowed):
        options = np.asarray(options, dtype=np.int64)
        if options.size == 0:
            raise ConfigError(f"gene {g} has no allowed choice")
        genes[:, g] = options[rng.integers(0, options.size, size=n)]
    return space.normalize_genes(genes)


__all__ = ["sample_restricted_genes", "step_generator"]
