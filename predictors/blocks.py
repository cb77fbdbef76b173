"""Composable latency predictors: a network as the sum of its blocks.

A device measured block by block (a *block profile*, ``docs/profiles.md``)
prices every network of a space without measuring networks: ``space.blocks(arch)``
lists the blocks a network runs, and its latency is

    latency(arch) ~= correction( overhead + sum over its blocks of (block_latency(block) - overhead),
                                 number of blocks )

* ``block_latency`` is a table look-up where the block was measured, and a
  regressor on block features where it was not (:class:`BlockLatencyRegressor`:
  per-op work, memory traffic, tile counts and the block kind, plus a source
  device's latency of the same block when transferring);
* ``overhead`` is the runtime's per-inference cost, measured as a ``null`` block
  (:class:`ofa.spaces.NullBlock`) on timed backends: every block timed alone
  paid it once, a network pays it once in all;
* ``correction`` is a network-level model fitted on a few whole-network
  measurements when there are some (what the sum misses: per-inference
  overhead counted once per block, fusion across blocks); without networks
  it is the identity. It is a function of the block sum and the number of
  blocks only, so one fitted on the measured networks of another space of the
  same device (:func:`fit_network_correction`) applies to a space that runs
  (mostly) the same blocks: ``fit_block_predictor(..., correction_from=(source
  blocks, source networks))``.

:class:`BlockSumRegressor` is a scikit-learn regressor on gene matrices. The
sums are precomputed per block choice over the space's additive layout
(:func:`ofa.spaces.tables.build_additive_tables`, the same tables the cost
model and the analytic features use), so predicting a batch of architectures
is a few table look-ups, as fast as the other predictors. :func:`fit_block_predictor`
returns a normal :class:`~predictors.core.LatencyPredictor` (``predict_genes``,
intervals, ``save``/``load_predictor``, space fingerprint), usable by
specialisation and search unchanged.

Featurizers are plain ``fit``/``transform`` objects: :class:`BlockFeaturizer`
turns block specs (or keys) into a feature matrix; the architecture featurizer
(:class:`~predictors.features.ArchFeaturizer`) turns gene rows into features.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import KFold
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted, validate_data

from ofa.errors import ConfigError, DataError, SpaceMismatchError
from ofa.spaces import BlockSpec, block_from_key, resolve_space
from ofa.spaces.tables import build_additive_tables

from hardware_profiles.dataset import Profile, read_profile

from .base import LatencyPredictor, json_safe, profile_targets, resolve_label
from .features import GROUPED_OPS, OPS, TILE_SIZES, ArchFeaturizer, tiled_work
from .metrics import format_table, regression_report

BLOCK_MODELS = ("linear", "scale", "log-linear", "components")  # how unmeasured blocks are predicted
# The pull of each component weight of the ``components`` block model towards the single scale
# factor, in squared relative error: a weight 100% off the common factor costs as much as one
# block predicted about 30% off (0.3^2 ~ 0.1), the typical error of the one-factor model at 5-10
# blocks on the shipped pairs (benchmarks/results/transfer_blocks.json). A choice of prior
# strength, not a property of any device.
COMPONENT_PRIOR = 0.1
# With ``select_block_model(prefer_default=True)``: how many standard errors of the paired
# out-of-fold difference a model must beat the default by before the choice leaves it (two: the
# usual bar for "clearly", since with 5-20 blocks CV MAPEs differ by chance as much as by merit).
CLEAR_MARGIN_SE = 2.0


def record_components(record: dict) -> "dict[str, float] | None":
    """A simulated block's latency split into the simulator's own parts (ms, summing to the
    latency), or None where the record has none (timed devices, imports). ``fpga-dpu``:
    ``engine_cycles`` (conv, alu, eltwise, ddr stalls, per-op overhead; they sum to
    ``cycles``); ``fpga-analytical`` / ``fpga-scalesim``: ``array_cycles``,
    ``overhead_cycles`` and the rest of ``cycles`` (memory stalls and what else the model adds)."""
    stats = record.get("latency_ms") or {}
    latency, cycles = stats.get("median"), record.get("cycles")
    if not isinstance(latency, (int, float)) or not isinstance(cycles, (int, float)) or cycles <= 0:
        return None
    if isinstance(record.get("engine_cycles"), dict):
        parts = {str(k): float(v) for k, v in record["engine_cycles"].items()}
    elif "array_cycles" in record and "overhead_cycles" in record:
        parts = {"array": float(record["array_cycles"]), "overhead": float(record["overhead_cycles"])}
        parts["other"] = max(float(cycles) - parts["array"] - parts["overhead"], 0.0)
    else:
        return None
    total = sum(parts.values())
    if total <= 0:
        return None
    return {name: float(latency) * value / total for name, value in sorted(parts.items())}
NETWORK_CORRECTIONS = ("none", "scale", "linear")  # how block sums become network latencies
BLOCK_FEATURE_NAMES = tuple(
    ["macs", "params", "activations", "memory", "layers", "input_elements"]
    + [f"macs_{op}" for op in OPS] + [f"memory_{op}" for op in OPS] + [f"layers_{op}" for op in OPS]
    + [f"groups_{op}" for op in GROUPED_OPS]
    + [f"macs_tile{t}" for t in TILE_SIZES] + [f"tiles{t}" for t in TILE_SIZES])


def as_block(value) -> BlockSpec:
    """A block spec from a spec or its key."""
    if isinstance(value, BlockSpec):
        return value
    if isinstance(value, (str, np.str_)):
        return block_from_key(str(value))
    raise ConfigError(f"expected a block spec or a block key, got {type(value).__name__}")


def block_features(block: BlockSpec) -> np.ndarray:
    """The additive analytic features of one block (:data:`BLOCK_FEATURE_NAMES`)."""
    index = {name: i for i, name in enumerate(BLOCK_FEATURE_NAMES)}
    out = np.zeros(len(BLOCK_FEATURE_NAMES))
    layers = block.layers()
    for layer in layers:
        memory = layer.input_elements + layer.output_elements + layer.params
        out[index["macs"]] += layer.macs
        out[index["params"]] += layer.params
        out[index["activations"]] += layer.output_elements
        out[index["memory"]] += memory
        out[index["layers"]] += 1
        if layer.op in OPS:
            out[index[f"macs_{layer.op}"]] += layer.macs
            out[index[f"memory_{layer.op}"]] += memory
            out[index[f"layers_{layer.op}"]] += 1
        if layer.op in GROUPED_OPS:
            out[index[f"groups_{layer.op}"]] += layer.groups
        for t in TILE_SIZES:
            tiled_macs, tiles = tiled_work(layer, t)
            out[index[f"macs_tile{t}"]] += tiled_macs
            out[index[f"tiles{t}"]] += tiles
    out[index["input_elements"]] = float(np.prod(block.example_input_shape))
    out[index["params"]] += block.norm_params()
    return out


class BlockFeaturizer(TransformerMixin, BaseEstimator):
    """Block specs (or keys) -> feature matrix: the additive analytic features of
    the block's layers (:data:`BLOCK_FEATURE_NAMES`) and a one-hot column per block
    kind seen in ``fit`` (a per-kind constant: launch and element-wise costs)."""

    def __init__(self, kinds=None):
        self.kinds = kinds

    def fit(self, X, y=None):
        blocks = [as_block(b) for b in X]
        self.kinds_ = list(self.kinds) if self.kinds is not None else sorted({b.kind for b in blocks})
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "kinds_")
        blocks = [as_block(b) for b in X]
        features = np.array([block_features(b) for b in blocks]).reshape(len(blocks), len(BLOCK_FEATURE_NAMES))
        kinds = np.array([[b.kind == k for k in self.kinds_] for b in blocks], dtype=np.float64)
        return np.hstack([features, kinds.reshape(len(blocks), len(self.kinds_))])

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "kinds_")
        return np.array(list(BLOCK_FEATURE_NAMES) + [f"kind={k}" for k in self.kinds_], dtype=object)


def _relative_weights(y: np.ndarray) -> np.ndarray:
    """Weights 1/y^2 (squared error becomes squared relative error); a floor keeps
    blocks a simulator prices at 0 (embeddings) from dominating."""
    floor = 1e-3 * float(np.median(y[y > 0])) if np.any(y > 0) else 1.0
    return 1.0 / np.maximum(y, floor) ** 2


class BlockLatencyRegressor(RegressorMixin, BaseEstimator):
    """Latency of blocks that were not measured, from those that were.

    ``X`` is a sequence of block keys (or specs). ``model``:

    ``"linear"``
        non-negative linear model (fitted for relative error) on the block
        features (:class:`BlockFeaturizer`) and, with ``source_latencies``, the
        source device's latency of the block;
    ``"scale"``
        ``c * source(block)`` (needs ``source_latencies``);
    ``"log-linear"``
        ``exp(a) * source(block) ** b`` (needs ``source_latencies``);
    ``"components"``
        ``sum_i w_i * component_i(block)``: the source simulator's parts of the block's
        latency (compute, memory stalls, per-op overhead: :func:`record_components`)
        re-weighted, ``w >= 0``, for relative error, each weight shrunk towards the
        single ``scale`` factor (a ridge penalty on ``w_i / c - 1``,
        :data:`COMPONENT_PRIOR`): with few blocks it stays near ``scale``, with
        more the data re-weight the parts (needs ``source_components``).

    Parameters
    ----------
    model : "linear", "scale" or "log-linear"
    source_latencies : dict {block key: ms} or None
        Another device's (or a simulator's, or MACs as a pseudo device) latency of
        every block to be predicted: the few-shot transfer source.
    source_components : dict {block key: {part: ms}} or None
        The same source's latency of every block split into its parts (simulators).
    """

    source_components = None  # predictors saved before the parameter existed lack the attribute

    def __init__(self, model="linear", source_latencies=None, source_components=None):
        self.model = model
        self.source_latencies = source_latencies
        self.source_components = source_components

    def _components(self, keys) -> np.ndarray:
        missing = [k for k in keys if k not in self.source_components]
        if missing:
            raise DataError(f"the transfer source has no latency components for {len(missing)} block(s), e.g. "
                            f"{missing[0]!r}")
        return np.array([[self.source_components[k][name] for name in self.component_names_] for k in keys],
                        dtype=np.float64)

    def _source(self, keys) -> np.ndarray:
        missing = [k for k in keys if k not in self.source_latencies]
        if missing:
            raise DataError(f"the transfer source has no latency for {len(missing)} block(s), e.g. {missing[0]!r}; "
                            f"profile the source on every block of the space (ofa-profile-device --blocks)")
        return np.array([self.source_latencies[k] for k in keys], dtype=np.float64)

    def _design(self, keys) -> np.ndarray:
        columns = [self.featurizer_.transform(keys)]
        if self.source_latencies is not None:
            columns.insert(0, self._source(keys)[:, None])
        return np.hstack(columns)

    def fit(self, X, y):
        keys = [as_block(b).key for b in X]
        y = np.asarray(y, dtype=np.float64)
        if len(keys) != len(y) or not len(y):
            raise DataError(f"{len(keys)} blocks but {len(y)} latencies (need at least one of each)")
        if self.model not in BLOCK_MODELS:
            raise ConfigError(f"block model {self.model!r} unknown; allowed: {BLOCK_MODELS}")
        if self.model != "linear" and self.source_latencies is None:
            raise ConfigError(f"block model {self.model!r} maps a source device's block latencies: give "
                              f"source_latencies")
        if self.model == "components" and not self.source_components:
            raise ConfigError("block model 'components' re-weights a simulator's latency components: give "
                              "source_components")
        self.featurizer_ = BlockFeaturizer().fit(keys)
        if self.model == "components":
            return self._fit_components(keys, y)
        if self.model == "linear":
            design = self._design(keys)
            scale = np.abs(design).max(axis=0)
            self.scale_ = np.where(scale > 0, scale, 1.0)
            self.linear_ = LinearRegression(positive=True, fit_intercept=False).fit(
                design / self.scale_, y, sample_weight=_relative_weights(y))
            return self
        s = self._source(keys)
        usable = (s > 0) & (y > 0)
        if not usable.any():
            self.slope_, self.offset_ = 1.0, 0.0
        elif self.model == "log-linear" and usable.sum() >= 3 and np.ptp(np.log(s[usable])) > 0:
            self.slope_, self.offset_ = (float(v) for v in np.polyfit(np.log(s[usable]), np.log(y[usable]), 1))
        else:
            self.slope_, self.offset_ = 1.0, float(np.median(np.log(y[usable]) - np.log(s[usable])))
        return self

    def _fit_components(self, keys, y) -> "BlockLatencyRegressor":
        """Non-negative weights of the source's components for relative error, shrunk towards
        the scale model's single factor ``c`` (see the class docstring): the augmented least
        squares ``[C / y; I] v = [1; 1]`` over ``v = w / c``, solved with ``v >= 0``."""
        from scipy.optimize import nnls

        self.component_names_ = sorted({name for k in keys for name in self.source_components.get(k, {})})
        C = self._components(keys)
        s, usable = C.sum(axis=1), y > 0
        ratios = y[usable] / s[usable] if usable.any() else np.ones(1)
        self.scale_factor_ = float(np.exp(np.median(np.log(ratios[ratios > 0])))) if np.any(ratios > 0) else 1.0
        weight = 1.0 / np.maximum(y, 1e-3 * float(np.median(y[usable])) if usable.any() else 1.0)
        prior = np.sqrt(COMPONENT_PRIOR) * np.eye(C.shape[1])
        design = np.vstack([C * self.scale_factor_ * weight[:, None], prior])
        target = np.concatenate([y * weight, np.sqrt(COMPONENT_PRIOR) * np.ones(C.shape[1])])
        v, _ = nnls(design, target)
        self.component_weights_ = self.scale_factor_ * v
        return self

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "featurizer_")
        keys = [as_block(b).key for b in X]
        if not keys:
            return np.zeros(0)
        if self.model == "components":
            return self._components(keys) @ self.component_weights_
        if self.model == "linear":
            return self.linear_.predict(self._design(keys) / self.scale_)
        s = self._source(keys)
        out = np.zeros(len(s))
        positive = s > 0
        out[positive] = np.exp(self.offset_ + self.slope_ * np.log(s[positive]))
        return out


def select_block_model(keys: Sequence[str], y: np.ndarray, source_latencies: dict | None = None,
                       candidates: Sequence[str] | None = None, cv: int = 5,
                       random_state: int = 0, source_components: dict | None = None,
                       prefer_default: bool = False) -> tuple[str, dict]:
    """The block model with the lowest cross-validated MAPE on the measured blocks
    (out-of-fold: every prediction is for a block the model did not see), and the
    metrics of every candidate. Candidates: ``components`` where the source gives its
    latency components (first: it wins ties), ``scale``, ``log-linear`` and ``linear``
    with a source, ``linear`` alone without one.

    ``prefer_default``: keep the default (the first candidate: ``components``, else
    ``scale`` with a source, else ``linear``) unless another candidate's out-of-fold
    absolute relative errors are lower by more than :data:`CLEAR_MARGIN_SE` standard
    errors of the paired difference. Off by default: on every ordered pair of shipped
    block profiles (``benchmarks/transfer.py --blocks-components``) it cost 5-20 points
    within +-10% at 5-10 blocks against the lowest MAPE. With fewer than 4 blocks: the
    default, without cross-validation."""
    if candidates is None:
        candidates = (("components",) if source_components else ()) + \
            (("scale", "log-linear", "linear") if source_latencies is not None else ("linear",))
    default = candidates[0]
    y = np.asarray(y, dtype=np.float64)
    if len(y) < 4:
        return default, {}
    folds = KFold(n_splits=min(cv, len(y)), shuffle=True, random_state=random_state)
    keys = np.asarray(list(keys), dtype=object)
    positive = y > 0
    metrics, errors = {}, {}
    for name in candidates:
        oof = np.zeros(len(y))
        for train, test in folds.split(keys):
            model = BlockLatencyRegressor(name, source_latencies, source_components).fit(list(keys[train]), y[train])
            oof[test] = model.predict(list(keys[test]))
        prediction = np.maximum(oof[positive], 1e-12)
        metrics[name] = regression_report(y[positive], prediction)
        errors[name] = np.abs(prediction / y[positive] - 1.0)
    if not prefer_default:
        return min(metrics, key=lambda name: metrics[name]["mape"]), metrics
    best = default
    for name in candidates[1:]:
        difference = errors[default] - errors[name]  # > 0 where the candidate is better
        margin = CLEAR_MARGIN_SE * float(np.std(difference, ddof=1)) / np.sqrt(len(difference))
        if float(np.mean(difference)) > margin and metrics[name]["mape"] < metrics[best]["mape"]:
            best = name
    return best, metrics


@dataclass
class _NamedBlock:
    """A block seen by the table builder as one "layer" named ``<block name>.``."""

    name: str
    block: BlockSpec


class _BlockView:
    """The space as :func:`build_additive_tables` probes it, with the blocks of each
    network (``space.blocks(arch, **options)``) in place of its layers."""

    def __init__(self, space, options: dict):
        self.space, self.options = space, options
        self.choice_counts = space.choice_counts

    def additive_layout(self):
        return self.space.additive_layout()

    def from_genes(self, genes):
        return self.space.from_genes(genes)

    def cost(self, arch):
        class _Parts:
            layers = [_NamedBlock(f"{name}.", block) for name, block in self.space.blocks(arch, **self.options)]
        return _Parts


class BlockSumRegressor(RegressorMixin, BaseEstimator):
    """Network latency from block latencies, on gene matrices (see the module docstring).

    Parameters
    ----------
    space : space dict (``space.to_dict()``), preset name or SearchSpace
    block_latencies : dict {block key: ms}
        The measured blocks (a block profile's ``block_latencies()``).
    block_options : dict or None
        Passed to ``space.blocks(arch, ...)``: the workload of a Transformer space
        (``{"mode": "decode", "target_length": 20}``); None for CNN spaces.
    source_latencies : dict {block key: ms} or None
        A source device's latency of every block (transfer); used by the block model.
    source_components : dict {block key: {part: ms}} or None
        The source simulator's latency of every block in parts (:func:`record_components`);
        with it the default block model re-weights the parts (``components``).
    block_model : "auto" or one of :data:`BLOCK_MODELS`
        How unmeasured blocks are predicted ("auto": cross-validated on the measured blocks).
    runtime_overhead : "auto", float or None
        The runtime's per-inference cost, which every block measured alone paid once
        and a network pays once in all: ``(n_blocks - 1) * overhead`` is taken off
        each sum. "auto": the latency of the ``null`` block(s) in ``block_latencies``
        (``profile_blocks`` measures one on timed backends), else 0.
    correction : "auto" or one of :data:`NETWORK_CORRECTIONS`
        Network-level correction fitted on the ``(X, y)`` given to ``fit``:
        ``"scale"`` (``c * sum``), ``"linear"`` (``c0 + c1 * sum + c2 * blocks``, for
        relative error). ``"auto"``: none without networks, ``scale`` with fewer than
        6, else the lower cross-validated MAPE of the two.
    fixed_correction : dict or None
        A correction fitted elsewhere, ``{"correction": name, "coef": [c0, c1, c2]}``
        (:meth:`NetworkCorrection.as_fixed`: fitted on the networks of another space
        of the same device), applied when ``fit`` is given no networks.
    """

    source_components = None  # predictors saved before the parameter existed lack the attribute

    def __init__(self, space=None, block_latencies=None, block_options=None, source_latencies=None,
                 block_model="auto", correction="auto", runtime_overhead="auto", fixed_correction=None,
                 source_components=None):
        self.source_components = source_components
        self.space = space
        self.block_latencies = block_latencies
        self.block_options = block_options
        self.source_latencies = source_latencies
        self.block_model = block_model
        self.correction = correction
        self.runtime_overhead = runtime_overhead
        self.fixed_correction = fixed_correction

    # --- blocks -----------------------------------------------------------------------------------
    def _space(self):
        if self.space is None:
            raise ConfigError("BlockSumRegressor needs the search space: BlockSumRegressor(space=...)")
        return resolve_space(self.space)

    def _fit_blocks(self, space) -> None:
        if not self.block_latencies:
            raise DataError("a block-sum predictor needs measured blocks (block_latencies: {block key: ms})")
        options = dict(self.block_options or {})
        view = _BlockView(space, options)
        if space.additive_layout() is None:
            raise ConfigError(f"a {space.type_name} space has no additive layout; block-sum predictors need one "
                              f"(SearchSpace.additive_layout)")
        universe: dict[str, BlockSpec] = {}

        def collect(parts):
            for part in parts:
                universe.setdefault(part.block.key, part.block)
            return np.zeros(1)

        build_additive_tables(view, collect, 1)
        measured = {str(k): float(v) for k, v in self.block_latencies.items()}
        null = [v for k, v in measured.items() if k.startswith("null:")]
        if self.runtime_overhead == "auto":
            self.overhead_ = float(np.median(null)) if null else 0.0
        elif self.runtime_overhead is None:
            self.overhead_ = 0.0
        elif isinstance(self.runtime_overhead, (int, float)) and self.runtime_overhead >= 0:
            self.overhead_ = float(self.runtime_overhead)
        else:
            raise ConfigError(f"runtime_overhead must be 'auto', None or a latency >= 0, got {self.runtime_overhead!r}")
        measured = {k: v for k, v in measured.items() if not k.startswith("null:")}
        if not measured:
            raise DataError("a block-sum predictor needs measured blocks besides the runtime's null block")
        keys = list(measured)
        y = np.array([measured[k] for k in keys])
        if np.any(~np.isfinite(y)) or np.any(y < 0):
            raise DataError("block latencies must be finite and >= 0")
        unmeasured = [k for k in universe if k not in measured]
        model = self.block_model
        self.block_selection_ = {}
        if model == "auto":
            model, self.block_selection_ = select_block_model(keys, y, self.source_latencies,
                                                             source_components=self.source_components)
        elif model not in BLOCK_MODELS:
            raise ConfigError(f"block_model {model!r} unknown; allowed: 'auto' or {BLOCK_MODELS}")
        self.block_model_ = model
        self.block_regressor_ = BlockLatencyRegressor(model, self.source_latencies,
                                                      self.source_components).fit(keys, y)
        predicted = self.block_regressor_.predict(unmeasured) if unmeasured else np.zeros(0)
        latency = dict(measured)
        latency.update({k: float(max(v, 0.0)) for k, v in zip(unmeasured, predicted)})
        self.block_table_ = latency
        self.block_keys_ = list(universe)
        self.n_blocks_used_ = len(universe)
        self.n_blocks_measured_ = len(universe) - len(unmeasured)
        self.n_blocks_predicted_ = len(unmeasured)

        overhead = self.overhead_

        def value(parts):  # each block's surplus runtime overhead off; block_sums adds one back per network
            return np.array([sum(latency[p.block.key] - overhead for p in parts), float(len(parts))])

        self.tables_ = build_additive_tables(view, value, 2)

    def block_sums(self, X) -> np.ndarray:
        """``(n, 2)``: per gene row, the sum of its blocks' latencies and its number of blocks."""
        check_is_fitted(self, "tables_")
        genes = np.asarray(X, dtype=np.float64)
        sums = self.tables_.transform(np.rint(genes).astype(np.int64))
        sums[:, 0] += self.overhead_
        return sums

    # --- network-level correction -------------------------------------------------------------------
    @staticmethod
    def _fit_correction(name: str, sums: np.ndarray, y: np.ndarray) -> np.ndarray:
        if name == "none":
            return np.array([0.0, 1.0, 0.0])
        if name == "scale":
            return np.array([0.0, float(np.median(y / np.maximum(sums[:, 0], 1e-12))), 0.0])
        design = np.column_stack([sums[:, 0], sums[:, 1]])
        linear = LinearRegression().fit(design, y, sample_weight=1.0 / y**2)
        return np.array([linear.intercept_, *linear.coef_])

    @staticmethod
    def _apply(coef: np.ndarray, sums: np.ndarray) -> np.ndarray:
        return coef[0] + coef[1] * sums[:, 0] + coef[2] * sums[:, 1]

    def _correction_cv(self, name: str, sums: np.ndarray, y: np.ndarray) -> np.ndarray:
        oof = np.zeros(len(y))
        for train, test in KFold(n_splits=min(5, len(y)), shuffle=True, random_state=0).split(sums):
            oof[test] = self._apply(self._fit_correction(name, sums[train], y[train]), sums[test])
        return oof

    def fit(self, X=None, y=None):
        """Fill the block tables; with ``(X, y)`` (gene rows and measured network
        latencies) also fit the network-level correction. ``X=None``: blocks only."""
        space = self._space()
        self._fit_blocks(space)
        self.space_fingerprint_ = space.fingerprint
        self.n_features_in_ = space.num_genes
        self.correction_selection_ = {}
        self.correction_oof_ = None
        if X is None:
            if self.fixed_correction is not None:
                self.correction_, self.coef_ = self._fixed()
                self.n_networks_ = 0
                return self
            if self.correction not in ("auto", "none"):
                raise DataError(f"correction={self.correction!r} needs measured networks (fit(X, y))")
            self.correction_, self.coef_, self.n_networks_ = "none", self._fit_correction("none", None, None), 0
            return self
        if self.fixed_correction is not None:
            raise ConfigError("BlockSumRegressor got both measured networks and fixed_correction: fit the correction "
                              "on the networks, or apply the fixed one (fit() without networks), not both")
        X, y = validate_data(self, X, y, y_numeric=True, reset=False)
        if np.any(y <= 0):
            raise DataError("network latencies must be > 0")
        sums = self.block_sums(X)
        name = self.correction
        if name == "auto":
            if len(y) < 6:
                name = "scale"
            else:
                results = {c: regression_report(y, self._correction_cv(c, sums, y)) for c in ("scale", "linear")}
                name = min(results, key=lambda c: results[c]["mape"])
                self.correction_selection_ = results
        elif name not in NETWORK_CORRECTIONS:
            raise ConfigError(f"correction {name!r} unknown; allowed: 'auto' or {NETWORK_CORRECTIONS}")
        self.correction_ = name
        self.coef_ = self._fit_correction(name, sums, y)
        self.n_networks_ = int(len(y))
        if len(y) >= 3:
            self.correction_oof_ = self._correction_cv(name, sums, y)
        return self

    def _fixed(self) -> tuple[str, np.ndarray]:
        fixed = self.fixed_correction
        try:
            name, coef = str(fixed["correction"]), np.asarray(fixed["coef"], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"fixed_correction must be {{'correction': name, 'coef': [c0, c1, c2]}}, got "
                              f"{fixed!r}") from None
        if name not in NETWORK_CORRECTIONS or coef.shape != (3,) or not np.all(np.isfinite(coef)):
            raise ConfigError(f"fixed_correction {fixed!r}: the correction must be one of {NETWORK_CORRECTIONS} "
                              f"with 3 finite coefficients (c0 + c1 * block sum + c2 * number of blocks)")
        return name, coef

    def predict(self, X) -> np.ndarray:
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, reset=False)
        return self._apply(self.coef_, self.block_sums(X))

    def predict_blocks(self, blocks) -> np.ndarray:
        """Latency of blocks (specs or keys): measured where known, else the block model."""
        check_is_fitted(self, "block_table_")
        keys = [as_block(b).key for b in blocks]
        unknown = [k for k in keys if k not in self.block_table_]
        extra = dict(zip(unknown, self.block_regressor_.predict(unknown))) if unknown else {}
        return np.array([self.block_table_.get(k, extra.get(k)) for k in keys], dtype=np.float64)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.positive_only = True
        tags.regressor_tags.poor_score = True
        return tags


