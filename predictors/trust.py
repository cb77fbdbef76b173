"""Whether a fitted predictor can be trusted to rank architectures.

Every predictor fitted by :func:`predictors.fit_accuracy_predictor` records
``metrics_["held_out"]``: the out-of-fold predictions of the chosen model
(k-fold cross-validation: each architecture predicted by a model that never
saw it) scored against the evaluations - Spearman and Kendall rank
correlation, RMSE and MAE, their number ``n``, and the spread of the target
(standard deviation and range). :func:`held_out_metrics` reads them (and
rebuilds what it can for predictors saved before they were recorded);
:func:`check_trustworthy` refuses a predictor that ranks badly or whose
errors are as large as the differences it is asked to resolve.

A search trusts the accuracy predictor to order subnets; with a held-out
Spearman of 0.3 the "best" subnet under a latency budget is close to a
random pick among those under the budget.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ofa.errors import PredictorError

DEFAULT_MIN_SPEARMAN = 0.5
# RMSE / standard deviation of the target: 1.0 is what predicting the mean
# achieves; with a rank correlation of 0.5 a linear predictor reaches ~0.87.
DEFAULT_MAX_RMSE_RATIO = 0.9


def held_out_summary(y, out_of_fold, method: str) -> dict:
    """The ``metrics_["held_out"]`` record from targets and out-of-fold predictions."""
    from .metrics import regression_report

    y = np.asarray(y, dtype=np.float64)
    report = regression_report(y, out_of_fold, relative=False)
    std = float(np.std(y))
    return {"method": method, "n": report["n"], "spearman": report["spearman"], "kendall": report["kendall"],
            "rmse": report["rmse"], "mae": report["mae"], "target_std": std, "target_range": float(np.ptp(y)),
            "rmse_over_std": report["rmse"] / std if std > 0 else float("nan")}


def held_out_metrics(predictor) -> dict:
    """The predictor's held-out metrics: ``metrics_["held_out"]``, or for a
    predictor saved without them the cross-validated metrics of its model
    (``target_std`` then unknown: None). Where the predictor was also scored
    on a separate test split (``tools/fit_predictor.py --test-fraction``:
    ``metrics_["test"]``), its Spearman, RMSE and size are added as
    ``test_spearman``, ``test_rmse``, ``test_n``. PredictorError if it has none."""
    metrics = getattr(predictor, "metrics_", None) or {}
    cv = (metrics.get("cv") or {}).get(getattr(predictor, "model_name", None))
    if metrics.get("held_out"):
        held = dict(metrics["held_out"])
    elif cv:
        held = {"method": "cross-validation (recorded metrics of the chosen model)", "n": cv.get("n"),
                "spearman": cv.get("spearman"), "kendall": cv.get("kendall"), "rmse": cv.get("rmse"),
                "mae": cv.get("mae"), "target_std": None, "target_range": None, "rmse_over_std": None}
    else:
        held = None
    test = metrics.get("test")
    if isinstance(test, dict) and isinstance(test.get("spearman"), (int, float)):
        held = held or {"method": "test split", "n": None, "spearman": None, "rmse": None, "target_std": None,
                        "rmse_over_std": None}
        held.update(test_spearman=test["spearman"], test_rmse=test.get("rmse"), test_n=test.get("n"))
    if held is not None:
        return held
    raise PredictorError(f"{predictor!r} records no held-out metrics, so nobody knows how well it ranks "
                         f"architectures; fit it with predictors.fit_accuracy_predictor (or "
                         f"tools/fit_predictor.py), which cross-validates it")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def check_trustworthy(predictor, min_spearman: float = DEFAULT_MIN_SPEARMAN,
                      max_rmse_ratio: float = DEFAULT_MAX_RMSE_RATIO, accept_untrusted: bool = False) -> dict:
    """Check that ``predictor`` ranks held-out architectures well enough to search with.

    Refused (:class:`~ofa.errors.PredictorError`, naming the figures and the
    way out) when its held-out Spearman rank correlation is below
    ``min_spearman`` or undefined (a constant target or prediction), or when
    its held-out RMSE exceeds ``max_rmse_ratio`` times the standard deviation
    of the target (no better than guessing near the mean). With
    ``accept_untrusted=True`` the same finding is a warning instead. Returns
    the held-out metrics with ``"trusted"`` (bool) and ``"reasons"`` added."""
    if not 0 <= min_spearman <= 1:
        raise PredictorError(f"min_spearman must be in [0, 1], got {min_spearman!r}")
    if not max_rmse_ratio > 0:
        raise PredictorError(f"max_rmse_ratio must be > 0, got {max_rmse_ratio!r}")
    try:
        held = held_out_metrics(predictor)
    except PredictorError:
        if not accept_untrusted:
            raise
        warnings.warn(f"{predictor!r} has no held-out metrics; used anyway (accept_untrusted)", stacklevel=2)
        return {"trusted": False, "reasons": ["no held-out metrics"]}
    reasons = []
    spearman, n = held.get("spearman"), held.get("n")
    if not _missing(held.get("test_spearman")):  # a separate test split, where there is one, has the last word
        spearman, n = held["test_spearman"], held.get("test_n")
    if _missing(spearman):
        reasons.append("its held-out Spearman rank correlation is undefined (constant targets or predictions)")
    elif spearman < min_spearman:
        reasons.append(f"its held-out Spearman rank correlation is {spearman:.3f} < {min_spearman} "
                       f"(on {n} architectures)")
    ratio = held.get("rmse_over_std")
    if not _missing(ratio) and ratio > max_rmse_ratio:
        reasons.append(f"its held-out RMSE {held['rmse']:.4g} is {ratio:.2f} x the standard deviation of the "
                       f"target ({held['target_std']:.4g}) > {max_rmse_ratio}")
    held.update(trusted=not reasons, reasons=reasons)
    if reasons:
        target = getattr(predictor, "target", "the target")
        message = (f"the {target} predictor cannot be trusted to rank architectures: " + "; ".join(reasons)
                   + ". Evaluate more subnets (tools/evaluate.py --archs random:N) and refit, use a task where "
                   "subnets differ by more than the evaluation noise, or accept it explicitly (accept_untrusted)")
        if not accept_untrusted:
            raise PredictorError(message)
        warnings.warn(message + " - used anyway (accept_untrusted)", stacklevel=2)
    return held


__all__ = ["DEFAULT_MAX_RMSE_RATIO", "DEFAULT_MIN_SPEARMAN", "check_trustworthy", "held_out_metrics",
           "held_out_summary"]
