"""What a search optimises: objectives and budgets as vectorised functions of genes.

Every quantity the search looks at - predicted accuracy, predicted latency on
a device, MACs, parameters - is a callable ``fn(genes) -> values`` taking an
integer gene matrix ``(n, space.num_genes)`` and returning ``n`` numbers. A
predictor's ``predict_genes`` method is exactly such a callable, so predictors
plug in directly, and whole populations are scored in one call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError, SearchError
from ..spaces import Architecture, SearchSpace

GeneFunction = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Objective:
    """A quantity to optimise. ``maximize=True`` for accuracy, False for loss or latency."""

    name: str
    fn: GeneFunction
    maximize: bool = True


@dataclass(frozen=True)
class Constraint:
    """A budget: ``fn(genes) <= limit`` must hold (e.g. latency on one device)."""

    name: str
    fn: GeneFunction
    limit: float
    unit: str = ""

    def __post_init__(self):
        if not np.isfinite(self.limit) or self.limit <= 0:
            raise ConfigError(f"budget {self.name} must be a positive finite number, got {self.limit!r}")

    def describe(self) -> str:
        return f"{self.name} <= {self.limit:g}{(' ' + self.unit) if self.unit else ''}"


def _evaluate(fn: GeneFunction, genes: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(fn(genes), dtype=np.float64).reshape(-1)
    if values.shape[0] != genes.shape[0]:
        raise ConfigError(f"{name} returned {values.shape[0]} values for {genes.shape[0]} architectures")
    if not np.all(np.isfinite(values)):
        raise SearchError(f"{name} returned non-finite values (NaN or inf); check the predictor or cost model")
    return values


@dataclass
class Evaluation:
    """Scores of a batch of gene rows.

    ``objective`` is always oriented so that larger is better (a minimised
    quantity is negated); ``raw_objective`` keeps the predictor's own units.
    ``violation`` is the total of each budget's relative excess (0 = feasible)."""

    genes: np.ndarray
    raw_objective: np.ndarray
    objective: np.ndarray
    constraints: np.ndarray  # (n, num_constraints), raw values
    violation: np.ndarray

    @property
    def feasible(self) -> np.ndarray:
        return self.violation <= 0.0

    def take(self, index) -> "Evaluation":
        return Evaluation(self.genes[index], self.raw_objective[index], self.objective[index],
                          self.constraints[index], self.violation[index])

    @staticmethod
    def concatenate(parts: Sequence["Evaluation"]) -> "Evaluation":
        return Evaluation(*(np.concatenate([getattr(p, name) for p in parts]) for name in
                            ("genes", "raw_objective", "objective", "constraints", "violation")))


@dataclass
class SearchProblem:
    """A space, one objective and any number of budgets.

    >>> problem = SearchProblem(space, Objective("top1", acc.predict_genes),
    ...                         [Constraint("latency_ms@cpu-ort", lat.predict_genes, 5.0)])
    """

    space: SearchSpace
    objective: Objective
    constraints: list[Constraint] = field(default_factory=list)

    def __post_init__(self):
        names = [c.name for c in self.constraints]
        if len(set(names)) != len(names):
            raise ConfigError(f"two budgets share a name: {names}; give each budget its own name")
        self.constraints = list(self.constraints)

    def evaluate(self, genes: np.ndarray) -> Evaluation:
        genes = np.asarray(genes, dtype=np.int64).reshape(-1, self.space.num_genes)
        raw = _evaluate(self.objective.fn, genes, self.objective.name)
        values = np.empty((len(genes), len(self.constraints)))
        for j, constraint in enumerate(self.constraints):
            values[:, j] = _evaluate(constraint.fn, genes, constraint.name)
        limits = np.array([c.limit for c in self.constraints])
        excess = np.maximum(values / limits - 1.0, 0.0) if self.constraints else np.zeros((len(genes), 0))
        return Evaluation(genes, raw, raw if self.objective.maximize else -raw, values, excess.sum(axis=1))

    def smallest_report(self) -> str:
        """The budgets against the smallest subnet's predicted values, for error messages."""
        smallest = self.space.to_genes(self.space.smallest())
        scores = self.evaluate(smallest)
        parts = [f"{c.name} = {scores.constraints[0, j]:.4g}{(' ' + c.unit) if c.unit else ''} "
                 f"(budget {c.limit:g})" for j, c in enumerate(self.constraints)]
        return "the smallest subnet has " + ", ".join(parts)


