"""The quickstart's early-exit option end to end in fast mode: train with exits,
profile blocks, fit the block-sum predictor, specialise with a calibrated
threshold, export one graph per segment and time it."""

import json

import numpy as np
import pytest
import torch


@pytest.mark.slow
def test_quickstart_exits_fast_mode_end_to_end(tmp_path, monkeypatch):
    from ofa.export import EarlyExitRunner, load_subnet_weights
    from ofa.models.exits import adaptive_predictions
    from ofa_pipeline.commands import quickstart

    monkeypatch.setenv("OFA_HW_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    out = tmp_path / "qs"
    try:
        assert quickstart.main(["--out", str(out), "--fast", "--exits", "--workers", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    report = json.loads((out / "quickstart.json").read_text())
    assert report["model"] == "cnn-exits" and report["mode"] == "fast"
    result = json.loads((out / "deploy-exits" / "result.json").read_text())
    chosen = result["chosen"]
    latency = chosen["predicted_latency_ms"]
    # both budgets reported; expected <= worst case; the pick meets the worst-case budget
    assert latency["expected"] <= latency["worst_case"] <= result["budgets_ms"]["worst_case"]
    assert abs(sum(chosen["test"]["exit_distribution"]) - 1) < 1e-9
    assert "with probability >= 0.9" in chosen["calibration"]["guarantee"]
    for batch in ("1", "32"):
        measured = result["measured"][batch]
        assert measured["exits_ms_per_image"] > 0 and measured["same_static_ms_per_image"] > 0

    # the exported segments run the calibrated rule: same answers as the PyTorch subnet with it
    directory = out / "deploy-exits" / "exits"
    static = load_subnet_weights(directory / "model.pt")
    runner = EarlyExitRunner(directory)
    kept = result["exits"]["stages"]  # the subset of the supernet's exits the search kept
    assert set(kept) <= set(result["supernet_exits"]["stages"]) and static.exits.stages == tuple(kept)
    assert runner.thresholds.tolist() == [chosen["threshold"]] * len(kept)
    torch.manual_seed(0)  # the same images every run
    x = static.example_inputs(12)[0] * 2
    with torch.no_grad():
        all_logits = [t.numpy() for t in static.forward_exits(x)]
    logits, where = runner.run(x.numpy())
    predictions, expected_where = adaptive_predictions(all_logits, chosen["threshold"], result["measure"])
    assert np.array_equal(where, expected_where) and np.array_equal(logits.argmax(1), predictions)
    assert "exits" in (out / "quickstart.md").read_text()

    # a re-run of the finished directory redoes nothing
    assert quickstart.main(["--out", str(out), "--fast", "--exits", "--workers", "1"]) == 0
    again = json.loads((out / "quickstart.json").read_text())
    assert all(seconds == 0.0 for seconds in again["this_run"]["timings_s"].values())

    # the console command each step prints makes the step's library call
    from quickstart_commands import check_printed_commands, recorded_steps

    steps = recorded_steps(quickstart, ["--out", str(out), "--fast", "--exits", "--workers", "1"], monkeypatch)
    assert len(steps) == 4
    check_printed_commands(steps, monkeypatch)
