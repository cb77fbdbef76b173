"""A latency predictor as a differentiable cost: its expected value under relaxed choices.

For a block-sum predictor (:func:`predictors.blocks.fit_block_predictor`) the
prediction is ``c0 + c1 * (overhead + sum of block latencies) + c2 * number of blocks``,
and both sums are additive tables of the space, so the relaxed expected latency
is exact (:class:`ofa.search.relaxation.AdditiveRelaxation`): with one-hot
probabilities it is the predictor's own value.

Any other predictor (a network-level model: gradient boosting, MLP, LUT on
analytic features) is not a sum over blocks; for it :func:`relaxed_latency`
fits an additive surrogate on the same layout, one value per (context, unit,
choice) table entry, by least squares on the predictor's predictions for
random architectures, and reports the surrogate's error on other random
architectures (``relaxation.report``). The search uses the surrogate only for
the gradient; budgets are checked with the predictor itself.
"""

from __future__ import annotations

import numpy as np

from ofa.errors import ConfigError
from ofa.search.relaxation import AdditiveRelaxation
from ofa.spaces.tables import AdditiveTables, UnitGroup

from .blocks import BlockSumRegressor

SURROGATE_SAMPLES_PER_COLUMN = 4  # random architectures per fitted table entry
SURROGATE_RIDGE = 1e-6  # relative to the design's scale: entries no sample reaches stay near 0


def block_sum_regressor(predictor) -> "BlockSumRegressor | None":
    """The block-sum regressor behind ``predictor``, or None for any other model."""
    estimator = getattr(predictor, "estimator", None)
    steps = getattr(estimator, "steps", None)
    if not steps:
        return None
    model = steps[-1][1]
    featurizer = steps[0][1]
    if isinstance(model, BlockSumRegressor) and len(steps) == 2 and getattr(featurizer, "features", None) == "genes":
        return model
    return None


def relaxed_latency(predictor, name: str | None = None, samples: int | None = None, seed: int = 0
                    ) -> AdditiveRelaxation:
    """The differentiable expected latency of ``predictor`` (a :class:`~predictors.core.LatencyPredictor`):
    exact for block-sum predictors, an additive least-squares surrogate otherwise (module docstring)."""
    space = predictor.space
    if space.additive_layout() is None:
        raise ConfigError(f"a {space.type_name} space has no additive layout: its latency cannot be relaxed")
    name = name or f"latency_ms@{getattr(predictor, 'device', 'device')}"
    regressor = block_sum_regressor(predictor)
    if regressor is not None:
        coef = np.asarray(regressor.coef_, dtype=np.float64)
        relaxation = AdditiveRelaxation(space, regressor.tables_, [coef[1], coef[2]],
                                        offset=coef[0] + coef[1] * regressor.overhead_, name=name, exact=True)
        low, high = predictor.output_range
        if low > -np.inf:  # a clipped prediction is no longer affine in the tables
            genes = space.sample_genes(64, np.random.default_rng(seed))
            if np.any(relaxation(genes) < low) or np.any(relaxation(genes) > high):
                relaxation.exact = False
        return relaxation
    return _surrogate(space, predictor.predict_genes, name, samples, seed)


def _surrogate(space, fn, name: str, samples: int | None, seed: int) -> AdditiveRelaxation:
    layout = space.additive_layout()
    counts = space.choice_counts
    context_genes = np.asarray(layout.context_genes, dtype=np.int64)
    context_radix = counts[context_genes]
    contexts = int(np.prod(context_radix)) if len(context_genes) else 1
    groups = []
    for unit_genes in layout.groups:
        unit_genes = np.asarray(unit_genes, dtype=np.int64)
        radix = counts[unit_genes[0]]
        codes = int(np.prod(radix)) + 1
        groups.append(UnitGroup(unit_genes, radix, np.zeros((len(unit_genes), contexts * codes, 1))))
    tables = AdditiveTables(context_genes, context_radix, np.zeros((contexts, 1)), groups)
    columns = contexts + sum(len(g.genes) * contexts * g.num_codes for g in groups)
    n = samples or max(512, SURROGATE_SAMPLES_PER_COLUMN * columns)
    rng = np.random.default_rng(seed)
    fit_genes = space.normalize_genes(space.sample_genes(n, rng), rng)
    test_genes = space.normalize_genes(space.sample_genes(max(64, n // 4), rng), rng)

    def design(genes):
        context = tables.context_index(genes)
        rows = np.arange(len(genes))
        X = np.zeros((len(genes), columns))
        X[rows, context] = 1.0
        offset = contexts
        for group in groups:
            for unit in range(len(group.genes)):
                X[rows, offset + context * group.num_codes + group.code(genes, unit)] = 1.0
                offset += contexts * group.num_codes
        return X

    y = np.asarray(fn(fit_genes), dtype=np.float64)
    X = design(fit_genes)
    gram = X.T @ X
    ridge = SURROGATE_RIDGE * float(np.trace(gram)) / columns
    coef = np.linalg.solve(gram + ridge * np.eye(columns), X.T @ y)
    tables.fixed[:, 0] = coef[:contexts]
    offset = contexts
    for group in groups:
        for unit in range(len(group.genes)):
            size = contexts * group.num_codes
            group.tables[unit, :, 0] = coef[offset:offset + size]
            offset += size
    relaxation = AdditiveRelaxation(space, tables, [1.0], name=name, exact=False)
    truth = np.asarray(fn(test_genes), dtype=np.float64)
    approx = relaxation(test_genes)
    relative = np.abs(approx - truth) / np.maximum(np.abs(truth), 1e-12)
    relaxation.report = {"kind": "additive least-squares surrogate of a network-level predictor",
                         "fitted_on": int(n), "tested_on": int(len(test_genes)),
                         "test_mape_percent": round(float(100 * relative.mean()), 3),
                         "test_max_relative_error_percent": round(float(100 * relative.max()), 3)}
    return relaxation
