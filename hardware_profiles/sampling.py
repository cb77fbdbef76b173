"""Choosing which architectures to measure: stratified over MACs.

Uniform sampling of a once-for-all space concentrates around the median
network (every decision averages out), so the smallest and largest subnets -
exactly the ones a latency budget at the edges needs - are almost never
drawn. We therefore

1. draw a large pool in which each architecture gets a random *tilt*: its
   genes prefer low or high choice indices (choices are listed in increasing
   order: kernel 3/5/7, depth 2/3/4, ...), so the pool reaches both ends of
   the MAC range; the space's smallest and largest architectures are added;
2. split the pool's MAC range into equal-width strata;
3. take the same number of architectures from every stratum (more from
   neighbours where one runs short).

The result is deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np

from ofa.errors import ConfigError
from ofa.spaces import SearchSpace, as_rng


def macs_of_genes(space: SearchSpace, genes: np.ndarray) -> np.ndarray:
    return np.array([space.cost(arch).macs for arch in space.from_genes(genes)], dtype=np.float64)


def tilted_genes(space: SearchSpace, n: int, rng: np.random.Generator, max_tilt: float = 4.0) -> np.ndarray:
    """``n`` gene rows; row r draws choice i of a gene with probability
    proportional to ``exp(tilt_r * i / (choices - 1))``, tilt_r uniform in
    [-max_tilt, max_tilt] (tilt 0 is the uniform distribution)."""
    counts = [len(c) for c in space.gene_choices]
    tilt = rng.uniform(-max_tilt, max_tilt, size=(n, 1))
    genes = np.empty((n, len(counts)), dtype=np.int64)
    for g, count in enumerate(counts):
        position = np.arange(count) / max(count - 1, 1)
        weights = np.exp(tilt * position[None, :])
        cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
        genes[:, g] = np.minimum((rng.random((n, 1)) > cumulative).sum(axis=1), count - 1)
    return space.normalize_genes(genes, rng)


def stratified_sample(space: SearchSpace, n: int, rng=0, strata: int = 10, pool_factor: int = 10,
                      min_pool: int = 1000) -> list:
    """``n`` distinct architectures spread evenly over MACs (architecture values).

    The pool holds ``max(min_pool, pool_factor * n)`` tilted draws plus the
    space's smallest and largest architectures; both ends are always chosen."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"the number of architectures must be a positive integer, got {n!r}")
    if strata < 1:
        raise ConfigError(f"strata must be >= 1, got {strata}")
    rng = as_rng(rng)
    drawn = tilted_genes(space, max(min_pool, pool_factor * n), rng)
    genes = np.concatenate([space.to_genes([space.smallest(), space.largest()]), drawn])
    _, first = np.unique(genes, axis=0, return_index=True)
    genes = genes[np.sort(first)]  # distinct rows, in draw order
    if len(genes) < n:
        raise ConfigError(f"could only draw {len(genes)} distinct architectures for n={n}; ask for fewer")
    macs = macs_of_genes(space, genes)
    edges = np.linspace(macs.min(), macs.max(), strata + 1)
    stratum = np.clip(np.searchsorted(edges, macs, side="right") - 1, 0, strata - 1)
    members = [list(np.flatnonzero(stratum == s)) for s in range(strata)]
    chosen: list[int] = []
    for index in (int(np.argmin(macs)), int(np.argmax(macs))):  # the ends define the range to cover
        if index not in chosen and len(chosen) < n:
            chosen.append(index)
            members[stratum[index]].remove(index)
    quota = _quotas(n - len(chosen), [len(m) for m in members])
    for s, count in enumerate(quota):
        picks = rng.choice(len(members[s]), size=count, replace=False) if count else []
        chosen.extend(members[s][int(p)] for p in sorted(picks))
    return space.from_genes(genes[chosen])


def _quotas(total: int, available: list[int]) -> list[int]:
    """Split ``total`` as evenly as possible over strata holding ``available`` items."""
    quota = [0] * len(available)
    remaining = total
    open_strata = [s for s, a in enumerate(available) if a > 0]
    while remaining > 0 and open_strata:
        share = max(1, remaining // len(open_strata))
        for s in list(open_strata):
            take = min(share, available[s] - quota[s], remaining)
            quota[s] += take
            remaining -= take
            if quota[s] == available[s]:
                open_strata.remove(s)
            if remaining == 0:
                break
    return quota