@dataclass
class SearchResult:
    """The best architecture a search found and how it got there."""

    space: SearchSpace
    genes: np.ndarray  # (num_genes,)
    objective_name: str
    objective: float  # in the objective's own units
    constraints: dict[str, float]
    budgets: dict[str, float]
    feasible: bool
    method: str
    num_evaluations: int
    seed: int | None = None
    history: list[float] = field(default_factory=list)  # best objective after each generation

    @property
    def arch(self) -> Architecture:
        return self.space.from_genes(self.genes[None, :])[0]

    def to_dict(self) -> dict:
        return {
            "arch": self.arch.to_dict(), "objective_name": self.objective_name, "objective": self.objective,
            "constraints": self.constraints, "budgets": self.budgets, "feasible": self.feasible,
            "method": self.method, "num_evaluations": self.num_evaluations, "seed": self.seed,
        }


def best_of(problem: SearchProblem, scores: Evaluation, method: str, num_evaluations: int,
            seed: int | None = None, history: list[float] | None = None,
            on_infeasible: str = "raise") -> SearchResult:
    """Pick the winner of ``scores`` by the feasibility rules.

    With no feasible row: ``on_infeasible="raise"`` raises :class:`SearchError`
    quoting the smallest subnet's predicted values; ``"nearest"`` returns the
    row closest to the budgets (``feasible=False``)."""
    if on_infeasible not in ("raise", "nearest"):
        raise ConfigError(f"on_infeasible={on_infeasible!r}; allowed: 'raise', 'nearest'")
    order = rank(scores)
    i = int(order[0])
    feasible = bool(scores.feasible[i])
    if not feasible and on_infeasible == "raise":
        budgets = ", ".join(c.describe() for c in problem.constraints)
        raise SearchError(f"no architecture meets the budgets ({budgets}) after {num_evaluations} evaluations; "
                          f"{problem.smallest_report()}. Loosen the budgets, or pass on_infeasible='nearest' "
                          f"(--nearest) to get the closest architecture.")
    return SearchResult(
        space=problem.space, genes=scores.genes[i].copy(), objective_name=problem.objective.name,
        objective=float(scores.raw_objective[i]),
        constraints={c.name: float(scores.constraints[i, j]) for j, c in enumerate(problem.constraints)},
        budgets={c.name: float(c.limit) for c in problem.constraints}, feasible=feasible, method=method,
        num_evaluations=num_evaluations, seed=seed, history=list(history or []),
    )


def rank(scores: Evaluation) -> np.ndarray:
    """Indices from best to worst by Deb's feasibility rules: feasible rows by
    objective (best first), then infeasible rows by total violation (least
    first). Ties keep their order, so ranking is deterministic."""
    key_primary = scores.violation  # 0 for every feasible row
    key_secondary = np.where(scores.feasible, -scores.objective, 0.0)
    return np.lexsort((key_secondary, key_primary))


def unique_rows(genes: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """Indices of the first occurrence of each distinct row of ``genes``, in
    order, leaving out rows that also appear in ``exclude``."""
    genes = np.ascontiguousarray(genes, dtype=np.int64)
    if len(genes) == 0:
        return np.zeros(0, dtype=np.int64)
    keys = _row_keys(genes)
    _, first = np.unique(keys, return_index=True)
    first = np.sort(first)
    if exclude is not None and len(exclude):
        first = first[~np.isin(keys[first], _row_keys(np.ascontiguousarray(exclude, dtype=np.int64)))]
    return first


def _row_keys(genes: np.ndarray) -> np.ndarray:
    return genes.view(np.dtype((np.void, genes.dtype.itemsize * genes.shape[1]))).reshape(-1)
