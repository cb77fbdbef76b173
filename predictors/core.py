"""Architecture-level predictors: fit from a profile or evaluation records, and load
any saved predictor (the dispatch by kind).

The classes and shared helpers live in :mod:`predictors.base` (re-exported here);
this module sits above the block-sum and plain-feature fitters it dispatches to.

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
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from ofa.errors import ConfigError, DataError, PredictorError
from ofa.spaces import resolve_space, space_from_dict

from hardware_profiles.dataset import Profile, read_profile

from .base import (AccuracyPredictor, LatencyPredictor, SpacePredictor, _fit_selected, _residuals,  # noqa: F401
                   cross_validate_models, default_label, holdout_comparison, json_safe, profile_targets,
                   read_evaluations, resolve_label, select_model, split_indices, subset_profile)
from .blocks import fit_block_predictor, source_block_latencies, space_blocks
from .estimators import (ACCURACY_MODELS, LATENCY_MODELS, SourceCorrectionRegressor, make_accuracy_model,
                         make_latency_model, per_op_feature_names)
from .features import ArchFeaturizer
from .metrics import regression_report  # noqa: F401 (read as core.regression_report by the pipeline)
from .persistence import load_predictor_file
from .tabular import FeatureTablePredictor
from .trust import held_out_summary

# Candidates of model="auto". The random forest is offered and compared, but not
# chosen by default: scikit-learn predicts it tree by tree (one joblib task
# each), ~20 ms per call of 100 architectures against ~3 ms for boosting, and
# search calls predictors thousands of times on small populations
# (benchmarks/predictor_speed.py measures both batch sizes).
AUTO_LATENCY_MODELS = ("macs-linear", "lut", "gbr", "hybrid")
AUTO_ACCURACY_MODELS = ("mlp", "gbr")


def load_predictor(path: str | os.PathLike, space=None) -> SpacePredictor:
    """Load a predictor saved with ``predictor.save``.

    With ``space`` (a preset name, dict or SearchSpace), a predictor made for
    another space is refused with :class:`~ofa.errors.SpaceMismatchError`."""
    estimator, meta = load_predictor_file(path)
    if meta.get("kind") == "feature-latency":  # a predictor on plain feature columns (predictors.tabular)
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
    blocks = space_blocks(space, block_options)
    if isinstance(source, (str, os.PathLike)) and str(source) != "macs" and os.path.exists(source):
        metric, statistic = resolve_label(source, metric, statistic)
    return source_block_latencies(source, blocks, metric or "latency_ms", statistic or "median")


def _source_name(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    return getattr(source, "name", None) or getattr(source, "device", None) or type(source).__name__


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
                        + "; evaluate more with ofa-evaluate --archs random:N")
    genes = space.to_genes([r["arch"] for r in records])
    y = np.array([r[target] for r in records], dtype=np.float64)
    for name in ([model] if model != "auto" else candidates):
        if name not in ACCURACY_MODELS:
            raise ConfigError(f"unknown accuracy model {name!r}; available: {ACCURACY_MODELS} or 'auto'")
    fitted, best, metrics, residuals = _fit_selected(
        lambda name: make_accuracy_model(name, space, random_state, max_iter), genes, y, model, candidates, cv,
        random_state, relative=False)
    metrics["n_train"] = int(len(y))
    # every architecture predicted by a model fitted without it (the chosen model's
    # out-of-fold predictions); predictors.check_trustworthy reads this
    metrics["held_out"] = held_out_summary(
        y, y - residuals, f"{metrics['cv_folds']}-fold cross-validation, out-of-fold predictions of the chosen "
        f"model ({best}, picked among {list(metrics['selection']['candidates'])} on these same predictions)")
    return AccuracyPredictor(fitted, space, target=target, model_name=best, metrics=metrics,
                             interval_residuals=residuals, source=source)
