"""Choosing a latency model for a table by repeated cross-validation and the
one-standard-error rule.

A single 5-fold cross-validation ranks candidates on five noisy numbers each,
and the model with the lowest mean is often a more flexible one that was lucky
on those folds. :func:`choose_model`:

1. scores every candidate on the same ``repeats`` x ``folds`` splits of the
   training rows (:class:`sklearn.model_selection.RepeatedKFold`, seeded: the
   choice is deterministic for a ``random_state``), one MAPE per fold;
2. takes the candidate with the lowest mean fold MAPE and the standard error of
   that mean (fold-to-fold standard deviation / sqrt(number of folds));
3. keeps the *simplest* candidate whose mean is within one standard error of
   the best (Hastie, Tibshirani and Friedman, *The Elements of Statistical
   Learning*, 2nd ed., section 7.10, "one-standard-error rule"): a more flexible
   model has to be better by more than the folds disagree among themselves.

Simplicity is :data:`SIMPLICITY_ORDER`: the parametric models first (``linear``:
one coefficient per column; ``lut``: one per distinct value of each column),
then the tree ensembles (``gbr``, ``rf``), then ``hybrid`` (a linear part and a
boosted correction on top of it).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import RepeatedKFold

from ofa.errors import ConfigError

from .metrics import mape, regression_report

SIMPLICITY_ORDER = ("linear", "macs-linear", "lut", "gbr", "rf", "hybrid")
DEFAULT_REPEATS = 3
ROUNDING_MAPE = 1e-9  # percentage points: mean MAPEs closer than this are equal


def simplicity_rank(name: str) -> int:
    """Position of ``name`` in :data:`SIMPLICITY_ORDER` (unknown names: after every known one)."""
    return SIMPLICITY_ORDER.index(name) if name in SIMPLICITY_ORDER else len(SIMPLICITY_ORDER)


def repeated_fold_scores(models: dict, X: np.ndarray, y: np.ndarray, folds: int = 5,
                         repeats: int = DEFAULT_REPEATS, random_state: int = 0) -> dict[str, dict]:
    """Every model on the same seeded ``repeats`` x ``folds`` splits: ``{name: {"fold_mape":
    [...], "oof": out-of-fold predictions of the first repetition, "metrics": their report}}``."""
    folds = min(int(folds), len(y))
    if folds < 2 or repeats < 1:
        raise ConfigError(f"repeated cross-validation needs at least 2 folds and 1 repeat, got {folds} and {repeats}")
    splits = list(RepeatedKFold(n_splits=folds, n_repeats=repeats, random_state=random_state).split(X))
    results = {}
    for name, model in models.items():
        fold_mape, oof = [], np.empty(len(y))
        for index, (train, test) in enumerate(splits):
            prediction = clone(model).fit(X[train], y[train]).predict(X[test])
            fold_mape.append(mape(y[test], prediction))
            if index < folds:  # the first repetition covers every row once: the out-of-fold predictions
                oof[test] = prediction
        results[name] = {"fold_mape": fold_mape, "oof": oof, "metrics": regression_report(y, oof)}
    return results


def one_standard_error_choice(results: dict[str, dict]) -> tuple[str, str, dict]:
    """``(chosen, reason, summary)`` from :func:`repeated_fold_scores`: the simplest model whose
    mean fold MAPE is within one standard error of the lowest mean."""
    summary = {}
    for name, result in results.items():
        scores = np.asarray(result["fold_mape"], dtype=np.float64)
        spread = float(scores.std(ddof=1)) if scores.size > 1 else 0.0
        summary[name] = {"mean_mape": float(scores.mean()), "standard_error": spread / np.sqrt(scores.size),
                         "folds": int(scores.size)}
    best = min(summary, key=lambda name: (summary[name]["mean_mape"], simplicity_rank(name)))
    # a hair of slack: on an exact fit every mean is rounding noise (1e-13 %), and then the simplest model is kept
    threshold = summary[best]["mean_mape"] + summary[best]["standard_error"] + ROUNDING_MAPE
    within = [name for name in summary if summary[name]["mean_mape"] <= threshold]
    chosen = min(within, key=lambda name: (simplicity_rank(name), summary[name]["mean_mape"]))
    others = ", ".join(f"{name} {summary[name]['mean_mape']:.2f}%" for name in
                       sorted(summary, key=lambda name: summary[name]["mean_mape"]) if name != chosen)
    reason = (f"{chosen}: mean MAPE {summary[chosen]['mean_mape']:.2f}% over {summary[chosen]['folds']} folds "
              f"(repeated cross-validation); "
              + (f"the lowest was {best} {summary[best]['mean_mape']:.2f}% +- {summary[best]['standard_error']:.2f} "
                 f"(standard error), so the simpler {chosen} is kept (one-standard-error rule); "
                 if chosen != best else "the lowest mean; ")
              + (f"others: {others}" if others else "no other candidate"))
    return chosen, reason, summary


def choose_model(make: Callable[[str], object], X: np.ndarray, y: np.ndarray, candidates: Sequence[str],
                 folds: int = 5, repeats: int = DEFAULT_REPEATS, random_state: int = 0):
    """``(chosen, reason, results, summary)``: :func:`repeated_fold_scores` of every candidate
    (``make(name)`` an unfitted model) and the :func:`one_standard_error_choice`."""
    results = repeated_fold_scores({name: make(name) for name in candidates}, X, y, folds, repeats, random_state)
    chosen, reason, summary = one_standard_error_choice(results)
    return chosen, reason, results, summary


__all__ = ["DEFAULT_REPEATS", "SIMPLICITY_ORDER", "choose_model", "one_standard_error_choice", "repeated_fold_scores",
           "simplicity_rank"]
