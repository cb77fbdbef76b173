"""The measurement protocol shared by every timed backend.

One chunk of architectures (or blocks) is measured together:

1. warm-up runs of each (not recorded), and of the reference network
   (:mod:`hardware_profiles.reference`);
2. two *passes* of ``runs`` timed runs each. Each pass visits the
   architectures and the reference network in a fresh shuffled order, so slow
   drifts of the machine within the chunk spread over all of them instead of
   biasing the ones measured last;
3. where the reference's medians in the passes of the chunk differ by more
   than ``drift_tolerance`` (5 %), the host changed speed during the chunk:
   the whole chunk is measured again, up to ``max_drift_remeasure`` times
   (the count is recorded);
4. where an architecture's two pass medians, each divided by the reference's
   median in its pass, disagree by more than ``rel_tolerance`` (5 %), its
   passes are repeated, up to ``max_remeasure`` times; the record keeps the
   last pair and says whether it agreed;
5. statistics (:func:`~hardware_profiles.dataset.latency_stats`) over the
   timings of the kept passes for every clock the runner reads, and under
   ``drift`` the same statistics of the timings relative to the reference in
   their pass, with the reference's median time: from these a profile derives
   its drift-corrected labels (:mod:`hardware_profiles.labels`).

Clocks: ``latency_ms`` is wall clock (``time.perf_counter_ns``) and, for
backends that compute on the calling thread (onnxruntime and ncnn with one
thread), ``cpu_time_ms`` is the CPU time of that thread
(``time.thread_time_ns``). On a shared machine the thread CPU time is much
steadier: it does not count the time the thread waits for a core; it still
counts a slower clock or a cache shared with a busy neighbour, which is what
the reference sees. GPU runners time with CUDA events instead.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

from ofa.errors import ConfigError

from .dataset import latency_stats

# name in the record -> clock returning integer nanoseconds
WALL_CLOCK = {"latency_ms": time.perf_counter_ns}
WALL_AND_THREAD_CLOCKS = {"latency_ms": time.perf_counter_ns, "cpu_time_ms": time.thread_time_ns}


@dataclass(frozen=True)
class MeasurementProtocol:
    """How many runs, passes and re-measurements make one record."""

    warmup: int = 20
    runs: int = 100
    passes: int = 2
    rel_tolerance: float = 0.05
    max_remeasure: int = 2
    agreement_metric: str = "latency_ms"  # which clock the pass-agreement check uses
    reference: bool = True  # time the reference network in every pass (drift-corrected labels)
    drift_tolerance: float = 0.05
    max_drift_remeasure: int = 2

    def __post_init__(self):
        if (self.warmup < 0 or self.runs < 1 or self.passes < 1 or self.max_remeasure < 0
                or self.max_drift_remeasure < 0):
            raise ConfigError(f"bad measurement protocol {asdict(self)}: warmup >= 0, runs >= 1, passes >= 1, "
                              f"max_remeasure >= 0, max_drift_remeasure >= 0")
        for name in ("rel_tolerance", "drift_tolerance"):
            if not 0 < getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in (0, 1), got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "MeasurementProtocol":
        """The protocol a profile header records (its other keys, such as the
        sampling, are ignored; older headers lack the reference settings and get
        the defaults)."""
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in (data or {}).items() if k in names})


class Runner:
    """One prepared model on one runtime, ready to be timed.

    Subclasses implement :meth:`run` (one inference, synchronous) and may
    override :meth:`time_runs` (GPU runners time with CUDA events).
    ``clocks`` maps a record field to a nanosecond clock; tests pass fake
    clocks with known readings.
    """

    clocks: dict[str, Callable[[], int]] = WALL_CLOCK
    input_shapes: list = []

    def run(self) -> None:
        raise NotImplementedError

    def time_runs(self, runs: int) -> dict[str, np.ndarray]:
        """Time ``runs`` single inferences; milliseconds per clock."""
        names = list(self.clocks)
        clocks = [self.clocks[n] for n in names]
        samples = np.empty((runs, len(names)), dtype=np.float64)
        for i in range(runs):
            start = [clock() for clock in clocks]
            self.run()
            end = [clock() for clock in clocks]
            samples[i] = [(e - s) / 1e6 for s, e in zip(start, end)]
        return {name: samples[:, j] for j, name in enumerate(names)}

    def warm_up(self, runs: int) -> None:
        for _ in range(runs):
            self.run()

    def close(self) -> None:
        """Free runtime resources (sessions, engines, temporary files)."""


def load_average() -> float | None:
    """1-minute load average, or None where the OS does not report it."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def warn_if_loaded(load: float | None) -> bool:
    """Warn when the machine runs more jobs than it has cores (timings then
    include waiting for a core; prefer ``cpu_time_ms`` as the label)."""
    cores = os.cpu_count() or 1
    if load is not None and load > cores:
        # one message text, so Python shows it once per run, not once per measurement
        warnings.warn(f"the load average exceeds the {cores} cores: wall-clock latencies are inflated by waiting "
                      f"for a core (each record keeps its load_average); thread CPU time (cpu_time_ms) is the "
                      f"steadier label", RuntimeWarning, stacklevel=3)
        return True
    return False


