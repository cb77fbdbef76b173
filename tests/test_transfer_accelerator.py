"""Issue 22: ``--transfer-from`` a simulator built for the device's accelerator
(``--accelerator``): it prices exactly the blocks the fit needs, at that size."""

from __future__ import annotations

import json

import pytest

from ofa.errors import ConfigError, OFAError
from ofa_pipeline.block_fitting import _source
from ofa_pipeline.commands import fit_predictor as fit_tool
from predictors.blocks import _describe

BLOCKS = "hardware_profiles/data/blocks/mbv3-small_cpu-ort.jsonl"


def test_the_source_simulator_takes_the_accelerator():
    source = _source("fpga-dpu", "dpu-b1152")
    assert source.config.name == "dpu-b1152" and _describe(source) == "fpga-dpu (dpu-b1152)"
    with pytest.raises(ConfigError, match=r"--transfer-from 'macs' is not a backend"):
        _source("macs", "dpu-b1152")
    with pytest.raises(OFAError, match="dpu-b9999"):
        _source("fpga-dpu", "dpu-b9999")


def test_block_transfer_from_a_sized_simulator(tmp_path, capsys):
    from pathlib import Path

    blocks = str(Path(__file__).resolve().parent.parent / BLOCKS)
    out = tmp_path / "t.skops"
    assert fit_tool.main(["--blocks", blocks, "--transfer-from", "fpga-dpu", "--accelerator", "dpu-b1152",
                          "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["transfer_from"] == "fpga-dpu" and report["accelerator"] == "dpu-b1152"
    capsys.readouterr()
    assert fit_tool.main(["--blocks", blocks, "--accelerator", "dpu-b1152", "--out", str(tmp_path / "x.skops")]) != 0
    assert "--accelerator configures the simulator given as --transfer-from" in capsys.readouterr().err
    assert not (tmp_path / "x.skops").exists()
