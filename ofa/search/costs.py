"""MACs and parameter counts of whole gene matrices, fast enough for search.

``space.cost(arch)`` is the one cost model; it takes ~0.2 ms per architecture.
:func:`cost_function` returns a callable on gene matrices that gives the same
numbers much faster:

* where the space decomposes additively (``space.additive_layout()``), exact
  table sums (:mod:`ofa.spaces.tables`, the same tables the predictors'
  featurizer uses), checked against ``space.cost`` on random subnets before
  they are used;
* otherwise a per-architecture cache in front of ``space.cost``.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..spaces import SearchSpace
from ..spaces.tables import build_additive_tables
from .problem import GeneFunction

COST_METRICS = ("macs", "params")
_TABLES: dict[tuple[str, str], GeneFunction] = {}


def cost_function(space: SearchSpace, metric: str) -> GeneFunction:
    """A vectorised ``genes -> cost`` for ``metric`` in ("macs", "params")."""
    if metric not in COST_METRICS:
        raise ConfigError(f"cost metric {metric!r} unknown; allowed: {COST_METRICS}")
    key = (space.fingerprint, metric)
    if key not in _TABLES:
        fn = _additive_cost(space, metric)
        _TABLES[key] = fn if fn is not None else CachedCost(space, metric)
    return _TABLES[key]


class CachedCost:
    """``space.cost`` per distinct architecture, remembered by its gene row."""

    def __init__(self, space: SearchSpace, metric: str):
        self.space, self.metric = space, metric
        self.cache: dict[bytes, float] = {}

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        genes = np.ascontiguousarray(np.atleast_2d(genes), dtype=np.int64)
        out = np.empty(len(genes))
        for i, row in enumerate(genes):
            key = row.tobytes()
            value = self.cache.get(key)
            if value is None:
                arch = self.space.from_genes(row[None, :])[0]
                value = self.cache[key] = float(getattr(self.space.cost(arch), self.metric))
            out[i] = value
        return out


class AdditiveCost:
    """Exact cost from the space's additive tables (:mod:`ofa.spaces.tables`)."""

    def __init__(self, tables, column: int):
        self.tables, self.column = tables, column

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        return self.tables.transform(np.atleast_2d(np.asarray(genes, dtype=np.int64)))[:, self.column]


def _layer_costs(layers) -> np.ndarray:
    return np.array([sum(layer.macs for layer in layers),
                     sum(layer.params + layer.norm_params for layer in layers)], dtype=np.float64)


def _additive_cost(space: SearchSpace, metric: str) -> "AdditiveCost | None":
    """The cost as table sums where the space has an additive layout and its tables reproduce
    ``space.cost`` exactly on random subnets (parameters outside the layers, e.g. a
    Transformer's embeddings and layer norms, fail the check: then the cache is used)."""
    if space.additive_layout() is None:
        return None
    tables = build_additive_tables(space, _layer_costs, 2)
    table = AdditiveCost(tables, COST_METRICS.index(metric))
    genes = space.normalize_genes(space.sample_genes(16, np.random.default_rng(0)))
    expected = [float(getattr(space.cost(a), metric)) for a in space.from_genes(genes)]
    if not np.allclose(table(genes), expected, rtol=0, atol=0.5):
        return None
    return table


def budgets_between(space, cost, fractions) -> list[float]:
    """Budgets spanning the space's own range: the smallest subnet's ``cost``
    plus each of ``fractions`` of the way to the largest subnet's. Random
    subnets are mid-sized, so quantiles among them miss the region where
    accuracy has to be given up."""
    low, high = (float(cost(space.to_genes(arch))[0]) for arch in (space.smallest(), space.largest()))
    return [low + f * (high - low) for f in fractions]
