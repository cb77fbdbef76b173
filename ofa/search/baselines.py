"""Random search (the baseline every search must beat) and exhaustive
enumeration (the ground truth on spaces small enough to list)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError
from ..spaces import SearchSpace
from .problem import Evaluation, SearchProblem, SearchResult, best_of, rank, unique_rows

BATCH = 65536  # rows scored per call, so memory stays bounded on large budgets


def random_search(problem: SearchProblem, num_samples: int = 10000, seed: int = 0,
                  on_infeasible: str = "raise") -> SearchResult:
    """Best of ``num_samples`` uniformly sampled subnets."""
    if num_samples < 1:
        raise ConfigError(f"num_samples must be >= 1, got {num_samples}")
    rng = np.random.default_rng(seed)
    best = None
    for start in range(0, num_samples, BATCH):
        genes = problem.space.sample_genes(min(BATCH, num_samples - start), rng)
        scores = problem.evaluate(genes)
        if best is not None:  # keep the running winner in the next comparison
            scores = Evaluation.concatenate([best, scores])
        best = scores.take(rank(scores)[:1])
    return best_of(problem, best, "random", num_samples, seed, on_infeasible=on_infeasible)


def enumerate_genes(space: SearchSpace, limit: int = 2_000_000) -> np.ndarray:
    """Every architecture of ``space`` as a gene matrix (one row each).

    Walks the product of all gene choices in chunks, sets the genes each row
    does not use to -1, drops rows that break the space's constraints and
    removes the duplicates. Refuses
    spaces whose product of choices exceeds ``limit``."""
    counts = np.array([len(c) for c in space.gene_choices], dtype=np.int64)
    total = math.prod(int(c) for c in counts)
    if total > limit:
        raise ConfigError(f"the {space.type_name} space has {space.size()} architectures ({total} gene "
                          f"combinations), more than limit={limit} allows; use evolution_search instead")
    strides = np.concatenate([np.cumprod(counts[::-1])[::-1][1:], [1]])
    rows = []
    for start in range(0, total, BATCH):
        index = np.arange(start, min(total, start + BATCH), dtype=np.int64)[:, None]
        genes = (index // strides) % counts
        genes[~space.active_genes(genes)] = -1
        # keep the rows that are valid as they are: normalisation (which repairs
        # constraints between genes, e.g. heads dividing the width) leaves them unchanged
        repaired = space.normalize_genes(genes, np.random.default_rng(0))
        rows.append(genes[np.all(repaired == genes, axis=1)])
    genes = np.concatenate(rows)
    genes = genes[unique_rows(genes)]
    if len(genes) != space.size():
        raise ConfigError(f"enumeration found {len(genes)} architectures but the space reports {space.size()}")
    return genes


def exhaustive_search(problem: SearchProblem, limit: int = 2_000_000, on_infeasible: str = "raise") -> SearchResult:
    """The true optimum: score every architecture of a small space."""
    genes = enumerate_genes(problem.space, limit)
    return best_of(problem, problem.evaluate(genes), "exhaustive", len(genes), None, on_infeasible=on_infeasible)
