"""Latency predictors on plain feature columns: the tables users measure themselves.

A measured latency table (Hardware-Aware Transformers' ``latency_dataset/*.csv``,
a spreadsheet of phone timings) often describes each network by its own
columns - ``encoder_embed_dim``, ``macs``, a kernel size per block - rather than
by an architecture of one of our search spaces. :class:`FeatureTablePredictor`
is a :class:`~predictors.base.LatencyPredictor` fitted on such columns:

* it predicts feature matrices (:meth:`~FeatureTablePredictor.predict_features`,
  with split-conformal intervals), saves to and loads from skops files, and
  records the same held-out metrics as every other predictor;
* bound to a search space (``space=``) and fitted only on *computable*
  features (:func:`computable_feature_names`), it also predicts
  architectures (``predict_genes``), so it can drive ``specialize``;
* with features no architecture determines (a column only the user knows),
  it still predicts tables, and refuses architectures with
  :class:`FeatureColumnsError` saying which columns are the reason.

Computable features of a space (all per architecture):

* gene columns (:func:`gene_column_names`): the value of each decision, named
  after the architecture's fields - ``kernel_sizes.3``, ``expand_ratios.3``,
  ``depths.1``, ``resolution``; ``encoder_embed_dim``, ``encoder_ffn_dims.2``,
  ``decoder_cross_layers.0``, ... (0 for a block or layer that does not run);
* the analytic features of the cost model (``macs``, ``params``,
  ``activations``, ``memory``, per-op MACs, ...: see
  :func:`predictors.features.analytic_feature_names`);
* for encoder-decoder Transformer spaces, the ten features of HAT's latency
  datasets (:data:`HAT_FEATURES`, as ``get_config_features`` in HAT's
  ``fairseq/utils.py`` computes them): embedding dims, layer counts, and the
  per-layer means of FFN dims, head counts and of the number of encoder
  layers each decoder layer attends to (HAT's ``arbitrary_ende_attn`` -1/1/2
  is 1/2/3 of them: our ``decoder_cross_layers``).

``make_latency_model(name, space=None, feature_names=...)`` builds the plain
feature recipes (:data:`~predictors.estimators.FEATURE_LATENCY_MODELS`).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ofa.errors import ConfigError, DataError, PredictorError
from ofa.spaces import SearchSpace, resolve_space
from ofa.spaces.columns import gene_column_names, gene_values, genes_from_values

from .base import LatencyPredictor, _fit_selected, check_interval, conformal_interval
from .estimators import AUTO_FEATURE_MODELS, FEATURE_LATENCY_MODELS, make_latency_model
# NumericFeatures sits with the other featurizers (the recipes of predictors.estimators build on it);
# imported here too, where predictors saved before the move name it
from .features import ArchFeaturizer, FeatureColumnsError, NumericFeatures, analytic_feature_names
from .metrics import format_table
from .model_choice import DEFAULT_REPEATS, choose_model


HAT_FEATURES = ("encoder_embed_dim", "encoder_layer_num", "encoder_ffn_embed_dim_avg",
                "encoder_self_attention_heads_avg", "decoder_embed_dim", "decoder_layer_num",
                "decoder_ffn_embed_dim_avg", "decoder_self_attention_heads_avg", "decoder_ende_attention_heads_avg",
                "decoder_arbitrary_ende_attn_avg")

def _hat_available(space: SearchSpace) -> bool:
    return space.type_name == "transformer" and bool(getattr(space, "has_decoder", False))


def computable_feature_names(space) -> tuple[str, ...]:
    """Every feature column :class:`FeatureTablePredictor` can compute from an
    architecture of ``space``: gene columns, analytic features, HAT features."""
    space = resolve_space(space)
    names = list(gene_column_names(space)) + [n for n in analytic_feature_names(space)]
    if _hat_available(space):
        names += [n for n in HAT_FEATURES if n not in names]
    return tuple(dict.fromkeys(names))


def _hat_features(space, values: np.ndarray) -> dict[str, np.ndarray]:
    """HAT's ten features from decision values (NaN = layer not running)."""
    names = gene_column_names(space)
    index = {name: i for i, name in enumerate(names)}

    def one(field):
        return values[:, index[field]]

    def mean(field):
        columns = [i for i, name in enumerate(names) if name.startswith(field + ".")]
        with np.errstate(invalid="ignore"):
            return np.nanmean(values[:, columns], axis=1)

    return {"encoder_embed_dim": one("encoder_embed_dim"), "encoder_layer_num": one("encoder_layers"),
            "encoder_ffn_embed_dim_avg": mean("encoder_ffn_dims"),
            "encoder_self_attention_heads_avg": mean("encoder_heads"),
            "decoder_embed_dim": one("decoder_embed_dim"), "decoder_layer_num": one("decoder_layers"),
            "decoder_ffn_embed_dim_avg": mean("decoder_ffn_dims"),
            "decoder_self_attention_heads_avg": mean("decoder_self_heads"),
            "decoder_ende_attention_heads_avg": mean("decoder_cross_heads"),
            "decoder_arbitrary_ende_attn_avg": mean("decoder_cross_layers")}


