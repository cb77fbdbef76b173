"""Drift-corrected profiles and closed-loop specialisation: a synthetic host
whose speed jumps, the one label shared by fitting and verification, the loop
on a biased predictor, and a simulator that never hands out an over-budget pick."""

import json

import numpy as np
import pytest
import torch

from hardware_profiles import MeasurementProtocol, make_header, measure_runners, read_profile
from hardware_profiles.dataset import Profile
from hardware_profiles.labels import Label
from hardware_profiles.protocol import Runner
from ofa.errors import ConfigError, ProfileError
from ofa.search import evolution_search
from ofa.search.problem import Constraint, Objective, SearchProblem
from ofa.spaces import get_space
from ofa.supernets import create_supernet
from ofa_pipeline.closed_loop import Verifier, closed_loop_search, positive_latency
from predictors import fit_latency_predictor


class Host:
    """A machine whose speed the test sets: a run of cost c takes c * slowdown ms."""

    def __init__(self):
        self.now_ns, self.calls, self.slowdown = 0, 0, 1.0
        self.schedule = None  # optional: calls -> slowdown

    def run(self, cost_ms):
        self.calls += 1
        if self.schedule is not None:
            self.slowdown = self.schedule(self.calls)
        self.now_ns += int(round(cost_ms * self.slowdown * 1e6))


class HostRunner(Runner):
    def __init__(self, host, cost_ms):
        self.host, self.cost_ms = host, cost_ms
        self.input_shapes = [(1, 3, 8, 8)]
        self.clocks = {"latency_ms": lambda: host.now_ns, "cpu_time_ms": lambda: host.now_ns}

    def run(self):
        self.host.run(self.cost_ms)


PROTOCOL = MeasurementProtocol(warmup=1, runs=5, passes=2, max_remeasure=0, max_drift_remeasure=2)


def measure(host, costs, seed=0):
    return measure_runners([HostRunner(host, c) for c in costs], PROTOCOL, rng=seed,
                           reference=HostRunner(host, 0.5))


def synthetic_profile(records):
    space = get_space("mbv3-small")
    archs = space.sample(0, n=len(records))
    header = make_header(space, "fake-host", "cpu-ort", "0", threads=1, batch_size=1, precision="fp32",
                         protocol=PROTOCOL.to_dict())
    rows = [{"kind": "measurement", "arch": a.to_dict(), **r} for a, r in zip(archs, records)]
    return Profile(header, rows)


def test_drift_correction_sees_the_host_change_speed_between_chunks():
    host = Host()
    before = measure(host, [1.0, 2.0])
    host.slowdown = 1.5  # a slow stretch longer than a chunk: shuffling inside the chunk cannot see it
    after = measure(host, [1.0, 2.0], seed=1)
    for a, b in zip(before, after):
        assert b["cpu_time_ms"]["median"] == pytest.approx(1.5 * a["cpu_time_ms"]["median"])  # raw: off by 1.5x
        assert b["drift"]["relative"]["cpu_time_ms"]["median"] == pytest.approx(
            a["drift"]["relative"]["cpu_time_ms"]["median"])
    profile = synthetic_profile(before + after)
    raw = profile.latencies("cpu_time_ms", "median")
    corrected = profile.latencies("corrected_cpu_time_ms", "median")
    assert raw[2] / raw[0] == pytest.approx(1.5)
    assert corrected[2] == pytest.approx(corrected[0]) and corrected[3] == pytest.approx(corrected[1])
    assert corrected[1] / corrected[0] == pytest.approx(2.0)  # the architectures' own ratio survives
    # ms at the session median of the reference (0.5 ms at 1x, 0.75 ms at 1.5x: median 0.625)
    assert profile.reference_ms["cpu_time_ms"] == pytest.approx(0.625)
    assert corrected[0] == pytest.approx(1.0 / 0.5 * 0.625)
    summary = profile.drift_summary()
    assert summary["cpu_time_ms"]["correction_min"] == pytest.approx(0.625 / 0.75)
    assert summary["cpu_time_ms"]["correction_max"] == pytest.approx(0.625 / 0.5)
    assert summary["noise_floor"] == 0.0 and summary["drift_remeasured_records"] == 0
    # a subset keeps its parent's scale; the raw label stays the default only where there is no reference
    from predictors.core import default_label, subset_profile

    assert subset_profile(profile, [2, 3]).latencies("corrected_cpu_time_ms", "median") == pytest.approx(corrected[2:])
    assert default_label(profile) == ("corrected_cpu_time_ms", "p10")


