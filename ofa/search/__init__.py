"""Specialisation search: the best subnet under device budgets, and Pareto fronts.

Objectives and budgets are vectorised functions of gene matrices
(``predictor.predict_genes`` plugs in directly):

    >>> from ofa.search import Objective, Constraint, SearchProblem, evolution_search
    >>> problem = SearchProblem(space, Objective("top1", accuracy.predict_genes),
    ...                         [Constraint("latency_ms@cpu-ort", latency.predict_genes, 5.0, "ms")])
    >>> result = evolution_search(problem, population_size=100, generations=500, seed=0)
    >>> result.arch, result.objective, result.constraints

* :func:`evolution_search` - Once-for-All's evolutionary search, several budgets at once;
* :func:`nsga2_search` - the Pareto front of several objectives with NSGA-II (pymoo);
* :func:`differentiable_search` - gradient search on the supernet with the expected latency
  as a cost (frozen weights, DARTS first/second order, YOSO), :class:`DifferentiableConfig`;
* :func:`haq_search` - HAQ's DDPG agent over the bit-widths of one architecture (spaces with
  precision), :class:`HAQConfig`, :func:`fixed_architecture`;
* :func:`random_search`, :func:`random_front` - baselines;
* :func:`exhaustive_search`, :func:`enumerate_genes` - ground truth on small spaces;
* :func:`cost_function` - vectorised MACs / parameters for budgets;
* :func:`pareto_mask`, :func:`hypervolume` - Pareto utilities.
"""

from .baselines import enumerate_genes, exhaustive_search, random_search
from .costs import cost_function
from .differentiable import DifferentiableConfig, differentiable_search
from .evolution import evolution_search
from .haq import HAQConfig, fixed_architecture, haq_search, with_architecture
from .nsga2 import nsga2_search
from .pareto import ParetoFront, ParetoProblem, front_from, hypervolume, pareto_mask, random_front
from .problem import Constraint, Evaluation, Objective, SearchProblem, SearchResult, best_of, rank, unique_rows
from .synthetic import SyntheticObjectives

__all__ = [
    "Constraint", "DifferentiableConfig", "Evaluation", "HAQConfig", "Objective", "ParetoFront", "ParetoProblem",
    "SearchProblem",
    "SearchResult", "SyntheticObjectives", "best_of", "cost_function", "differentiable_search", "enumerate_genes",
    "evolution_search", "exhaustive_search", "fixed_architecture", "front_from", "haq_search", "hypervolume",
    "nsga2_search", "pareto_mask", "random_front", "random_search", "rank", "unique_rows", "with_architecture",
]
