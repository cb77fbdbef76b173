"""Issue 22: the automatic model choice on tables - repeated cross-validation and the
one-standard-error rule (``predictors.model_choice``), deterministic for a seed."""

from __future__ import annotations

import numpy as np
import pytest

from ofa.errors import ConfigError
from predictors.model_choice import SIMPLICITY_ORDER, one_standard_error_choice, repeated_fold_scores
from predictors.tabular import fit_feature_predictor


def scores(**means_and_spreads):
    """Fold scores with the given mean and fold-to-fold spread per model (15 folds each)."""
    pattern = np.array([-1.0, 1.0] * 7 + [0.0])
    return {name: {"fold_mape": list(mean + spread * pattern)} for name, (mean, spread) in means_and_spreads.items()}


def test_a_simpler_model_within_one_standard_error_is_kept():
    # gbr is lowest by 0.3 points, but its folds disagree by 2 points (standard error 0.5): linear is kept
    chosen, reason, summary = one_standard_error_choice(scores(linear=(5.3, 2.0), gbr=(5.0, 2.0)))
    assert chosen == "linear" and "one-standard-error rule" in reason
    assert summary["gbr"]["standard_error"] == pytest.approx(2 * np.std([-1.0, 1.0] * 7 + [0.0], ddof=1) / np.sqrt(15))


def test_a_model_better_by_more_than_the_standard_error_wins():
    chosen, reason, _ = one_standard_error_choice(scores(linear=(8.0, 1.0), gbr=(5.0, 1.0), hybrid=(5.2, 1.0)))
    assert chosen == "gbr" and "the lowest mean" in reason


def test_the_simplicity_order_is_parametric_first():
    assert SIMPLICITY_ORDER.index("linear") < SIMPLICITY_ORDER.index("lut") < SIMPLICITY_ORDER.index("gbr")
    assert SIMPLICITY_ORDER.index("gbr") < SIMPLICITY_ORDER.index("hybrid")


def test_every_candidate_on_the_same_seeded_folds():
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    X = rng.uniform(1, 10, (30, 2))
    y = X @ [2.0, 1.0] + 1 + rng.normal(0, 0.2, 30)
    first = repeated_fold_scores({"linear": LinearRegression()}, X, y, folds=5, repeats=3, random_state=4)
    again = repeated_fold_scores({"linear": LinearRegression()}, X, y, folds=5, repeats=3, random_state=4)
    assert len(first["linear"]["fold_mape"]) == 15 and first["linear"]["fold_mape"] == again["linear"]["fold_mape"]
    with pytest.raises(ConfigError, match="at least 2 folds"):
        repeated_fold_scores({"linear": LinearRegression()}, X, y, folds=1)


def test_fit_feature_predictor_uses_the_rule_and_is_deterministic():
    rng = np.random.default_rng(1)
    X = rng.uniform(1, 10, (60, 3))
    y = 2 * X[:, 0] + 3 * X[:, 1] + 1 + rng.normal(0, 0.05, 60)  # linear in its columns
    first = fit_feature_predictor(X, y, ["a", "b", "c"], random_state=3)
    second = fit_feature_predictor(X, y, ["a", "b", "c"], random_state=3)
    assert first.model_name == second.model_name == "linear"
    assert first.metrics_["selection"]["rule"].startswith("one-standard-error")
    assert first.metrics_["cv_repeats"] == 3 and first.metrics_["cv_fold_mape"]["linear"]["folds"] == 15
