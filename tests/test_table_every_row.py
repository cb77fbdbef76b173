"""Issue 22: a feature table fitted on every row (``--test-fraction 0``, cross-validated
metrics reported) and new rows predicted from the command line (``predict_table``)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from ofa_pipeline.commands import fit_predictor as fit_tool
from ofa_pipeline.commands import predict_table as predict_tool


def write_table(path, n, seed, latency=True):
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(1, 10, n), rng.integers(1, 6, n)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "b"] + (["latency_ms"] if latency else []))
        for x, z in zip(a, b):
            writer.writerow([f"{x:.4f}", int(z)] + ([f"{2 * x + 3 * z + 1:.4f}"] if latency else []))
    return a, b


def fit(tmp_path, *extra):
    table = tmp_path / "measured.csv"
    if not table.exists():
        write_table(table, 40, 0)
    return fit_tool.main(["--profile", str(table), "--latency-column", "latency_ms", "--feature-columns", "a,b",
                          "--out", str(tmp_path / "p.skops"), "--device", "board", *extra])


def test_every_row_is_fitted_and_the_metrics_are_cross_validated(tmp_path, capsys):
    assert fit(tmp_path, "--test-fraction", "0", "--model", "linear") == 0
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["n_train"] == 40 and report["n_test"] == 0 and report["test"] is None
    assert report["cv_chosen"]["mape"] < 1.0 and "cross-validation on every row" in report["metrics_source"]
    assert not (tmp_path / "p.png").exists()
    assert "none held out (--test-fraction 0)" in capsys.readouterr().out


def test_every_row_refusals(tmp_path, capsys):
    assert fit(tmp_path, "--test-fraction", "0", "--plot", str(tmp_path / "x.png")) != 0
    assert "with --test-fraction 0 nothing is held out" in capsys.readouterr().err
    assert not (tmp_path / "p.skops").exists()
    assert fit_tool.main(["--evaluations", str(tmp_path / "e.jsonl"), "--space", "mbv3-small", "--test-fraction",
                          "0", "--out", str(tmp_path / "a.skops")]) != 0
    assert "--test-fraction 0 (fit on every row) is for a --profile table" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        fit(tmp_path, "--test-fraction", "1")
    assert exit_info.value.code == 2


def test_new_rows_are_predicted_with_intervals(tmp_path, capsys):
    assert fit(tmp_path, "--model", "linear") == 0
    new = tmp_path / "new.csv"
    a, b = write_table(new, 5, 1, latency=False)
    out = tmp_path / "predicted.csv"
    assert predict_tool.main(["--predictor", str(tmp_path / "p.skops"), "--table", str(new), "--out", str(out),
                              "--coverage", "0.8"]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [float(r["predicted_latency_ms"]) for r in rows] == pytest.approx(2 * a + 3 * b + 1, rel=1e-3)
    assert all(float(r["low_latency_ms"]) <= float(r["predicted_latency_ms"]) <= float(r["high_latency_ms"])
               for r in rows)
    assert list(rows[0]) == ["a", "b", "predicted_latency_ms", "low_latency_ms", "high_latency_ms"]
    capsys.readouterr()
    missing = tmp_path / "missing.csv"
    missing.write_text("a\n1.0\n")
    assert predict_tool.main(["--predictor", str(tmp_path / "p.skops"), "--table", str(missing), "--out",
                              str(tmp_path / "m.csv")]) != 0
    assert "'b'" in capsys.readouterr().err and not (tmp_path / "m.csv").exists()
    assert predict_tool.main(["--predictor", str(tmp_path / "p.skops"), "--table", str(new), "--out",
                              str(new), "--overwrite"]) != 0
    assert "is also the --table" in capsys.readouterr().err
