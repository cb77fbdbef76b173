"""Exit thresholds calibrated with a distribution-free guarantee.

A network with early exits answers at the first exit whose confidence
(:mod:`ofa.models.exits`) passes the threshold ``lambda``. Lower thresholds
exit earlier, and may answer differently from the full subnet. Given ``n``
held-out samples, :func:`calibrate_threshold` returns a threshold such that,
with probability at least ``1 - delta`` over the draw of those samples (i.i.d.
from the distribution the network will serve),

    risk(lambda) = E[ loss(x, y; lambda) ] <= tolerance

for a new sample, where the loss is one of

* ``"consistency"`` (default, needs no labels): 1 when the early answer
  differs from the full subnet's. Because accuracy(full) - accuracy(adaptive)
  <= P(answers differ), the accuracy loss against the full subnet is then
  within ``tolerance`` (CALM's "consistency" risk, Schuster et al., "Confident
  Adaptive Language Modeling", NeurIPS 2022);
* ``"accuracy"`` (needs labels): 1 when the full subnet is right and the early
  answer is wrong. Its expectation is at least the accuracy loss, and it is
  never larger than the consistency loss, so it permits earlier exits.

The procedure is Learn-then-Test (Angelopoulos, Bates, Candes, Jordan and Lei,
"Learn then Test: Calibrating Predictive Algorithms to Achieve Risk Control",
2021) with fixed-sequence testing, as CALM uses it: the candidate thresholds
form a grid fixed before seeing data, scanned from 1 (never exit: risk 0)
downwards; at each, the null hypothesis "risk > tolerance" is tested with the
exact binomial p-value of the observed loss count (the losses are 0/1), and
the scan stops at the first threshold it cannot reject at level ``delta``. The
last rejected threshold is returned. Fixed-sequence testing controls the
family-wise error at ``delta`` with no assumption on how the risk varies with
the threshold. One threshold is shared by every exit (a one-dimensional
family: a grid per exit would need a correction for the many more tests).

The guarantee is about the calibration draw: it holds for thresholds chosen on
data the choice of subnet did not look at (specialisation selects on one half
of the held-out split and calibrates on the other).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, DataError
from ..models.exits import adaptive_predictions, check_measure

RISKS = ("consistency", "accuracy")


def threshold_grid() -> np.ndarray:
    """The fixed candidate thresholds, descending from 1: steps of 0.01, plus points close to 1
    (softmax confidences of a trained network crowd there)."""
    fine = 1.0 - np.logspace(-6, -2, 13)
    grid = np.unique(np.concatenate([np.linspace(0.0, 1.0, 101), fine]))
    return grid[::-1]


def binomial_p_value(losses: int, n: int, tolerance: float) -> float:
    """P(Binomial(n, tolerance) <= losses): the exact p-value of "risk > tolerance" after seeing
    ``losses`` ones in ``n`` Bernoulli draws."""
    from scipy.stats import binom

    return float(binom.cdf(losses, n, tolerance))


def hoeffding_bentkus_p_value(mean_loss: float, n: int, tolerance: float) -> float:
    """The Hoeffding-Bentkus p-value of "risk > tolerance" for losses in [0, 1] with empirical mean
    ``mean_loss`` over ``n`` samples (Bates, Angelopoulos, Lei, Malik and Jordan, "Distribution-Free,
    Risk-Controlling Prediction Sets", 2021; used by Learn-then-Test for bounded losses): the smaller
    of Hoeffding's ``exp(-n h(min(mean, tol), tol))`` and Bentkus' ``e P(Bin(n, tol) <= ceil(n mean))``."""
    from scipy.stats import binom

    def kl(a: float, b: float) -> float:  # h_1(a, b): the Bernoulli relative entropy
        terms = [a * np.log(a / b) if a > 0 else 0.0, (1 - a) * np.log((1 - a) / (1 - b)) if a < 1 else 0.0]
        return float(sum(terms))

    hoeffding = float(np.exp(-n * kl(min(mean_loss, tolerance), tolerance)))
    bentkus = float(np.e * binom.cdf(np.ceil(n * mean_loss - 1e-9), n, tolerance))
    return min(1.0, hoeffding, bentkus)


def check_grid(grid) -> np.ndarray:
    """The candidate thresholds sorted from the highest down: at least one, each in [0, 1]. Checked
    before any calibration work (an empty grid would certify nothing and silently answer 1)."""
    try:
        values = np.asarray(grid, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        values = np.array([np.nan])
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values > 1):
        raise ConfigError(f"the threshold grid must hold at least one number in [0, 1] (1 never exits, 0 always "
                          f"exits), got {grid!r}")
    return np.sort(values)[::-1]


def learn_then_test(grid, losses_at, tolerance: float, delta: float, binary: bool = True) -> tuple[float, list]:
    """Fixed-sequence Learn-then-Test over ``grid`` (thresholds, scanned from the highest down):
    ``losses_at(threshold)`` gives the per-sample losses in [0, 1] there; each threshold's "risk >
    tolerance" is tested with the exact binomial p-value (``binary`` 0/1 losses) or the
    Hoeffding-Bentkus one (any losses in [0, 1]), and the scan stops at the first it cannot reject at
    level ``delta``. Returns (the last rejected threshold, 1 when none is; the tests made)."""
    grid = check_grid(grid)
    chosen, tested = 1.0, []
    for threshold in grid:
        losses = np.asarray(losses_at(float(threshold)), dtype=np.float64)
        n = len(losses)
        if binary:
            p_value = binomial_p_value(int(round(losses.sum())), n, tolerance)
        else:
            p_value = hoeffding_bentkus_p_value(float(losses.mean()), n, tolerance)
        total = int(round(losses.sum())) if binary else float(losses.sum())
        tested.append({"threshold": float(threshold), "losses": total, "p_value": p_value})
        if p_value > delta:
            break
        chosen = float(threshold)
    return chosen, tested


def exit_losses(all_logits, thresholds, labels=None, measure: str = "maxprob", risk: str = "consistency"):
    """Per-sample 0/1 losses of the exit rule at ``thresholds``, and the exit index of each sample."""
    predictions, where = adaptive_predictions(all_logits, thresholds, measure)
    full = np.asarray(all_logits[-1]).argmax(axis=-1)
    if risk == "consistency":
        return (predictions != full).astype(np.int64), where
    labels = np.asarray(labels)
    return ((full == labels) & (predictions != labels)).astype(np.int64), where


@dataclass
class ThresholdCalibration:
    """What every family's calibration reports: the threshold and what it gave on the calibration set
    (:class:`Calibration` for images, :class:`ofa.search.transformer_exits.DecoderCalibration`)."""

    threshold: float
    tolerance: float
    delta: float
    risk: str
    measure: str
    n: int
    empirical_risk: float
    exit_distribution: list[float]  # fraction leaving at each exit, the final output last

    def _reported(self) -> dict:
        return {"threshold": self.threshold, "tolerance": self.tolerance, "delta": self.delta, "risk": self.risk,
                "measure": self.measure, "n": self.n, "empirical_risk": self.empirical_risk,
                "exit_distribution": self.exit_distribution}


@dataclass
class Calibration(ThresholdCalibration):
    """The calibrated threshold and what it gave on the calibration samples."""

    accuracy_full: float | None = None
    accuracy_adaptive: float | None = None
    tested: list[dict] = field(default_factory=list)  # (threshold, losses, p-value) up to the first failure

    def to_dict(self) -> dict:
        return {**self._reported(), "accuracy_full": self.accuracy_full, "accuracy_adaptive": self.accuracy_adaptive,
                "guarantee": (f"with probability >= {1 - self.delta:g} over the {self.n} calibration samples, "
                              f"E[{self.risk} loss] <= {self.tolerance:g}, so top-1 of the adaptive network is at "
                              f"most {100 * self.tolerance:g} points below the full subnet's (Learn-then-Test, "
                              f"fixed-sequence, exact binomial p-values)")}


def check_calibration_args(tolerance: float, delta: float, risk: str, measure: str) -> None:
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 < tolerance < 1:
        raise ConfigError(f"tolerance must be in (0, 1) (e.g. 0.01: at most 1 point of top-1 lost), got {tolerance!r}")
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 < delta < 1:
        raise ConfigError(f"delta must be in (0, 1) (e.g. 0.1: the guarantee holds with probability 0.9), "
                          f"got {delta!r}")
    if risk not in RISKS:
        raise ConfigError(f"risk {risk!r} unknown; allowed: {list(RISKS)}")
    check_measure(measure)


def calibrate_threshold(all_logits, labels=None, tolerance: float = 0.01, delta: float = 0.1,
                        measure: str = "maxprob", risk: str = "consistency", grid=None) -> Calibration:
    """The lowest threshold of ``grid`` (default :func:`threshold_grid`) that fixed-sequence
    Learn-then-Test certifies at ``(tolerance, delta)``; 1 (never exit) when none is.

    ``all_logits``: every exit's ``(n, classes)`` logits on the calibration samples, then the final
    head's. ``labels`` are needed for ``risk="accuracy"`` (and to report accuracies)."""
    check_calibration_args(tolerance, delta, risk, measure)
    all_logits = [np.asarray(x) for x in all_logits]
    if len(all_logits) < 2:
        raise ConfigError("calibration needs the logits of at least one exit and of the final head")
    n = len(all_logits[-1])
    if n == 0 or any(len(x) != n for x in all_logits):
        raise DataError(f"calibration logits must hold the same number (> 0) of samples at every exit, got "
                        f"{[len(x) for x in all_logits]}")
    if risk == "accuracy" and labels is None:
        raise ConfigError("risk 'accuracy' needs the labels of the calibration samples; 'consistency' does not")
    if labels is not None and len(labels) != n:
        raise DataError(f"{len(labels)} labels for {n} calibration samples")
    chosen, tested = learn_then_test(threshold_grid() if grid is None else grid,
                                     lambda threshold: exit_losses(all_logits, threshold, labels, measure, risk)[0],
                                     tolerance, delta)
    losses, where = exit_losses(all_logits, chosen, labels, measure, risk)
    exits = len(all_logits) - 1
    distribution = np.bincount(where, minlength=exits + 1) / n
    result = Calibration(chosen, float(tolerance), float(delta), risk, measure, n, float(losses.mean()),
                         distribution.tolist(), tested=tested)
    if labels is not None:
        labels = np.asarray(labels)
        predictions, _ = adaptive_predictions(all_logits, chosen, measure)
        result.accuracy_full = float(100.0 * np.mean(all_logits[-1].argmax(axis=-1) == labels))
        result.accuracy_adaptive = float(100.0 * np.mean(predictions == labels))
    return result


__all__ = ["Calibration", "RISKS", "ThresholdCalibration", "binomial_p_value", "calibrate_threshold",
           "check_calibration_args", "check_grid", "exit_losses", "hoeffding_bentkus_p_value", "learn_then_test",
           "threshold_grid"]
