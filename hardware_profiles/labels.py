"""What "the latency" of a record is: one label definition for fitting,
search and verification.

A *label* is a metric and a statistic of a profile record, e.g.
``corrected_cpu_time_ms.median``. Fitting a predictor reads it from the
profile's records, the search keeps the predictor's prediction of it under the
budget, and verifying a pick reads the same label from the pick's own
measurement (:meth:`Label.value`): fitting on one statistic and verifying with
another (a p10 fitted, a median verified) is a systematic gap toward over
budget.

Metrics of a record:

* ``latency_ms`` (wall clock) and ``cpu_time_ms`` (thread CPU time) as timed;
* ``corrected_latency_ms`` and ``corrected_cpu_time_ms`` where the record was
  timed beside the reference network (:mod:`hardware_profiles.reference`):
  each pass's timings divided by the reference's median in the same pass, then
  multiplied by the reference's *session median*, the median of the
  reference's time over all records of the profile. A stretch of the host at
  0.7x speed slows the reference as much as the architecture, so the ratio
  stays; the session median turns it back into milliseconds at the speed the
  device mostly ran at. The raw metrics stay in the record.

A :class:`Label` carries the session median it was fitted with
(``reference_ms``), so a measurement taken later, in another process or on
another day, is put on the same scale as the profile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ofa.errors import ProfileError

CORRECTED_PREFIX = "corrected_"
TIMED_CLOCKS = ("cpu_time_ms", "latency_ms")  # in order of preference: thread CPU time is the steadier clock
SCALED_STATS = ("median", "mean", "p10", "p90", "std")  # in ms; cv and runs are unit-free
LABEL_STATS = ("median", "mean", "p10", "p90")  # the statistics a fit may take as "the latency"


def corrected_metric(clock: str) -> str:
    return CORRECTED_PREFIX + clock


def clock_of(metric: str) -> str:
    """``corrected_cpu_time_ms`` -> ``cpu_time_ms``; a raw metric is its own clock."""
    return metric[len(CORRECTED_PREFIX):] if metric.startswith(CORRECTED_PREFIX) else metric


def is_corrected(metric: str) -> bool:
    return metric.startswith(CORRECTED_PREFIX)


def scaled_stats(relative: dict, reference_ms: float) -> dict:
    """Statistics of timings relative to the reference, in milliseconds at ``reference_ms``."""
    return {key: (float(value) * reference_ms if key in SCALED_STATS else value) for key, value in relative.items()}


def session_reference_ms(records, clock: str) -> float | None:
    """The reference's session median of ``clock`` over ``records`` (None where none was timed beside it)."""
    values = [r["drift"]["reference_ms"][clock] for r in records
              if isinstance(r.get("drift"), dict) and clock in r["drift"].get("reference_ms", {})]
    return float(np.median(values)) if values else None


def add_corrected_metrics(records, references: dict | None = None) -> dict[str, float]:
    """Add ``corrected_<clock>`` statistics to every record timed beside the
    reference (in place; the file keeps only what was timed), scaled by
    ``references`` (clock -> ms; default: the records' own session medians);
    returns the references used. Records without a reference get nothing, so a
    profile that mixes both cannot offer the corrected label (see
    :func:`default_metric_statistic`)."""
    given = dict(references or {})
    references = {}
    for clock in TIMED_CLOCKS:
        reference = given.get(clock) or session_reference_ms(records, clock)
        if reference is None:
            continue
        references[clock] = reference
        for record in records:
            relative = (record.get("drift") or {}).get("relative", {}).get(clock)
            if relative is not None:
                record[corrected_metric(clock)] = scaled_stats(relative, reference)
    return references


@dataclass(frozen=True)
class Label:
    """A metric and a statistic of a profile record, and for a corrected metric
    the reference's session median that puts it in milliseconds."""

    metric: str = "latency_ms"
    statistic: str = "median"
    reference_ms: float | None = None

    @property
    def name(self) -> str:
        return f"{self.metric}.{self.statistic}"

    def value(self, record: dict) -> float:
        """This label of one record: a profile's record or a fresh measurement of
        the same backend (for a corrected metric, scaled by this label's own
        ``reference_ms``, not by whatever session the record came from)."""
        if is_corrected(self.metric):
            relative = (record.get("drift") or {}).get("relative", {}).get(clock_of(self.metric))
            if relative is None or self.reference_ms is None:
                raise ProfileError(f"label {self.name} needs a measurement timed beside the reference network "
                                   f"and the profile's reference time; this record has "
                                   f"{'no reference timing' if relative is None else 'one'} and the label "
                                   f"{'no' if self.reference_ms is None else 'a'} reference time")
            return float(relative[self.statistic]) * self.reference_ms
        try:
            return float(record[self.metric][self.statistic])
        except (KeyError, TypeError):
            available = sorted(k for k in record if k.endswith("_ms"))
            raise ProfileError(f"the measurement has no {self.name}; available metrics: {available}") from None

    def to_dict(self) -> dict:
        return {"metric": self.metric, "statistic": self.statistic, "reference_ms": self.reference_ms}

    @classmethod
    def from_dict(cls, data: dict) -> "Label":
        return cls(str(data["metric"]), str(data["statistic"]),
                   None if data.get("reference_ms") is None else float(data["reference_ms"]))


# Labels fitted by default. Timed records with the reference: the corrected
# thread CPU time's lower decile, the statistic that repeated best within and
# between sessions (docs/profiles.md, "Which label to fit": the median counts
# how often a run was disturbed, which varies from one measurement to the
# next; the correction removes the host's speed, not those disturbances).
# Older timed profiles without the reference: the raw thread CPU time's p10.
# Simulators are deterministic: their latency_ms.median is exact.
CORRECTED_STATISTIC = "p10"
UNCORRECTED_TIMED_LABEL = ("cpu_time_ms", "p10")
SIMULATED_LABEL = ("latency_ms", "median")


def default_metric_statistic(records) -> tuple[str, str]:
    """``(metric, statistic)`` fitted by default on these records (see the constants above)."""
    if records:
        for clock in TIMED_CLOCKS:
            if all(corrected_metric(clock) in r for r in records):
                return corrected_metric(clock), CORRECTED_STATISTIC
        if all(UNCORRECTED_TIMED_LABEL[0] in r for r in records):
            return UNCORRECTED_TIMED_LABEL
    return SIMULATED_LABEL
