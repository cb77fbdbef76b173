"""The exit rule of a network with early exits, in numpy: shared by calibration,
specialisation and the ONNX runner, so the rule calibrated is the rule run.

Confidence at an exit, from its logits (higher = more confident, in [0, 1]):

* ``"maxprob"`` - the largest softmax probability (BranchyNet's and
  Shallow-Deep Networks' rule; CALM's "softmax response");
* ``"entropy"`` - ``1 - H(softmax) / log(classes)``: BranchyNet's entropy
  criterion (Teerapittayanon et al. 2016), rescaled to [0, 1].

A sample leaves at the first exit ``k`` whose confidence is strictly above the
threshold ``thresholds[k]``; one that leaves nowhere runs to the final head.
Threshold 1 never exits (no confidence exceeds 1); threshold 0 exits every
sample at the first head (``maxprob`` is at least 1 / classes; ``entropy`` is
0 only for an exactly uniform output).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

CONFIDENCE_MEASURES = ("maxprob", "entropy")


def check_measure(measure: str) -> str:
    if measure not in CONFIDENCE_MEASURES:
        raise ConfigError(f"confidence measure {measure!r} unknown; allowed: {list(CONFIDENCE_MEASURES)}")
    return measure


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def confidence(logits: np.ndarray, measure: str = "maxprob") -> np.ndarray:
    """Per-sample confidence in [0, 1] of ``(n, classes)`` logits."""
    if measure == "maxprob":  # the largest probability is exp(0) / sum: one pass fewer than the softmax
        z = np.asarray(logits, dtype=np.float64)
        return 1.0 / np.exp(z - z.max(axis=-1, keepdims=True)).sum(axis=-1)
    check_measure(measure)
    p = softmax(logits)
    classes = p.shape[-1]
    if classes < 2:
        return np.ones(p.shape[:-1])
    entropy = -(p * np.log(np.clip(p, 1e-300, None))).sum(axis=-1)
    return np.clip(1.0 - entropy / np.log(classes), 0.0, 1.0)


def check_thresholds(thresholds, exits: int) -> np.ndarray:
    """One threshold in [0, 1] per exit (a single number applies to every exit)."""
    try:
        values = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    except (TypeError, ValueError):
        raise ConfigError(f"exit thresholds must be {exits} number(s) in [0, 1] (one per exit; 1 never exits, 0 "
                          f"always exits), got {thresholds!r}") from None
    if values.size == 1 and exits != 1:
        values = np.full(exits, float(values[0]))
    if values.shape != (exits,) or not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values > 1):
        raise ConfigError(f"exit thresholds must be {exits} number(s) in [0, 1] (one per exit; 1 never exits, 0 "
                          f"always exits), got {np.asarray(thresholds).tolist()!r}")
    return values


def exit_indices(confidences: np.ndarray, thresholds) -> np.ndarray:
    """Where each sample leaves: ``confidences`` is ``(exits, n)``; returns ``(n,)`` in
    ``0..exits`` (``exits`` = the final head)."""
    confidences = np.asarray(confidences, dtype=np.float64)
    exits, n = confidences.shape
    thresholds = check_thresholds(thresholds, exits)
    leave = confidences > thresholds[:, None]
    out = np.full(n, exits, dtype=np.int64)
    for k in range(exits - 1, -1, -1):  # the first exit that fires wins
        out[leave[k]] = k
    return out


def adaptive_predictions(all_logits, thresholds, measure: str = "maxprob") -> tuple[np.ndarray, np.ndarray]:
    """``(predicted class, exit index)`` per sample, from the logits of every exit then the final head
    (a list of ``(n, classes)`` arrays)."""
    all_logits = [np.asarray(x) for x in all_logits]
    conf = np.stack([confidence(x, measure) for x in all_logits[:-1]]) if len(all_logits) > 1 else np.zeros((0, 0))
    where = exit_indices(conf, thresholds)
    predictions = np.stack([x.argmax(axis=-1) for x in all_logits])  # (exits + 1, n)
    return predictions[where, np.arange(len(where))], where


__all__ = ["CONFIDENCE_MEASURES", "adaptive_predictions", "check_measure", "check_thresholds", "confidence",
           "exit_indices", "softmax"]