def describe_computable(space) -> str:
    """The computable feature names of ``space``, in a few words (for error messages)."""
    space = resolve_space(space)
    genes = gene_column_names(space)
    analytic = analytic_feature_names(space)
    text = (f"gene columns {genes[0]!r} ... {genes[-1]!r} ({len(genes)}), analytic features "
            f"{', '.join(repr(n) for n in analytic[:4])}, ... ({len(analytic)})")
    if _hat_available(space):
        text += f", HAT columns {list(HAT_FEATURES)}"
    return text + "; the full list: predictors.tabular.computable_feature_names(space)"


class ArchitectureFeatures:
    """Named feature columns computed from gene matrices of one space (see the module docstring).

    Not an estimator that is saved: a :class:`FeatureTablePredictor` rebuilds it
    from its space and feature names."""

    def __init__(self, space, columns: Sequence[str]):
        self.space = resolve_space(space)
        self.columns = tuple(columns)
        computable = computable_feature_names(self.space)
        unknown = [c for c in self.columns if c not in computable]
        if unknown:
            raise FeatureColumnsError(
                f"feature column(s) {unknown} cannot be computed from an architecture of the "
                f"{self.space.type_name} space; computable: {describe_computable(self.space)}")
        analytic = set(analytic_feature_names(self.space))
        self._analytic = tuple(c for c in self.columns if c in analytic)
        self._featurizer = (ArchFeaturizer(self.space.to_dict(), self._analytic).fit() if self._analytic else None)
        self._gene_index = {name: i for i, name in enumerate(gene_column_names(self.space))}

    def transform(self, genes) -> np.ndarray:
        genes = np.atleast_2d(np.asarray(genes))
        out = np.empty((len(genes), len(self.columns)))
        analytic = self._featurizer.transform(genes) if self._featurizer is not None else None
        values = gene_values(self.space, self.space.normalize_genes(genes))
        hat = (_hat_features(self.space, values) if any(c in HAT_FEATURES and c not in self._gene_index
                                                        for c in self.columns) else {})
        for j, column in enumerate(self.columns):
            if column in self._analytic:
                out[:, j] = analytic[:, self._analytic.index(column)]
            elif column in self._gene_index:
                out[:, j] = np.nan_to_num(values[:, self._gene_index[column]], nan=0.0)
            else:
                out[:, j] = hat[column]
        return out