# --- fitting -------------------------------------------------------------------------------------------
def block_table_of(blocks, metric: str = "latency_ms", statistic: str = "median"):
    """``(table {key: ms}, profile or None)`` from a block profile, its path, or a dict."""
    if isinstance(blocks, dict):
        return {str(k): float(v) for k, v in blocks.items()}, None
    profile = blocks if isinstance(blocks, Profile) else read_profile(blocks)
    if profile.level != "block":
        raise DataError(f"{profile.path or 'the profile'} is a {profile.level} profile; a block-sum predictor "
                        f"needs a block profile (ofa-profile-device --blocks)")
    if len(profile) == 0:
        raise DataError(f"the block profile {profile.path or ''} holds no blocks")
    return profile.block_latencies(metric, statistic), profile


def source_block_latencies(source, blocks: Sequence[BlockSpec], metric: str = "latency_ms",
                           statistic: str = "median") -> dict:
    """A transfer source's latency of each block: ``source`` is ``"macs"`` (MACs as a
    pseudo latency), a simulator backend (name or instance: prices the blocks now), a
    block profile (path or Profile), or a dict {key: ms}."""
    return source_block_table(source, blocks, metric, statistic)[0]


def source_block_table(source, blocks: Sequence[BlockSpec], metric: str = "latency_ms",
                       statistic: str = "median") -> tuple[dict, "dict | None"]:
    """``(latencies, components)`` of a transfer source's blocks (:func:`source_block_latencies`);
    ``components`` ({key: {part: ms}}, :func:`record_components`) where the source is a
    simulator (a backend, or a block profile it wrote) whose records split the latency, else None."""
    blocks = [as_block(b) for b in blocks]
    if isinstance(source, str) and source == "macs":
        return {b.key: float(b.macs) for b in blocks}, None
    if isinstance(source, dict):
        return {str(k): float(v) for k, v in source.items()}, None
    from hardware_profiles.backends import BACKENDS, Backend, get_backend  # here: the backends load torch

    if isinstance(source, str) and source in BACKENDS:
        source = get_backend(source)
    if isinstance(source, Backend):
        if not source.simulated:
            raise ConfigError(f"{source.name} measures in real time; measure its blocks once into a block profile "
                              f"(ofa-profile-device --blocks) and transfer from that file")
        records = source.measure_blocks(blocks)
        table = {b.key: float(r["latency_ms"][statistic if statistic in r["latency_ms"] else "median"])
                 for b, r in zip(blocks, records)}
        return table, _components_of(blocks, records)
    if isinstance(source, (str, os.PathLike)) or hasattr(source, "level"):
        table, profile = block_table_of(source, metric, statistic)
        records = {r.get("key"): r for r in profile.records} if profile is not None else {}
        parts = {key: record_components(records[key]) if key in records else None for key in table}
        if not parts or any(p is None or sum(p.values()) <= 0 for p in parts.values()):
            return table, None  # a timed or imported profile: no parts to re-weight
        # the parts in the table's label (they split the simulated latency; the same shares of the label)
        return table, {key: {name: table[key] * value / sum(p.values()) for name, value in p.items()}
                       for key, p in parts.items()}
    raise ConfigError(f"transfer source {source!r} unknown: give 'macs', a simulator backend name, a block "
                      f"profile (path), a dict, or a fitted LatencyPredictor")


