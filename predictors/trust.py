"""Whether a fitted predictor can be trusted to rank architectures: the one rule.

Every predictor fitted by :func:`predictors.fit_accuracy_predictor` records
``metrics_["held_out"]``: the out-of-fold predictions of the chosen model
(k-fold cross-validation: each architecture predicted by a model that never
saw it) scored against the evaluations - Spearman and Kendall rank
correlation, RMSE and MAE, their number ``n``, and the spread of the target
(standard deviation and range). :func:`held_out_metrics` reads them (and
rebuilds what it can for predictors saved before they were recorded);
:func:`check_trustworthy` refuses a predictor that ranks badly or whose
errors are as large as the differences it is asked to resolve.

The rule, used by every caller (:func:`ofa_pipeline.specialize.specialize` and
``ofa-specialize``), with its default thresholds:

* the held-out Spearman rank correlation is at least :data:`DEFAULT_MIN_SPEARMAN` (0.5);
* the held-out RMSE is at most :data:`DEFAULT_MAX_RMSE_RATIO` (0.9) times the standard
  deviation of the target (1.0 is what predicting the mean achieves);
* a separate test split, where the predictor was scored on one (``ofa-fit-predictor
  --test-fraction``: ``metrics_["test"]``), has the last word on both figures;
* a converted published predictor (``metrics_["reference"]``, validated by its authors)
  that records no held-out figures of its own is accepted as such.

A search trusts the accuracy predictor to order subnets; with a held-out
Spearman of 0.3 the "best" subnet under a latency budget is close to a
random pick among those under the budget.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ofa.errors import PredictorError

from .metrics import regression_report

DEFAULT_MIN_SPEARMAN = 0.5
# RMSE / standard deviation of the target: 1.0 is what predicting the mean
# achieves; with a rank correlation of 0.5 a linear predictor reaches ~0.87.
DEFAULT_MAX_RMSE_RATIO = 0.9


def held_out_summary(y, out_of_fold, method: str) -> dict:
    """The ``metrics_["held_out"]`` record from targets and out-of-fold predictions."""
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
    on a separate test split (``ofa-fit-predictor --test-fraction``:
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
    if isinstance(metrics.get("reference"), dict):
        return {"method": "published reference predictor (validated by its authors, not re-scored here)",
                "n": None, "spearman": None, "kendall": None, "rmse": None, "mae": None, "target_std": None,
                "target_range": None, "rmse_over_std": None, "reference": True}
    raise PredictorError(f"{predictor!r} records no held-out metrics, so nobody knows how well it ranks "
                         f"architectures; fit it with predictors.fit_accuracy_predictor (or "
                         f"ofa-fit-predictor), which cross-validates it")


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def check_trustworthy(predictor, min_spearman: float = DEFAULT_MIN_SPEARMAN,
                      max_rmse_ratio: float = DEFAULT_MAX_RMSE_RATIO, accept_untrusted: bool = False,
                      name: str | None = None, way_out: str = "accept it explicitly (accept_untrusted=True)") -> dict:
    """Check that ``predictor`` ranks held-out architectures well enough to search with.

    Refused (:class:`~ofa.errors.PredictorError`, naming the figures and the
    way out) when its held-out Spearman rank correlation is below
    ``min_spearman`` or undefined (a constant target or prediction), or when
    its held-out RMSE exceeds ``max_rmse_ratio`` times the standard deviation
    of the target (no better than guessing near the mean). With
    ``accept_untrusted=True`` the same finding is a warning instead. Returns
    the held-out metrics with ``"trusted"`` (bool) and ``"reasons"`` added.

    ``name`` says which predictor the message is about (a file, an option);
    ``way_out`` how a caller accepts it anyway (a command names its option)."""
    if not -1 <= min_spearman <= 1:
        raise PredictorError(f"min_spearman must be in [-1, 1], got {min_spearman!r}")
    if not max_rmse_ratio > 0:
        raise PredictorError(f"max_rmse_ratio must be > 0, got {max_rmse_ratio!r}")
    try:
        held = held_out_metrics(predictor)
    except PredictorError as error:
        if not accept_untrusted:
            raise PredictorError(f"{error}; or {way_out}") from None
        warnings.warn(f"{predictor!r} has no held-out metrics; used anyway (accept_untrusted)", stacklevel=2)
        return {"trusted": False, "reasons": ["no held-out metrics"]}
    if held.get("reference"):
        held.update(trusted=True, reasons=[])
        return held
    reasons = []
    spearman, n = held.get("spearman"), held.get("n")
    ratio, rmse = held.get("rmse_over_std"), held.get("rmse")
    if not _missing(held.get("test_spearman")):  # a separate test split, where there is one, has the last word
        spearman, n = held["test_spearman"], held.get("test_n")
        rmse = held.get("test_rmse")
        std = held.get("target_std")
        ratio = rmse / std if not _missing(rmse) and not _missing(std) and std > 0 else None
    if _missing(spearman):
        reasons.append("its held-out Spearman rank correlation is undefined (constant targets or predictions)")
    elif spearman < min_spearman:
        reasons.append(f"its held-out Spearman rank correlation is {spearman:.3f} < {min_spearman} "
                       f"(on {n} architectures)")
    if not _missing(ratio) and ratio > max_rmse_ratio:
        reasons.append(f"its held-out RMSE {rmse:.4g} is {ratio:.2f} x the standard deviation of the "
                       f"target ({held['target_std']:.4g}) > {max_rmse_ratio}")
    held.update(trusted=not reasons, reasons=reasons)
    if reasons:
        subject = name or f"the {getattr(predictor, 'target', 'target')} predictor"
        message = (f"{subject} cannot be trusted to rank architectures: " + "; ".join(reasons)
                   + ". Evaluate more subnets (ofa-evaluate --archs random:N) and refit, use a task where "
                   f"subnets differ by more than the evaluation noise, or {way_out}")
        if not accept_untrusted:
            raise PredictorError(message)
        warnings.warn(message + " - used anyway (accept_untrusted)", stacklevel=2)
    return held


@dataclass(frozen=True)
class TrustRule:
    """The thresholds of :func:`check_trustworthy`, carried by callers that check later
    (:func:`ofa_pipeline.specialize.specialize`); ``accept_untrusted`` turns a refusal into a warning."""

    min_spearman: float = DEFAULT_MIN_SPEARMAN
    max_rmse_ratio: float = DEFAULT_MAX_RMSE_RATIO
    accept_untrusted: bool = False

    def check(self, predictor, name: str | None = None,
              way_out: str = "accept it explicitly (accept_untrusted=True)") -> dict:
        return check_trustworthy(predictor, self.min_spearman, self.max_rmse_ratio, self.accept_untrusted,
                                 name=name, way_out=way_out)


__all__ = ["DEFAULT_MAX_RMSE_RATIO", "DEFAULT_MIN_SPEARMAN", "TrustRule", "check_trustworthy", "held_out_metrics",
           "held_out_summary"]
