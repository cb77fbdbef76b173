"""The quickstart in its reduced mode (--fast): every step runs, and the
outputs are consistent (budgets met, ONNX reproduces PyTorch, plots exist)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ofa.errors import ConfigError
from ofa.spaces import get_space

ROOT = Path(__file__).resolve().parents[1]


def load_quickstart():
    return importlib.import_module("ofa_pipeline.commands.quickstart")


@pytest.mark.parametrize("argv,error,texts", [
    (["--out", "{file}"], "PathError", ["a-file.txt", "directory"]),
    (["--out", "{tmp}/qs", "--devices", "cpu-orx"], "ConfigError", ["cpu-orx", "did you mean 'cpu-ort'"]),
    (["--out", "{tmp}/qs", "--devices", "cpu-ort", "cpu-ort"], "ConfigError", ["cpu-ort", "more than once"]),
    (["--out", "{tmp}/qs", "--config", "{tmp}/none.yaml"], "ConfigError", ["none.yaml", "does not exist"]),
    (["--out", "{tmp}/qs", "--config", "{file}"], "ConfigError", ["a-file.txt", "mapping"]),
    (["--out", "{tmp}/qs", "--fast", "--bogus"], "ConfigError", ["--bogus"]),
])
def test_quickstart_refuses_bad_arguments_before_any_work(tmp_path, capsys, argv, error, texts):
    (tmp_path / "a-file.txt").write_text("not a directory\n")
    values = {"tmp": str(tmp_path), "file": str(tmp_path / "a-file.txt")}
    try:
        status = load_quickstart().main([a.format(**values) for a in argv])
    except SystemExit as exit_:  # argparse usage errors
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2 and error in err, err
    assert all(text in err for text in texts), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file.txt"]  # nothing created


def test_steps_skip_complete_outputs_and_add_up_timings(tmp_path, capsys):
    """A step runs again only when its command, an input or its output changed;
    a skipped step adds 0 s and the recorded seconds survive re-runs."""
    Steps = load_quickstart().Steps
    source, output = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_text("1\n")
    calls = []

    def body():
        calls.append(1)
        output.write_text(source.read_text() * 2)

    def run(argv=("a",)):
        steps = Steps(tmp_path)
        steps.run("copy", None, list(argv), inputs=[source], outputs=[output], body=body)
        steps.save()
        return steps

    first = run()
    assert len(calls) == 1 and first.timings["copy"] >= 0
    recorded = first.cumulative["copy"]
    again = run()  # nothing changed: skipped
    assert len(calls) == 1 and again.timings == {"copy": 0.0} and again.cumulative["copy"] == recorded
    assert again.ledger["runs"] == 2 and again.ledger["total_s"] >= first.ledger["total_s"]
    source.write_text("2\n")  # a changed input
    run()
    assert len(calls) == 2
    run(argv=("b",))  # a changed command
    assert len(calls) == 3
    output.write_text("edited\n")  # an output changed since
    run(argv=("b",))
    output.unlink()  # an output gone
    third = run(argv=("b",))
    assert len(calls) == 5 and third.cumulative["copy"] >= recorded
    (tmp_path / "quickstart-steps.json").write_text("{broken")  # an unreadable record: everything runs
    run(argv=("b",))
    assert len(calls) == 6 and "not a step record" in capsys.readouterr().out


def test_steps_start_afresh_for_a_new_command_and_resume_their_own(tmp_path):
    """The tools append to an existing output (to resume after a kill): a step
    whose command changed must not append to the earlier command's records,
    while a killed step must find its own partial output again."""
    Steps = load_quickstart().Steps
    output = tmp_path / "records.jsonl"

    def appending(tag, lines, fail_after=None):
        def body():
            done = output.read_text().splitlines() if output.exists() else []
            with output.open("a") as handle:
                for i in range(len(done), lines):
                    if fail_after is not None and i == fail_after:
                        raise KeyboardInterrupt  # killed mid-way
                    handle.write(f"{tag}{i}\n")
        return body

    Steps(tmp_path).run("evaluate", None, ["random:3"], outputs=[output], body=appending("r", 3))
    assert output.read_text().split() == ["r0", "r1", "r2"]
    with pytest.raises(KeyboardInterrupt):  # a new command, killed after one record
        Steps(tmp_path).run("evaluate", None, ["stratified:3"], outputs=[output], body=appending("s", 3, 1))
    assert output.read_text().split() == ["s0"]  # the old command's records are gone
    Steps(tmp_path).run("evaluate", None, ["stratified:3"], outputs=[output], body=appending("s", 3))
    assert output.read_text().split() == ["s0", "s1", "s2"]  # resumed, not restarted


def test_evaluate_stratified_archs_cover_the_macs_range():
    from dataclasses import replace

    from ofa_pipeline.commands.evaluate import parse_arch_specs

    space = get_space("mbv3-small-r20-32")
    stratified = [a for _, a in parse_arch_specs(["stratified:20"], space, seed=0)]
    uniform = [a for _, a in parse_arch_specs(["random:20"], space, seed=0)]
    assert len(stratified) == 20 and len({a.to_json() for a in stratified}) == 20

    def near_the_ends(archs):  # within 15% of the smallest or the largest subnet at the same resolution
        count = 0
        for arch in archs:
            low, high = (space.cost(replace(end, resolution=arch.resolution)).macs
                         for end in (space.smallest(), space.largest()))
            share = (space.cost(arch).macs - low) / (high - low)
            count += share < 0.15 or share > 0.85
        return count

    # uniform draws average over many blocks, so their MACs cluster in the middle of the range
    assert near_the_ends(stratified) >= 4 > near_the_ends(uniform)
    with pytest.raises(ConfigError, match="stratified:N"):
        parse_arch_specs(["stratified:0"], space, seed=0)


@pytest.mark.slow
def test_quickstart_fast_mode_end_to_end(tmp_path, monkeypatch):
    from ofa.export import load_subnet_weights, onnx_logits
    from ofa.spaces import space_from_dict
    from predictors import load_predictor

    monkeypatch.setenv("OFA_HW_CACHE", str(tmp_path / "cache"))
    torch_threads = torch.get_num_threads()
    out = tmp_path / "qs"
    try:
        assert load_quickstart().main(["--out", str(out), "--fast"]) == 0
    finally:
        torch.set_num_threads(torch_threads)  # training pins threads in this process

    report = json.loads((out / "quickstart.json").read_text())
    assert report["mode"] == "fast" and set(report["devices"]) == {"cpu-ort", "fpga-scalesim"}
    space = space_from_dict(json.loads((out / "space.json").read_text()))
    for name in ("supernet/final.pt", "profiles/cpu-ort.jsonl", "profiles/fpga-scalesim.jsonl",
                 "predictors/cpu-ort.skops", "predictors/fpga-scalesim.skops", "predictors/top1.skops",
                 "evaluations.jsonl", "deploy/summary.md", "quickstart.md"):
        assert (out / name).is_file(), name
    rows = report["rows"]
    assert len(rows) == 4  # two budgets per device
    for row in rows:
        (device,) = row["devices"]
        directory = out / "deploy" / row["target"]
        arch = space.parse(json.loads((directory / "arch.json").read_text()))
        # the chosen subnet's predicted latency is under its budget, and is what the saved predictor says
        assert device["predicted_latency_ms"] <= device["budget_ms"]
        predictor = load_predictor(out / "predictors" / f"{device['device']}.skops")
        assert predictor.predict_archs(arch)[0] == pytest.approx(device["predicted_latency_ms"])
        assert device["measured_latency_ms"] is not None and device["measured_latency_ms"] > 0
        assert 0 <= row["measured_accuracy"] <= 100 and 0 <= row["probability_loyalty"] <= 1
        assert (directory / f"pareto_{device['device']}.png").stat().st_size > 1000
        # the ONNX file reproduces the PyTorch subnet (BN re-calibrated weights saved beside it)
        static = load_subnet_weights(directory / "model.pt")
        assert static.arch == arch
        x = static.example_inputs(3)[0]
        with torch.no_grad():
            expected = static(x).numpy()
        scale = max(1.0, float(np.abs(expected).max()))
        assert np.abs(onnx_logits(directory / "model.onnx", x.numpy()) - expected).max() <= 1e-4 * scale
    assert "| cpu-ort |" in (out / "quickstart.md").read_text()

    # re-running on the finished directory skips every step, rewrites no output and keeps the timings
    outputs = ["supernet/final.pt", "profiles/cpu-ort.jsonl", "predictors/cpu-ort.skops", "predictors/cpu-ort.json",
               "predictors/top1.skops", "evaluations.jsonl", "deploy/summary.json"]
    written = {name: (out / name).stat().st_mtime_ns for name in outputs}
    assert load_quickstart().main(["--out", str(out), "--fast"]) == 0
    again = json.loads((out / "quickstart.json").read_text())
    assert again["this_run"]["timings_s"] == {label: 0.0 for label in report["timings_s"]}
    assert again["timings_s"] == report["timings_s"] and again["runs"] == 2
    assert again["total_s"] >= report["total_s"] and again["rows"] == report["rows"]
    assert {name: (out / name).stat().st_mtime_ns for name in outputs} == written

    # the console command each step prints makes the step's library call (training, skipped on a finished
    # directory, as the quickstart starts it with two processes)
    from quickstart_commands import check_printed_commands, recorded_steps
    from ofa_pipeline.train import train_supernet

    quickstart = load_quickstart()
    steps = recorded_steps(quickstart, ["--out", str(out), "--fast"], monkeypatch)
    config = out / "config-fast.yaml"
    steps.append({"label": "1. train", "function": train_supernet, "command": quickstart.train_command(
        config, out / "supernet", 2), "arguments": dict(config=config, out=out / "supernet", resume=True,
                                                        progress=False, processes=2)})
    assert len(steps) == 8  # train, 2 profiles, 2 latency fits, evaluation, accuracy fit, specialisation
    check_printed_commands(steps, monkeypatch)


@pytest.mark.slow
def test_quickstart_transformer_fast_mode(tmp_path, monkeypatch):
    """The same pipeline on the Transformer default: the objective is the
    predicted validation loss (minimised), accuracy is token accuracy."""
    from ofa.export import onnx_parity
    from ofa.training import load_supernet

    monkeypatch.setenv("OFA_HW_CACHE", str(tmp_path / "cache"))
    torch_threads = torch.get_num_threads()
    out = tmp_path / "qs"
    try:
        assert load_quickstart().main(["--out", str(out), "--fast", "--transformer",
                                       "--devices", "cpu-ort", "fpga-scalesim"]) == 0
    finally:
        torch.set_num_threads(torch_threads)
    report = json.loads((out / "quickstart.json").read_text())
    assert report["model"] == "transformer" and len(report["rows"]) == 4
    supernet = load_supernet(out / "supernet" / "final.pt")
    for row in report["rows"]:
        assert row["objective"] == "loss"
        (device,) = row["devices"]
        assert device["predicted_latency_ms"] <= device["budget_ms"]
        assert row["measured_loss"] > 0 and 0 <= row["measured_accuracy"] <= 100
        static = supernet.extract(row["arch"]).eval()
        inputs = static.example_inputs(2)
        with torch.no_grad():
            scale = max(1.0, float(static(*inputs).abs().max()))
        assert onnx_parity(static, out / "deploy" / row["target"] / "model.onnx", inputs) <= 1e-4 * scale

    from quickstart_commands import check_printed_commands, recorded_steps

    check_printed_commands(recorded_steps(load_quickstart(), ["--out", str(out), "--fast", "--transformer", "--devices",
                                                              "cpu-ort", "fpga-scalesim"], monkeypatch), monkeypatch)
