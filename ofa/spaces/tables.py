"""Additive tables: a space's cost (or any additive feature of its layers) as table lookups.

Many quantities of a network are sums over its layers (MACs, parameters, the
analytic features of the latency predictors), and a network's layers split
into *units* (a MobileNetV3 block, a Transformer layer) whose layers depend
only on the unit's own genes and a few global *context* genes (the
resolution, the embedding widths). Then

    value(genes) = fixed[context] + sum over units u of table_u[context, code_u]

which evaluates a whole gene matrix with a few ``np.take`` calls. The space
says how it decomposes (:meth:`SearchSpace.additive_layout`, a
:class:`TableLayout`); :func:`build_additive_tables` fills the tables by
probing ``space.cost`` one unit at a time. The cost model of the search
(:func:`ofa.search.cost_function`) and the predictors' featurizer are both
built on this one implementation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError
from .base import SKIPPED, LayerShape


@dataclass
class UnitGroup:
    """Units of the same kind (e.g. the 20 blocks of a MobileNetV3): each unit is
    decided by the same number of genes, with the same choice counts."""

    genes: np.ndarray  # (units, g) gene columns of each unit
    radix: np.ndarray  # (g,) number of choices of each of those genes
    tables: np.ndarray  # (units, contexts * codes, features)

    @property
    def num_codes(self) -> int:
        return int(np.prod(self.radix)) + 1

    def code(self, genes: np.ndarray, unit: int) -> np.ndarray:
        """0 where the unit is skipped (its genes are -1), else 1 + the mixed-radix index of its genes."""
        columns = self.genes[unit]
        code = np.zeros(len(genes), dtype=np.int64)
        for column, radix in zip(columns, self.radix):
            code = code * radix + genes[:, column]
        return np.where(genes[:, columns[0]] == SKIPPED, 0, code + 1)


@dataclass
class AdditiveTables:
    """Analytic features of a space as table sums:
    ``features(G) = fixed[context] + sum over units u of table_u[context, code_u]``
    where ``context`` is the mixed-radix index of a few global genes (the
    resolution; the embedding dimensions) and ``code_u`` encodes unit u's genes."""

    context_genes: np.ndarray  # (c,) gene columns
    context_radix: np.ndarray  # (c,) number of choices of each
    fixed: np.ndarray  # (contexts, features)
    groups: list  # of UnitGroup

    def context_index(self, genes: np.ndarray) -> np.ndarray:
        index = np.zeros(len(genes), dtype=np.int64)
        for column, radix in zip(self.context_genes, self.context_radix):
            index = index * radix + genes[:, column]
        return index

    def transform(self, genes: np.ndarray) -> np.ndarray:
        context = self.context_index(genes)
        out = self.fixed[context]  # fancy indexing copies: safe to add into
        for group in self.groups:
            row_base = context * group.num_codes
            for unit in range(len(group.genes)):
                out += np.take(group.tables[unit], row_base + group.code(genes, unit), axis=0)
        return out


@dataclass
class TableLayout:
    """How a space decomposes into additive units (what a table builder returns).

    ``template`` is a valid gene row in which every unit runs; probing sets the
    context genes and one group's units to every combination of choices,
    validates the row with ``space.from_genes`` (invalid combinations are
    skipped: they never occur), and reads the layers of each unit, found by
    ``unit_of_layer(name) -> (group, unit)`` (None for layers outside units,
    which must depend on the context only)."""

    context_genes: Sequence[int]
    groups: Sequence[Sequence[Sequence[int]]]  # per group, per unit, its gene columns
    unit_of_layer: Callable[[str], "tuple[int, int] | None"]
    template: np.ndarray


def build_additive_tables(space, layer_features: Callable[[Sequence[LayerShape]], np.ndarray], num_features: int,
                          layout: "TableLayout | None" = None) -> AdditiveTables:
    """Tables of ``layer_features`` (an additive function of a set of layers, e.g. MACs and parameters,
    or a predictor's analytic features) over the space's additive layout (``space.additive_layout()``)."""
    layout = layout or space.additive_layout()
    counts = space.choice_counts
    context_genes = np.asarray(layout.context_genes, dtype=np.int64)
    context_radix = counts[context_genes]
    num_contexts = int(np.prod(context_radix))
    fixed = np.full((num_contexts, num_features), np.nan)
    groups = []
    for unit_genes in layout.groups:
        unit_genes = np.asarray(unit_genes, dtype=np.int64)
        radix = counts[unit_genes[0]]
        groups.append(UnitGroup(unit_genes, radix, np.zeros((len(unit_genes), num_contexts * (int(np.prod(radix))
                                                                                           + 1), num_features))))
    for context, context_values in enumerate(itertools.product(*[range(r) for r in context_radix])):
        for g, group in enumerate(groups):
            for code, choice in enumerate(itertools.product(*[range(r) for r in group.radix]), start=1):
                row = np.array(layout.template, dtype=np.int64)
                row[context_genes] = context_values
                row[group.genes] = choice
                try:
                    arch = space.from_genes(row[None])[0]
                except ConfigError:  # a combination the space forbids: it never needs a table entry
                    continue
                per_unit: dict = {}
                rest = []
                for layer in space.cost(arch).layers:
                    owner = layout.unit_of_layer(layer.name)
                    (rest if owner is None else per_unit.setdefault(owner, [])).append(layer)
                for unit in range(len(group.genes)):
                    group.tables[unit, context * group.num_codes + code] = layer_features(per_unit.get((g, unit), []))
                fixed[context] = layer_features(rest)
    return AdditiveTables(context_genes, context_radix, np.nan_to_num(fixed), groups)


