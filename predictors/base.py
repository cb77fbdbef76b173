"""The floor of :mod:`predictors`: the predictor classes and the helpers every fitter shares.

* :class:`SpacePredictor` and its kinds :class:`LatencyPredictor` and :class:`AccuracyPredictor`:
  a fitted pipeline tied to one search space, predicting from gene matrices or architectures, saved
  with :meth:`SpacePredictor.save`;
* model selection by cross-validation (:func:`cross_validate_models`, :func:`select_model`),
  seeded splits, labels of a profile, evaluation records, JSON-safe metadata.

The fitters (:mod:`predictors.core`, :mod:`predictors.blocks`, :mod:`predictors.tabular`) sit
above this module and import from it; it imports none of them (an import-linter layer contract).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import Pipeline

from ofa.errors import ConfigError, DataError, PredictorError
from ofa.spaces import SearchSpace, resolve_space

from hardware_profiles.dataset import Profile, read_profile
from hardware_profiles.labels import Label, clock_of, default_metric_statistic

from .features import ArchFeaturizer
from .metrics import format_table, regression_report
from .persistence import save_predictor_file

class SpacePredictor:
    """A fitted pipeline (featurizer + regressor) tied to one search space.

    Attributes
    ----------
    estimator : sklearn Pipeline whose first step is an :class:`ArchFeaturizer`
    space : the SearchSpace
    target : what is predicted (``"latency_ms"``, ``"cpu_time_ms"``, ``"top1"``, ``"loss"``)
    model_name : the recipe (``"hybrid"``, ``"mlp"``, ...)
    metrics_ : held-out metrics (cross-validation, and a test split where one was used)
    interval_residuals_ : held-out residuals (relative for latency, absolute for
        accuracy) from which prediction intervals are read (split-conformal)
    """

    kind = "base"
    relative_errors = True
    output_range: tuple[float, float] = (-np.inf, np.inf)

    def __init__(self, estimator: Pipeline, space, target: str, model_name: str = "custom", metrics=None,
                 interval_residuals: Sequence[float] | None = None):
        self.space: SearchSpace = resolve_space(space)
        if not isinstance(estimator, Pipeline) or not isinstance(estimator.steps[0][1], ArchFeaturizer):
            raise PredictorError("a predictor's estimator is a Pipeline whose first step is an ArchFeaturizer")
        featurizer = estimator.steps[0][1]
        featurizer.check_compatible()
        self.space.check_fingerprint(featurizer.space_fingerprint_, "the predictor's featurizer")
        self.estimator = estimator
        self.target = target
        self.model_name = model_name
        self.metrics_ = dict(metrics or {})
        self.interval_residuals_ = (np.sort(np.asarray(interval_residuals, dtype=np.float64))
                                    if interval_residuals is not None and len(interval_residuals) else None)

    @property
    def space_fingerprint(self) -> str:
        return self.space.fingerprint

    @property
    def featurizer(self) -> ArchFeaturizer:
        return self.estimator.steps[0][1]

    # --- prediction ---------------------------------------------------------------------
    def predict_genes(self, genes: np.ndarray) -> np.ndarray:
        """Predictions (float64, one per row) for a gene matrix: the fast batch path."""
        genes = np.asarray(genes)
        if genes.ndim == 1:
            genes = genes[None, :]
        prediction = np.asarray(self.estimator.predict(genes), dtype=np.float64)
        low, high = self.output_range
        return np.clip(prediction, low, high) if (low, high) != (-np.inf, np.inf) else prediction

    def predict_archs(self, archs) -> np.ndarray:
        """Predictions for one architecture, a dict, or a list of them (validated
        against the predictor's space: another space's architecture is refused)."""
        return self.predict_genes(self.space.to_genes(archs))

    def predict_interval_genes(self, genes: np.ndarray, coverage: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
        """``(low, high)`` such that a fraction ``coverage`` of held-out
        measurements fell inside during fitting (split-conformal intervals from
        the cross-validated residuals; check ``metrics_`` for the coverage
        measured on a test split)."""
        check_interval(self.interval_residuals_, coverage, "fit_latency_predictor / fit_accuracy_predictor")
        return conformal_interval(self.predict_genes(genes), self.interval_residuals_, coverage,
                                  self.relative_errors)

    def predict_interval_archs(self, archs, coverage: float = 0.8):
        return self.predict_interval_genes(self.space.to_genes(archs), coverage)

    # --- persistence ------------------------------------------------------------------------
    def _meta(self) -> dict:
        return {"kind": self.kind, "space": self.space.to_dict(), "space_fingerprint": self.space_fingerprint,
                "target": self.target, "model_name": self.model_name, "metrics": self.metrics_,
                "interval_residuals": None if self.interval_residuals_ is None
                else self.interval_residuals_.tolist()}

    def save(self, path: str | os.PathLike) -> Path:
        """Save as a skops file (atomic write)."""
        return save_predictor_file(path, self.estimator, json_safe(self._meta()))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(model={self.model_name!r}, target={self.target!r}, "
                f"space={self.space.type_name}:{self.space_fingerprint})")


class LatencyPredictor(SpacePredictor):
    """Predicts one device's latency (ms). ``device`` and ``profile_header`` say
    which device and how it was measured."""

    kind = "latency"

    def __init__(self, estimator, space, target="latency_ms", model_name="custom", metrics=None,
                 interval_residuals=None, device: str = "unknown", profile_header: dict | None = None):
        super().__init__(estimator, space, target, model_name, metrics, interval_residuals)
        self.device = device
        self.profile_header = profile_header or {}

    def _meta(self) -> dict:
        return {**super()._meta(), "device": self.device, "profile_header": self.profile_header}

    @property
    def label(self):
        """The :class:`~hardware_profiles.labels.Label` this predictor predicts:
        verification reads the same label from a fresh measurement. Predictors
        saved before labels were recorded name it in ``metrics_["target"]``."""
        recorded = self.metrics_.get("label")
        if isinstance(recorded, dict) and "metric" in recorded:
            return Label.from_dict(recorded)
        target = self.metrics_.get("target")
        if isinstance(target, str) and "." in target:
            metric, statistic = target.rsplit(".", 1)
            return Label(metric, statistic)
        return Label(self.target, "median")

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + f", device={self.device!r})"


class AccuracyPredictor(SpacePredictor):
    """Predicts top-1 accuracy (percent) or validation loss of subnets with
    inherited weights. Predictions are clipped to the target's range (a
    regressor can overshoot 100% on a saturated task)."""

    kind = "accuracy"
    relative_errors = False

    @property
    def output_range(self) -> tuple[float, float]:
        return (0.0, 100.0) if self.target == "top1" else (0.0, np.inf)

    def __init__(self, estimator, space, target="top1", model_name="custom", metrics=None, interval_residuals=None,
                 source: str | None = None):
        super().__init__(estimator, space, target, model_name, metrics, interval_residuals)
        self.source = source

    def _meta(self) -> dict:
        return {**super()._meta(), "source": self.source}


# --- fitting helpers ------------------------------------------------------------------------------------
def cross_validate_models(models: dict[str, Pipeline], genes: np.ndarray, y: np.ndarray, cv: int = 5,
                          random_state: int = 0, relative: bool = True) -> dict[str, dict]:
    """Out-of-fold predictions and metrics of each model: every prediction is for
    an architecture the model did not see. Returns ``{name: {"metrics", "oof"}}``."""
    folds = KFold(n_splits=min(cv, len(y)), shuffle=True, random_state=random_state)
    results = {}
    for name, model in models.items():
        oof = cross_val_predict(clone(model), genes, y, cv=folds)
        results[name] = {"metrics": regression_report(y, oof, relative=relative), "oof": oof}
    return results


def select_model(results: dict[str, dict], relative: bool = True) -> tuple[str, str]:
    """The best model by cross-validation, and why.

    Latency: the highest share within +-10% (what a latency budget needs);
    shares less than one point (or one architecture) apart count as a tie,
    broken by the lower MAPE, so that one lucky architecture does not decide.
    Accuracy/loss: the lowest RMSE, ties broken by Kendall tau."""
    if relative:
        n = next(iter(results.values()))["metrics"]["n"]
        tolerance = max(1.0, 100.0 / n)
        top = max(r["metrics"]["within_10"] for r in results.values())
        tied = [name for name, r in results.items() if r["metrics"]["within_10"] >= top - tolerance]
        best = min(tied, key=lambda name: results[name]["metrics"]["mape"])
        ranking = [best] + sorted((m for m in results if m != best), key=lambda m: -results[m]["metrics"]["within_10"])
        others = ", ".join(f"{m} {results[m]['metrics']['within_10']:.1f}% (MAPE {results[m]['metrics']['mape']:.2f}%)"
                           for m in ranking[1:])
        reason = (f"{best}: cross-validated share within +-10% {results[best]['metrics']['within_10']:.1f}% "
                  f"(MAPE {results[best]['metrics']['mape']:.2f}%); "
                  + (f"tied within {tolerance:.1f} points with {[m for m in tied if m != best]}, lowest MAPE; "
                     if len(tied) > 1 else "")
                  + (f"others: {others}" if others else "no other candidate"))
        return best, reason
    ranking = sorted(results, key=lambda m: (results[m]["metrics"]["rmse"], -results[m]["metrics"]["kendall"]))
    best = ranking[0]
    others = ", ".join(f"{m} {results[m]['metrics']['rmse']:.4g}" for m in ranking[1:])
    return best, (f"{best}: lowest cross-validated RMSE {results[best]['metrics']['rmse']:.4g} "
                  f"(Kendall {results[best]['metrics']['kendall']:.3f})" + (f"; others: {others}" if others else ""))


def _residuals(y, prediction, relative: bool) -> np.ndarray:
    return y / prediction - 1.0 if relative else y - prediction


def _fit_selected(models, genes, y, model, candidates, cv, random_state, relative):
    if model == "auto":
        pool = {name: models(name) for name in candidates}
    elif isinstance(model, str):
        pool = {model: models(model)}
    else:
        raise ConfigError(f"model must be 'auto' or a model name, got {model!r}")
    if len(y) < 5:
        raise DataError(f"need at least 5 measured architectures to fit and cross-validate, got {len(y)}")
    results = cross_validate_models(pool, genes, y, cv=cv, random_state=random_state, relative=relative)
    best, reason = select_model(results, relative=relative)
    fitted = clone(pool[best]).fit(genes, y)
    metrics = {"cv": {name: r["metrics"] for name, r in results.items()}, "cv_folds": min(cv, len(y)),
               "selection": {"model": best, "reason": reason, "candidates": list(pool)},
               "table": format_table({n: r["metrics"] for n, r in results.items()},
                                     columns=("within_5", "within_10", "mape", "rmse", "spearman", "kendall")
                                     if relative else ("rmse", "mae", "spearman", "kendall"))}
    return fitted, best, metrics, _residuals(y, results[best]["oof"], relative)


def split_indices(n: int, test_fraction: float = 0.2, random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random train/test split of ``n`` items (test keeps at least one)."""
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    order = np.random.default_rng(random_state).permutation(n)
    n_test = min(n - 1, max(1, int(round(test_fraction * n))))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def holdout_comparison(models: dict[str, Pipeline], train: tuple, test: tuple, relative: bool = True) -> dict:
    """Fit each model on ``train = (genes, y)`` and score it on ``test``:
    ``{name: {"metrics", "prediction"}}``."""
    results = {}
    for name, model in models.items():
        prediction = clone(model).fit(*train).predict(test[0])
        results[name] = {"metrics": regression_report(test[1], prediction, relative=relative),
                         "prediction": prediction}
    return results


