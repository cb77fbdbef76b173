"""Specialisation end to end on real latency predictors (fitted on the shipped
mbv3-small profiles) and a small untrained supernet: outputs per target,
budgets met, joint targets, resume, and infeasible budgets."""

import json

import numpy as np
import pytest
import torch

from hardware_profiles import read_profile
from ofa.data import build_datasets
from ofa.errors import ConfigError, SearchError
from ofa.search import SyntheticObjectives
from ofa.export import load_subnet_weights, onnx_logits
from ofa_pipeline.specialize import Target, specialize
from ofa.spaces import get_space
from ofa.supernets import create_supernet
from predictors import fit_accuracy_predictor, fit_latency_predictor

PROFILES = "hardware_profiles/data/mbv3-small_{}.jsonl"


@pytest.fixture(scope="module")
def setup():
    space = get_space("mbv3-small")
    torch.manual_seed(0)
    supernet = create_supernet(space).eval()
    latency = [fit_latency_predictor(read_profile(PROFILES.format(name)), model="lut", cv=3)
               for name in ("cpu-ort", "fpga-scalesim")]
    # accuracy labels: the analytic stand-in of ofa.search.synthetic (no trained supernet in this test)
    synthetic = SyntheticObjectives(space, seed=0)
    archs = space.sample(0, n=60)
    records = [{"arch": a.to_dict(), "top1": float(100 * synthetic.accuracy(space.to_genes(a))[0])} for a in archs]
    accuracy = fit_accuracy_predictor(records, space, model="gbr", target="top1", cv=3)
    data = build_datasets("digits", 32, augmentation="none")
    return space, supernet, accuracy, latency, data


def budget(predictor, space, quantile):
    return float(np.quantile(predictor.predict_genes(space.sample_genes(2000, np.random.default_rng(0))), quantile))


def test_specialize_writes_every_output_and_meets_every_budget(setup, tmp_path, monkeypatch):
    monkeypatch.setenv("OFA_HW_CACHE", str(tmp_path / "cache"))
    space, supernet, accuracy, (cpu, fpga), data = setup
    cpu_budget, fpga_budget = budget(cpu, space, 0.4), budget(fpga, space, 0.4)
    targets = [Target((("cpu-ort", cpu_budget),)), Target((("fpga-scalesim", fpga_budget),)),
               Target((("cpu-ort", cpu_budget), ("fpga-scalesim", fpga_budget * 0.9)))]
    rows = specialize(supernet, accuracy, [cpu, fpga], targets, tmp_path / "out", data=data, population=20,
                      generations=15, pareto_population=16, pareto_generations=5, calib_images=128,
                      max_macs=float(space.cost(space.largest()).macs) * 0.8, log=lambda *a: None)
    assert [r["target"] for r in rows] == [t.name for t in targets]
    for target, row in zip(targets, rows):
        directory = tmp_path / "out" / target.name
        for name in ("arch.json", "model.pt", "model.onnx", "result.json", "report.md"):
            assert (directory / name).is_file(), (target.name, name)
        arch = space.parse(json.loads((directory / "arch.json").read_text()))
        assert arch.to_dict() == row["arch"]
        assert row["macs"] <= space.cost(space.largest()).macs * 0.8
        for device, entry in zip(target.budgets, row["devices"]):
            assert entry["predicted_latency_ms"] <= device[1]
            predictor = cpu if device[0] == "cpu-ort" else fpga
            assert entry["predicted_latency_ms"] == pytest.approx(float(predictor.predict_archs(arch)[0]))
            assert entry["measured_latency_ms"] is not None and entry["measured_latency_ms"] > 0
            assert (directory / f"pareto_{device[0]}.png").stat().st_size > 1000
        assert 0 <= row["measured_accuracy"] <= 100 and 0 <= row["label_loyalty"] <= 1
        # the predictor's stated error travels with the prediction; an untrained supernet scores far
        # from the synthetic labels the predictor learned, and the report says so
        rmse = accuracy.metrics_["held_out"]["rmse"]
        assert row["predicted_objective_rmse"] == pytest.approx(rmse)
        assert row["measured_objective"] == row["measured_accuracy"]
        assert abs(row["measured_objective"] - row["predicted_objective"]) > 2 * rmse
        assert any("OUTSIDE THE PREDICTOR'S ERROR" in w for w in row["warnings"])
        # the ONNX file reproduces the saved (BN re-calibrated) PyTorch subnet
        static = load_subnet_weights(directory / "model.pt")
        x = static.example_inputs(4)[0]
        with torch.no_grad():
            expected = static(x).numpy()
        scale = max(1.0, float(np.abs(expected).max()))
        assert np.abs(onnx_logits(directory / "model.onnx", x.numpy()) - expected).max() <= 1e-4 * scale
    assert "| cpu-ort |" in (tmp_path / "out" / "summary.md").read_text()
    assert f"± {rows[0]['predicted_objective_rmse']:.2g}" in (tmp_path / "out" / "summary.md").read_text()

    # a second call with the same settings reuses the finished targets
    messages = []
    again = specialize(supernet, accuracy, [cpu, fpga], targets[:1], tmp_path / "out", data=data, population=20,
                       generations=15, pareto_population=16, pareto_generations=5, calib_images=128,
                       max_macs=float(space.cost(space.largest()).macs) * 0.8, log=messages.append)
    assert again[0] == rows[0] and "already done" in messages[0]


