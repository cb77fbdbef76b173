"""Metrics for predictors, always computed on held-out architectures.

Relative errors are what matters for latency (a 1 ms error is nothing on a
100 ms network and everything on a 2 ms one), so next to RMSE we report the
mean absolute percentage error and the share of predictions within +-5% and
+-10% of the measurement (nn-Meter's headline figure). Search only needs the
order of architectures to be right, hence the two rank correlations.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from ofa.errors import PredictorError


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if y_true.shape != y_pred.shape:
        raise PredictorError(f"y_true has {y_true.size} values but y_pred has {y_pred.size}")
    if y_true.size == 0:
        raise PredictorError("metrics need at least one held-out value")
    return y_true, y_pred


def rmse(y_true, y_pred) -> float:
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((y_pred - y_true) ** 2)))


def relative_errors(y_true, y_pred) -> np.ndarray:
    """``(pred - true) / true`` per value; the true values must be non-zero."""
    y_true, y_pred = _pair(y_true, y_pred)
    if np.any(y_true == 0):
        raise PredictorError("relative errors need non-zero true values (latencies are positive)")
    return (y_pred - y_true) / np.abs(y_true)


def mape(y_true, y_pred) -> float:
    """Mean absolute percentage error, in percent."""
    return float(100.0 * np.mean(np.abs(relative_errors(y_true, y_pred))))


def within(y_true, y_pred, tolerance: float) -> float:
    """Percentage of predictions whose relative error is at most ``tolerance`` (0.1 = +-10%)."""
    # A hair of slack so that an error of exactly 10% (which floating point may
    # compute as 0.10000000000000009) counts as within +-10%.
    return float(100.0 * np.mean(np.abs(relative_errors(y_true, y_pred)) <= tolerance + 1e-12))


def spearman(y_true, y_pred) -> float:
    y_true, y_pred = _pair(y_true, y_pred)
    if y_true.size < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return float("nan")  # rank correlation is undefined for constant input
    return float(stats.spearmanr(y_true, y_pred).statistic)


def kendall(y_true, y_pred) -> float:
    y_true, y_pred = _pair(y_true, y_pred)
    if y_true.size < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return float("nan")
    return float(stats.kendalltau(y_true, y_pred).statistic)


def regression_report(y_true, y_pred, relative: bool = True) -> dict:
    """Every metric in one dict (plain floats, JSON-ready).

    ``relative=False`` leaves out the percentage metrics, for targets such as
    top-1 accuracy or loss where a relative error means little."""
    y_true, y_pred = _pair(y_true, y_pred)
    report = {"n": int(y_true.size), "rmse": rmse(y_true, y_pred), "spearman": spearman(y_true, y_pred),
              "kendall": kendall(y_true, y_pred)}
    if relative:
        report.update(mape=mape(y_true, y_pred), within_5=within(y_true, y_pred, 0.05),
                      within_10=within(y_true, y_pred, 0.10))
    else:
        report["mae"] = float(np.mean(np.abs(y_pred - y_true)))
    return report


def interval_coverage(y_true, low, high) -> float:
    """Percentage of true values inside their predicted interval [low, high]."""
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    low, high = np.asarray(low).ravel(), np.asarray(high).ravel()
    if not (y_true.shape == low.shape == high.shape):
        raise PredictorError("y_true, low and high must have the same length")
    return float(100.0 * np.mean((y_true >= low) & (y_true <= high)))


def format_table(rows: dict[str, dict], columns=("within_5", "within_10", "mape", "rmse", "spearman", "kendall"),
                 first_column: str = "model") -> str:
    """A fixed-width text table: one row per name, one column per metric."""
    widths = [max(len(first_column), *(len(name) for name in rows))] + [max(9, len(c)) for c in columns]
    lines = ["  ".join([first_column.ljust(widths[0])] + [c.rjust(w) for c, w in zip(columns, widths[1:])])]
    for name, metrics in rows.items():
        cells = []
        for column, width in zip(columns, widths[1:]):
            value = metrics.get(column)
            cells.append(("-" if value is None else f"{value:.4g}" if abs(value) < 1 else f"{value:.2f}").rjust(width))
        lines.append("  ".join([name.ljust(widths[0])] + cells))
    return "\n".join(lines)
