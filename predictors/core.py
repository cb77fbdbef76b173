"""Architecture-level predictors: fit from a profile or evaluation records,
predict from gene matrices or architectures, save and load.

    >>> from predictors import fit_latency_predictor, load_predictor
    >>> predictor = fit_latency_predictor("profiles/cpu.jsonl")         # model chosen by cross-validation
    >>> predictor.metrics_["selection"]["reason"]
    >>> latency = predictor.predict_genes(space.sample_genes(100_000))  # the fast batch path
    >>> low, high = predictor.predict_interval_genes(genes, coverage=0.8)
    >>> predictor.save("predictors/cpu.skops"); predictor = load_predictor("predictors/cpu.skops")
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import Pipeline

from ofa.errors import ConfigError, DataError, PredictorError
from ofa.spaces import SearchSpace, resolve_space, space_from_dict

from .estimators import (ACCURACY_MODELS, LATENCY_MODELS, SourceCorrectionRegressor, make_accuracy_model,
                         make_latency_model, per_op_feature_names)
from .features import ArchFeaturizer
from .metrics import format_table, regression_report
from .persistence import load_predictor_file, save_predictor_file

# Candidates of model="auto". The random forest is offered and compared, but not
# chosen by default: scikit-learn predicts it tree by tree (one joblib task
# each), ~20 ms per call of 100 architectures against ~3 ms for boosting, and
# search calls predictors thousands of times on small populations
# (benchmarks/predictor_speed.py measures both batch sizes).
AUTO_LATENCY_MODELS = ("macs-linear", "lut", "gbr", "hybrid")
AUTO_ACCURACY_MODELS = ("mlp", "gbr")


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
        if self.interval_residuals_ is None:
            raise PredictorError("this predictor has no held-out residuals, so it cannot give intervals; "
                                 "fit it with fit_latency_predictor / fit_accuracy_predictor")
        if not 0 < coverage < 1:
            raise ConfigError(f"coverage must be between 0 and 1, got {coverage}")
        low_q, high_q = np.quantile(self.interval_residuals_, [(1 - coverage) / 2, (1 + coverage) / 2])
        prediction = self.predict_genes(genes)
        if self.relative_errors:
            return prediction * (1 + low_q), prediction * (1 + high_q)
        return prediction + low_q, prediction + high_q

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
        from hardware_profiles.labels import Label

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


def load_predictor(path: str | os.PathLike, space=None) -> SpacePredictor:
    """Load a predictor saved with ``predictor.save``.

    With ``space`` (a preset name, dict or SearchSpace), a predictor made for
    another space is refused with :class:`~ofa.errors.SpaceMismatchError`."""
    estimator, meta = load_predictor_file(path)
    if meta.get("kind") == "feature-latency":  # a predictor on plain feature columns (predictors.tabular)
        from .tabular import FeatureTablePredictor

        return FeatureTablePredictor.from_saved(estimator, meta, path, space)
    try:
        saved_space = space_from_dict(meta["space"])
        kind = meta["kind"]
    except (KeyError, ConfigError) as error:
        raise PredictorError(f"{path}: the predictor metadata has no usable search space ({error})") from None
    if saved_space.fingerprint != meta.get("space_fingerprint"):
        raise PredictorError(f"{path}: its space definition does not match its recorded fingerprint; "
                             f"the file was edited or corrupted")
    if space is not None:
        resolve_space(space).check_fingerprint(saved_space.fingerprint, f"the predictor {path}")
    common = dict(target=meta["target"], model_name=meta["model_name"], metrics=meta.get("metrics"),
                  interval_residuals=meta.get("interval_residuals"))
    if kind == "latency":
        return LatencyPredictor(estimator, saved_space, device=meta.get("device", "unknown"),
                                profile_header=meta.get("profile_header"), **common)
    if kind == "accuracy":
        return AccuracyPredictor(estimator, saved_space, source=meta.get("source"), **common)
    raise PredictorError(f"{path}: unknown predictor kind {kind!r}")


# --- fitting ------------------------------------------------------------------------------------
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
    from hardware_profiles.dataset import Profile, read_profile
    from hardware_profiles.labels import default_metric_statistic

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
            from hardware_profiles.labels import clock_of

            statistic = statistic or (default_statistic if clock_of(metric) == clock_of(default_metric)
                                      else "median")
    return metric, statistic


def profile_targets(profile, metric: str | None = "latency_ms", statistic: str | None = "median"):
    """``(profile, genes, y)`` from a network profile or its path (``metric``/``statistic``
    None: :func:`default_label`)."""
    from hardware_profiles.dataset import Profile, read_profile

    if not isinstance(profile, Profile):
        profile = read_profile(profile)
    if len(profile) == 0:
        raise DataError(f"the profile {profile.path or ''} holds no measurements")
    if profile.level != "network":
        raise DataError(f"{profile.path or 'the profile'} is a {profile.level} profile; this needs whole-network "
                        f"measurements (a block profile fits a block-sum predictor: predictors.fit_block_predictor, "
                        f"tools/fit_predictor.py --blocks)")
    metric, statistic = resolve_label(profile, metric, statistic)
    genes = profile.space.to_genes(profile.archs())
    y = profile.latencies(metric, statistic)
    if not np.all(np.isfinite(y) & (y > 0)):  # a profile built in memory was never read_profile's to check
        raise DataError(f"the profile has non-finite or non-positive {metric}.{statistic} values; latencies must "
                        f"be finite and > 0")
    return profile, genes, y


def subset_profile(profile, indices):
    """A profile holding only the records at ``indices`` (same header)."""
    from hardware_profiles.dataset import Profile

    return Profile(profile.header, [profile.records[i] for i in indices], profile.path,
                   reference_ms=profile.reference_ms)


def fit_latency_predictor(profile, model: str = "auto", metric: str | None = None, statistic: str | None = None,
                          cv: int = 5, random_state: int = 0,
                          candidates: Sequence[str] = AUTO_LATENCY_MODELS) -> LatencyPredictor:
    """Fit a latency predictor on a profile (a ``Profile`` or its path).

    ``model="auto"`` cross-validates every candidate and keeps the best (the
    reason is in ``metrics_["selection"]``); or name one of ``LATENCY_MODELS``.
    ``metric`` picks the label: ``"latency_ms"`` (wall clock) or
    ``"cpu_time_ms"`` (thread CPU time, steadier on a shared machine); by default
    (None) the label that repeats best (:func:`default_label`: ``cpu_time_ms.p10``
    for timed backends, ``latency_ms.median`` for simulators)."""
    from hardware_profiles.dataset import Profile, read_profile

    profile = profile if isinstance(profile, Profile) else read_profile(profile)
    metric, statistic = resolve_label(profile, metric, statistic)
    profile, genes, y = profile_targets(profile, metric, statistic)
    for name in ([model] if model != "auto" else candidates):
        if name not in LATENCY_MODELS:
            raise ConfigError(f"unknown latency model {name!r}; available: {LATENCY_MODELS} or 'auto'")
    space = profile.space
    fitted, best, metrics, residuals = _fit_selected(
        lambda name: make_latency_model(name, space, random_state), genes, y, model, candidates, cv,
        random_state, relative=True)
    metrics["target"] = f"{metric}.{statistic}"
    metrics["label"] = profile.label(metric, statistic).to_dict()
    metrics["n_train"] = int(len(y))
    return LatencyPredictor(fitted, space, target=metric, model_name=best, metrics=metrics,
                            interval_residuals=residuals, device=profile.device, profile_header=profile.header)


def fit_transfer_predictor(source, target, correction: str = "linear", metric: str | None = None,
                           statistic: str | None = None, device: str | None = None, *, space=None,
                           networks=None, block_options: dict | None = None) -> LatencyPredictor:
    """Adapt a latency predictor to a new device from a few measurements.

    ``source`` is a fitted :class:`LatencyPredictor` of another device, or what a
    block-sum source is made of: ``"macs"``, a simulator backend name
    (``"fpga-analytical"``), a block profile of another device (path or Profile),
    or ``{block key: ms}`` (then ``space`` is needed unless the target says it).

    ``target`` is what was measured on the new device:

    * whole networks: a network profile (or its path), or a pair ``(genes,
      latencies)``. The new predictor is the source followed by a low-capacity
      correction (:class:`SourceCorrectionRegressor`) fitted on them; 10-50
      measured architectures are enough. The default ``"linear"`` correction
      (source prediction plus per-op work, memory and tile counts,
      non-negative) was the most accurate in ``benchmarks/predictor_accuracy.py``;
      ``"auto"`` picks between it and ``"log-linear"`` by cross-validation on
      the target measurements (the reason is in ``metrics_["selection"]``);
    * blocks: a block profile of the new device holding a few measured blocks.
      The result is a block-sum predictor (:func:`predictors.blocks.fit_block_predictor`)
      whose unmeasured blocks are predicted from the source's latency of the
      same blocks (scale, log-linear or linear on source and block features,
      chosen by cross-validation on the measured blocks); ``networks`` (a few
      whole-network measurements of the new device) add its network-level
      correction.

    Labels default to :func:`default_label` of the target profile."""
    from hardware_profiles.dataset import Profile, read_profile

    from .blocks import fit_block_predictor, space_blocks

    if isinstance(target, (str, os.PathLike)):
        target = read_profile(target)
    if isinstance(target, Profile) and target.level == "block":
        metric, statistic = resolve_label(target, metric, statistic)
        target_space = target.space if space is None else resolve_space(space)
        if isinstance(source, LatencyPredictor):
            source = _block_table_of_predictor(source, space_blocks(target_space, block_options))
        return fit_block_predictor(target, networks, space=target_space, metric=metric, statistic=statistic,
                                   block_options=block_options, source=source, device=device)
    if networks is not None:
        raise ConfigError("networks= goes with a block-profile target; with whole-network targets give them as "
                          "the target")
    if not isinstance(source, LatencyPredictor):
        if space is None:
            if isinstance(target, Profile):
                space = target.space
            else:
                raise ConfigError("a block-level transfer source needs space= (the space of the target networks)")
        source_space = resolve_space(space)
        table = _source_table(source, source_space, block_options, metric, statistic)
        source = fit_block_predictor(table, None, space=source_space, metric="latency_ms", statistic="median",
                                     block_options=block_options, device=f"source:{_source_name(source)}")
    if source.kind == "feature-latency":
        raise PredictorError("transfer needs a source predictor of architectures (gene matrices); this one is a "
                             "plain-feature predictor: fit the source on a profile instead")
    header = {}
    metrics_label = None
    if isinstance(target, tuple):
        metric, statistic = metric or "latency_ms", statistic or "median"
        genes, y = np.asarray(target[0]), np.asarray(target[1], dtype=np.float64)
        if len(genes) != len(y):
            raise DataError(f"{len(genes)} gene rows but {len(y)} latencies")
    else:
        metric, statistic = resolve_label(target, metric, statistic)
        profile, genes, y = profile_targets(target, metric, statistic)
        source.space.check_fingerprint(profile.space.fingerprint, "the target profile")
        header, device = profile.header, device or profile.device
        metrics_label = profile.label(metric, statistic).to_dict()
    if len(y) < 2:
        raise DataError("transfer needs at least 2 measured architectures on the target device")
    space_dict = source.space.to_dict()
    features = FrozenEstimator(ArchFeaturizer(space_dict, per_op_feature_names(source.space)).fit())

    def make(name):
        return Pipeline([("features", ArchFeaturizer(space_dict, "genes")),
                         ("model", SourceCorrectionRegressor(FrozenEstimator(source.estimator), name,
                                                             features if name == "linear" else None))])

    candidates = ("linear", "log-linear") if correction == "auto" else (correction,)
    metrics: dict = {"source_device": source.device, "n_train": int(len(y)), "target": f"{metric}.{statistic}"}
    if metrics_label is not None:
        metrics["label"] = metrics_label
    residuals = None
    chosen = candidates[0] if len(y) < 5 else None  # too few to cross-validate
    if chosen is None:
        results = cross_validate_models({name: make(name) for name in candidates}, genes, y, cv=5)
        chosen, reason = select_model(results)
        metrics["cv"] = {name: r["metrics"] for name, r in results.items()}
        metrics["selection"] = {"model": chosen, "reason": reason, "candidates": list(candidates)}
        residuals = _residuals(y, results[chosen]["oof"], True)
    pipeline = make(chosen).fit(genes, y)
    return LatencyPredictor(pipeline, source.space, target=metric, model_name=f"transfer-{chosen}",
                            metrics=metrics, interval_residuals=residuals, device=device or "unknown",
                            profile_header=header)


def _block_table_of_predictor(predictor: LatencyPredictor, blocks) -> dict:
    """Block latencies of a block-sum predictor (a transfer source for blocks)."""
    model = predictor.estimator.steps[-1][1]
    if not hasattr(model, "predict_blocks"):
        raise ConfigError(f"a block-profile target needs a block-level source; the predictor {predictor!r} "
                          f"predicts whole networks only: give a block profile, a simulator backend or 'macs'")
    return dict(zip((b.key for b in blocks), model.predict_blocks(blocks)))


def _source_table(source, space, block_options, metric, statistic) -> dict:
    from .blocks import source_block_latencies, space_blocks

    blocks = space_blocks(space, block_options)
    if isinstance(source, (str, os.PathLike)) and str(source) != "macs" and os.path.exists(source):
        metric, statistic = resolve_label(source, metric, statistic)
    return source_block_latencies(source, blocks, metric or "latency_ms", statistic or "median")


def _source_name(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return getattr(source, "name", None) or getattr(source, "device", None) or type(source).__name__


def read_evaluations(path: str | os.PathLike) -> list[dict]:
    """Records of ``tools/evaluate.py`` (JSON Lines, one subnet per line)."""
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


MIN_ACCURACY_RECORDS = 16


def fit_accuracy_predictor(path_or_records: str | os.PathLike | Iterable[dict], space, model: str = "auto",
                           target: str = "top1", split: str | None = None, cv: int = 5, random_state: int = 0,
                           candidates: Sequence[str] = AUTO_ACCURACY_MODELS,
                           max_iter: int = 300) -> AccuracyPredictor:
    """Fit an accuracy (``target="top1"``) or loss (``target="loss"``) predictor
    on evaluation records (a JSONL path or a list of dicts with ``arch`` and the
    target), optionally only those of one ``split``."""
    space = resolve_space(space)
    source = None
    if isinstance(path_or_records, (str, os.PathLike)):
        source = str(path_or_records)
        records = read_evaluations(path_or_records)
    else:
        records = list(path_or_records)
    if split is not None:
        records = [r for r in records if r.get("split") == split]
    missing = [i for i, r in enumerate(records) if not isinstance(r.get(target), (int, float))]
    if missing:
        raise DataError(f"{len(missing)} evaluation record(s) (first: #{missing[0]}) have no numeric {target!r}")
    if len(records) < MIN_ACCURACY_RECORDS:
        raise DataError(f"need at least {MIN_ACCURACY_RECORDS} evaluated architectures to fit an accuracy predictor "
                        f"(cross-validation and the MLP's early-stopping split need them), got {len(records)}"
                        + (f" in split {split!r}" if split else "")
                        + "; evaluate more with tools/evaluate.py --archs random:N")
    genes = space.to_genes([r["arch"] for r in records])
    y = np.array([r[target] for r in records], dtype=np.float64)
    for name in ([model] if model != "auto" else candidates):
        if name not in ACCURACY_MODELS:
            raise ConfigError(f"unknown accuracy model {name!r}; available: {ACCURACY_MODELS} or 'auto'")
    fitted, best, metrics, residuals = _fit_selected(
        lambda name: make_accuracy_model(name, space, random_state, max_iter), genes, y, model, candidates, cv,
        random_state, relative=False)
    metrics["n_train"] = int(len(y))
    from .trust import held_out_summary

    # every architecture predicted by a model fitted without it (the chosen model's
    # out-of-fold predictions); predictors.check_trustworthy reads this
    metrics["held_out"] = held_out_summary(
        y, y - residuals, f"{metrics['cv_folds']}-fold cross-validation, out-of-fold predictions of the chosen "
        f"model ({best}, picked among {list(metrics['selection']['candidates'])} on these same predictions)")
    return AccuracyPredictor(fitted, space, target=target, model_name=best, metrics=metrics,
                             interval_residuals=residuals, source=source)


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