def _components_of(blocks, records) -> "dict | None":
    """{key: components} of simulated block records, or None unless every record has them."""
    components = {b.key: record_components(r) for b, r in zip(blocks, records)}
    return components if components and all(c is not None for c in components.values()) else None


def _network_label(networks, metric: str, statistic: str):
    """The label of whole-network measurements (None for a bare ``(genes, latencies)`` pair)."""
    if isinstance(networks, tuple):
        return None
    profile = networks if isinstance(networks, Profile) else read_profile(networks)
    return profile.label(metric, statistic)


def _network_targets(networks, space, metric: str, statistic: str):
    """``(genes, y, header)`` of whole-network measurements: a network profile (or path) or ``(genes, y)``."""
    if isinstance(networks, tuple):
        genes, y = np.asarray(networks[0]), np.asarray(networks[1], dtype=np.float64)
        if len(genes) != len(y):
            raise DataError(f"{len(genes)} gene rows but {len(y)} latencies")
        return genes, y, {}
    profile, genes, y = profile_targets(networks, metric, statistic)
    space.check_fingerprint(profile.space.fingerprint, "the network profile")
    return genes, y, profile.header


# --- a network correction fitted on another space of the device -----------------------------------------
MIN_SHARED_BLOCKS = 0.5  # a correction transfers to a space whose blocks are at least this share the source's
REFERENCE_RTOL = 0.01  # corrected labels: the block profiles' reference times must agree this closely