def _relative_gap(a: np.ndarray, b: np.ndarray) -> float:
    ma, mb = float(np.median(a)), float(np.median(b))
    low = min(ma, mb)
    return abs(ma - mb) / low if low > 0 else 0.0


def _spread(values: Sequence[float]) -> float:
    """Largest relative gap between any two values (0 for fewer than two)."""
    values = [float(v) for v in values]
    low = min(values, default=0.0)
    return (max(values) - low) / low if len(values) > 1 and low > 0 else 0.0


def measure_runners(runners: Sequence[Runner], protocol: MeasurementProtocol,
                    rng: np.random.Generator | int | None = 0, reference: Runner | None = None) -> list[dict]:
    """Measure several prepared runners with the shuffled multi-pass protocol
    (module docstring), timing ``reference`` in every pass where given.

    Returns one dict per runner (same order): a statistics dict per clock
    (``latency_ms``, ``cpu_time_ms``, ...), ``passes_agree``, ``pass_gap``
    (relative gap between the pass medians, drift-corrected where a reference
    was timed), ``remeasured`` (how many times the passes were repeated),
    ``load_average`` (highest 1-minute load average seen during the
    measurement) and, with a reference, ``drift``: ``reference_ms`` (the
    reference's median per clock over the kept passes), ``relative``
    (statistics per clock of the timings divided by the reference's median in
    their pass), ``reference_gap`` (the spread of the reference's pass medians:
    its test-retest inside the chunk) and ``remeasured`` (times the chunk was
    measured again because the reference moved)."""
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    n = len(runners)
    loads = [load_average()]
    for runner in runners:
        runner.warm_up(protocol.warmup)
    if reference is not None:
        reference.warm_up(protocol.warmup)

    # passes[i]: list of (timings per clock, reference median per clock or None) of runner i
    def run_passes(indices: Sequence[int]) -> tuple[dict[int, list], list[dict]]:
        passes: dict[int, list] = {i: [] for i in indices}
        reference_medians = []
        for _ in range(protocol.passes):
            order = [int(i) for i in rng.permutation(np.asarray(indices))]
            if reference is not None:
                order.insert(int(rng.integers(0, len(order) + 1)), -1)
            timed, ref = {}, None
            for i in order:
                if i < 0:
                    ref = {name: float(np.median(t)) for name, t in reference.time_runs(protocol.runs).items()}
                else:
                    timed[i] = runners[i].time_runs(protocol.runs)
            for i, timings in timed.items():
                passes[i].append((timings, ref))
            reference_medians.append(ref)
            loads.append(load_average())
        return passes, reference_medians

    def reference_spread(medians: list[dict]) -> float:
        if reference is None or not medians:
            return 0.0
        return max(_spread([m[name] for m in medians]) for name in medians[0])

    results, chunk_reference = run_passes(range(n))
    drift_remeasured = 0
    while reference_spread(chunk_reference) > protocol.drift_tolerance and drift_remeasured < protocol.max_drift_remeasure:
        results, chunk_reference = run_passes(range(n))
        drift_remeasured += 1
    remeasured = [0] * n
    metric = protocol.agreement_metric

    def relative(timings: dict, ref: dict | None, name: str) -> np.ndarray:
        return timings[name] / ref[name] if ref is not None and ref.get(name, 0) > 0 else timings[name]

    def gap(i: int) -> float:
        kept = results[i]
        if len(kept) < 2:
            return 0.0
        key = metric if metric in kept[0][0] else "latency_ms"
        medians = [relative(timings, ref, key) for timings, ref in kept]
        return max(_relative_gap(medians[a], medians[b]) for a in range(len(medians)) for b in range(a))

    for _ in range(protocol.max_remeasure):
        disagreeing = [i for i in range(n) if gap(i) > protocol.rel_tolerance]
        if not disagreeing:
            break
        repeated, _ = run_passes(disagreeing)
        results.update(repeated)
        for i in disagreeing:
            remeasured[i] += 1

    load = max((x for x in loads if x is not None), default=None)
    out = []
    for i in range(n):
        kept = results[i]
        clocks = list(kept[0][0])
        record = {name: latency_stats(np.concatenate([t[name] for t, _ in kept])) for name in clocks}
        g = gap(i)
        record.update(passes_agree=g <= protocol.rel_tolerance, pass_gap=round(g, 6), remeasured=remeasured[i],
                      load_average=load)
        if reference is not None:
            refs = [ref for _, ref in kept]
            # a clock the reference did not advance (too coarse a timer) cannot correct anything: left out
            usable = [name for name in clocks if all(r.get(name, 0) > 0 for r in refs)]
            record["drift"] = {
                "reference_ms": {name: float(np.median([r[name] for r in refs])) for name in usable},
                "relative": {name: latency_stats(np.concatenate([t[name] / r[name] for t, r in kept]))
                             for name in usable},
                "reference_gap": round(reference_spread(refs), 6), "remeasured": drift_remeasured}
        out.append(record)
    return out
