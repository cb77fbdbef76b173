"""Features of architectures, computed from gene matrices.

:class:`ArchFeaturizer` is a scikit-learn transformer: ``X`` is a gene matrix
(``space.sample_genes``, ``space.to_genes``), the output is a float matrix of

* ``"analytic"`` features from the space's cost model (``space.cost(arch).layers``):
  MACs, memory traffic, layer counts and group counts split by op type
  (dense conv, pointwise, depthwise per kernel size, linear, attention
  matmul), parameters, activations, MACs per stage (or layer), and tiled MACs
  and tile counts (the work of a tiled engine, see :func:`tiled_work`); or
* ``"encoding"``: the space's fixed-length one-hot encoding; or
* ``"analytic+encoding"``: both side by side; or
* ``"genes"``: the gene matrix itself (for the lookup-table baseline); or
* a tuple of analytic feature names (e.g. ``("macs",)`` for the MACs baseline).

Every analytic feature is a sum over layers, and a block's layers depend only
on its own genes and a few global genes (a MobileNetV3 block: its kernel and
expand ratio, and the resolution; a Transformer layer: its FFN size and heads,
and the embedding dimensions). So the featurizer precomputes, once, from
``space.cost()``, the feature vector of every block choice in every context
(:class:`AdditiveTables`); featurizing a batch is then a handful of vectorised
table look-ups (about a million architectures per second). A space type
whose ``additive_layout()`` is None falls back to ``space.cost()`` per
architecture (exact, but slow): see :mod:`ofa.spaces.tables`.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ofa.errors import ConfigError, PredictorError
from ofa.spaces import SKIPPED, LayerShape, SearchSpace, resolve_space
from ofa.spaces.tables import AdditiveTables, build_additive_tables

OPS = ("conv", "pointwise", "depthwise", "linear", "matmul")
GROUPED_OPS = ("depthwise", "matmul")
TILE_SIZES = (8, 16, 32, 64)
FEATURE_SETS = ("analytic", "encoding", "analytic+encoding", "genes")
# Bump when the meaning of an analytic feature changes: saved predictors made
# with another version are refused instead of silently fed different numbers.
FEATURES_VERSION = 1

_GROUP_PATTERN = re.compile(r"^([A-Za-z_.]+?)\.(\d+)\.")


def layer_group(name: str) -> str | None:
    """The numbered group a layer belongs to: ``"stages.2.1.expand"`` -> ``"stages2"``,
    ``"encoder.layers.3.ffn.fc1"`` -> ``"encoder_layers3"``."""
    match = _GROUP_PATTERN.match(name)
    return f"{match.group(1).replace('.', '_')}{match.group(2)}" if match else None


def tiled_work(layer: LayerShape, tile: int) -> tuple[int, int]:
    """``(tiled MACs, tiles)`` of ``layer`` seen as a matrix product per group
    (im2col: ``pixels x (k*k*in) @ (k*k*in) x out``) with both weight
    dimensions rounded up to ``tile``: the work a tiled engine really does, and
    how many weight tiles it loads (each costs a fill/drain)."""
    def tiles(size):
        return -(-size // tile)

    oh, ow = layer.out_size
    depth = layer.kernel_size**2 * (layer.in_channels // layer.groups)
    count = layer.groups * tiles(depth) * tiles(layer.out_channels // layer.groups)
    return oh * ow * count * tile * tile, count


class LayerFeatureSpec:
    """Turns a list of :class:`LayerShape` into the additive analytic feature vector."""

    def __init__(self, space: SearchSpace):
        probe_layers = space.cost(space.largest()).layers + space.cost(space.smallest()).layers
        kernels = set(getattr(space, "kernel_sizes", ()))
        kernels |= {layer.kernel_size for layer in probe_layers if layer.op == "depthwise"}
        self.depthwise_kernels = tuple(sorted(kernels))
        groups = {layer_group(layer.name) for layer in probe_layers} - {None}
        self.groups = tuple(sorted(groups, key=lambda g: (re.sub(r"\d+$", "", g), int(re.sub(r"^\D+", "", g)))))
        names = ["macs", "params", "activations", "memory", "layers"]
        names += [f"macs_{op}" for op in OPS] + [f"macs_depthwise_k{k}" for k in self.depthwise_kernels]
        names += [f"memory_{op}" for op in OPS] + [f"layers_{op}" for op in OPS]
        # Grouped ops run group by group on many accelerators (a depthwise conv is
        # C single-channel convs on a systolic array): a per-group cost.
        names += [f"groups_{op}" for op in GROUPED_OPS]
        # Hardware computes in tiles (SIMD lanes, systolic-array rows and
        # columns): work rounded up to whole tiles, and the number of tiles
        # (each a fill and drain), capture what a plain MAC count cannot see.
        names += [f"macs_tile{t}" for t in TILE_SIZES] + [f"tiles{t}" for t in TILE_SIZES]
        names += [f"macs_{group}" for group in self.groups]
        self.names = tuple(names)
        self._index = {name: i for i, name in enumerate(self.names)}

    def of_layers(self, layers: Sequence[LayerShape]) -> np.ndarray:
        """Feature vector (float64) of a set of layers: every entry is a sum over them."""
        out = np.zeros(len(self.names), dtype=np.float64)
        index = self._index
        for layer in layers:
            macs, params = layer.macs, layer.params
            # Memory traffic in elements: read the input and the weights, write the output.
            memory = layer.input_elements + layer.output_elements + params
            out[index["macs"]] += macs
            out[index["params"]] += params
            out[index["activations"]] += layer.output_elements
            out[index["memory"]] += memory
            out[index["layers"]] += 1
            if layer.op in OPS:
                out[index[f"macs_{layer.op}"]] += macs
                out[index[f"memory_{layer.op}"]] += memory
                out[index[f"layers_{layer.op}"]] += 1
            for t in TILE_SIZES:
                tiled_macs, tiles = tiled_work(layer, t)
                out[index[f"macs_tile{t}"]] += tiled_macs
                out[index[f"tiles{t}"]] += tiles
            if layer.op in GROUPED_OPS:
                out[index[f"groups_{layer.op}"]] += layer.groups
            if layer.op == "depthwise" and f"macs_depthwise_k{layer.kernel_size}" in index:
                out[index[f"macs_depthwise_k{layer.kernel_size}"]] += macs
            group = layer_group(layer.name)
            if group is not None and f"macs_{group}" in index:
                out[index[f"macs_{group}"]] += macs
        return out


def build_tables(space: SearchSpace, spec: LayerFeatureSpec) -> AdditiveTables:
    """The analytic features of ``space`` as additive tables (see :mod:`ofa.spaces.tables`)."""
    return build_additive_tables(space, spec.of_layers, len(spec.names))


class ArchFeaturizer(TransformerMixin, BaseEstimator):
    """Gene matrix -> feature matrix, for one search space.

    Parameters
    ----------
    space : preset name, space dict (``space.to_dict()``) or SearchSpace
        The search space the gene rows belong to. Stored as given; a plain
        dict keeps saved predictors plain data.
    features : str or tuple of str
        ``"analytic"``, ``"encoding"``, ``"analytic+encoding"``, ``"genes"``,
        or a tuple of analytic feature names (see ``get_feature_names_out``).
    """

    def __init__(self, space=None, features="analytic"):
        self.space = space
        self.features = features

    # --- fitting: nothing is learned from the data, only tables built from the space ---
    def fit(self, X=None, y=None):
        if self.space is None:
            raise ConfigError("ArchFeaturizer needs a search space: ArchFeaturizer(space=...)")
        space = resolve_space(self.space)
        spec = LayerFeatureSpec(space)
        if isinstance(self.features, str):
            if self.features not in FEATURE_SETS:
                raise ConfigError(f"features={self.features!r} unknown; use one of {FEATURE_SETS} "
                                  f"or a tuple of feature names from {spec.names}")
            selected = list(range(len(spec.names))) if "analytic" in self.features else []
        else:
            unknown = [name for name in self.features if name not in spec.names]
            if unknown or not self.features:
                raise ConfigError(f"unknown analytic feature(s) {unknown}; available: {spec.names}")
            selected = [spec.names.index(name) for name in self.features]
        self.space_fingerprint_ = space.fingerprint
        self.features_version_ = FEATURES_VERSION
        self.n_features_in_ = space.num_genes
        self.analytic_names_ = np.array(spec.names, dtype=object)
        self.selected_ = np.array(selected, dtype=np.int64)
        self.tables_ = build_tables(space, spec) if (space.additive_layout() is not None and len(selected)) else None
        self._runtime = None
        if X is not None:
            self._check_genes(X, space)
        return self

    def _state(self):
        """The resolved space and layer spec, rebuilt after loading (not saved)."""
        if getattr(self, "_runtime", None) is None:
            space = resolve_space(self.space)
            self._runtime = (space, LayerFeatureSpec(space), {})
        return self._runtime

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_runtime", None)  # a cache of objects rebuilt from plain data
        return state

    def _check_genes(self, X, space) -> np.ndarray:
        genes = np.asarray(X)
        if genes.ndim != 2 or genes.shape[1] != space.num_genes:
            raise ConfigError(f"expected a gene matrix of shape (n, {space.num_genes}) for this "
                              f"{space.type_name} space, got shape {genes.shape}; for a table of plain "
                              f"feature columns use make_latency_model(name, None, feature_names=...) or "
                              f"predictors.tabular.fit_feature_predictor")
        if genes.dtype.kind == "f":
            if not np.all(np.isfinite(genes)) or np.any(genes != np.round(genes)):
                raise ConfigError("gene matrices hold integer choice indices (or -1 for skipped)")
        genes = genes.astype(np.int64, copy=False)
        if genes.size and (genes.min() < SKIPPED or np.any(genes >= space.choice_counts)):
            raise ConfigError("gene values out of range: each gene is -1 (skipped) or an index into its choices")
        # The tables read a skipped block from its -1 genes: make sure unused
        # decisions are -1 (and refuse a used decision without a value).
        return space.normalize_genes(genes)

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "selected_")
        space, spec, cache = self._state()
        genes = self._check_genes(X, space)
        parts = []
        if len(self.selected_):
            analytic = self.tables_.transform(genes) if self.tables_ is not None else self._slow(genes, space,
                                                                                                  spec, cache)
            parts.append(analytic if len(self.selected_) == analytic.shape[1] else analytic[:, self.selected_])
        if self.features == "encoding":
            return space.encode_genes(genes)  # exact in float32, and float32 halves an MLP's work
        if self.features == "analytic+encoding":
            parts.append(space.encode_genes(genes).astype(np.float64))
        if self.features == "genes":
            parts.append(genes.astype(np.float64))
        return parts[0] if len(parts) == 1 else np.hstack(parts)

    @staticmethod
    def _slow(genes, space, spec, cache) -> np.ndarray:
        """Exact features through ``space.cost()``, one architecture at a time (memoised)."""
        out = np.empty((len(genes), len(spec.names)))
        for i, row in enumerate(genes):
            key = row.tobytes()
            if key not in cache:
                if len(cache) > 200_000:
                    cache.clear()
                cache[key] = spec.of_layers(space.cost(space.from_genes(row[None])[0]).layers)
            out[i] = cache[key]
        return out

    def analytic_features_slow(self, X) -> np.ndarray:
        """All analytic features via ``space.cost()`` (the reference the tables must equal)."""
        check_is_fitted(self, "selected_")
        space, spec, _ = self._state()
        return self._slow(self._check_genes(X, space), space, spec, {})

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "selected_")
        space = self._state()[0]
        names = [str(n) for n in self.analytic_names_[self.selected_]]
        if self.features in ("encoding", "analytic+encoding"):
            for g, choices in enumerate(space.gene_choices):
                names += [f"gene{g}={value}" for value in choices]
        if self.features == "genes":
            names += [f"gene{g}" for g in range(space.num_genes)]
        return np.array(names, dtype=object)

    def check_compatible(self) -> None:
        """Raise :class:`PredictorError` if this (loaded) featurizer's tables were
        made by another version of the feature definitions or for another space."""
        check_is_fitted(self, "selected_")
        space, spec, _ = self._state()
        if self.features_version_ != FEATURES_VERSION:
            raise PredictorError(f"this predictor's features are version {self.features_version_}; this package "
                                 f"computes version {FEATURES_VERSION}: re-fit it with ofa-fit-predictor")
        if self.space_fingerprint_ != space.fingerprint:
            raise PredictorError("the featurizer's tables were built for another search space; re-fit it")
        if tuple(self.analytic_names_) != spec.names:
            raise PredictorError(f"this predictor uses features {list(self.analytic_names_)}, but this package "
                                 f"computes {list(spec.names)} for the space: re-fit it with ofa-fit-predictor")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = True
        tags.input_tags.two_d_array = True
        return tags


def analytic_feature_names(space) -> tuple[str, ...]:
    return LayerFeatureSpec(resolve_space(space)).names


class FeatureColumnsError(PredictorError):
    """A feature-table predictor cannot compute its features for an architecture
    (it was fitted without a search space, or on columns no architecture
    determines), or a feature matrix does not have the columns it was fitted on."""


class NumericFeatures(TransformerMixin, BaseEstimator):
    """The first step of a plain-feature recipe: checks that ``X`` is a finite
    numeric matrix with one column per name in ``columns`` and passes it on as float64.

    Parameters
    ----------
    columns : sequence of str
        The feature names, in column order (kept with the saved predictor).
    """

    def __init__(self, columns=()):
        self.columns = columns

    def fit(self, X=None, y=None):
        columns = tuple(self.columns)
        if not columns or any(not isinstance(c, str) or not c for c in columns) or len(set(columns)) != len(columns):
            raise ConfigError(f"NumericFeatures needs distinct non-empty column names, got {list(columns)}")
        self.columns_ = columns
        self.n_features_in_ = len(columns)
        if X is not None:
            self._check(X)
        return self

    def _check(self, X) -> np.ndarray:
        try:
            matrix = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError):
            raise FeatureColumnsError(f"expected a numeric feature matrix with columns {list(self.columns_)}; "
                                      f"got values that are not numbers") from None
        if matrix.ndim == 1 and len(self.columns_) == 1:
            matrix = matrix[:, None]
        if matrix.ndim != 2 or matrix.shape[1] != len(self.columns_):
            raise FeatureColumnsError(f"expected a numeric feature matrix of shape (n, {len(self.columns_)}) "
                                      f"with columns {list(self.columns_)}, got shape {matrix.shape}")
        if not np.all(np.isfinite(matrix)):
            rows = sorted({int(r) for r in np.nonzero(~np.isfinite(matrix))[0]})
            raise FeatureColumnsError(f"feature matrix rows {rows[:5]} hold NaN or infinite values")
        return matrix

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self, "columns_")
        return self._check(X)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "columns_")
        return np.array(self.columns_, dtype=object)
