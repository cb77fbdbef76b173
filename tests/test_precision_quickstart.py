"""``ofa-quickstart --precision --fast``: train, evaluate, profile, search and export a
mixed-precision subnet end to end on the built-in digits (with a smaller fast setting here)."""

import json

import onnx
import pytest

from ofa.errors import ConfigError
from ofa_pipeline import mixed_precision
from ofa_pipeline.commands import quickstart

TINY = {"train_images": 96, "calib_images": 32, "batch_size": 32, "teacher_epochs": 1, "precision_epochs": 1,
        "subnets": 14, "population": 6, "generations": 1, "haq_episodes": 3, "haq_warmup": 1,
        "refine_rounds": 1, "refine_seeds": 1, "refine_population": 6, "refine_generations": 1}


def test_precision_quickstart_runs_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setattr(mixed_precision, "FAST", TINY)
    out = tmp_path / "run"
    assert quickstart.main(["--precision", "--fast", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["space"]["weight_bits"] == mixed_precision.PRECISION_BITS["weight_bits"]
    for backend in mixed_precision.BACKENDS:
        rows = summary["results"][backend]["rows"]
        assert set(rows) == {"uniform 8-bit", "uniform 4-bit", "HAQ, fixed architecture",
                             "evolution, architecture + bits"}
        assert rows["uniform 4-bit"]["latency_ms"] < rows["uniform 8-bit"]["latency_ms"]
        assert (out / f"profile_{backend}.jsonl").is_file()
    assert summary["export"]["parity_max_abs_diff"] <= summary["export"]["tolerance"] * summary["export"][
        "output_max_abs"]
    ops = {node.op_type for node in onnx.load(str(out / "subnet.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # one refinement round: a pick per backend measured and added to the predictor's data
    assert [len(r["picks"]) for r in summary["refinement"]] == [len(mixed_precision.BACKENDS)]
    assert summary["refinement"][0]["records"] == summary["evaluated_subnets"] > 3 + TINY["subnets"] - 1
    lines = (out / "evaluations.jsonl").read_text().splitlines()
    assert len(lines) == len({json.dumps(json.loads(line)["arch"], sort_keys=True) for line in lines})  # each once


def test_a_rerun_reuses_only_evaluations_of_the_same_supernet(tmp_path):
    path = tmp_path / "evaluations.jsonl"
    made_by = {"space": "s1", "supernet": "d1"}
    arch = {"resolution": 32}
    path.write_text("\n".join([json.dumps({"arch": arch, "split": "val", **made_by, "top1": 80.0}),
                               json.dumps({"arch": {"resolution": 28}, "split": "val", "space": "s1",
                                           "supernet": "another", "top1": 70.0}),
                               json.dumps({"arch": {"resolution": 24}, "split": "test", **made_by, "top1": 75.0}),
                               '{"arch": {"resolution": 20}, "split": "va']))  # torn by a kill
    assert list(mixed_precision.earlier_evaluations(path, made_by)) == [json.dumps(arch, sort_keys=True)]
    assert mixed_precision.earlier_evaluations(tmp_path / "none.jsonl", made_by) == {}


def test_precision_quickstart_refuses_options_it_does_not_use(tmp_path):
    with pytest.raises(ConfigError, match="leave out --transformer"):
        quickstart.check_precision_args(quickstart.parse_args(["--precision", "--transformer", "--out", str(tmp_path)]))


def test_full_run_trains_the_default_task_with_the_precision_phase_last():
    from ofa.training.config import load_yaml
    from ofa.training.progressive_shrinking import check_config

    config, space, phases = check_config(load_yaml(mixed_precision.training_config(mixed_precision.FULL, fast=False)))
    default, default_space, default_phases = check_config(load_yaml("mbv3-small-cluttered-digits"))
    assert config["data"]["dataset"] == default["data"]["dataset"]
    assert space.replace(weight_bits=(), activation_bits=()).fingerprint == default_space.fingerprint
    assert (list(space.weight_bits), list(space.activation_bits)) == (mixed_precision.PRECISION_BITS["weight_bits"],
                                                                    mixed_precision.PRECISION_BITS["activation_bits"])
    assert phases[:-1] == [{**p, "weight_bits": (8,), "activation_bits": (8,)} for p in default_phases]
    assert phases[-1]["weight_bits"] == phases[-1]["activation_bits"] == (4, 6, 8)
