"""Expected cost of a relaxed architecture: additive tables under independent choice probabilities.

A differentiable search holds one probability vector per gene (a softmax over
that gene's choices). Every quantity that is a sum over a network's units -
MACs, parameters, and the latency of a block-sum predictor (``predictors.blocks``:
a sum of block latencies, then an affine network correction) - is, by the
additive layout of the space (:mod:`ofa.spaces.tables`),

    value(genes) = fixed[context] + sum over units u of table_u[context, code_u]

so its expectation under independent choices is exact and differentiable:

    E[value] = sum_c P(c) * (fixed[c] + sum_u sum_code P_u(code) * table_u[c, code])

where ``P(c)`` multiplies the context genes' probabilities (the resolution),
and ``P_u(code)`` is the probability that unit ``u`` runs (read from the genes
that decide whether it runs: a stage's depth) times the product of its own
genes' probabilities, and ``P_u(0)`` the probability that it is skipped. With
one-hot probabilities the expectation is the table value of that one
architecture, i.e. the predictor's own prediction. This is the latency term of
FBNet (Wu et al., 2019) and ProxylessNAS (Cai et al., 2019), computed from the
package's own block tables instead of a per-layer lookup table.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError
from ..spaces.base import SKIPPED
from ..spaces.tables import AdditiveTables, build_additive_tables

MAX_ACTIVITY_COMBINATIONS = 4096  # gene values enumerated to find when one unit runs


@dataclass
class UnitActivity:
    """When a unit runs: ``runs[i]`` for the i-th combination of the values of ``genes``."""

    genes: tuple[int, ...]
    runs: np.ndarray  # (prod of choice counts,) bool

    def probability(self, probs: list[torch.Tensor]) -> torch.Tensor:
        if not self.genes:
            return torch.ones((), dtype=torch.float64)
        joint = _joint(probs, self.genes)
        return (joint * torch.as_tensor(self.runs, dtype=joint.dtype)).sum()


def _joint(probs: list[torch.Tensor], genes) -> torch.Tensor:
    """The flattened product distribution of ``genes`` in mixed-radix order (first gene most significant)."""
    joint = probs[genes[0]].to(torch.float64)
    for gene in genes[1:]:
        joint = (joint[:, None] * probs[gene].to(torch.float64)[None, :]).reshape(-1)
    return joint


def unit_activity(space, tables: AdditiveTables, template: np.ndarray) -> list[list[UnitActivity]]:
    """For every unit of every group: the genes outside the tables that decide whether it runs
    (found by probing ``space.active_genes`` one gene at a time) and the value combinations for which it runs."""
    counts = space.choice_counts
    template = np.asarray(template, dtype=np.int64)
    in_tables = set(int(g) for g in tables.context_genes)
    for group in tables.groups:
        in_tables.update(int(g) for g in np.asarray(group.genes).reshape(-1))
    others = [g for g in range(space.num_genes) if g not in in_tables]
    out = []
    for group in tables.groups:
        rows = []
        for unit_genes in group.genes:
            column = int(unit_genes[0])
            controlling = []
            for gene in others:
                seen = set()
                for value in range(int(counts[gene])):
                    row = template.copy()
                    row[gene] = value
                    seen.add(bool(space.active_genes(row[None])[0, column]))
                if len(seen) > 1:
                    controlling.append(gene)
            size = int(np.prod([counts[g] for g in controlling])) if controlling else 1
            if size > MAX_ACTIVITY_COMBINATIONS:
                raise ConfigError(f"unit starting at gene {column} runs depending on {len(controlling)} genes "
                                  f"({size} combinations, more than {MAX_ACTIVITY_COMBINATIONS}): the expected cost "
                                  f"cannot be enumerated for this space")
            runs = np.ones(size, dtype=bool)
            if controlling:
                for i, values in enumerate(itertools.product(*[range(int(counts[g])) for g in controlling])):
                    row = template.copy()
                    row[controlling] = values
                    runs[i] = bool(space.active_genes(row[None])[0, column])
            rows.append(UnitActivity(tuple(controlling), runs))
        out.append(rows)
    return out


class AdditiveRelaxation:
    """``offset + features(genes) @ weights`` over additive tables, exactly (numpy, on gene rows) and in
    expectation under independent per-gene probabilities (torch, differentiable).

    ``exact`` says whether the tables reproduce the quantity they stand for (block-sum predictors,
    MACs) or approximate it (an additive surrogate fitted to another predictor); ``report`` says how."""

    def __init__(self, space, tables: AdditiveTables, weights, offset: float = 0.0, name: str = "",
                 exact: bool = True, report: dict | None = None, template: np.ndarray | None = None):
        if space.additive_layout() is None:
            raise ConfigError(f"a {space.type_name} space has no additive layout: its cost cannot be relaxed")
        self.space, self.tables, self.name, self.exact = space, tables, name, exact
        self.weights = np.asarray(weights, dtype=np.float64).reshape(-1)
        self.offset = float(offset)
        self.report = dict(report or {})
        template = space.additive_layout().template if template is None else template
        self.activity = unit_activity(space, tables, template)
        self._fixed = torch.as_tensor(tables.fixed @ self.weights, dtype=torch.float64)  # (contexts,)
        self._units = []  # per group: (units, contexts, codes) of the weighted feature
        for group in tables.groups:
            codes = group.num_codes
            values = group.tables @ self.weights  # (units, contexts * codes)
            self._units.append(torch.as_tensor(values.reshape(len(group.genes), -1, codes), dtype=torch.float64))

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        genes = np.atleast_2d(np.asarray(genes, dtype=np.int64))
        return self.offset + self.tables.transform(genes) @ self.weights

    def expected(self, probs: list[torch.Tensor]) -> torch.Tensor:
        """The expectation under independent choices, ``probs[g]``: the probabilities of gene ``g``'s choices."""
        if len(probs) != self.space.num_genes:
            raise ConfigError(f"expected one probability vector per gene ({self.space.num_genes}), got {len(probs)}")
        if len(self.tables.context_genes):
            context = _joint(probs, [int(g) for g in self.tables.context_genes])
        else:
            context = torch.ones(1, dtype=torch.float64)
        total = (context * self._fixed).sum()
        for group, values, activity in zip(self.tables.groups, self._units, self.activity):
            for unit, unit_genes in enumerate(group.genes):
                runs = activity[unit].probability(probs)
                choice = _joint(probs, [int(g) for g in unit_genes]) * runs
                code = torch.cat([(1.0 - runs).reshape(1), choice])  # code 0: the unit is skipped
                total = total + context @ values[unit] @ code
        return self.offset + total

    def one_hot(self, genes: np.ndarray) -> list[torch.Tensor]:
        """Probabilities putting all mass on ``genes`` (a skipped gene: on its first choice, never counted)."""
        row = np.asarray(genes, dtype=np.int64).reshape(-1)
        out = []
        for gene, count in enumerate(self.space.choice_counts):
            p = torch.zeros(int(count), dtype=torch.float64)
            p[max(int(row[gene]), 0) if row[gene] != SKIPPED else 0] = 1.0
            out.append(p)
        return out


