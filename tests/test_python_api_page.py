"""docs/python-api.md runs: its Python blocks, top to bottom, as one script in an empty folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "python-api.md"


def page_script() -> str:
    return "\n".join(re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S))


def test_the_page_has_every_stage():
    script = page_script()
    for call in ("train_supernet(", "profile_device(", "fit_latency_predictor_from_profile(", "evaluate_subnets(",
                 "fit_accuracy_predictor_from_evaluations(", "specialize(", "deploy_subnet("):
        assert call in script, call


@pytest.mark.slow
def test_the_python_api_page_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OFA_HW_CACHE", str(tmp_path / "cache"))
    namespace: dict = {}
    exec(compile(page_script(), str(PAGE), "exec"), namespace)
    assert (tmp_path / "run" / "export" / "model.onnx").is_file()
    assert (tmp_path / "run" / "deploy" / "summary.json").is_file()
    assert namespace["report"]["parity_max_abs_diff"] <= 1e-3
