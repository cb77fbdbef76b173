"""Pareto fronts: several objectives at once (e.g. accuracy vs latency per
device), non-dominated filtering and hypervolume."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import BackendUnavailableError, ConfigError, SearchError
from ..spaces import Architecture, SearchSpace
from .problem import Constraint, Objective, _evaluate


@dataclass
class ParetoProblem:
    """A space, two or more objectives, and optional budgets."""

    space: SearchSpace
    objectives: list[Objective]
    constraints: list[Constraint] = field(default_factory=list)

    def __post_init__(self):
        if len(self.objectives) < 2:
            raise ConfigError("a Pareto search needs at least two objectives; use evolution_search for one")
        self.objectives, self.constraints = list(self.objectives), list(self.constraints)

    @property
    def names(self) -> list[str]:
        return [o.name for o in self.objectives]

    def evaluate(self, genes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw objective values (n, k), the same turned into minimisation
        form (maximised ones negated), and budget excess (n, c; <= 0 is fine)."""
        genes = np.asarray(genes, dtype=np.int64).reshape(-1, self.space.num_genes)
        raw = np.stack([_evaluate(o.fn, genes, o.name) for o in self.objectives], axis=1)
        signs = np.array([-1.0 if o.maximize else 1.0 for o in self.objectives])
        excess = np.stack([_evaluate(c.fn, genes, c.name) / c.limit - 1.0 for c in self.constraints], axis=1) \
            if self.constraints else np.zeros((len(genes), 0))
        return raw, raw * signs, excess


@dataclass
class ParetoFront:
    """Non-dominated architectures, sorted by the first objective."""

    space: SearchSpace
    genes: np.ndarray  # (m, num_genes)
    names: list[str]
    values: np.ndarray  # (m, k), each objective in its own units
    maximize: list[bool]
    method: str
    num_evaluations: int
    seed: int | None = None

    def __len__(self) -> int:
        return len(self.genes)

    def archs(self) -> list[Architecture]:
        return self.space.from_genes(self.genes)

    def minimization_form(self) -> np.ndarray:
        return self.values * np.array([-1.0 if m else 1.0 for m in self.maximize])

    def to_records(self) -> list[dict]:
        return [{"arch": arch.to_dict(), **{n: float(v) for n, v in zip(self.names, row)}}
                for arch, row in zip(self.archs(), self.values)]


def pareto_mask(F: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``F`` (all objectives
    minimised). Of identical rows only the first is kept."""
    F = np.asarray(F, dtype=np.float64)
    n = len(F)
    if n == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort(F.T[::-1])  # by first objective, then the next, ...
    keep = np.zeros(n, dtype=bool)
    front = np.empty((0, F.shape[1]))
    for i in order:
        # a point sorted later can never dominate one sorted earlier, so one pass suffices
        if len(front) and np.any(np.all(front <= F[i], axis=1)):
            continue
        keep[i] = True
        front = np.vstack([front, F[i]])
    return keep


def front_from(problem: ParetoProblem, genes: np.ndarray, method: str, num_evaluations: int,
               seed: int | None = None, on_infeasible: str = "raise") -> ParetoFront:
    """The non-dominated feasible subset of ``genes``."""
    raw, F, excess = problem.evaluate(genes)
    feasible = np.all(excess <= 0, axis=1)
    if not feasible.any():
        if on_infeasible == "raise":
            budgets = ", ".join(c.describe() for c in problem.constraints)
            raise SearchError(f"no architecture meets the budgets ({budgets}) after {num_evaluations} evaluations; "
                              "loosen the budgets")
        feasible = np.maximum(excess, 0).sum(axis=1) == np.maximum(excess, 0).sum(axis=1).min()
    index = np.flatnonzero(feasible)
    index = index[pareto_mask(F[index])]
    index = index[np.lexsort(F[index].T[::-1])]
    return ParetoFront(problem.space, genes[index], problem.names, raw[index],
                       [o.maximize for o in problem.objectives], method, num_evaluations, seed)


def hypervolume(F: np.ndarray, reference: np.ndarray) -> float:
    """Volume dominated by the rows of ``F`` (minimised) up to ``reference``.

    Exact sweep for two objectives; pymoo's algorithm for more."""
    F = np.asarray(F, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    F = F[np.all(F < reference, axis=1)]
    if len(F) == 0:
        return 0.0
    if F.shape[1] == 2:
        F = F[pareto_mask(F)]
        F = F[np.argsort(F[:, 0])]  # second objective now decreases
        widths = np.diff(np.append(F[:, 0], reference[0]))
        return float(np.sum(widths * (reference[1] - F[:, 1])))
    try:
        from pymoo.indicators.hv import HV
    except ImportError as error:
        raise BackendUnavailableError("hypervolume of 3+ objectives needs pymoo: pip install pymoo") from error
    return float(HV(ref_point=reference)(F))


def random_front(problem: ParetoProblem, num_samples: int = 10000, seed: int = 0,
                 on_infeasible: str = "raise") -> ParetoFront:
    """Pareto front of ``num_samples`` random subnets: the baseline for NSGA-II."""
    genes = problem.space.sample_genes(num_samples, np.random.default_rng(seed))
    return front_from(problem, genes, "random", num_samples, seed, on_infeasible)
