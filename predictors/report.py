"""The held-out report of a fitted predictor: how it (and the models it is compared with)
predicts rows it was not fitted on.

One report for every way of fitting (architectures from a profile or evaluations, block sums and
transfer, plain feature tables):

* :func:`score_held_out` scores the saved predictor and the compared models on the held-out rows
  (regression metrics of each, interval coverage of the saved one where it has intervals);
* :func:`record_held_out` writes the figures into ``predictor.metrics_`` (``test``,
  ``test_all_models``, ``n_test``, ``interval_coverage_test``), where :mod:`predictors.trust`
  and the reports read them: the one place that does (:func:`record_nothing_held_out` where
  every row was fitted);
* :func:`write_held_out` records them, saves the predictor, prints the comparison table and the
  coverage, draws the parity plot and writes the JSON summary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ofa.io import atomic_write_json

from .base import SpacePredictor, json_safe
from .metrics import format_table, interval_coverage, regression_report
from .plots import save_parity_plot

COVERAGE_LEVELS = (0.8, 0.9)  # the interval levels whose held-out coverage is reported
LATENCY_COLUMNS = ("within_5", "within_10", "mape", "rmse", "spearman", "kendall")
ACCURACY_COLUMNS = ("rmse", "mae", "spearman", "kendall")


@dataclass
class HeldOutReport:
    """The saved predictor (``chosen``) and the compared models on the same held-out rows.

    ``predictions`` maps each model's name (the chosen first) to its predictions of ``y``;
    ``coverage`` the share of held-out rows inside the chosen predictor's intervals
    (``{"80%": ...}``, empty without intervals); ``relative``: latency-style metrics
    (within +-5/10 %, MAPE) beside the absolute ones."""

    y: np.ndarray
    chosen: str
    predictions: dict[str, np.ndarray]
    relative: bool = True
    coverage: dict[str, float] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, dict]:
        return {name: regression_report(self.y, prediction, relative=self.relative)
                for name, prediction in self.predictions.items()}

    @property
    def n_test(self) -> int:
        return int(len(self.y))

    def table(self, columns: tuple[str, ...] | None = None) -> str:
        """The comparison table, the saved predictor first and marked ``*``."""
        metrics = self.metrics
        return format_table({(name + " *" if name == self.chosen else name): metrics[name] for name in metrics},
                            columns or (LATENCY_COLUMNS if self.relative else ACCURACY_COLUMNS))

    def coverage_line(self, what: str = "architectures") -> str:
        return (f"interval coverage on held-out {what}: "
                + ", ".join(f"{level} interval -> {share:.1f}%" for level, share in self.coverage.items()))


def score_held_out(predict: Callable[[np.ndarray], np.ndarray], X: np.ndarray, y: np.ndarray, chosen: str,
                   compared: dict[str, np.ndarray] | None = None,
                   interval: Callable[[np.ndarray, float], tuple[np.ndarray, np.ndarray]] | None = None,
                   relative: bool = True) -> HeldOutReport:
    """Score the saved predictor (``predict``, named ``chosen``) on held-out rows ``X, y``, beside
    ``compared`` (name -> predictions of the same rows); ``interval(X, level)`` gives its
    prediction intervals, whose coverage is measured at :data:`COVERAGE_LEVELS`."""
    y = np.asarray(y, dtype=np.float64)
    predictions = {chosen: np.asarray(predict(X), dtype=np.float64)}
    for name, prediction in (compared or {}).items():
        if name != chosen:
            predictions[name] = np.asarray(prediction, dtype=np.float64)
    coverage = {}
    if interval is not None:
        for level in COVERAGE_LEVELS:
            low, high = interval(X, level)
            coverage[f"{level:.0%}"] = interval_coverage(y, low, high)
    return HeldOutReport(y, chosen, predictions, relative, coverage)


def record_held_out(predictor: SpacePredictor, report: HeldOutReport) -> None:
    """Write the held-out figures into ``predictor.metrics_`` (what a saved predictor keeps)."""
    metrics = report.metrics
    predictor.metrics_["test"] = metrics[report.chosen]
    predictor.metrics_["test_all_models"] = metrics
    predictor.metrics_["n_test"] = report.n_test
    if report.coverage:
        predictor.metrics_["interval_coverage_test"] = dict(report.coverage)


def record_nothing_held_out(predictor: SpacePredictor, why: str) -> None:
    """Say in ``predictor.metrics_`` that no rows were held out (``why``): its cross-validated
    metrics stand in for held-out ones."""
    predictor.metrics_.update(test=None, n_test=0, metrics_source=f"cross-validation on every row ({why})")


def write_held_out(predictor: SpacePredictor, report: HeldOutReport, out: str | os.PathLike,
                   plot_path: str | os.PathLike, json_path: str | os.PathLike, summary: dict, intro: str,
                   title: str, unit: str = "ms", band: float | None = 0.10, plotted: dict[str, str] | None = None,
                   columns: tuple[str, ...] | None = None, what: str = "architectures", log=print) -> dict:
    """Record the report in the predictor, save it to ``out``, print ``intro``, the table and the
    coverage, draw the parity plot (``plotted``: legend label -> model shown, default every model) and write
    ``summary`` with the held-out figures (``test``, ``n_test``, ``interval_coverage_test``) to
    ``json_path``. Returns the JSON summary."""
    record_held_out(predictor, report)
    predictor.save(out)
    log(intro)
    log(report.table(columns))
    if report.coverage:
        log(report.coverage_line(what))
    plotted = plotted or {name: name for name in report.predictions}
    shown = {label: report.predictions[name] for label, name in plotted.items()}
    save_parity_plot(Path(plot_path), report.y, shown, title, unit=unit, band=band)
    summary = {**summary, "test": report.metrics, "n_test": report.n_test}
    if report.coverage:
        summary["interval_coverage_test"] = dict(report.coverage)
    atomic_write_json(Path(json_path), json_safe(summary))
    log(f"wrote {out}, {plot_path}, {json_path}")
    return summary


__all__ = ["ACCURACY_COLUMNS", "COVERAGE_LEVELS", "HeldOutReport", "LATENCY_COLUMNS", "record_held_out",
           "record_nothing_held_out",
           "score_held_out", "write_held_out"]