@dataclass
class NetworkCorrection:
    """A network-level correction fitted on the measured networks of one space
    (the *source*), to apply to the block sums of another space of the same device
    (:func:`fit_network_correction`; ``fit_block_predictor(..., correction_from=...)``).

    It maps ``(block sum, number of blocks)`` of a network to its latency; both are
    defined for every space priced block by block, and nothing of the source's genes
    enters it. ``residuals`` are the relative out-of-fold residuals of the correction
    on the source's networks (each predicted by a correction fitted without it):
    the source's held-out error, not the target's."""

    correction: str
    coef: np.ndarray
    n_networks: int
    residuals: "np.ndarray | None"
    cv: "dict | None"
    selection: dict
    label: object  # hardware_profiles.labels.Label of the networks (the predictions' scale); None for a bare pair
    blocks_label: object  # the Label of the source block profile
    metric: str
    statistic: str
    space_fingerprint: str
    device: "str | None"
    runtime_overhead_ms: float
    block_options: "dict | None"
    block_keys: frozenset  # every block the source space's networks run
    sum_range_ms: tuple  # (min, max) block sum over the source's measured networks
    block_sum_error: dict  # plain block sums vs the source's networks (relative, percent)
    blocks_from: "str | None" = None
    networks_from: "str | None" = None

    def as_fixed(self) -> dict:
        """The ``fixed_correction`` parameter of :class:`BlockSumRegressor`."""
        return {"correction": self.correction, "coef": [float(c) for c in self.coef]}

    def describe(self) -> dict:
        """What a predictor using this correction records in ``metrics_["correction_source"]``."""
        return {"space_fingerprint": self.space_fingerprint, "device": self.device,
                "block_profile": self.blocks_from, "network_profile": self.networks_from,
                "correction": self.correction, "coef": [float(c) for c in self.coef],
                "n_networks": self.n_networks, "cv": self.cv, "correction_cv": self.selection or None,
                "label": None if self.label is None else self.label.to_dict(),
                "blocks_label": None if self.blocks_label is None else self.blocks_label.to_dict(),
                "runtime_overhead_ms": self.runtime_overhead_ms,
                "network_block_sum_range_ms": list(self.sum_range_ms),
                "block_sum_error_percent": self.block_sum_error,
                "interval_residuals": ("the out-of-fold residuals of this correction on the source space's "
                                       f"{self.n_networks} networks" if self.residuals is not None else None)}


