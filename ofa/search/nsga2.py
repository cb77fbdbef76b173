"""NSGA-II (Deb et al., 2002) with pymoo, on the space's own gene operators.

pymoo runs the algorithm (non-dominated sorting, crowding distance, binary
tournaments, constraint domination); sampling, crossover and mutation are the
search space's vectorised gene functions, so every child is a valid subnet
(skipped blocks stay -1) and whole generations are scored in one call.
"""

from __future__ import annotations

import numpy as np

from ..errors import BackendUnavailableError, ConfigError
from .pareto import ParetoFront, ParetoProblem, front_from


def _pymoo():
    try:
        import pymoo  # noqa: F401
    except ImportError as error:
        raise BackendUnavailableError("NSGA-II needs pymoo: pip install 'pymoo>=0.6.1' "
                                      "(or pip install 'ofa-hw[search]')") from error
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.core.crossover import Crossover
    from pymoo.core.duplicate import DuplicateElimination
    from pymoo.core.mutation import Mutation
    from pymoo.core.problem import Problem
    from pymoo.core.sampling import Sampling
    from pymoo.optimize import minimize

    return NSGA2, Crossover, DuplicateElimination, Mutation, Problem, Sampling, minimize


def nsga2_search(problem: ParetoProblem, population_size: int = 100, generations: int = 100,
                 mutate_prob: float = 0.1, seed: int = 0, on_infeasible: str = "raise") -> ParetoFront:
    """The Pareto front of the problem's objectives found by NSGA-II.

    ``population_size * (generations + 1)`` architectures are evaluated at most
    (duplicates are removed before scoring). Deterministic for a seed."""
    if population_size < 4 or generations < 1:
        raise ConfigError(f"need population_size >= 4 and generations >= 1, got {population_size}, {generations}")
    NSGA2, Crossover, DuplicateElimination, Mutation, Problem, Sampling, minimize = _pymoo()
    space = problem.space
    counts = np.array([len(c) for c in space.gene_choices])
    evaluated = [0]

    class GeneProblem(Problem):
        def __init__(self):
            super().__init__(n_var=space.num_genes, n_obj=len(problem.objectives),
                             n_ieq_constr=len(problem.constraints), xl=-1, xu=counts - 1, vtype=int)

        def _evaluate(self, X, out, *args, **kwargs):
            _, F, excess = problem.evaluate(np.asarray(X, dtype=np.int64))
            evaluated[0] += len(X)
            out["F"] = F
            if problem.constraints:
                out["G"] = excess

    class GeneSampling(Sampling):
        def _do(self, _problem, n_samples, *args, random_state=None, **kwargs):
            return space.sample_genes(n_samples, random_state)

    class GeneCrossover(Crossover):
        def __init__(self):
            super().__init__(n_parents=2, n_offsprings=2)

        def _do(self, _problem, X, *args, random_state=None, **kwargs):
            a, b = np.asarray(X[0], dtype=np.int64), np.asarray(X[1], dtype=np.int64)
            return np.stack([space.crossover_genes(a, b, random_state), space.crossover_genes(b, a, random_state)])

    class GeneMutation(Mutation):
        def _do(self, _problem, X, *args, random_state=None, **kwargs):
            return space.mutate_genes(np.asarray(X, dtype=np.int64), random_state, mutate_prob)

    class RowDuplicates(DuplicateElimination):
        """Exact duplicate rows (pymoo's default compares float distances pairwise)."""

        def _do(self, pop, other, is_duplicate):
            from .problem import _row_keys

            X = np.ascontiguousarray(pop.get("X"), dtype=np.int64)
            keys = _row_keys(X)
            _, first = np.unique(keys, return_index=True)
            is_duplicate[:] = True
            is_duplicate[first] = False
            if other is not None and len(other):
                is_duplicate |= np.isin(keys, _row_keys(np.ascontiguousarray(other.get("X"), dtype=np.int64)))
            return is_duplicate

    algorithm = NSGA2(pop_size=population_size, sampling=GeneSampling(), crossover=GeneCrossover(),
                      mutation=GeneMutation(), eliminate_duplicates=RowDuplicates())
    result = minimize(GeneProblem(), algorithm, ("n_gen", generations), seed=seed, verbose=False,
                      save_history=False)
    final = np.asarray(result.pop.get("X"), dtype=np.int64)
    return front_from(problem, final, "nsga2", evaluated[0], seed, on_infeasible)
