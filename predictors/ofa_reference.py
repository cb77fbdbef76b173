"""Once-for-All's published accuracy predictors, converted.

The reference code has two MLP accuracy predictors for its MobileNetV3
supernets, both with ReLU hidden layers and a one-hot architecture encoding:

``"tutorial"`` (``ofa/tutorial/accuracy_predictor.py``; the published
``acc_predictor.pth`` of the tutorial notebook, made for the
``ofa_mbv3_d234_e346_k357_w1.2`` supernet)
    128 inputs: for each of the 20 blocks a one-hot of its kernel (3, 5, 7),
    then for each block a one-hot of its expand ratio (3, 4, 6), both all-zero
    for a block that depth skips, then a one-hot of the resolution bucket
    ``(r - 112) // 16`` (8 buckets: 112-127, 128-143, ..., 224-239).
    Layers 128-400-400-400-1, output bias included; the output is top-1
    accuracy as a fraction. State dict keys ``0.weight`` ... ``6.bias``.
``"arch-encoder"`` (``ofa/nas/accuracy_predictor``: ``AccuracyPredictor``
over ``MobileNetArchEncoder``)
    Inputs: a one-hot of the resolution over the encoder's ``image_size_list``,
    then per block a one-hot of its kernel, then per block a one-hot of its
    expand ratio. Hidden layers with bias, an output layer without bias, plus
    a constant ``base_acc``. State dict keys ``layers.0.0.weight`` ...
    ``layers.3.weight``, ``base_acc``.

:class:`OFAReferenceMLP` is a scikit-learn regressor that computes exactly
that function (in float64, with NumPy) from a gene matrix of one of this
package's MobileNetV3 spaces; :func:`convert_ofa_accuracy_predictor` wraps a
downloaded state dict into an :class:`~predictors.AccuracyPredictor` that
saves and loads like any other (``.skops``). Predictions are in percent
(``output_scale=100``), the unit of this package's ``top1``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ofa.errors import ConfigError, PredictorError
from ofa.io import load_plain_torch_file
from ofa.spaces import MobileNetV3Space, resolve_space

from .base import AccuracyPredictor
from .features import ArchFeaturizer

ENCODINGS = ("tutorial", "arch-encoder")
# The reference encoders' choice lists, in their column order.
REFERENCE_KERNELS = (3, 5, 7)
REFERENCE_EXPANDS = (3, 4, 6)
TUTORIAL_BLOCKS = 20
TUTORIAL_RESOLUTION_BASE, TUTORIAL_RESOLUTION_STEP, TUTORIAL_RESOLUTION_BUCKETS = 112, 16, 8
# Where the tutorial predictor is published (downloaded by hand; never fetched here).
TUTORIAL_PREDICTOR_URL = "https://raw.githubusercontent.com/han-cai/files/master/ofa/acc_predictor.pth"


class OFAReferenceMLP(RegressorMixin, BaseEstimator):
    """Once-for-All's accuracy MLP with given (converted) weights, on gene matrices.

    Nothing is learned: :meth:`fit` checks the weights against the space and
    the encoding and builds the one-hot column tables; ``X``/``y`` are ignored.

    Parameters
    ----------
    space : dict or preset name
        The MobileNetV3 search space of the gene rows (``space.to_dict()``).
    encoding : ``"tutorial"`` or ``"arch-encoder"`` (see the module docstring).
    weights : sequence of 2-D arrays
        One ``(out, in)`` matrix per linear layer, first to last (PyTorch layout).
    biases : sequence of 1-D arrays or None
        One per layer (``None`` for a layer without bias).
    base_acc : float
        Constant added to the MLP output (the arch-encoder predictor's ``base_acc``).
    image_sizes : sequence of int or None
        The arch-encoder's ``image_size_list`` (its resolution columns, in order).
    output_scale : float
        Multiplies the prediction (100: the reference's fraction as percent).
    """

    def __init__(self, space=None, encoding="tutorial", weights=(), biases=(), base_acc=0.0, image_sizes=None,
                 output_scale=100.0):
        self.space = space
        self.encoding = encoding
        self.weights = weights
        self.biases = biases
        self.base_acc = base_acc
        self.image_sizes = image_sizes
        self.output_scale = output_scale

    # --- checking and building the encoding tables ---------------------------------------------
    def _resolve_space(self) -> MobileNetV3Space:
        if self.space is None:
            raise ConfigError("OFAReferenceMLP needs the search space: OFAReferenceMLP(space=...)")
        space = resolve_space(self.space)
        if not isinstance(space, MobileNetV3Space):
            raise ConfigError(f"Once-for-All's accuracy predictors encode MobileNetV3 architectures; "
                              f"got a {space.type_name} space")
        return space

    def _check_layers(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        weights = [np.asarray(w, dtype=np.float64) for w in self.weights]
        biases = list(self.biases) if self.biases is not None else []
        if not weights:
            raise ConfigError("OFAReferenceMLP needs the layer weights (weights=[W1, W2, ...])")
        if len(biases) != len(weights):
            raise ConfigError(f"{len(weights)} weight matrices but {len(biases)} biases (use None for no bias)")
        coefs, intercepts = [], []
        previous = None
        for i, (w, b) in enumerate(zip(weights, biases)):
            if w.ndim != 2:
                raise ConfigError(f"layer {i}: weight must be a 2-D (out, in) matrix, got shape {w.shape}")
            if previous is not None and w.shape[1] != previous:
                raise ConfigError(f"layer {i}: takes {w.shape[1]} inputs but layer {i - 1} gives {previous}")
            b = np.zeros(w.shape[0]) if b is None else np.asarray(b, dtype=np.float64)
            if b.shape != (w.shape[0],):
                raise ConfigError(f"layer {i}: bias has shape {b.shape}, expected ({w.shape[0]},)")
            coefs.append(w.T.copy())
            intercepts.append(b)
            previous = w.shape[0]
        if previous != 1:
            raise ConfigError(f"the last layer must give one output (the accuracy), gives {previous}")
        if not np.all([np.all(np.isfinite(c)) for c in coefs + intercepts]) or not np.isfinite(self.base_acc):
            raise ConfigError("the predictor weights hold NaN or infinite values")
        return coefs, intercepts

    def _tables(self, space: MobileNetV3Space) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Feature column of each (block, kernel choice), (block, expand choice)
        and resolution choice, and the input width of the encoding."""
        blocks = space.num_blocks
        for name, values, allowed in (("kernel_sizes", space.kernel_sizes, REFERENCE_KERNELS),
                                      ("expand_ratios", space.expand_ratios, REFERENCE_EXPANDS)):
            bad = [v for v in values if v not in allowed]
            if bad:
                raise ConfigError(f"the space's {name} {tuple(values)} include {bad}, which Once-for-All's "
                                  f"encoding has no column for (allowed: {allowed})")
        kernel_index = [REFERENCE_KERNELS.index(k) for k in space.kernel_sizes]
        expand_index = [REFERENCE_EXPANDS.index(e) for e in space.expand_ratios]
        if self.encoding == "tutorial":
            if blocks != TUTORIAL_BLOCKS:
                raise ConfigError(f"the tutorial predictor encodes {TUTORIAL_BLOCKS} blocks (5 stages x 4); the "
                                  f"space has {blocks}")
            low = TUTORIAL_RESOLUTION_BASE
            high = low + TUTORIAL_RESOLUTION_STEP * TUTORIAL_RESOLUTION_BUCKETS - 1
            outside = [r for r in space.resolutions if not low <= r <= high]
            if outside:
                raise ConfigError(f"the tutorial predictor encodes resolutions {low}-{high}; the space also has "
                                  f"{outside}: restrict the space's resolutions")
            width = len(REFERENCE_KERNELS) * blocks
            kernel = np.array([[3 * b + k for k in kernel_index] for b in range(blocks)])
            expand = np.array([[width + 3 * b + e for e in expand_index] for b in range(blocks)])
            resolution = np.array([2 * width + (r - low) // TUTORIAL_RESOLUTION_STEP for r in space.resolutions])
            return kernel, expand, resolution, 2 * width + TUTORIAL_RESOLUTION_BUCKETS
        if self.encoding == "arch-encoder":
            sizes = [int(r) for r in (self.image_sizes or ())]
            if not sizes or len(set(sizes)) != len(sizes):
                raise ConfigError("the arch-encoder predictor needs its image_sizes (the encoder's distinct "
                                  "image_size_list, in order)")
            missing = [r for r in space.resolutions if r not in sizes]
            if missing:
                raise ConfigError(f"the predictor's image sizes {sizes} lack the space's resolutions {missing}: "
                                  f"restrict the space's resolutions or give the right image_sizes")
            n_r, n_k, n_e = len(sizes), len(REFERENCE_KERNELS), len(REFERENCE_EXPANDS)
            kernel = np.array([[n_r + n_k * b + k for k in kernel_index] for b in range(blocks)])
            expand = np.array([[n_r + n_k * blocks + n_e * b + e for e in expand_index] for b in range(blocks)])
            resolution = np.array([sizes.index(r) for r in space.resolutions])
            return kernel, expand, resolution, n_r + (n_k + n_e) * blocks
        raise ConfigError(f"encoding {self.encoding!r} unknown; allowed: {ENCODINGS}")

    def fit(self, X=None, y=None):
        space = self._resolve_space()
        coefs, intercepts = self._check_layers()
        kernel, expand, resolution, width = self._tables(space)
        if coefs[0].shape[0] != width:
            raise ConfigError(f"the {self.encoding} encoding of this space has {width} inputs, but the first "
                              f"layer takes {coefs[0].shape[0]}")
        self.coefs_, self.intercepts_ = coefs, intercepts
        self.kernel_columns_, self.expand_columns_, self.resolution_columns_ = kernel, expand, resolution
        self.n_encoding_ = width
        self.n_features_in_ = space.num_genes
        return self

    # --- persistence: the float64 layer copies are rebuilt from the weights, not stored twice ---
    def __getstate__(self):
        state = super().__getstate__()
        state.pop("coefs_", None)
        state.pop("intercepts_", None)
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "kernel_columns_" in state:  # a fitted estimator
            self.coefs_, self.intercepts_ = self._check_layers()

    # --- prediction ---------------------------------------------------------------------------
    def encode(self, X) -> np.ndarray:
        """The reference's one-hot input vectors (float64) of gene rows ``X``."""
        check_is_fitted(self, "coefs_")
        genes = np.asarray(X)
        if genes.ndim != 2 or genes.shape[1] != self.n_features_in_:
            raise ConfigError(f"expected a gene matrix of shape (n, {self.n_features_in_}), got {genes.shape}")
        genes = np.rint(genes).astype(np.int64)
        blocks = len(self.kernel_columns_)
        out = np.zeros((len(genes), self.n_encoding_))
        for offset, columns in ((0, self.kernel_columns_), (blocks, self.expand_columns_)):
            chosen = genes[:, offset:offset + blocks]
            rows, block = np.nonzero(chosen >= 0)
            out[rows, columns[block, chosen[rows, block]]] = 1.0
        out[np.arange(len(genes)), self.resolution_columns_[genes[:, -1]]] = 1.0
        return out

    def predict(self, X) -> np.ndarray:
        h = self.encode(X)
        last = len(self.coefs_) - 1
        for i, (w, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            h = h @ w + b
            if i < last:
                np.maximum(h, 0.0, out=h)
        return (h[:, 0] + float(self.base_acc)) * float(self.output_scale)


# --- reading the reference state dicts ---------------------------------------------------------------
_LAYER_KEY = re.compile(r"^(?:layers\.)?(\d+)(?:\.0)?\.(weight|bias)$")


def read_reference_predictor(state_dict_or_path) -> dict:
    """``{"weights", "biases", "base_acc", "encoding"}`` from a reference
    accuracy-predictor state dict (a path read with ``weights_only=True``, or
    a loaded dict, possibly ``{"state_dict": ...}``)."""
    import torch

    source = state_dict_or_path
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise PredictorError(f"no accuracy-predictor file at {str(path)!r}; download it first "
                                 f"(see docs/pretrained.md)")
        source = load_plain_torch_file(path, PredictorError, "accuracy-predictor file",
                                       "it must be a state dict of plain tensors")
    if isinstance(source, dict) and isinstance(source.get("state_dict"), dict):
        source = source["state_dict"]
    if not isinstance(source, dict) or not source:
        raise PredictorError(f"an accuracy-predictor checkpoint is a state dict (name -> tensor); "
                             f"got {type(source).__name__}")
    layers: dict[int, dict[str, np.ndarray]] = {}
    unknown, base_acc, prefixed = [], 0.0, False
    for key, value in source.items():
        if not isinstance(value, torch.Tensor):
            unknown.append(key)
            continue
        if key == "base_acc":
            if value.numel() != 1:
                raise PredictorError(f"base_acc must hold one number, has shape {tuple(value.shape)}")
            base_acc = float(value.reshape(-1)[0])
            continue
        match = _LAYER_KEY.match(key)
        if match is None:
            unknown.append(key)
            continue
        prefixed |= key.startswith("layers.")
        layers.setdefault(int(match.group(1)), {})[match.group(2)] = value.detach().float().numpy()  # as stored
    if unknown:
        raise PredictorError(f"{len(unknown)} unknown keys in the accuracy-predictor state dict: "
                             f"{sorted(unknown)[:12]}{' ...' if len(unknown) > 12 else ''}; "
                             f"expected Once-for-All's MLP keys ('0.weight' ... or 'layers.0.0.weight' ..., "
                             f"'base_acc')")
    missing = [f"{index}.weight" for index, tensors in layers.items() if "weight" not in tensors]
    if missing or not layers:
        raise PredictorError(f"the accuracy-predictor state dict lacks weights: {missing or 'no layers'}")
    order = sorted(layers)
    encoding = "arch-encoder" if prefixed or "base_acc" in source else "tutorial"
    return {"weights": [layers[i]["weight"] for i in order], "biases": [layers[i].get("bias") for i in order],
            "base_acc": base_acc, "encoding": encoding}


def convert_ofa_accuracy_predictor(state_dict_or_path, space, encoding: str = "auto", image_sizes=None,
                                   source: str | None = None):
    """An :class:`~predictors.AccuracyPredictor` (top-1 in percent) computing
    a published Once-for-All accuracy predictor on ``space``.

    ``encoding``: ``"auto"`` (``"arch-encoder"`` when the keys are
    ``layers.*``/``base_acc``, else ``"tutorial"``), or either name.
    ``image_sizes``: the arch-encoder's ``image_size_list`` (default: the
    space's resolutions, when the input width agrees)."""
    space = resolve_space(space)
    parsed = read_reference_predictor(state_dict_or_path)
    if encoding == "auto":
        encoding = parsed["encoding"]
    if encoding not in ENCODINGS:
        raise ConfigError(f"encoding {encoding!r} unknown; allowed: 'auto', {ENCODINGS}")
    if encoding == "arch-encoder" and image_sizes is None:
        image_sizes = list(getattr(space, "resolutions", ()))
    model = OFAReferenceMLP(space.to_dict(), encoding, parsed["weights"], parsed["biases"], parsed["base_acc"],
                            None if image_sizes is None else [int(r) for r in image_sizes])
    try:
        model.fit()
    except ConfigError as error:
        raise PredictorError(f"the accuracy predictor does not fit the space: {error}") from None
    pipeline = Pipeline([("features", ArchFeaturizer(space.to_dict(), "genes").fit()), ("model", model)])
    if source is None and isinstance(state_dict_or_path, (str, os.PathLike)):
        source = str(state_dict_or_path)
    metrics = {"reference": {"encoding": encoding, "base_acc": parsed["base_acc"],
                             "layers": [list(np.shape(w)) for w in parsed["weights"]],
                             "image_sizes": model.image_sizes}}
    return AccuracyPredictor(pipeline, space, target="top1", model_name=f"ofa-reference-{encoding}",
                             metrics=metrics, source=source)


__all__ = ["ENCODINGS", "OFAReferenceMLP", "TUTORIAL_PREDICTOR_URL", "convert_ofa_accuracy_predictor",
           "read_reference_predictor"]