def _where(value) -> "str | None":
    if isinstance(value, (str, os.PathLike)):
        return str(value)
    path = getattr(value, "path", None)
    return None if path is None else str(path)


def fit_network_correction(blocks, networks, *, space=None, metric: str | None = None, statistic: str | None = None,
                           block_options: dict | None = None, block_model: str = "auto", correction: str = "auto",
                           runtime_overhead="auto") -> NetworkCorrection:
    """Fit the network-level correction of :class:`BlockSumRegressor` on one space's
    measurements: ``blocks`` its block profile (path or Profile; or ``{key: ms}`` with
    ``space=``), ``networks`` its network profile (path or Profile; or ``(genes, ms)``)
    of the same device and the same space. ``metric``/``statistic``: the label read
    from both (default: :func:`predictors.base.default_label` of the block profile).
    The result applies to another space's block sums (``fit_block_predictor(...,
    correction_from=...)``). Raises SpaceMismatchError (a ConfigError) when the two
    profiles measure different spaces, ConfigError when different devices."""
    blocks_from, networks_from = _where(blocks), _where(networks)
    if isinstance(blocks, (str, os.PathLike)):
        blocks = read_profile(blocks)
    if isinstance(networks, (str, os.PathLike)):
        networks = read_profile(networks)
    if isinstance(blocks, Profile):
        metric, statistic = resolve_label(blocks, metric, statistic)
    metric, statistic = metric or "latency_ms", statistic or "median"
    table, profile = block_table_of(blocks, metric, statistic)
    if profile is not None:
        if space is not None:
            resolve_space(space).check_fingerprint(profile.space.fingerprint, "the source block profile")
        space = profile.space
    if space is None:
        raise ConfigError("the source of a network correction needs its space: give its block profile, or space= "
                          "with a block table")
    space = resolve_space(space)
    if isinstance(networks, Profile):
        if networks.level != "network":
            raise DataError(f"the source networks ({networks_from or 'a profile'}) are a {networks.level} profile; "
                            f"the correction is fitted on measured whole networks (a network profile)")
        if networks.space.fingerprint != space.fingerprint:
            raise SpaceMismatchError(
                f"correction source: the block profile ({blocks_from or 'blocks'}) measures space "
                f"{space.fingerprint} but the network profile ({networks_from or 'networks'}) measures space "
                f"{networks.space.fingerprint}; the correction maps a network's block sum to its measured latency, "
                f"so both must measure the same space: give the block and network profiles of one space")
        if profile is not None and profile.device != networks.device:
            raise ConfigError(f"correction source: the block profile was measured on {profile.device!r}, the network "
                              f"profile on {networks.device!r}; a correction maps one device's block sums to the "
                              f"same device's networks")
    elif not isinstance(networks, tuple):
        raise ConfigError(f"the source networks must be a network profile (path or Profile) or (genes, latencies), "
                          f"got {type(networks).__name__}")
    genes, y, _ = _network_targets(networks, space, metric, statistic)
    regressor = BlockSumRegressor(space.to_dict(), table, block_options, None, block_model, correction,
                                  runtime_overhead)
    X = ArchFeaturizer(space.to_dict(), "genes").fit().transform(genes)
    regressor.fit(X, y)
    sums = regressor.block_sums(X)[:, 0]
    plain = sums / y - 1.0
    oof = regressor.correction_oof_
    return NetworkCorrection(
        correction=regressor.correction_, coef=np.array(regressor.coef_, dtype=np.float64),
        n_networks=regressor.n_networks_, residuals=None if oof is None else y / oof - 1.0,
        cv=None if oof is None else regression_report(y, oof), selection=regressor.correction_selection_,
        label=_network_label(networks, metric, statistic),
        blocks_label=profile.label(metric, statistic) if profile is not None else None,
        metric=metric, statistic=statistic, space_fingerprint=space.fingerprint,
        device=profile.device if profile is not None else getattr(networks, "device", None),
        runtime_overhead_ms=regressor.overhead_, block_options=dict(block_options) if block_options else None,
        block_keys=frozenset(regressor.block_keys_), sum_range_ms=(float(sums.min()), float(sums.max())),
        block_sum_error={"median": float(np.median(plain) * 100), "mape": float(np.mean(np.abs(plain)) * 100)},
        blocks_from=blocks_from, networks_from=networks_from)


