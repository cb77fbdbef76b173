"""The measurement protocol shared by every timed backend.

One architecture's measurement:

1. warm-up runs (not recorded);
2. two *passes* of ``runs`` timed runs each. When several architectures are
   measured together (``measure_runners``), each pass visits them in a fresh
   shuffled order, so slow drifts of the machine (another job starting, CPU
   frequency, thermal state) spread over all architectures instead of biasing
   the ones measured last;
3. where the medians of the two passes disagree by more than
   ``rel_tolerance`` (5 %), both passes are repeated, up to ``max_remeasure``
   times; the record keeps the last pair and says whether it agreed;
4. statistics (:func:`~hardware_profiles.dataset.latency_stats`) over the
   timings of both kept passes, for every clock the runner reads.

Clocks: ``latency_ms`` is wall clock (``time.perf_counter_ns``) and, for
backends that compute on the calling thread (onnxruntime and ncnn with one
thread), ``cpu_time_ms`` is the CPU time of that thread
(``time.thread_time_ns``). On a shared machine the thread CPU time is much
steadier: it does not count the time the thread waits for a core. GPU runners
time with CUDA events instead.
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

    def __post_init__(self):
        if self.warmup < 0 or self.runs < 1 or self.passes < 1 or self.max_remeasure < 0:
            raise ConfigError(f"bad measurement protocol {asdict(self)}: warmup >= 0, runs >= 1, passes >= 1, "
                              f"max_remeasure >= 0")
        if not 0 < self.rel_tolerance < 1:
            raise ConfigError(f"rel_tolerance must be in (0, 1), got {self.rel_tolerance}")

    def to_dict(self) -> dict:
        return asdict(self)


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


def measure_runners(runners: Sequence[Runner], protocol: MeasurementProtocol,
                    rng: np.random.Generator | int | None = 0) -> list[dict]:
    """Measure several prepared runners with the shuffled two-pass protocol.

    Returns one dict per runner (same order): a statistics dict per clock
    (``latency_ms``, ``cpu_time_ms``, ...), ``passes_agree``, ``pass_gap``
    (relative gap between the pass medians), ``remeasured`` (how many times
    the passes were repeated) and ``load_average`` (highest 1-minute load
    average seen during the measurement)."""
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    n = len(runners)
    loads = [load_average()]
    for runner in runners:
        runner.warm_up(protocol.warmup)

    def run_passes(indices: Sequence[int]) -> dict[int, list[dict[str, np.ndarray]]]:
        passes: dict[int, list] = {i: [] for i in indices}
        for _ in range(protocol.passes):
            for i in rng.permutation(np.asarray(indices)):
                passes[int(i)].append(runners[int(i)].time_runs(protocol.runs))
            loads.append(load_average())
        return passes

    results = run_passes(range(n))
    remeasured = [0] * n
    metric = protocol.agreement_metric

    def gap(i: int) -> float:
        timings = results[i]
        if len(timings) < 2:
            return 0.0
        key = metric if metric in timings[0] else "latency_ms"
        medians = [t[key] for t in timings]
        return max(_relative_gap(medians[a], medians[b]) for a in range(len(medians)) for b in range(a))

    for _ in range(protocol.max_remeasure):
        disagreeing = [i for i in range(n) if gap(i) > protocol.rel_tolerance]
        if not disagreeing:
            break
        results.update(run_passes(disagreeing))
        for i in disagreeing:
            remeasured[i] += 1

    load = max((x for x in loads if x is not None), default=None)
    out = []
    for i in range(n):
        timings = results[i]
        record = {name: latency_stats(np.concatenate([t[name] for t in timings])) for name in timings[0]}
        g = gap(i)
        record.update(passes_agree=g <= protocol.rel_tolerance, pass_gap=round(g, 6), remeasured=remeasured[i],
                      load_average=load)
        out.append(record)
    return out