def test_specialize_refuses_infeasible_budgets_and_unknown_devices(setup, tmp_path):
    space, supernet, accuracy, (cpu, fpga), _ = setup
    impossible = 1e-6  # ms: below any subnet's predicted latency
    with pytest.raises(SearchError, match="smallest subnet has latency_ms@cpu-ort"):
        specialize(supernet, accuracy, [cpu, fpga], [Target((("cpu-ort", impossible),))], tmp_path,
                   population=10, generations=3, measure=False, log=lambda *a: None)
    assert not any(tmp_path.iterdir())  # nothing written
    with pytest.raises(ConfigError, match="no latency predictor for device 'gpu-tensorrt'"):
        specialize(supernet, accuracy, [cpu, fpga], [Target((("gpu-tensorrt", 1.0),))], tmp_path,
                   population=10, generations=3, measure=False, log=lambda *a: None)
    rows = specialize(supernet, accuracy, [cpu], [Target((("cpu-ort", impossible),))], tmp_path / "near",
                      population=10, generations=3, measure=False, on_infeasible="nearest", pareto_population=8,
                      pareto_generations=2, log=lambda *a: None)
    assert rows[0]["feasible"] is False


def test_latency_confidence_keeps_the_bound_under_the_budget(setup, tmp_path):
    """At confidence 0.9 the search keeps the predictor's 90% upper bound - not
    its point prediction - under the budget, and the report carries both."""
    from ofa_pipeline.specialize import positive_latency

    space, supernet, accuracy, (cpu, _), _ = setup
    genes = space.sample_genes(500, np.random.default_rng(1))
    point, bound = positive_latency(cpu)(genes), positive_latency(cpu, 0.9)(genes)
    assert np.all(bound >= point) and np.any(bound > point)
    _, high = cpu.predict_interval_genes(genes, coverage=0.8)
    np.testing.assert_allclose(bound, high)
    target = Target((("cpu-ort", budget(cpu, space, 0.4)),))
    options = dict(population=20, generations=15, measure=False, pareto_population=8, pareto_generations=2,
                   log=lambda *a: None)
    plain = specialize(supernet, accuracy, [cpu], [target], tmp_path / "plain", **options)[0]["devices"][0]
    safe = specialize(supernet, accuracy, [cpu], [target], tmp_path / "safe", latency_confidence=0.9,
                      **options)[0]["devices"][0]
    assert plain["latency_bound_ms"] is None and plain["predicted_latency_ms"] <= target.budgets[0][1]
    assert safe["latency_bound_ms"] <= target.budgets[0][1] and safe["latency_confidence"] == 0.9
    assert safe["predicted_latency_ms"] < safe["latency_bound_ms"]
    assert "at 90%" in (tmp_path / "safe" / "summary.md").read_text()
    for bad in (0.5, 1.0, 1.5):
        with pytest.raises(ConfigError, match="between 0.5 and 1"):
            specialize(supernet, accuracy, [cpu], [target], tmp_path / "bad", latency_confidence=bad, **options)
    assert not (tmp_path / "bad").exists()


def test_specialize_command_exits_3_on_an_over_budget_pick_unless_allowed(setup, tmp_path, capsys):
    """The command end to end on the analytical FPGA model (deterministic): a
    budget below every subnet's latency, with --nearest, deploys the closest
    subnet (the smallest: the closed loop simulates it), whose latency is over
    budget: the command exits with status 3 and a named error, summary.md marks
    it, and --allow-over-budget makes it exit 0 (still reported)."""
    from hardware_profiles import get_backend, profile_space
    from ofa.training.checkpoint import save_checkpoint
    from ofa.training.progressive_shrinking import DEFAULT_CONFIG
    from ofa_pipeline.commands.specialize import main

    space, supernet, accuracy, _, _ = setup
    checkpoint = save_checkpoint(tmp_path / "final.pt", trainer="mobilenetv3", space=space, config=DEFAULT_CONFIG,
                                 model=supernet)
    accuracy.save(tmp_path / "top1.skops")
    profile = profile_space(space, get_backend("fpga-analytical"), 12, tmp_path / "fpga.jsonl", seed=0,
                            progress=False)
    fit_latency_predictor(profile, model="lut", cv=3).save(tmp_path / "fpga.skops")
    out = tmp_path / "deploy"
    argv = ["--supernet", str(checkpoint), "--accuracy-predictor", str(tmp_path / "top1.skops"),
            "--latency-predictor", str(tmp_path / "fpga.skops"), "--device", "fpga-analytical",
            "--latency-ms", "1e-6", "--nearest", "--population", "8", "--generations", "2",
            "--pareto-generations", "1", "--calib-images", "32", "--out", str(out)]
    capsys.readouterr()
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "over budget" in err and "--allow-over-budget" in err
    (row,) = json.loads((out / "summary.json").read_text())
    (device,) = row["devices"]
    assert row["feasible"] is False and device["over_budget"] is True
    assert device["measured_latency_ms"] > device["budget_ms"] == 1e-6
    assert device["measurement"].startswith("fpga-analytical")
    assert "OVER BUDGET" in (out / "summary.md").read_text()
    assert any("OVER BUDGET" in w for w in row["warnings"])
    assert row["verification"] == "over-budget" and row["arch"] == space.smallest().to_dict()
    assert main(argv + ["--allow-over-budget"]) == 0  # allowed: reported, not an error
    assert "over budget" in capsys.readouterr().err