def _correction_of(correction_from, metric, statistic, block_options, correction) -> NetworkCorrection:
    """``correction_from`` of :func:`fit_block_predictor` as a fitted :class:`NetworkCorrection`."""
    if isinstance(correction_from, NetworkCorrection):
        fitted = correction_from
        if (metric, statistic) != (None, None) and (metric, statistic) != (fitted.metric, fitted.statistic):
            raise ConfigError(f"the network correction was fitted on {fitted.metric}.{fitted.statistic}, the blocks "
                              f"are read as {metric}.{statistic}: fit both on one label")
        if (fitted.block_options or None) != (dict(block_options) if block_options else None):
            raise ConfigError(f"the network correction was fitted on the workload {fitted.block_options}, the "
                              f"blocks are summed for {block_options}: fit both for one workload")
        return fitted
    if not (isinstance(correction_from, (tuple, list)) and len(correction_from) == 2):
        raise ConfigError("correction_from must be (source block profile, source network profile) of one space "
                          "on this device, or a NetworkCorrection (fit_network_correction)")
    return fit_network_correction(correction_from[0], correction_from[1], metric=metric, statistic=statistic,
                                  block_options=block_options, correction=correction)


def fit_block_predictor(blocks, networks=None, *, space=None, metric: str | None = None, statistic: str | None = None,
                        block_options: dict | None = None, source=None, block_model: str = "auto",
                        correction: str = "auto", device: str | None = None, runtime_overhead="auto",
                        correction_from=None):
    """A block-sum latency predictor (:class:`~predictors.core.LatencyPredictor`, model ``"block-sum"``).

    ``blocks``: a block profile (path or Profile) or ``{block key: ms}``.
    ``networks``: optional whole-network measurements of the same device (a network
    profile or ``(genes, latencies)``) for the network-level correction (10 are
    plenty); they also give the cross-validated residuals behind prediction
    intervals (without networks the predictor has no intervals).
    ``correction_from``: instead of ``networks``, for a space none of whose networks
    were measured: ``(block profile, network profile)`` of *another* space of the
    same device whose networks run mostly the same blocks (or a
    :class:`NetworkCorrection` from :func:`fit_network_correction`). The correction is
    fitted there (on that space's block sums and networks) and applied to this
    space's block sums; the intervals come from its out-of-fold residuals on the
    source's networks, and ``metrics_["correction_source"]`` says so. The
    predictions are on the source networks' label; ``correction`` then chooses the
    source's correction. Refused (ConfigError) when under :data:`MIN_SHARED_BLOCKS` of
    this space's blocks are blocks of the source space, when the source was measured
    on another device, or when its two profiles measure different spaces.
    ``space``: defaults to the block profile's space. ``metric``/``statistic``: the
    label (default: :func:`predictors.base.default_label` of the block profile).
    ``block_options``: ``space.blocks`` options (a Transformer workload).
    ``source``: transfer source for unmeasured blocks (see :func:`source_block_latencies`)."""
    if isinstance(blocks, (str, os.PathLike)):
        blocks = read_profile(blocks)
    if isinstance(blocks, Profile):
        metric, statistic = resolve_label(blocks, metric, statistic)
    transferred = None
    if correction_from is not None:
        if networks is not None:
            raise ConfigError("give networks= (this space's measured networks) or correction_from= (another "
                              "space's), not both: this space's own networks fit its correction directly")
        transferred = _correction_of(correction_from, metric, statistic, block_options, correction)
        metric, statistic = transferred.metric, transferred.statistic
    metric, statistic = metric or "latency_ms", statistic or "median"
    table, profile = block_table_of(blocks, metric, statistic)
    if space is None:
        if profile is None:
            raise ConfigError("give space= when the blocks are a dict")
        space = profile.space
    space = resolve_space(space)
    source_table = source_components = None
    universe = None
    if source is not None:
        universe = _universe(space, block_options)
        source_table, source_components = source_block_table(source, universe, metric, statistic)
    fixed = None
    if transferred is not None:
        _check_transfer(transferred, profile, device, metric, statistic)
        fixed = transferred.as_fixed()
        if runtime_overhead == "auto" and not any(str(k).startswith("null:") for k in table):
            runtime_overhead = transferred.runtime_overhead_ms  # the overhead the correction's sums were taken with
    regressor = BlockSumRegressor(space.to_dict(), table, block_options, source_table, block_model,
                                  "auto" if transferred is not None else correction, runtime_overhead, fixed,
                                  source_components)
    featurizer = ArchFeaturizer(space.to_dict(), "genes").fit()
    header = dict(profile.header) if profile is not None else {}
    # the scale of the predictions: the block profile's, or with a network correction the networks'
    label = profile.label(metric, statistic) if profile is not None else None
    if networks is not None:
        genes, y, network_header = _network_targets(networks, space, metric, statistic)
        regressor.fit(featurizer.transform(genes), y)
        label = _network_label(networks, metric, statistic) or label
    else:
        genes = y = None
        regressor.fit()
    pipeline = Pipeline([("features", featurizer), ("model", regressor)])
    correction_source = None
    if transferred is not None:
        label = transferred.label
        correction_source = _transfer_report(transferred, regressor, space)
    metrics = {"target": f"{metric}.{statistic}", **({"label": label.to_dict()} if label is not None else {}),
               "blocks": {
        "runtime_overhead_ms": regressor.overhead_,
        "measured": regressor.n_blocks_measured_, "predicted": regressor.n_blocks_predicted_,
        "used": regressor.n_blocks_used_, "in_profile": len(table), "model": regressor.block_model_,
        "cv": regressor.block_selection_, "source": _describe(source)},
        "correction": regressor.correction_, "n_train": regressor.n_networks_}
    if correction_source is not None:
        fitted_on = (f" fitted on {transferred.n_networks} networks of space {transferred.space_fingerprint} "
                     f"(correction_source)")
    elif regressor.n_networks_:
        fitted_on = f" fitted on {regressor.n_networks_} networks"
    else:
        fitted_on = " (no networks given)"
    reason = (f"block-sum: {regressor.n_blocks_measured_} of {regressor.n_blocks_used_} blocks measured, "
              f"{regressor.n_blocks_predicted_} by the {regressor.block_model_} block model; network correction "
              f"{regressor.correction_}{fitted_on}")
    metrics["selection"] = {"model": "block-sum", "reason": reason, "candidates": ["block-sum"]}
    residuals = None
    if regressor.correction_oof_ is not None:
        metrics["cv"] = {"block-sum": regression_report(y, regressor.correction_oof_)}
        metrics["table"] = format_table(metrics["cv"])
        residuals = y / regressor.correction_oof_ - 1.0
    if regressor.correction_selection_:
        metrics["correction_cv"] = regressor.correction_selection_
    if correction_source is not None:
        metrics["correction_source"] = correction_source  # its cv and residuals are the source space's
        residuals = transferred.residuals
    return LatencyPredictor(pipeline, space, target=metric, model_name="block-sum", metrics=json_safe(metrics),
                            interval_residuals=residuals, device=device or header.get("device", "unknown"),
                            profile_header=header)


