"""Once-for-All's evolutionary search, vectorised over gene matrices.

Each generation keeps the best ``parent_ratio`` of the population as parents,
then fills the population with mutants of random parents (``mutation_ratio``)
and uniform crossovers of two random parents. Where the reference
implementation re-samples a child until it meets the budget (which never ends
when the budget is infeasible), we draw a batch a few times larger than needed,
score it in one call, and keep the best children by the feasibility rules
(feasible first, then the least over budget). Every step is bounded, so the
search always ends; an infeasible budget is then reported by :func:`best_of`.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .problem import Evaluation, SearchProblem, SearchResult, best_of, rank, unique_rows

OVERSAMPLE = 3  # candidates drawn per child slot; the feasible, distinct ones are kept


def evolution_search(
    problem: SearchProblem,
    population_size: int = 100,
    generations: int = 500,
    parent_ratio: float = 0.25,
    mutation_ratio: float = 0.5,
    mutate_prob: float = 0.1,
    seed: int = 0,
    on_infeasible: str = "raise",
    initial_genes: np.ndarray | None = None,
) -> SearchResult:
    """Maximise the objective under the budgets; deterministic for a seed.

    ``initial_genes`` seeds the first population (e.g. known good subnets).
    Returns the best feasible architecture, or see ``on_infeasible`` in
    :func:`best_of`."""
    if population_size < 4:
        raise ConfigError(f"population_size must be >= 4, got {population_size}")
    if generations < 0:
        raise ConfigError(f"generations must be >= 0, got {generations}")
    if not 0 < parent_ratio < 1 or not 0 <= mutation_ratio <= 1 or not 0 <= mutate_prob <= 1:
        raise ConfigError("need 0 < parent_ratio < 1, 0 <= mutation_ratio <= 1 and 0 <= mutate_prob <= 1; got "
                          f"{parent_ratio}, {mutation_ratio}, {mutate_prob}")
    space = problem.space
    rng = np.random.default_rng(seed)
    num_parents = max(2, int(round(parent_ratio * population_size)))
    num_mutants = int(round(mutation_ratio * population_size))
    num_crossovers = max(0, population_size - num_parents - num_mutants)

    # First population: random subnets, the smallest one (the most likely to fit a tight budget) and
    # the smallest one with each gene set to each of its values. Under a tight budget almost no random
    # subnet fits and the population grows out of the smallest; without the variants a costly value
    # of one gene (a higher resolution) can only be reached through children that are over budget,
    # and which basin the search ends in depends on the seed.
    smallest = space.to_genes(space.smallest())
    start = [smallest, space.normalize_genes(one_gene_variants(smallest[0], space.choice_counts), rng),
             space.sample_genes(OVERSAMPLE * population_size, rng)]
    if initial_genes is not None:
        start.insert(0, space.normalize_genes(np.atleast_2d(initial_genes), rng))
    candidates = np.concatenate(start)
    population = _select(problem.evaluate(candidates[unique_rows(candidates)]), population_size)
    evaluations = len(candidates)
    history = [_best_objective(population)]

    for _ in range(generations):
        parents = population.take(rank(population)[:num_parents])
        available = len(parents.genes)  # fewer than num_parents in a space with fewer subnets
        children = []
        if num_mutants:
            picks = rng.integers(0, available, OVERSAMPLE * num_mutants)
            children.append(space.mutate_genes(parents.genes[picks], rng, mutate_prob))
        if num_crossovers:
            a, b = rng.integers(0, available, (2, OVERSAMPLE * num_crossovers))
            children.append(space.crossover_genes(parents.genes[a], parents.genes[b], rng))
        children = np.concatenate(children) if children else np.zeros((0, space.num_genes), dtype=np.int64)
        children = children[unique_rows(children, exclude=parents.genes)]
        if len(children):  # (a tiny space can run out of new children)
            evaluations += len(children)
            offspring = _select(problem.evaluate(children), population_size - num_parents)
            population = Evaluation.concatenate([parents, offspring])
        else:
            population = parents
        history.append(_best_objective(population))

    return best_of(problem, population, "evolution", evaluations, seed, history, on_infeasible)


def one_gene_variants(genes: np.ndarray, choice_counts) -> np.ndarray:
    """Every copy of ``genes`` with one gene set to one of its values (one row per gene and value)."""
    rows = []
    for gene, count in enumerate(choice_counts):
        for value in range(int(count)):
            if genes[gene] != value:
                row = genes.copy()
                row[gene] = value
                rows.append(row)
    return np.array(rows, dtype=genes.dtype).reshape(-1, len(genes))


def _select(scores: Evaluation, count: int) -> Evaluation:
    return scores.take(rank(scores)[:count])


def _best_objective(scores: Evaluation) -> float:
    feasible = scores.feasible
    return float(scores.raw_objective[feasible][np.argmax(scores.objective[feasible])]) if feasible.any() else np.nan