def default_label(profile) -> tuple[str, str]:
    """``(metric, statistic)`` fitted by default on ``profile`` (a Profile or its path):
    :func:`hardware_profiles.labels.default_metric_statistic` (the drift-corrected
    thread CPU time's p10 where the records were timed beside the reference
    network; ``cpu_time_ms.p10`` on older timed profiles; ``latency_ms.median``
    for simulators)."""
    if not isinstance(profile, Profile):
        profile = read_profile(profile)
    return default_metric_statistic(profile.records)


def resolve_label(profile, metric: str | None, statistic: str | None) -> tuple[str, str]:
    """The label to fit: the given metric/statistic, the defaults (:func:`default_label`) for those not given."""
    if metric is None or statistic is None:
        default_metric, default_statistic = default_label(profile)
        if metric is None:
            metric, statistic = default_metric, statistic or default_statistic
        else:  # a chosen metric of the default's clock (corrected or raw) keeps its statistic unless one is given
            statistic = statistic or (default_statistic if clock_of(metric) == clock_of(default_metric)
                                      else "median")
    return metric, statistic


def profile_targets(profile, metric: str | None = "latency_ms", statistic: str | None = "median"):
    """``(profile, genes, y)`` from a network profile or its path (``metric``/``statistic``
    None: :func:`default_label`)."""
    if not isinstance(profile, Profile):
        profile = read_profile(profile)
    if len(profile) == 0:
        raise DataError(f"the profile {profile.path or ''} holds no measurements")
    if profile.level != "network":
        raise DataError(f"{profile.path or 'the profile'} is a {profile.level} profile; this needs whole-network "
                        f"measurements (a block profile fits a block-sum predictor: predictors.fit_block_predictor, "
                        f"ofa-fit-predictor --blocks)")
    metric, statistic = resolve_label(profile, metric, statistic)
    genes = profile.space.to_genes(profile.archs())
    y = profile.latencies(metric, statistic)
    if not np.all(np.isfinite(y) & (y > 0)):  # a profile built in memory was never read_profile's to check
        raise DataError(f"the profile has non-finite or non-positive {metric}.{statistic} values; latencies must "
                        f"be finite and > 0")
    return profile, genes, y


