"""Closed-loop specialisation: a pick is measured before it is handed out.

A latency predictor is fitted on one session of a device and the search keeps
every pick right at its budget, so a pick can land over the budget when it
is measured: the predictor is off near the budget, the device runs at another
speed, or the pick sits where the profile had few architectures.
:func:`closed_loop_search` therefore

1. searches with the current latency functions (the predictor's point
   prediction, or its upper bound at ``confidence``);
2. measures the pick on every device where the predictor's backend runs here
   or is simulated, with the same protocol and the same label the predictor
   was fitted on (:class:`Verifier`);
3. if the pick is over a budget: measures up to ``measurements_per_round``
   more architectures, the pick's one-gene variants predicted under the budget
   and nearest to it, recalibrates the device's latency function on everything
   measured so far (:class:`CalibratedLatency`: the largest measured/predicted
   ratio near the budget) and searches again;
4. stops when a pick measures under every budget or after ``max_rounds``.
   A pick is never returned over budget without saying so: the outcome is
   ``"verified"`` (measured under every budget), ``"partly-verified"`` (under
   every budget that could be measured; another device of a joint target
   cannot be run here), ``"over-budget"`` (the best pick found still
   measured over; a command reports it as :class:`~ofa.errors.OverBudgetError`
   and exits with status 3 unless the user allows it) or ``"not-verified"``
   (no device can be run here, e.g. imported measurements of a phone: the
   predicted value and interval are reported).

"Measured" is the predictor's label read from a fresh measurement: for a
drift-corrected label, the pick's time relative to the reference network,
on the profile's scale (:mod:`hardware_profiles.labels`); the raw time at this
host's current speed is reported beside it.

On a deterministic simulator the measurement is exact, so the loop keeps
going past ``max_rounds`` (up to ``SIMULATOR_MAX_ROUNDS``) and falls back to
the smallest subnet: a simulated device never gets an over-budget pick,
unless the user asked for the nearest subnet to budgets no subnet meets
(``nearest``), which is then reported over budget.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np

from hardware_profiles.labels import clock_of
from ofa.errors import BackendUnavailableError, ConfigError, ProfileError, SearchError

IMPLAUSIBLE_MS = 1e12  # stands in for a non-positive latency prediction
SIMULATOR_MAX_ROUNDS = 10


def positive_latency(predictor, confidence: float | None = None):
    """The predictor's latency, with non-positive predictions (a regressor
    extrapolating outside its profile) replaced by an implausibly large value,
    so that such subnets count as over every budget instead of looking free.

    With ``confidence`` (between 0.5 and 1, e.g. 0.9): the predictor's upper
    bound below which that share of its held-out measurements fell (its
    split-conformal interval), not the point prediction. A search keeps every
    subnet right at its budget, so on point predictions about half of the
    picks land over it."""
    coverage = None if confidence is None else 2 * confidence - 1

    def latency(genes: np.ndarray) -> np.ndarray:
        if coverage is None:
            values = predictor.predict_genes(genes)
        else:
            values = predictor.predict_interval_genes(genes, coverage)[1]
        return np.where(values > 0, values, IMPLAUSIBLE_MS)
    return latency


class CalibratedLatency:
    """A device's latency function for the search, recalibrated on verified
    measurements: ``max(base(genes), point(genes) * scale_)``, where ``base``
    is the predictor's point prediction or bound and ``scale_`` the largest
    ratio of measured to predicted latency among the measured architectures
    (1 before any measurement). The largest ratio, not the mean: the loop
    measures architectures near the budget, and a pick must fit even where
    the predictor is most optimistic there."""

    def __init__(self, predictor, confidence: float | None = None):
        self.predictor = predictor
        self.confidence = confidence
        self.base = positive_latency(predictor, confidence)
        self.point = positive_latency(predictor)
        self.ratios_: list[float] = []

    @property
    def scale_(self) -> float:
        return max(self.ratios_, default=1.0)

    def add(self, predicted: float, measured: float) -> None:
        if predicted > 0 and np.isfinite(measured):
            self.ratios_.append(float(measured) / float(predicted))

    def __call__(self, genes: np.ndarray) -> np.ndarray:
        base = self.base(genes)
        return np.maximum(base, self.point(genes) * self.scale_) if self.ratios_ else base


def backend_for(predictor):
    """The backend and protocol a latency predictor's profile was measured with
    (same options: threads, precision, accelerator, runs), or None if unknown."""
    from hardware_profiles import get_backend
    from hardware_profiles.backends import BACKENDS, backend_class
    from hardware_profiles.protocol import MeasurementProtocol

    header = predictor.profile_header
    name = header.get("backend")
    if not name or name not in BACKENDS:
        return None
    accepted = inspect.signature(backend_class(name).__init__).parameters
    options = {key: header[key] for key in ("threads", "precision", "accelerator")
               if key in accepted and header.get(key) is not None}
    if "protocol" in accepted and isinstance(header.get("protocol"), dict):
        # the profile's runs and passes; the reference network is always timed (older headers lack the
        # setting and get the default), so that a corrected label can be read from the measurement
        options["protocol"] = MeasurementProtocol.from_dict({**header["protocol"], "reference": True})
    return get_backend(name, **options)


class Verifier:
    """Measures architectures of ``supernet`` on one device, in the label its
    latency ``predictor`` predicts (:attr:`LatencyPredictor.label`).

    On a timed backend each architecture is prepared ``sessions`` times (its
    own runtime session each: onnxruntime and ncnn place a network's buffers
    anew per session, and one session of the same network can run several
    percent slower than the next) in the same chunk, and the median of their
    labels is the measurement. A simulator is exact: one is enough."""

    def __init__(self, predictor, supernet, measure: bool = True, sessions: int = 3):
        from hardware_profiles.labels import is_corrected

        self.predictor, self.supernet = predictor, supernet
        self.label = predictor.label
        self.batch_size = int(predictor.profile_header.get("batch_size", 1) or 1)
        self.backend, self.reason = None, "not measured (--no-measure)"
        if measure:
            try:
                backend = backend_for(predictor)
                device = predictor.profile_header.get("device", predictor.device)
                if backend is None:
                    self.reason = (f"predicted, not verified: the profile's backend "
                                   f"{predictor.profile_header.get('backend')!r} cannot be run or simulated here")
                elif not backend.available():
                    self.reason = f"predicted, not verified: backend {backend.name} is not available here"
                elif not backend.simulated and device != backend.default_device():
                    # e.g. a phone's ncnn timings imported: this host's ncnn is another device (a simulator
                    # with the profile's accelerator config is the same device whatever the profile calls it)
                    self.reason = (f"predicted, not verified: the profile was measured on device {device!r}; "
                                   f"{backend.name} here is {backend.default_device()!r}")
                elif is_corrected(self.label.metric) and self.label.reference_ms is None:
                    self.reason = (f"predicted, not verified: the predictor's label {self.label.name} has no "
                                   f"reference time to read a new measurement on its scale; refit it on its profile")
                else:
                    self.backend, self.reason = backend, f"{backend.name}, {self.label.name}"
            except (BackendUnavailableError, ConfigError) as error:
                self.reason = f"predicted, not verified: {error}"
        self.simulated = bool(self.backend is not None and self.backend.simulated)
        self.sessions = 1 if self.simulated else max(1, int(sessions))
        self.records: list[tuple[object, dict]] = []  # (arch, record) of everything measured

    @property
    def can_measure(self) -> bool:
        return self.backend is not None

    def measure(self, archs, rng: int = 0) -> list[dict]:
        """``[{"measured_ms", "raw_ms"}]`` per architecture, measured together
        (one chunk of the protocol, beside the reference network)."""
        if not archs:
            return []
        static = [self.supernet.extract(arch).eval() for arch in archs for _ in range(self.sessions)]
        records = self.backend.measure_many(static, self.batch_size, space=self.supernet.space, rng=rng)
        out = []
        for index, arch in enumerate(archs):
            sessions = records[index * self.sessions:(index + 1) * self.sessions]
            self.records.append((arch, sessions[0]))
            try:
                measured = [self.label.value(record) for record in sessions]
            except ProfileError as error:
                raise ConfigError(f"cannot verify on {self.backend.name}: {error}") from None
            raw = [record.get(clock_of(self.label.metric), {}).get(self.label.statistic) for record in sessions]
            raw = [value for value in raw if value is not None]
            out.append({"measured_ms": float(np.median(measured)), "raw_ms": float(np.median(raw)) if raw else None,
                        "sessions_ms": [float(v) for v in measured]})
        return out

    def close(self) -> None:
        """Free the backend's prepared reference network (kept between the loop's rounds)."""
        if self.backend is not None:
            self.backend.close()

    def save(self, path) -> None:
        """The architectures measured by the loop, as a profile of the device
        (same backend, protocol and label: add it to the device's profile to refit)."""
        from hardware_profiles import ProfileWriter, profile_header

        if not self.records or self.simulated:
            return
        space = self.supernet.space
        writer = ProfileWriter(path, profile_header(space, self.backend, device=self.predictor.device,
                                                    batch_size=self.batch_size,
                                                    sampling={"method": "closed-loop verification"}))
        try:
            for arch, record in self.records:
                if arch.to_json() in writer.measured:
                    continue
                record = dict(record)
                cost = space.cost(arch)
                writer.append(arch, record.pop("latency_ms"), macs=cost.macs, params=cost.params, **record)
        finally:
            writer.close()


@dataclass
class LoopOutcome:
    """What the loop hands out: the pick, whether it was verified, and every round."""

    result: object  # the SearchResult of the returned pick
    arch: object
    status: str  # "verified" | "partly-verified" | "over-budget" | "not-verified"
    rounds: list[dict] = field(default_factory=list)
    checks: dict = field(default_factory=dict)  # device -> {"measured_ms", "raw_ms", "how", "verified"}
    measurements: int = 0

    @property
    def over_budget(self) -> bool:
        return self.status == "over-budget"

    def to_dict(self) -> dict:
        return {"status": self.status, "rounds": self.rounds, "measurements": self.measurements,
                "checks": self.checks}


def one_gene_variants(space, genes: np.ndarray, seed: int = 0) -> np.ndarray:
    """Every architecture that differs from ``genes`` in one gene (a gene made
    active by the change gets a seeded random value), without duplicates."""
    rows = []
    for index, count in enumerate(space.choice_counts):
        for value in range(int(count)):
            if value != genes[index]:
                row = genes.copy()
                row[index] = value
                rows.append(row)
    if not rows:
        return np.empty((0, len(genes)), dtype=np.int64)
    rows = space.normalize_genes(np.stack(rows), rng=seed)
    rows = np.unique(rows, axis=0)
    return rows[np.any(rows != space.normalize_genes(genes[None, :], rng=seed), axis=1)]


def closed_loop_search(space, search, devices, verifiers: dict, *, max_rounds: int = 3, measurements_per_round: int = 4,
                       confidence: float | None = None, objective=None, seed: int = 0, nearest: bool = False,
                       log=print) -> LoopOutcome:
    """Search, verify, recalibrate, search again (module docstring).

    ``space`` is the search space; ``search(latency_functions) -> SearchResult`` runs the search with one
    latency function per device (``{device: genes -> ms}``); ``devices`` is a
    list of ``(device, budget_ms, predictor)``; ``verifiers`` maps each device
    to its :class:`Verifier`; ``objective`` (an :class:`ofa.search.problem.Objective`)
    ranks the measured fallbacks. ``nearest``: where no subnet simulates under
    budget, hand out the smallest as an over-budget result instead of raising
    :class:`~ofa.errors.SearchError`."""
    if max_rounds < 1 or measurements_per_round < 1:
        raise ConfigError(f"max_rounds and measurements_per_round must be >= 1, got {max_rounds} and "
                          f"{measurements_per_round}")
    calibrated = {device: CalibratedLatency(predictor, confidence) for device, _, predictor in devices}
    checkable = [d for d, _, _ in devices if verifiers[d].can_measure]
    budgets = {device: budget for device, budget, _ in devices}
    simulated_only = bool(checkable) and all(verifiers[d].simulated for d in checkable)
    limit = max(max_rounds, SIMULATOR_MAX_ROUNDS) if simulated_only else max_rounds
    measured: dict[str, dict[str, float]] = {}  # arch json -> device -> measured ms, in the predictor's label
    raw_values: dict[str, dict[str, float]] = {}  # the same, uncorrected (this host's speed now)
    archs: dict[str, object] = {}
    rounds: list[dict] = []
    count = 0
    result = None

    def measure(batch, device, round_index):
        nonlocal count
        todo = [a for a in batch if device not in measured.get(a.to_json(), {})]
        if not todo:
            return
        for arch, value in zip(todo, verifiers[device].measure(todo, rng=seed * 1009 + round_index)):
            measured.setdefault(arch.to_json(), {})[device] = value["measured_ms"]
            raw_values.setdefault(arch.to_json(), {})[device] = value["raw_ms"]
            archs[arch.to_json()] = arch
            calibrated[device].add(float(calibrated[device].point(space.to_genes(arch))[0]), value["measured_ms"])
        count += len(todo)

    def under(key) -> bool:
        values = measured.get(key, {})
        return all(d in values and values[d] <= budgets[d] for d in checkable)

    for round_index in range(limit):
        try:
            result = search({d: calibrated[d] for d in calibrated})
        except SearchError as error:
            if result is None:  # the budgets are infeasible on the predictions alone: the search's own message
                raise
            log(f"  round {round_index + 1}: no subnet fits the recalibrated budgets ({error})")
            break
        pick = result.arch
        key = pick.to_json()
        genes = space.to_genes(pick)
        # what this round's search saw, before the pick's own measurement recalibrates anything
        entry = {"round": round_index + 1, "arch": pick.to_dict(), "devices": {
            device: {"budget_ms": budget, "predicted_ms": float(positive_latency(predictor)(genes)[0]),
                     "searched_ms": float(calibrated[device](genes)[0]), "scale": calibrated[device].scale_}
            for device, budget, predictor in devices}}
        for device in checkable:
            measure([pick], device, round_index)
        for device in entry["devices"]:
            entry["devices"][device]["measured_ms"] = measured.get(key, {}).get(device)
        rounds.append(entry)
        log(f"  round {round_index + 1}: " + "; ".join(
            f"{d} predicted {v['predicted_ms']:.4g} ms, searched {v['searched_ms']:.4g}, measured "
            + ("-" if v["measured_ms"] is None else f"{v['measured_ms']:.4g}") + f" (budget {v['budget_ms']:g})"
            for d, v in entry["devices"].items()))
        if not checkable or under(key):
            break
        # over budget somewhere: measure the pick's neighbours nearest the budget, recalibrate, search again
        variants = one_gene_variants(space, space.to_genes(pick)[0], seed)
        over = [d for d in checkable if measured[key].get(d, 0) > budgets[d]]
        for device in over:
            latency = calibrated[device](variants) if len(variants) else np.empty(0)
            fits = np.flatnonzero(latency <= budgets[device])
            closest = fits[np.argsort(budgets[device] - latency[fits])][:measurements_per_round]
            # on every device, so that a candidate can be verified under every budget of a joint target
            for other in checkable:
                measure(space.from_genes(variants[closest]), other, round_index)
            entry["devices"][device]["candidates_measured"] = int(len(closest))
        entry["devices"] = {d: {**v, "scale_after": calibrated[d].scale_} for d, v in entry["devices"].items()}

    # every device measured: "verified"; some devices cannot be run here: "partly-verified"
    complete = "verified" if len(checkable) == len(devices) else "partly-verified"
    status, chosen = "not-verified", result
    if checkable and result is not None and under(result.arch.to_json()):
        status = complete
    elif checkable:
        verified = [k for k in measured if under(k)]
        if verified:  # an architecture the loop measured under every budget: the best predicted among them
            sign = 1.0 if objective is None or objective.maximize else -1.0
            best = max(verified, key=lambda k: 0.0 if objective is None
                       else sign * float(objective.fn(space.to_genes(archs[k]))[0]))
            chosen, status = _result_for(space, result, archs[best], calibrated, objective), complete
            log("  handing out a measured candidate under budget instead of the last pick")
        elif simulated_only and result is not None:
            smallest = space.smallest()
            for device in checkable:
                measure([smallest], device, limit)
            if under(smallest.to_json()):
                chosen, status = _result_for(space, result, smallest, calibrated, objective), complete
                log("  handing out the smallest subnet: the only one the simulator puts under budget")
            elif nearest:  # asked for the closest subnet to budgets nothing meets: said, not silent
                chosen, status = _result_for(space, result, smallest, calibrated, objective), "over-budget"
                log("  no subnet simulates under budget; handing out the smallest (--nearest), OVER BUDGET")
            else:
                raise SearchError(f"even the smallest subnet simulates over budget on "
                                  f"{[d for d in checkable if measured[smallest.to_json()][d] > budgets[d]]}: "
                                  f"no subnet of this space meets these budgets; raise them")
        else:
            status = "over-budget"
    key = chosen.arch.to_json()
    checks = {}
    for device, budget, predictor in devices:
        value = measured.get(key, {}).get(device)
        raw = raw_values.get(key, {}).get(device)
        checks[device] = {"measured_ms": value, "raw_ms": raw, "how": verifiers[device].reason,
                          "verified": value is not None and value <= budget}
    return LoopOutcome(chosen, chosen.arch, status, rounds, checks, count)


def _result_for(space, result, arch, calibrated, objective):
    """A copy of ``result`` describing ``arch`` instead (a measured fallback)."""
    import copy

    genes = space.to_genes(arch)
    other = copy.copy(result)
    other.genes = genes[0]
    if objective is not None:
        other.objective = float(objective.fn(genes)[0])
    other.constraints = {**result.constraints, **{f"latency_ms@{d}": float(fn(genes)[0])
                                                  for d, fn in calibrated.items()}}
    return other
