"""Latency and accuracy predictors with the scikit-learn estimator API.

* :mod:`predictors.features` - :class:`ArchFeaturizer`, gene matrices to features;
* :mod:`predictors.estimators` - the regressors and the named model recipes;
* :mod:`predictors.metrics` - RMSE, MAPE, within +-5/10%, Spearman, Kendall;
* :mod:`predictors.base` - the predictor classes (predict, save) and the helpers the fitters share;
* :mod:`predictors.core` - architecture-level fitting, and loading any saved predictor;
* :mod:`predictors.ofa_reference` - Once-for-All's published accuracy predictors, converted;
* :mod:`predictors.trust` - held-out metrics and the one trust rule, :func:`check_trustworthy` (refuse a
  predictor that ranks badly; thresholds documented there).
"""

from .core import (AUTO_ACCURACY_MODELS, AUTO_LATENCY_MODELS, AccuracyPredictor, LatencyPredictor, SpacePredictor,
                   cross_validate_models, fit_accuracy_predictor, fit_latency_predictor, fit_transfer_predictor,
                   default_label, load_predictor, read_evaluations, select_model)
from .estimators import (ACCURACY_MODELS, LATENCY_MODELS, AdditiveLUTRegressor, HybridLatencyRegressor,
                         SourceCorrectionRegressor, make_accuracy_model, make_latency_model)
from .blocks import BlockFeaturizer, BlockLatencyRegressor, BlockSumRegressor, fit_block_predictor
from .features import ArchFeaturizer
from .metrics import interval_coverage, kendall, mape, regression_report, rmse, spearman, within
from .ofa_reference import OFAReferenceMLP, convert_ofa_accuracy_predictor
from .trust import TrustRule, check_trustworthy, held_out_metrics

__all__ = [
    "ACCURACY_MODELS", "AUTO_ACCURACY_MODELS", "AUTO_LATENCY_MODELS", "AccuracyPredictor", "AdditiveLUTRegressor",
    "ArchFeaturizer", "HybridLatencyRegressor", "LATENCY_MODELS", "LatencyPredictor", "SourceCorrectionRegressor",
    "OFAReferenceMLP", "SpacePredictor", "convert_ofa_accuracy_predictor", "cross_validate_models", "fit_accuracy_predictor", "fit_latency_predictor",
    "fit_transfer_predictor", "interval_coverage", "kendall", "load_predictor", "make_accuracy_model",
    "make_latency_model", "mape", "read_evaluations", "regression_report", "rmse",
    "select_model", "spearman", "within", "TrustRule", "check_trustworthy", "held_out_metrics",
    "BlockFeaturizer", "BlockLatencyRegressor", "BlockSumRegressor", "fit_block_predictor", "default_label",
]
