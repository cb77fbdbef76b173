"""Issue 22: a profile's numeric record fields (an imported Vitis AI profile's measured
memory traffic and workload) are usable as features: ``fit_predictor --profile p.jsonl
--feature-columns mem_io_mb,workload_gop``."""

from __future__ import annotations

import json

import pytest

from hardware_profiles.imports.vitis_ai import import_vitis_ai
from ofa.spaces import get_space
from ofa_pipeline.commands import fit_predictor as fit_tool

HEADER = ("Profile Summary\nTarget devices: zcu102\n\nDPU Summary\nKernel Name,Number Of Runs,CU Full Name,"
          "Minimum Time (ms),Average Time (ms),Maximum Time (ms),Workload(GOP),DPU Performance(GOP/s),Mem IO(MB),"
          "Mem Bandwidth(MB/s),\n")


def imported_profile(tmp_path, n=12):
    """``n`` block summaries named after their blocks (latency = 0.02 + 1.5 ms per MB moved)."""
    blocks = [b for b in get_space("mbv3-small").distinct_blocks() if b.kind == "mbconv"][:n]
    (tmp_path / "board").mkdir()
    for i, block in enumerate(blocks):
        mem, gop = 0.01 + 0.005 * i, block.macs * 2e-9
        ms = 0.02 + 1.5 * mem
        (tmp_path / "board" / f"{block.key}.csv").write_text(
            HEADER + f"subgraph_{i},1000,DPUCZDX8G_1:batch-1,{ms * 0.9:.5f},{ms:.5f},{ms * 1.2:.5f},{gop:.6f},1.0,"
            f"{mem:.4f},100.0,\n\n")
    out = tmp_path / "board.jsonl"
    import_vitis_ai(tmp_path / "board", out, space="mbv3-small", device="zcu102")
    return out


def test_measured_memory_traffic_is_a_feature(tmp_path, capsys):
    profile = imported_profile(tmp_path)
    out = tmp_path / "p.skops"
    assert fit_tool.main(["--profile", str(profile), "--feature-columns", "mem_io_mb,workload_gop", "--model",
                          "linear", "--test-fraction", "0", "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["features"] == ["mem_io_mb", "workload_gop"] and report["n_train"] == 12
    assert report["cv_chosen"]["mape"] < 1.0 and report["label"] == "latency_ms.median"
    assert report["device"] == "zcu102"
    capsys.readouterr()
    assert fit_tool.main(["--profile", str(profile), "--feature-columns", "mem_io_mb,dram_mb", "--out",
                          str(tmp_path / "q.skops")]) != 0
    err = capsys.readouterr().err
    assert "'dram_mb' is not a finite number in 12 of 12 records (lines 2, 3" in err and "'mem_io_mb'" in err
    assert not (tmp_path / "q.skops").exists()