def _check_transfer(transferred: NetworkCorrection, profile, device, metric: str, statistic: str) -> None:
    """Refuse a correction of another device, or blocks on another scale than the correction's sums."""
    here = profile.device if profile is not None else device
    if here is not None and transferred.device is not None and here != transferred.device:
        raise ConfigError(f"the network correction was fitted on device {transferred.device!r}, the blocks were "
                          f"measured on {here!r}: a correction holds for the device whose networks it was fitted on")
    if profile is None or transferred.blocks_label is None:
        return
    ours, theirs = profile.label(metric, statistic).reference_ms, transferred.blocks_label.reference_ms
    if ours is not None and theirs is not None and abs(ours / theirs - 1) > REFERENCE_RTOL:
        raise ConfigError(f"{metric}.{statistic}: the block profile's reference network ran at {ours:.4g} ms, the "
                          f"source block profile's at {theirs:.4g} ms: the block sums are on two scales and the "
                          f"correction fitted on one does not hold on the other")


def _transfer_report(transferred: NetworkCorrection, regressor: BlockSumRegressor, space) -> dict:
    """``metrics_["correction_source"]``: the source and its held-out error, and how
    alike the two spaces' blocks and block sums are. Refuses (ConfigError) a space
    that runs mostly other blocks than the source's."""
    keys = regressor.block_keys_
    shared = sum(1 for k in keys if k in transferred.block_keys)
    if shared < MIN_SHARED_BLOCKS * len(keys):
        raise ConfigError(f"the network correction's source space ({transferred.space_fingerprint}) runs {shared} of "
                          f"this space's {len(keys)} blocks; a correction fitted on its networks is not evidence "
                          f"for networks of mostly other blocks (at least {MIN_SHARED_BLOCKS:.0%} shared): measure "
                          f"some networks of this space (networks=)")
    extremes = regressor.block_sums(space.to_genes([space.smallest(), space.largest()]))[:, 0]
    out = transferred.describe()
    out.update(blocks_shared=shared, blocks_total=len(keys),
               block_sum_range_ms={"smallest": float(extremes[0]), "largest": float(extremes[1])},
               note=(f"network correction fitted on {transferred.n_networks} measured networks of space "
                     f"{transferred.space_fingerprint}, applied to this space's block sums; its cross-validated "
                     f"error and the interval residuals are that space's, not measured on this one"))
    return out


