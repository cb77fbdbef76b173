"""Saving and loading predictors safely.

A predictor file is a ``skops`` file (a zip of JSON and numpy arrays, never a
pickle) holding a dict with two entries: ``"estimator"`` (the fitted
scikit-learn pipeline) and ``"meta"`` (one JSON string: format version, kind,
search space definition and fingerprint, target, device, the profile header it
was fitted on, its held-out metrics, interval residuals, package versions).

Loading refuses any file whose objects are not in :data:`TRUSTED_TYPES` (the
scikit-learn and numpy types our recipes use, and this package's estimators)
before constructing anything, so a hostile file cannot run code.
"""

from __future__ import annotations

import importlib.abc
import json
import os
import sys
import zipfile
from pathlib import Path

from ofa.errors import PredictorError
from ofa.io import atomic_write_bytes

FORMAT = "ofa-hw-predictor"
FORMAT_VERSION = 1

# Every type a saved recipe may contain (see estimators.make_*_model).
TRUSTED_TYPES = [
    "predictors.features.ArchFeaturizer",
    "ofa.spaces.tables.AdditiveTables",
    "ofa.spaces.tables.UnitGroup",
    "predictors.estimators.AdditiveLUTRegressor",
    "predictors.estimators.HybridLatencyRegressor",
    "predictors.estimators.SourceCorrectionRegressor",
    "predictors.blocks.BlockSumRegressor",
    "predictors.blocks.BlockLatencyRegressor",
    "predictors.blocks.BlockFeaturizer",
    "ofa.spaces.tables.AdditiveTables",
    "ofa.spaces.tables.UnitGroup",
    "predictors.features.NumericFeatures",
    "predictors.tabular.NumericFeatures",  # where files saved before it moved to predictors.features name it
    "predictors.ofa_reference.OFAReferenceMLP",
    "sklearn.pipeline.Pipeline",
    "sklearn.frozen._frozen.FrozenEstimator",
    "sklearn.linear_model._base.LinearRegression",
    "sklearn.compose._target.TransformedTargetRegressor",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.ensemble._gb.GradientBoostingRegressor",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._tree.Tree",
    "sklearn.dummy.DummyRegressor",
    "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
    "sklearn.neural_network._multilayer_perceptron.MLPRegressor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "numpy.log",
    "numpy.exp",
    "builtins.slice",
    "collections.OrderedDict",
]


class _RefuseTorch(importlib.abc.MetaPathFinder):
    """An import finder that reports torch as missing (see :func:`_skops_io`)."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"{name} is not needed to read or write a predictor", name=name)
        return None


def _skops_io():
    """``skops.io``, imported without loading torch.

    Importing ``skops.io`` lists every scikit-learn estimator by walking sklearn's packages, which
    imports sklearn's bundled array-API adapter for torch, and with it torch (seconds, for a file of
    trees). The walk skips a package whose import fails, so while skops loads, torch reads as missing;
    a process that has already imported torch keeps it.
    """
    if "skops.io" in sys.modules or "torch" in sys.modules:
        import skops.io

        return skops.io
    finder = _RefuseTorch()
    sys.meta_path.insert(0, finder)
    try:
        import skops.io
    finally:
        sys.meta_path.remove(finder)
    return skops.io


def _versions() -> dict:
    import numpy
    import sklearn
    import skops

    from ofa import __version__ as ofa_version

    return {"ofa-hw": ofa_version, "scikit-learn": sklearn.__version__, "numpy": numpy.__version__,
            "skops": skops.__version__}


def dump_predictor_bytes(estimator, meta: dict) -> bytes:
    skops_io = _skops_io()
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "versions": _versions(), **meta}
    # Deflate: the JSON schema of a few hundred trees is large and compresses ~10x.
    return skops_io.dumps({"estimator": estimator, "meta": json.dumps(meta, sort_keys=True)},
                          compression=zipfile.ZIP_DEFLATED, compresslevel=9)


def save_predictor_file(path: str | os.PathLike, estimator, meta: dict) -> Path:
    """Write atomically: a kill leaves the old file or the new one."""
    return atomic_write_bytes(path, dump_predictor_bytes(estimator, meta))


def load_predictor_file(path: str | os.PathLike) -> tuple[object, dict]:
    """``(estimator, meta)`` of a predictor file, refusing untrusted content."""
    skops_io = _skops_io()

    path = Path(path)
    if not path.is_file():
        raise PredictorError(f"no predictor file at {path}")
    data = path.read_bytes()
    try:
        untrusted = skops_io.get_untrusted_types(data=data)
    except Exception as error:  # not a zip, or not a skops file
        raise PredictorError(f"{path} is not a predictor file (skops format): {error}") from None
    refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if refused:
        raise PredictorError(f"{path} contains object types this package does not trust: {refused}; "
                             f"only predictors saved by predictor.save() can be loaded")
    try:
        content = skops_io.loads(data, trusted=TRUSTED_TYPES)
    except Exception as error:
        raise PredictorError(f"{path} could not be read as a predictor: {error}") from None
    if not isinstance(content, dict) or set(content) != {"estimator", "meta"}:
        raise PredictorError(f"{path} is a skops file but not a predictor saved by this package")
    try:
        meta = json.loads(content["meta"])
    except (TypeError, json.JSONDecodeError):
        raise PredictorError(f"{path}: the predictor metadata is not valid JSON") from None
    if meta.get("format") != FORMAT:
        raise PredictorError(f"{path} is not an {FORMAT} file")
    if meta.get("format_version") != FORMAT_VERSION:
        raise PredictorError(f"{path} has predictor format version {meta.get('format_version')}; this package "
                             f"reads version {FORMAT_VERSION}: re-fit it with ofa-fit-predictor")
    return content["estimator"], meta