def test_a_chunk_whose_reference_moves_is_measured_again():
    host = Host()
    # the host slows down for the second pass of the first attempt only (calls 13-24 of warm-up + passes)
    host.schedule = lambda calls: 1.4 if 13 <= calls <= 24 else 1.0
    records = measure(host, [1.0, 2.0])
    assert all(r["drift"]["remeasured"] == 1 for r in records)
    assert records[0]["drift"]["reference_gap"] == 0.0  # the kept passes agree
    assert records[1]["drift"]["relative"]["cpu_time_ms"]["median"] == pytest.approx(4.0)
    never_steady = Host()
    # warm-up takes calls 1-2, then each pass 10 calls: every second pass runs at 1.2x
    never_steady.schedule = lambda calls: 1.2 if calls > 2 and ((calls - 3) // 10) % 2 else 1.0
    records = measure(never_steady, [1.0])
    assert records[0]["drift"]["remeasured"] == PROTOCOL.max_drift_remeasure  # capped, and recorded


def test_a_label_reads_a_later_measurement_on_the_profiles_scale():
    host = Host()
    profile = synthetic_profile(measure(host, [1.0, 2.0]))
    label = profile.label("corrected_cpu_time_ms", "median")
    assert label.reference_ms == pytest.approx(0.5)
    host.slowdown = 2.0  # verification on a day the device runs at half speed
    (later,) = measure(host, [2.0])
    assert later["cpu_time_ms"]["median"] == pytest.approx(4.0)
    assert label.value(later) == pytest.approx(profile.latencies("corrected_cpu_time_ms", "median")[1])
    assert Label("cpu_time_ms", "p10").value(later) == later["cpu_time_ms"]["p10"]
    with pytest.raises(ProfileError, match="reference"):
        label.value({"cpu_time_ms": later["cpu_time_ms"]})
    old = synthetic_profile([{k: v for k, v in r.items() if k != "drift"} for r in measure(Host(), [1.0, 2.0])])
    assert "corrected_cpu_time_ms" not in old.records[0] and old.drift_summary() is None


def test_fitting_search_and_verification_use_one_label(tmp_path):
    """A real cpu-ort profile: the predictor's label is the profile's default
    label with the profile's reference time; the verifier reads exactly that
    label from the pick's measurement (a test that fails if they differ)."""
    from hardware_profiles import get_backend, profile_space

    space = get_space("mbv3-small-r20-32")
    torch.manual_seed(0)
    supernet = create_supernet(space).eval()
    backend = get_backend("cpu-ort", protocol=MeasurementProtocol(warmup=1, runs=3))
    profile = profile_space(space, backend, 8, tmp_path / "cpu.jsonl", progress=False, supernet=supernet)
    assert profile.header["protocol"]["reference_network"]["name"] == "ofa-hw-reference-cnn-v1"
    assert read_profile(tmp_path / "cpu.jsonl").header["drift"]["records"] == 8  # the summary is in the header
    predictor = fit_latency_predictor(profile, model="lut", cv=3)
    assert predictor.label == profile.label("corrected_cpu_time_ms", "p10")
    assert predictor.metrics_["target"] == predictor.label.name
    verifier = Verifier(predictor, supernet)
    assert verifier.can_measure and not verifier.simulated and predictor.label.name in verifier.reason
    arch = space.smallest()
    (value,) = verifier.measure([arch])
    (_, record), = verifier.records
    assert len(value["sessions_ms"]) == verifier.sessions == 3  # three runtime sessions, their median
    assert value["sessions_ms"][0] == predictor.label.value(record)
    assert value["measured_ms"] == pytest.approx(float(np.median(value["sessions_ms"])))
    verifier.save(tmp_path / "loop.jsonl")
    saved = read_profile(tmp_path / "loop.jsonl")
    assert len(saved) == 1 and "drift" in saved.records[0]


class BiasedDevice:
    """A device whose true latency is ``bias`` times what the predictor says
    (a predictor fitted on a faster session, or one off near the budget)."""

    def __init__(self, predictor, bias, simulated=False):
        self.predictor, self.bias, self.simulated = predictor, bias, simulated
        self.reason, self.can_measure, self.measured = "fake device", True, []

    def measure(self, archs, rng=0):
        space = self.predictor.space
        true = positive_latency(self.predictor)(space.to_genes(archs)) * self.bias
        self.measured += list(archs)
        return [{"measured_ms": float(t), "raw_ms": float(t)} for t in true]


@pytest.fixture(scope="module")
def dpu_predictor():
    profile = read_profile("hardware_profiles/data/mbv3-small-r20-32_fpga-dpu.jsonl")
    return fit_latency_predictor(profile, model="lut", cv=3)


def searcher(space, budget, device="dev"):
    objective = Objective("macs", lambda genes: np.array([space.cost(a).macs for a in space.from_genes(genes)],
                                                         dtype=float))

    def search(functions):
        problem = SearchProblem(space, objective, [Constraint(f"latency_ms@{device}", functions[device], budget)])
        return evolution_search(problem, 16, 6, seed=0)
    return search, objective


def test_the_loop_converges_under_budget_with_a_biased_predictor(dpu_predictor):
    space = dpu_predictor.space
    low, high = (float(positive_latency(dpu_predictor)(space.to_genes(a))[0]) for a in (space.smallest(),
                                                                                          space.largest()))
    budget = low + 0.4 * (high - low)
    device = BiasedDevice(dpu_predictor, bias=1.3)
    search, objective = searcher(space, budget)
    outcome = closed_loop_search(space, search, [("dev", budget, dpu_predictor)], {"dev": device}, max_rounds=4,
                                 measurements_per_round=3, objective=objective, log=lambda *a: None)
    assert outcome.status == "verified" and outcome.checks["dev"]["verified"]
    assert outcome.checks["dev"]["measured_ms"] <= budget
    first = outcome.rounds[0]["devices"]["dev"]
    assert first["measured_ms"] > budget  # open loop: over budget
    assert first["scale_after"] == pytest.approx(1.3)  # recalibrated on the measured candidates
    assert len(outcome.rounds) >= 2 and outcome.measurements == len(device.measured) <= 4 * 4


def test_the_loop_ends_with_a_named_over_budget_result_when_nothing_fits(dpu_predictor):
    space = dpu_predictor.space
    smallest = float(positive_latency(dpu_predictor)(space.to_genes(space.smallest()))[0])
    budget = smallest * 1.2  # predicted feasible, but the device is 3x slower than predicted: nothing fits
    device = BiasedDevice(dpu_predictor, bias=3.0)
    search, objective = searcher(space, budget)
    outcome = closed_loop_search(space, search, [("dev", budget, dpu_predictor)], {"dev": device}, max_rounds=2,
                                 measurements_per_round=2, objective=objective, log=lambda *a: None)
    assert outcome.status == "over-budget" and outcome.over_budget
    assert outcome.checks["dev"]["measured_ms"] > budget and not outcome.checks["dev"]["verified"]
    assert outcome.measurements <= 2 * (1 + 2)
    with pytest.raises(ConfigError):
        closed_loop_search(space, search, [("dev", budget, dpu_predictor)], {"dev": device}, max_rounds=0)


class ScaledPredictor:
    """A real predictor's outputs times ``scale``: an optimistic predictor of a real simulator."""

    def __init__(self, predictor, scale):
        self.inner, self.scale = predictor, scale
        self.space, self.device, self.label = predictor.space, predictor.device, predictor.label
        self.profile_header, self.interval_residuals_ = predictor.profile_header, predictor.interval_residuals_

    def predict_genes(self, genes):
        return self.inner.predict_genes(genes) * self.scale

    def predict_interval_genes(self, genes, coverage=0.8):
        low, high = self.inner.predict_interval_genes(genes, coverage)
        return low * self.scale, high * self.scale


@pytest.mark.parametrize("fraction", [0.02, 0.3, 0.8])
def test_a_simulator_never_hands_out_an_over_budget_pick(dpu_predictor, fraction):
    """The real fpga-dpu simulator behind a predictor 30% optimistic, one round
    allowed: the loop still ends on a pick the simulator puts under budget."""
    from hardware_profiles import get_backend

    space = dpu_predictor.space
    torch.manual_seed(0)
    supernet = create_supernet(space).eval()
    optimistic = ScaledPredictor(dpu_predictor, 0.7)
    verifier = Verifier(optimistic, supernet)
    assert verifier.simulated and verifier.can_measure
    exact = get_backend("fpga-dpu")
    low, high = (exact.measure(supernet.extract(a), space=space)["latency_ms"]["median"]
                 for a in (space.smallest(), space.largest()))
    budget = low + fraction * (high - low)
    search, objective = searcher(space, budget)
    outcome = closed_loop_search(space, search, [("dev", budget, optimistic)], {"dev": verifier}, max_rounds=1,
                                 measurements_per_round=2, objective=objective, log=lambda *a: None)
    assert outcome.status == "verified"
    simulated = exact.measure(supernet.extract(outcome.arch), space=space)["latency_ms"]["median"]
    assert simulated <= budget and outcome.checks["dev"]["measured_ms"] == pytest.approx(simulated)


def test_specialize_prints_the_feasible_range_and_the_rounds(tmp_path, dpu_predictor, capsys):
    from ofa.training.checkpoint import save_checkpoint
    from ofa.training.progressive_shrinking import DEFAULT_CONFIG
    from ofa_pipeline.commands.specialize import main
    from predictors import fit_accuracy_predictor

    space = dpu_predictor.space
    torch.manual_seed(0)
    supernet = create_supernet(space).eval()
    checkpoint = save_checkpoint(tmp_path / "final.pt", trainer="mobilenetv3", space=space, config=DEFAULT_CONFIG,
                                 model=supernet)
    records = [{"arch": a.to_dict(), "top1": 50 + 40 * space.cost(a).macs / space.cost(space.largest()).macs}
               for a in space.sample(0, n=30)]
    fit_accuracy_predictor(records, space, model="gbr", target="top1", cv=3).save(tmp_path / "top1.skops")
    dpu_predictor.save(tmp_path / "dpu.skops")
    base = ["--supernet", str(checkpoint), "--accuracy-predictor", str(tmp_path / "top1.skops"),
            "--latency-predictor", str(tmp_path / "dpu.skops"), "--device", "fpga-dpu", "--out", str(tmp_path / "o")]
    assert main(base + ["--show-range"]) == 0
    printed = capsys.readouterr().out
    assert "fpga-dpu: feasible budgets from" in printed and "smallest subnet" in printed
    assert not (tmp_path / "o" / "summary.json").exists()  # nothing searched
    smallest = float(dpu_predictor.predict_archs(space.smallest())[0])
    argv = base + ["--latency-ms", f"{smallest * 1.5:.4g}", "--population", "8", "--generations", "2",
                   "--pareto-generations", "1", "--calib-images", "16"]
    assert main(argv) == 0
    (row,) = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert row["verification"] == "verified" and row["devices"][0]["label"] == dpu_predictor.label.name
    assert row["devices"][0]["measured_latency_ms"] <= row["devices"][0]["budget_ms"]
    report = next((tmp_path / "o").glob("*/report.md")).read_text()
    assert "Closed loop: **verified**" in report and "| 1 | fpga-dpu |" in report


def test_a_pick_is_not_verified_on_another_device_than_the_profiles():
    """A phone's ncnn timings, imported: this host's ncnn is another device, so the
    pick is reported as predicted, not verified (never timed here and called verified)."""
    records = measure(Host(), [1.0, 2.0, 3.0]) + measure(Host(), [1.5, 2.5, 3.5], seed=1)
    profile = synthetic_profile(records)
    profile.header.update(device="pixel-7-ncnn", backend="mobile-ncnn")
    predictor = fit_latency_predictor(profile, model="lut", cv=3)
    verifier = Verifier(predictor, create_supernet(profile.space))
    assert not verifier.can_measure and "measured on device 'pixel-7-ncnn'" in verifier.reason


def test_resuming_a_profile_never_mixes_records_with_and_without_the_reference(tmp_path):
    from hardware_profiles import get_backend, profile_space

    space = get_space("mbv3-small-r20-32")
    supernet = create_supernet(space).eval()
    without = get_backend("cpu-ort", protocol=MeasurementProtocol(warmup=0, runs=2, reference=False))
    profile_space(space, without, 2, tmp_path / "p.jsonl", progress=False, supernet=supernet)
    with pytest.raises(ConfigError, match="without the reference network"):
        profile_space(space, get_backend("cpu-ort", protocol=MeasurementProtocol(warmup=0, runs=2)), 4,
                      tmp_path / "p.jsonl", progress=False, supernet=supernet)
    assert len(read_profile(tmp_path / "p.jsonl")) == 2  # untouched