def _layer_costs(layers) -> np.ndarray:
    return np.array([sum(layer.macs for layer in layers),
                     sum(layer.params + layer.norm_params for layer in layers)], dtype=np.float64)


def cost_relaxation(space, metric: str) -> AdditiveRelaxation:
    """MACs or parameters as an :class:`AdditiveRelaxation` (exact on the space's additive tables)."""
    from .costs import COST_METRICS

    if metric not in COST_METRICS:
        raise ConfigError(f"cost metric {metric!r} unknown; allowed: {COST_METRICS}")
    if space.additive_layout() is None:
        raise ConfigError(f"a {space.type_name} space has no additive layout: its {metric} cannot be relaxed")
    tables = build_additive_tables(space, _layer_costs, 2)
    weights = np.zeros(2)
    weights[COST_METRICS.index(metric)] = 1.0
    relaxation = AdditiveRelaxation(space, tables, weights, name=metric)
    genes = space.normalize_genes(space.sample_genes(8, np.random.default_rng(0)))
    expected = np.array([float(getattr(space.cost(a), metric)) for a in space.from_genes(genes)])
    if not np.allclose(relaxation(genes), expected, rtol=0, atol=0.5):
        raise ConfigError(f"the additive tables of this {space.type_name} space do not reproduce its {metric} "
                          f"(parameters outside the units): relax MACs instead")
    relaxation.exact = True
    return relaxation