def subset_profile(profile, indices):
    """A profile holding only the records at ``indices`` (same header)."""
    return Profile(profile.header, [profile.records[i] for i in indices], profile.path,
                   reference_ms=profile.reference_ms)


def read_evaluations(path: str | os.PathLike) -> list[dict]:
    """Records of ``ofa-evaluate`` (JSON Lines, one subnet per line)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no evaluation file at {path}")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{number}: not valid JSON ({error.msg}); fix or delete this line") from None
        if not isinstance(record, dict) or "arch" not in record:
            raise DataError(f"{path}:{number}: an evaluation record is a JSON object with an 'arch' key")
        records.append(record)
    return records



def json_safe(value):
    """Metadata as plain JSON (NaN becomes null)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def check_interval(residuals, coverage: float, fitted_by: str) -> None:
    """An interval needs held-out residuals and a coverage strictly between 0 and 1 (checked before predicting)."""
    if residuals is None:
        raise PredictorError(f"this predictor has no held-out residuals, so it cannot give intervals; "
                             f"fit it with {fitted_by}")
    if not 0 < coverage < 1:
        raise ConfigError(f"coverage must be between 0 and 1, got {coverage}")


def conformal_interval(prediction: np.ndarray, residuals: np.ndarray, coverage: float,
                       relative: bool) -> tuple[np.ndarray, np.ndarray]:
    """Split-conformal ``(low, high)``: the residual quantiles around ``prediction`` (relative residuals scale it)."""
    low_q, high_q = np.quantile(residuals, [(1 - coverage) / 2, (1 + coverage) / 2])
    if relative:
        return prediction * (1 + low_q), prediction * (1 + high_q)
    return prediction + low_q, prediction + high_q