def _as_pipeline(estimator, names: tuple[str, ...]) -> Pipeline:
    if isinstance(estimator, Pipeline) and isinstance(estimator.steps[0][1], NumericFeatures):
        first = estimator.steps[0][1]
        if tuple(first.columns) != names:
            raise FeatureColumnsError(f"the estimator's NumericFeatures columns {list(first.columns)} differ "
                                      f"from feature_names {list(names)}")
        return estimator
    if isinstance(estimator, Pipeline) and isinstance(estimator.steps[0][1], ArchFeaturizer):
        raise PredictorError("this estimator takes gene matrices (its first step is an ArchFeaturizer): wrap it "
                             "in LatencyPredictor, not FeatureTablePredictor")
    if not hasattr(estimator, "predict"):
        raise PredictorError(f"a FeatureTablePredictor wraps a fitted regressor (with predict), "
                             f"got {type(estimator).__name__}")
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        raise PredictorError(f"the {type(estimator).__name__} is not fitted: fit it on the feature matrix first, "
                             f"or use predictors.tabular.fit_feature_predictor") from None
    except TypeError:
        pass  # not a scikit-learn estimator: trust its predict
    return Pipeline([("features", NumericFeatures(names).fit()), ("model", estimator)])


class FeatureTablePredictor(LatencyPredictor):
    """A latency predictor on named feature columns (see the module docstring).

    Parameters
    ----------
    estimator : a fitted regressor on the feature matrix, or a Pipeline whose
        first step is :class:`NumericFeatures` (what :func:`fit_feature_predictor` makes)
    feature_names : the column names, in order
    space : optional search space (preset, dict or SearchSpace) whose
        architectures determine the features; needed to predict architectures
    """

    kind = "feature-latency"

    def __init__(self, estimator, feature_names: Sequence[str], space=None, target: str = "latency_ms",
                 model_name: str = "custom", metrics=None, interval_residuals=None, device: str = "unknown",
                 profile_header: dict | None = None, source: str | None = None):
        names = tuple(str(n) for n in feature_names)
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"feature_names must be distinct column names, got {list(feature_names)}")
        self.feature_names = names
        self.estimator = _as_pipeline(estimator, names)
        self.space = resolve_space(space) if space is not None else None
        self.target = target
        self.model_name = model_name
        self.metrics_ = dict(metrics or {})
        self.interval_residuals_ = (np.sort(np.asarray(interval_residuals, dtype=np.float64))
                                    if interval_residuals is not None and len(interval_residuals) else None)
        self.device = device
        self.profile_header = dict(profile_header or {})
        self.source = source
        self._arch_features: ArchitectureFeatures | None = None

    # --- what it can predict -------------------------------------------------------------------------------
    @property
    def space_fingerprint(self) -> str | None:
        return self.space.fingerprint if self.space is not None else None

    @property
    def uncomputable_features(self) -> list[str]:
        """Feature names no architecture of the predictor's space determines (all of them without a space)."""
        if self.space is None:
            return list(self.feature_names)
        computable = set(computable_feature_names(self.space))
        return [n for n in self.feature_names if n not in computable]

    def check_architectures(self) -> None:
        """Raise :class:`FeatureColumnsError` (saying why) unless this predictor can price architectures."""
        if self.space is None:
            raise FeatureColumnsError(
                f"this latency predictor was fitted on the feature columns {list(self.feature_names)} of a table "
                f"without a search space, so it cannot price architectures (a search needs that); it predicts "
                f"feature tables only. Refit it with --space NAME if its columns are computable from an "
                f"architecture (gene columns, macs, params, ..., HAT columns: see docs/imports.md)")
        bad = self.uncomputable_features
        if bad:
            raise FeatureColumnsError(
                f"this latency predictor uses feature column(s) {bad} that no architecture of the "
                f"{self.space.type_name} space determines, so it cannot price architectures (a search needs "
                f"that); it predicts feature tables only. Refit it on computable columns "
                f"({describe_computable(self.space)}), or import the table with architecture columns "
                f"(tools/import_profile.py --format table)")

    @property
    def architecture_features(self) -> ArchitectureFeatures:
        """What turns gene matrices into this predictor's feature matrix."""
        self.check_architectures()
        if self._arch_features is None:
            self._arch_features = ArchitectureFeatures(self.space, self.feature_names)
        return self._arch_features

    # --- prediction -----------------------------------------------------------------------------------------
    def predict_features(self, X) -> np.ndarray:
        """Latency (ms, float64) of each row of a feature matrix (columns ``feature_names``)."""
        return np.asarray(self.estimator.predict(X), dtype=np.float64)

    predict = predict_features

    def predict_interval_features(self, X, coverage: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
        """Split-conformal ``(low, high)`` for each row (see ``SpacePredictor.predict_interval_genes``)."""
        return self._interval(self.predict_features(X), coverage)

    def _interval(self, prediction, coverage):
        check_interval(self.interval_residuals_, coverage, "fit_feature_predictor")
        return conformal_interval(prediction, self.interval_residuals_, coverage, relative=True)

    def features_of_genes(self, genes) -> np.ndarray:
        """The feature matrix of architectures (a gene matrix of the predictor's space)."""
        return self.architecture_features.transform(genes)

    def predict_genes(self, genes) -> np.ndarray:
        return self.predict_features(self.features_of_genes(genes))

    def predict_archs(self, archs) -> np.ndarray:
        self.check_architectures()
        return self.predict_genes(self.space.to_genes(archs))

    def predict_interval_genes(self, genes, coverage: float = 0.8):
        return self._interval(self.predict_genes(genes), coverage)

    def predict_interval_archs(self, archs, coverage: float = 0.8):
        self.check_architectures()
        return self.predict_interval_genes(self.space.to_genes(archs), coverage)

    # --- persistence -----------------------------------------------------------------------------------------
    def _meta(self) -> dict:
        return {"kind": self.kind, "space": self.space.to_dict() if self.space is not None else None,
                "space_fingerprint": self.space_fingerprint, "feature_names": list(self.feature_names),
                "target": self.target, "model_name": self.model_name, "metrics": self.metrics_,
                "interval_residuals": None if self.interval_residuals_ is None else self.interval_residuals_.tolist(),
                "device": self.device, "profile_header": self.profile_header, "source": self.source}

    @classmethod
    def from_saved(cls, estimator, meta: dict, path, space=None) -> "FeatureTablePredictor":
        """Rebuild a loaded predictor (``load_predictor`` calls this). With ``space``,
        it must be able to price that space's architectures (or a named error says why)."""
        saved_space = None
        if meta.get("space") is not None:
            try:
                saved_space = resolve_space(meta["space"])
            except ConfigError as error:
                raise PredictorError(f"{path}: the predictor metadata has no usable search space ({error})") from None
            if saved_space.fingerprint != meta.get("space_fingerprint"):
                raise PredictorError(f"{path}: its space definition does not match its recorded fingerprint; "
                                     f"the file was edited or corrupted")
        names = meta.get("feature_names")
        if not isinstance(names, list) or not names:
            raise PredictorError(f"{path}: a feature-table predictor file without feature_names")
        predictor = cls(estimator, names, space=saved_space, target=meta.get("target", "latency_ms"),
                        model_name=meta.get("model_name", "custom"), metrics=meta.get("metrics"),
                        interval_residuals=meta.get("interval_residuals"), device=meta.get("device", "unknown"),
                        profile_header=meta.get("profile_header"), source=meta.get("source"))
        if space is not None:
            try:
                predictor.check_architectures()
            except FeatureColumnsError as error:
                raise FeatureColumnsError(f"{path}: {error}") from None
            resolve_space(space).check_fingerprint(saved_space.fingerprint, f"the predictor {path}")
        return predictor

    def __repr__(self) -> str:
        where = f"{self.space.type_name}:{self.space_fingerprint}" if self.space is not None else "no space"
        return (f"FeatureTablePredictor(model={self.model_name!r}, features={list(self.feature_names)}, "
                f"{where}, device={self.device!r})")


def fit_feature_predictor(X, y, feature_names: Sequence[str], space=None, model: str = "auto", cv: int = 5,
                          random_state: int = 0, candidates: Sequence[str] = AUTO_FEATURE_MODELS,
                          target: str = "latency_ms", device: str = "unknown", profile_header: dict | None = None,
                          source: str | os.PathLike | None = None,
                          cv_repeats: int = DEFAULT_REPEATS) -> FeatureTablePredictor:
    """Fit a latency predictor on a feature matrix ``X`` (columns ``feature_names``) and
    latencies ``y`` (ms, > 0).

    ``model="auto"`` scores ``candidates`` on ``cv_repeats`` x ``cv`` seeded folds and
    keeps the simplest one within one standard error of the lowest mean MAPE
    (:mod:`predictors.model_choice`; the reason is in ``metrics_["selection"]``); or
    name one of ``FEATURE_LATENCY_MODELS``. With ``space``, the features must be
    computable from its architectures (then the predictor can drive a search)."""
    names = tuple(str(n) for n in feature_names)
    X = NumericFeatures(names).fit(X).transform(X)
    y = np.asarray(y, dtype=np.float64).ravel()
    if len(y) != len(X):
        raise DataError(f"{len(X)} feature rows but {len(y)} latencies")
    if not np.all(np.isfinite(y)) or np.any(y <= 0):
        raise DataError("latencies must be finite and > 0")
    if space is not None:
        space = resolve_space(space)
        ArchitectureFeatures(space, names)  # refuses columns no architecture determines, before any fitting
    for name in ([model] if model != "auto" else candidates):
        if name not in FEATURE_LATENCY_MODELS:
            raise ConfigError(f"unknown plain-feature latency model {name!r}; available: {FEATURE_LATENCY_MODELS} "
                              f"or 'auto'")
    def make(name):
        return make_latency_model(name, None, random_state, feature_names=names)

    if model == "auto":
        fitted, best, metrics, residuals = _fit_one_standard_error(make, X, y, candidates, cv, cv_repeats,
                                                                   random_state)
    else:
        fitted, best, metrics, residuals = _fit_selected(make, X, y, model, candidates, cv, random_state,
                                                         relative=True)
    metrics["target"] = target
    metrics["n_train"] = int(len(y))
    metrics["features"] = list(names)
    return FeatureTablePredictor(fitted, names, space=space, target=target, model_name=best, metrics=metrics,
                                 interval_residuals=residuals, device=device, profile_header=profile_header,
                                 source=str(source) if source is not None else None)


def _fit_one_standard_error(make, X, y, candidates, folds, repeats, random_state):
    """The automatic choice of :func:`fit_feature_predictor`: ``(fitted, name, metrics,
    residuals)`` as ``core._fit_selected`` returns them, the candidates scored by repeated
    cross-validation and chosen by the one-standard-error rule."""
    if len(y) < 5:
        raise DataError(f"need at least 5 measured rows to fit and cross-validate, got {len(y)}")
    chosen, reason, results, summary = choose_model(make, X, y, candidates, folds, repeats, random_state)
    fitted = make(chosen).fit(X, y)
    metrics = {"cv": {name: r["metrics"] for name, r in results.items()}, "cv_folds": min(folds, len(y)),
               "cv_repeats": int(repeats), "cv_fold_mape": summary,
               "selection": {"model": chosen, "reason": reason, "candidates": list(candidates),
                             "rule": "one-standard-error (repeated cross-validation, mean fold MAPE)"},
               "table": format_table({name: r["metrics"] for name, r in results.items()})}
    oof = results[chosen]["oof"]
    return fitted, chosen, metrics, y / oof - 1.0


__all__ = ["ArchitectureFeatures", "FeatureColumnsError", "FeatureTablePredictor", "HAT_FEATURES", "NumericFeatures",
           "computable_feature_names", "fit_feature_predictor", "gene_column_names", "gene_values",
           "genes_from_values"]
