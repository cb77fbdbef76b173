"""Regressors with the scikit-learn estimator API, and the named model recipes.

Every recipe is a :class:`~sklearn.pipeline.Pipeline` whose first step is an
:class:`~predictors.features.ArchFeaturizer`, so it takes gene matrices and
works in ``cross_val_score``, ``GridSearchCV`` and friends.

Latency models (``LATENCY_MODELS``):

``macs-linear``
    Linear regression on total MACs: the baseline everyone beats.
``lut``
    Once-for-All's additive lookup table, fitted from the measurements: one
    latency per (gene, choice) plus a constant (:class:`AdditiveLUTRegressor`).
``rf`` / ``gbr``
    Random forest / gradient boosting on the analytic features, fitted on the
    log of the latency (relative errors are what matter).
``hybrid``
    A non-negative linear model on the per-op work, memory traffic, layer,
    group and tile counts, times a gradient-boosting correction fitted on its
    relative residual (:class:`HybridLatencyRegressor`). The linear part
    extrapolates like the physics does; the trees fix what it misses (e.g.
    kernel-size and cache effects) without needing many samples.

Plain feature matrices (a user's latency table with its own columns, see
:mod:`predictors.tabular`): ``make_latency_model(name, None, feature_names=...)``
gives ``FEATURE_LATENCY_MODELS``, the same recipes with a
:class:`~predictors.features.NumericFeatures` first step (``linear`` instead of
``macs-linear``: least squares on every column).

Transfer to a new device: :class:`SourceCorrectionRegressor` (see
``predictors.fit_transfer_predictor``).

Accuracy models (``ACCURACY_MODELS``): ``mlp`` (Once-for-All's 3 x 400 MLP with
Adam on the one-hot encoding) and ``gbr`` (gradient boosting on the encoding
plus the analytic features).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data

from ofa.errors import ConfigError

from .features import OPS, TILE_SIZES, ArchFeaturizer, NumericFeatures, analytic_feature_names

LATENCY_MODELS = ("macs-linear", "lut", "rf", "gbr", "hybrid")
# Recipes on a plain numeric feature matrix (make_latency_model(name, None, feature_names=...)).
FEATURE_LATENCY_MODELS = ("linear", "lut", "rf", "gbr", "hybrid")
AUTO_FEATURE_MODELS = ("linear", "lut", "gbr", "hybrid")
ACCURACY_MODELS = ("mlp", "gbr")
TRANSFER_CORRECTIONS = ("log-linear", "scale", "linear")


class AdditiveLUTRegressor(RegressorMixin, BaseEstimator):
    """``y = intercept + sum_j table[j][X[:, j]]``: one additive term per
    column value, every column treated as categorical (Once-for-All's latency
    lookup table, fitted by least squares instead of measured layer by layer).

    On gene matrices a column is one decision (a block's kernel, its expand
    ratio, a stage's depth, the resolution) and value -1 (a skipped block)
    gets its own entry like any other. A value not seen in training adds 0.

    Parameters
    ----------
    alpha : float
        Ridge penalty on the table entries (0 = plain least squares, minimum
        norm where the one-hot design is rank deficient).
    """

    def __init__(self, alpha=0.0):
        self.alpha = alpha

    def _design(self, X) -> np.ndarray:
        blocks = [(X[:, [j]] == values[None, :]) for j, values in enumerate(self.categories_)]
        return np.hstack(blocks).astype(np.float64) if blocks else np.zeros((len(X), 0))

    def fit(self, X, y):
        X, y = validate_data(self, X, y, y_numeric=True)
        if self.alpha < 0:
            raise ConfigError(f"alpha must be >= 0, got {self.alpha}")
        self.categories_ = [np.unique(X[:, j]) for j in range(X.shape[1])]
        design = self._design(X)
        mean_y = y.mean()
        centered = design - design.mean(axis=0)
        if self.alpha > 0:
            gram = centered.T @ centered + self.alpha * np.eye(centered.shape[1])
            coef = np.linalg.solve(gram, centered.T @ (y - mean_y))
        else:
            coef = np.linalg.lstsq(centered, y - mean_y, rcond=None)[0]
        self.intercept_ = float(mean_y - design.mean(axis=0) @ coef)
        sizes = np.cumsum([0] + [len(v) for v in self.categories_])
        self.table_ = [coef[sizes[j]:sizes[j + 1]] for j in range(len(self.categories_))]
        return self

    def predict(self, X):
        check_is_fitted(self, "table_")
        X = validate_data(self, X, reset=False)
        out = np.full(len(X), self.intercept_)
        for j, (values, entries) in enumerate(zip(self.categories_, self.table_)):
            position = np.clip(np.searchsorted(values, X[:, j]), 0, len(values) - 1)
            known = values[position] == X[:, j]
            out += np.where(known, entries[position], 0.0)
        return out


class HybridLatencyRegressor(RegressorMixin, BaseEstimator):
    """``y = linear(X[:, linear_columns]) * (1 + trees(X))``.

    The linear part (non-negative coefficients on standardised columns, free
    intercept) models latency as work + memory traffic + per-layer overhead;
    a gradient-boosting model fitted on the relative residual ``y / linear - 1``
    corrects it multiplicatively.

    Parameters
    ----------
    linear_columns : sequence of int or None
        Columns of ``X`` the linear part uses (None: all).
    n_estimators, learning_rate, max_depth, subsample, min_samples_leaf, loss : tree-part settings
        Passed to :class:`~sklearn.ensemble.GradientBoostingRegressor`. The
        Huber loss keeps a few measurements taken under load spikes from
        pulling the correction.
    random_state : int
    """

    def __init__(self, linear_columns=None, n_estimators=200, learning_rate=0.05, max_depth=3, subsample=0.8,
                 min_samples_leaf=3, loss="huber", random_state=0):
        self.linear_columns = linear_columns
        self.loss = loss
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.subsample = subsample
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state

    def _linear_part(self, X) -> np.ndarray:
        columns = X if self.linear_columns is None else X[:, list(self.linear_columns)]
        return columns / self.scale_

    def fit(self, X, y):
        X, y = validate_data(self, X, y, y_numeric=True)
        if len(y) < 2:
            raise ValueError("HybridLatencyRegressor needs at least 2 samples, got n_samples = 1")
        columns = X if self.linear_columns is None else X[:, list(self.linear_columns)]
        scale = columns.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        self.linear_ = LinearRegression(positive=True).fit(self._linear_part(X), y)
        base = self._base(X)
        self.trees_ = GradientBoostingRegressor(
            n_estimators=self.n_estimators, learning_rate=self.learning_rate, max_depth=self.max_depth,
            subsample=self.subsample, min_samples_leaf=self.min_samples_leaf, loss=self.loss,
            random_state=self.random_state,
        ).fit(X, y / base - 1.0)
        return self

    def _base(self, X) -> np.ndarray:
        # A floor keeps the relative residual finite where the linear part
        # predicts ~0 (it cannot be negative for real latencies).
        base = self.linear_.predict(self._linear_part(X))
        floor = max(1e-9, 1e-3 * float(np.abs(self.linear_.intercept_)))
        return np.where(np.abs(base) > floor, base, np.where(base >= 0, floor, -floor))

    def predict(self, X):
        check_is_fitted(self, "trees_")
        X = validate_data(self, X, reset=False)
        return self._base(X) * (1.0 + self.trees_.predict(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True  # latencies: the residual is relative
        return tags


class SourceCorrectionRegressor(RegressorMixin, BaseEstimator):
    """Transfer to a new device from a few measurements, on top of a fitted
    predictor of another (source) device.

    ``correction``:

    ``"log-linear"``
        ``y = exp(a) * source(X) ** b``: the new device differs by speed and by
        how it scales with size (two parameters).
    ``"scale"``
        ``y = c * source(X)`` (one parameter).
    ``"linear"``
        ``y = c0 + c * source(X) + sum_j w_j * features_j(X)`` with non-negative
        ``c, w`` fitted for relative error: the source prediction plus the
        per-op work, memory and tile counts, for devices whose balance between
        op types differs from the source's (a CPU and a systolic array).

    Parameters
    ----------
    source : fitted estimator, wrapped in ``sklearn.frozen.FrozenEstimator``
        Predicts the source device's latency from the same ``X`` (frozen so that
        ``clone`` inside cross-validation keeps it fitted).
    correction : "log-linear", "scale" or "linear"
    features : fitted transformer wrapped in ``FrozenEstimator`` (``"linear"`` only)
        The extra columns of the linear correction, computed from ``X``.
    """

    def __init__(self, source=None, correction="log-linear", features=None):
        self.source = source
        self.correction = correction
        self.features = features

    def _source_prediction(self, X) -> np.ndarray:
        return np.maximum(np.asarray(self.source.predict(X), dtype=np.float64), 1e-12)

    def _design(self, X) -> np.ndarray:
        return np.column_stack([self._source_prediction(X), self.features.transform(X)])

    def fit(self, X, y):
        X, y = validate_data(self, X, y, y_numeric=True)
        if self.source is None:
            raise ConfigError("SourceCorrectionRegressor needs source=FrozenEstimator(fitted source model)")
        if self.correction not in TRANSFER_CORRECTIONS:
            raise ConfigError(f"correction={self.correction!r} unknown; use one of {TRANSFER_CORRECTIONS}")
        if np.any(y <= 0):
            raise ConfigError("transfer corrections fit positive targets (latencies)")
        if self.correction == "linear":
            if self.features is None:
                raise ConfigError("correction='linear' needs features=FrozenEstimator(fitted ArchFeaturizer)")
            design = self._design(X)
            scale = design.std(axis=0)
            self.scale_ = np.where(scale > 0, scale, 1.0)
            # Weights 1/y^2 turn squared error into squared relative error.
            self.linear_ = LinearRegression(positive=True).fit(design / self.scale_, y, sample_weight=1.0 / y**2)
            return self
        s, t = np.log(self._source_prediction(X)), np.log(y)
        if self.correction == "log-linear" and len(y) >= 3 and np.ptp(s) > 0:
            self.slope_, self.offset_ = (float(v) for v in np.polyfit(s, t, 1))
        else:
            self.slope_, self.offset_ = 1.0, float(np.median(t - s))
        return self

    def predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        if self.correction == "linear":
            return self.linear_.predict(self._design(X) / self.scale_)
        return np.exp(self.offset_ + self.slope_ * np.log(self._source_prediction(X)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True  # latencies (fitted in log space or for relative error)
        # A low-capacity correction of a given source: it cannot fit arbitrary data.
        tags.regressor_tags.poor_score = True
        return tags



def per_op_feature_names(space) -> tuple[str, ...]:
    """The analytic features that add up physically: work, memory traffic, layer,
    group and tile counts per op type (not the totals or per-stage MACs)."""
    wanted = {f"{kind}_{op}" for kind in ("macs", "memory", "layers", "groups") for op in OPS}
    wanted |= {f"{kind}{t}" for kind in ("macs_tile", "tiles") for t in TILE_SIZES}
    return tuple(name for name in analytic_feature_names(space) if name in wanted)


def _log_target(regressor) -> TransformedTargetRegressor:
    # Fitting log-latency makes squared error act like relative error.
    return TransformedTargetRegressor(regressor=regressor, func=np.log, inverse_func=np.exp, check_inverse=False)


def make_latency_model(name: str, space, random_state: int = 0, feature_names=None) -> Pipeline:
    """An unfitted latency model recipe (see the module docstring).

    The contract on ``X``: with a search space, ``X`` is a gene matrix of that
    space (``LATENCY_MODELS``); with ``space=None`` and ``feature_names`` (the
    column names), ``X`` is a plain numeric feature matrix with those columns,
    one row per measured network (``FEATURE_LATENCY_MODELS``: ``linear`` is a
    least-squares fit on every column, the others as below on the columns)."""
    if space is None:
        return _make_feature_latency_model(name, feature_names, random_state)
    if feature_names is not None:
        raise ConfigError("feature_names is for plain feature matrices (space=None); a space's recipes take genes")
    space_dict = space.to_dict()
    if name == "macs-linear":
        return Pipeline([("features", ArchFeaturizer(space_dict, ("macs",))), ("model", LinearRegression())])
    if name == "lut":
        return Pipeline([("features", ArchFeaturizer(space_dict, "genes")), ("model", AdditiveLUTRegressor())])
    if name == "rf":
        forest = RandomForestRegressor(n_estimators=100, min_samples_leaf=2, max_features=0.5,
                                       random_state=random_state)
        return Pipeline([("features", ArchFeaturizer(space_dict, "analytic")), ("model", _log_target(forest))])
    if name == "gbr":
        boosting = GradientBoostingRegressor(n_estimators=300, learning_rate=0.05, max_depth=3, subsample=0.8,
                                             min_samples_leaf=3, random_state=random_state)
        return Pipeline([("features", ArchFeaturizer(space_dict, "analytic")), ("model", _log_target(boosting))])
    if name == "hybrid":
        names = analytic_feature_names(space)
        linear = tuple(names.index(n) for n in per_op_feature_names(space))
        return Pipeline([("features", ArchFeaturizer(space_dict, "analytic")),
                         ("model", HybridLatencyRegressor(linear_columns=linear, random_state=random_state))])
    raise ConfigError(f"unknown latency model {name!r}; available: {LATENCY_MODELS}")


def _make_feature_latency_model(name: str, feature_names, random_state: int) -> Pipeline:
    if feature_names is None or isinstance(feature_names, str) or not len(feature_names):
        raise ConfigError("a plain-feature latency recipe needs feature_names (the column names of X); for gene "
                          "matrices pass the search space")
    features = ("features", NumericFeatures(tuple(feature_names)))
    if name == "linear":
        return Pipeline([features, ("model", LinearRegression())])
    if name == "lut":
        return Pipeline([features, ("model", AdditiveLUTRegressor())])
    if name == "rf":
        forest = RandomForestRegressor(n_estimators=100, min_samples_leaf=2, max_features=0.5,
                                       random_state=random_state)
        return Pipeline([features, ("model", _log_target(forest))])
    if name == "gbr":
        boosting = GradientBoostingRegressor(n_estimators=300, learning_rate=0.05, max_depth=3, subsample=0.8,
                                             min_samples_leaf=3, random_state=random_state)
        return Pipeline([features, ("model", _log_target(boosting))])
    if name == "hybrid":
        return Pipeline([features, ("model", HybridLatencyRegressor(random_state=random_state))])
    raise ConfigError(f"unknown plain-feature latency model {name!r}; available: {FEATURE_LATENCY_MODELS}")


def make_accuracy_model(name: str, space, random_state: int = 0, max_iter: int = 300) -> Pipeline:
    """An unfitted accuracy (or loss) model recipe."""
    space_dict = space.to_dict()
    if name == "mlp":
        mlp = MLPRegressor(hidden_layer_sizes=(400, 400, 400), solver="adam", learning_rate_init=1e-3,
                           alpha=1e-4, max_iter=max_iter, early_stopping=True, validation_fraction=0.2,
                           n_iter_no_change=20,
                           random_state=random_state)
        # Standardised targets: Adam's default step suits unit-scale outputs.
        return Pipeline([("features", ArchFeaturizer(space_dict, "encoding")),
                         ("model", TransformedTargetRegressor(regressor=mlp, transformer=StandardScaler()))])
    if name == "gbr":
        boosting = GradientBoostingRegressor(n_estimators=300, learning_rate=0.05, max_depth=3, subsample=0.8,
                                             min_samples_leaf=3, random_state=random_state)
        return Pipeline([("features", ArchFeaturizer(space_dict, "analytic+encoding")), ("model", boosting)])
    raise ConfigError(f"unknown accuracy model {name!r}; available: {ACCURACY_MODELS}")
