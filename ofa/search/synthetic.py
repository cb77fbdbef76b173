"""Deterministic analytic objectives for testing and timing the search engine
itself, without trained predictors.

They are linear functions of the space's one-hot encoding (as cheap as a
predictor's fastest path) shaped like the real trade-off: bigger choices cost
more "latency" on every device, and "accuracy" grows with diminishing returns
in size. They are not predictions of anything; real searches use predictors
from :mod:`predictors`.
"""

from __future__ import annotations

import numpy as np

from ..spaces import SearchSpace


class SyntheticObjectives:
    """``accuracy(genes)`` and ``latency(genes, device)`` for ``num_devices`` devices."""

    def __init__(self, space: SearchSpace, num_devices: int = 2, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.space = space
        counts = [len(c) for c in space.gene_choices]
        # per one-hot column: a cost growing with the choice index (choices are listed small to large)
        rank = np.concatenate([np.arange(c) / max(c - 1, 1) for c in counts])
        self.latency_weights = np.stack([(0.2 + rank) * rng.uniform(0.5, 1.5, len(rank))
                                         for _ in range(num_devices)], axis=1).astype(np.float32)
        self.accuracy_weights = (0.004 * rng.standard_normal(len(rank))).astype(np.float32)
        self.scale = float(np.sum(1.2 * np.ones(len(counts))))  # about the largest subnet's latency

    def latency(self, genes: np.ndarray, device: int = 0) -> np.ndarray:
        return 0.5 + self.space.encode_genes(genes) @ self.latency_weights[:, device]

    def accuracy(self, genes: np.ndarray) -> np.ndarray:
        encoding = self.space.encode_genes(genes)
        size = encoding @ self.latency_weights.mean(axis=1)
        return 0.5 + 0.4 * (1.0 - np.exp(-2.0 * size / self.scale)) + encoding @ self.accuracy_weights