def _universe(space, block_options: dict | None) -> list[BlockSpec]:
    """Every block the space's networks run (with these ``space.blocks`` options)."""
    found: dict[str, BlockSpec] = {}

    def collect(parts):
        for part in parts:
            found.setdefault(part.block.key, part.block)
        return np.zeros(1)

    build_additive_tables(_BlockView(space, dict(block_options or {})), collect, 1)
    return list(found.values())


def _describe(source) -> "str | None":
    if source is None:
        return None
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, dict):
        return f"table of {len(source)} blocks"
    config = getattr(source, "config", None)  # a simulator built for an accelerator: say which one
    if getattr(source, "name", None) and getattr(config, "name", None):
        return f"{source.name} ({config.name})"
    return getattr(source, "name", None) or str(getattr(source, "path", type(source).__name__))


def space_blocks(space, block_options: dict | None = None) -> list[BlockSpec]:
    """Every distinct block the networks of ``space`` run (what a block-sum predictor prices)."""
    return _universe(resolve_space(space), block_options)


__all__ = ["BLOCK_FEATURE_NAMES", "BLOCK_MODELS", "MIN_SHARED_BLOCKS", "NETWORK_CORRECTIONS", "BlockFeaturizer",
           "BlockLatencyRegressor", "BlockSumRegressor", "NetworkCorrection", "block_features", "fit_block_predictor",
           "fit_network_correction", "select_block_model", "source_block_latencies", "space_blocks"]
