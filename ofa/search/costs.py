"""MACs and parameter counts of whole gene matrices, fast enough for search.

``space.cost(arch)`` is the one cost model; it takes ~0.2 ms per architecture.
:func:`cost_function` returns a callable on gene matrices that gives the same
numbers much faster:

* for MobileNetV3 spaces, an exact lookup table: the cost of a subnet is a
  per-resolution constant plus one term per running block that depends only on
  that block's kernel and expand ratio (and the resolution). The table is
  measured with ``space.cost`` itself (by changing one block at a time) and
  checked against ``space.cost`` on random subnets before it is used;
* for any other space, a per-architecture cache in front of ``space.cost``.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..spaces import MobileNetV3Space, SearchSpace
from .problem import GeneFunction

COST_METRICS = ("macs", "params")
_TABLES: dict[tuple[str, str], GeneFunction] = {}


def cost_function(space: SearchSpace, metric: str) -> GeneFunction:
    """A vectorised ``genes -> cost`` for ``metric`` in ("macs", "params")."""
    if metric not in COST_METRICS:
        raise ConfigError(f"cost metric {metric!r} unknown; allowed: {COST_METRICS}")
    key = (space.fingerprint, metric)
    if key not in _TABLES:
        fn = None
        if isinstance(space, MobileNetV3Space):
            fn = _mobilenetv3_table(space, metric)
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


class MobileNetV3CostTable:
    """Exact cost = constant[resolution] + sum over running blocks of
    block_cost[block, kernel, expand, resolution]."""

    def __init__(self, space: MobileNetV3Space, constant: np.ndarray, block_cost: np.ndarray):
        self.space, self.constant, self.block_cost = space, constant, block_cost
        b = space.num_blocks
        self._kernel, self._expand = slice(0, b), slice(b, 2 * b)

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        genes = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        k, e, r = genes[:, self._kernel], genes[:, self._expand], genes[:, -1]
        running = k >= 0
        blocks = np.arange(self.space.num_blocks)[None, :]
        terms = self.block_cost[blocks, np.maximum(k, 0), np.maximum(e, 0), r[:, None]]
        return self.constant[r] + np.where(running, terms, 0.0).sum(axis=1)


def _mobilenetv3_table(space: MobileNetV3Space, metric: str) -> MobileNetV3CostTable | None:
    """Measure the table with ``space.cost``: start from the deepest subnet
    with every block at its first (kernel, expand) choice; changing one block's
    choice, or dropping the last block of a stage, changes the cost by exactly
    that block's term."""
    nk, ne, nr = len(space.kernel_sizes), len(space.expand_ratios), len(space.resolutions)
    d, s, b = space.max_depth, space.num_stages, space.num_blocks
    min_depth = min(space.depths)
    if sorted(space.depths) != list(range(min_depth, d + 1)):
        return None  # depths with gaps: a dropped block is not one table term; use the cache

    def cost(kernels, expands, depths, r):
        return float(getattr(space.cost({"kernel_sizes": kernels, "expand_ratios": expands, "depths": depths,
                                         "resolution": space.resolutions[r]}), metric))

    constant = np.zeros(nr)
    block_cost = np.zeros((b, nk, ne, nr))
    resolutions = range(nr) if metric == "macs" else [0]  # parameters do not depend on resolution
    for r in resolutions:
        base_k, base_e = [space.kernel_sizes[0]] * b, [space.expand_ratios[0]] * b
        deepest = [d] * s
        base = cost(base_k, base_e, deepest, r)
        # the first-choice term of each optional block: drop blocks one by one from the end of each stage
        first_choice = np.zeros(b)
        for stage in range(s):
            depths = list(deepest)
            previous = base
            for depth in range(d - 1, min_depth - 1, -1):
                depths[stage] = depth
                value = cost(base_k, base_e, depths, r)
                first_choice[stage * d + depth] = previous - value
                previous = value
        constant[r] = base - first_choice.sum()
        for block in range(b):
            for ki in range(nk):
                for ei in range(ne):
                    kernels, expands = list(base_k), list(base_e)
                    kernels[block], expands[block] = space.kernel_sizes[ki], space.expand_ratios[ei]
                    block_cost[block, ki, ei, r] = cost(kernels, expands, deepest, r) - base + first_choice[block]
    if metric == "params":
        constant[:] = constant[0]
        block_cost[...] = block_cost[..., :1]
    table = MobileNetV3CostTable(space, constant, block_cost)
    # check against the cost model on random subnets; any mismatch -> exact cache instead
    genes = space.sample_genes(16, np.random.default_rng(0))
    expected = [float(getattr(space.cost(a), metric)) for a in space.from_genes(genes)]
    if not np.allclose(table(genes), expected, rtol=0, atol=0.5):
        return None
    return table
