"""Issue 22: Vitis AI imports that lose nothing.

A block measured as several profiler rows is summed (rows kept); summaries named
after their blocks (the OFA latency datasets' convention, or block keys) need no
manifest; blocks outside the space are all listed, and skipped only on request;
every record says which file and rows it came from and keeps every numeric
profiler column. Samples: tests/data/imports/vitis-ai-named (make_samples.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hardware_profiles import read_profile
from hardware_profiles.imports import ImportFormatError
from hardware_profiles.imports.common import block_from_name, space_blocks
from hardware_profiles.imports.vitis_ai import import_vitis_ai, parse_profile_summary, summary_latency
from ofa.spaces import get_space
from ofa_pipeline.commands import import_profile as import_tool

DATA = Path(__file__).parent / "data" / "imports"
NAMED = DATA / "vitis-ai-named"
HEAD = NAMED / ("head:resolution=2:in_channels=64:final_expand_channels=192:feature_mix_channels=256:"
                "num_classes=10:activation=h_swish.csv")


def test_a_block_in_pieces_is_summed_and_its_rows_kept():
    latency = summary_latency(parse_profile_summary(HEAD))
    # three DPU subgraphs of one kernel name on one core: three pieces of one inference
    assert latency["mean_ms"] == pytest.approx(0.952 + 0.867 + 0.640) and latency["subgraphs"] == 3
    assert latency["mem_io_mb"] == pytest.approx(0.061 + 0.026 + 0.031)
    assert [row["line"] for row in latency["rows"]] == [11, 12, 13]
    assert latency["rows"][1]["mem_bandwidth_mbs"] == 30.0 and latency["rows"][1]["performance_gops"] == 0.4
    # one subgraph on two cores is still a runs-weighted mean
    two_cores = summary_latency(parse_profile_summary(DATA / "vitis-ai" / "block_a_run1.csv"))
    assert two_cores["mean_ms"] == pytest.approx((600 * 0.092 + 400 * 0.095) / 1000) and two_cores["subgraphs"] == 1


def test_naming_patterns_map_to_blocks_of_the_space():
    space = get_space("mbv3-small")
    known = space_blocks(space)
    block = block_from_name("blk03_in_24x8x8-out_24-k5-e4-s1-relu-se0", space, known, "here")
    assert (block.resolution, block.in_channels, block.out_channels, block.kernel, block.expand_ratio) == \
        (8, 24, 24, 5, 4.0) and block.key in known
    # letters may be left out; the space supplies the SE channels
    se = block_from_name("in_24x6x6-out_32-3-3-2-relu-1", space, known, "here")
    assert se.se_channels > 0 and se.key in known
    assert block_from_name(HEAD.stem, space, known, "here").kind == "head"
    with pytest.raises(ImportFormatError, match=r"here: block name 'conv_7' follows none of the naming patterns"):
        block_from_name("conv_7", space, known, "here")


def test_a_folder_without_manifest_lists_every_block_outside_the_space(tmp_path):
    folder = tmp_path / "zcu102"
    shutil.copytree(NAMED, folder)
    second = folder / "blk13_in_24x8x8-out_24-k9-e6-s1-relu-se0"  # a second block outside the space
    shutil.copytree(folder / "blk12_in_24x8x8-out_24-k9-e4-s1-relu-se0", second)
    out = tmp_path / "dpu.jsonl"
    with pytest.raises(ImportFormatError, match=r"2 measured block\(s\) do not exist in the space.*"
                                                r"--skip-outside-space") as error:
        import_vitis_ai(folder, out, space="mbv3-small", device="zcu102-b4096")
    assert "blk12_" in str(error.value) and "blk13_" in str(error.value) and not out.exists()
    with pytest.raises(ImportFormatError, match=r"holds the same bytes as profile_summary.csv"):
        import_vitis_ai(folder, out, space="mbv3-small", device="zcu102-b4096", skip_outside_space=True,
                        merge_duplicates=True)  # blk13 is a copy of blk12: one measurement, not two
    shutil.rmtree(second)
    shutil.copytree(folder / "blk12_in_24x8x8-out_24-k9-e4-s1-relu-se0", second)
    summary = second / "profile_summary.csv"
    summary.write_text(summary.read_text().replace("1000,DPUCZDX8G", "999,DPUCZDX8G"))  # another measurement

    profile = import_vitis_ai(folder, out, space="mbv3-small", device="zcu102-b4096", skip_outside_space=True)
    assert sorted(item["named"].split("/")[0] for item in profile.header["skipped"]) == \
        ["blk12_in_24x8x8-out_24-k9-e4-s1-relu-se0", "blk13_in_24x8x8-out_24-k9-e6-s1-relu-se0"]
    records = {r["key"].split(":")[0] + str(len(r["source"][0]["rows"])): r for r in read_profile(out).records}
    head = records["head3"]
    assert head["latency_ms"]["mean"] == pytest.approx(2.459) and head["mem_io_mb"] == pytest.approx(0.118)
    assert head["source"][0]["file"] == HEAD.name and head["source"][0]["lines"] == [11, 12, 13]
    se_block = records["mbconv2"]  # a block and its SE in two differently named subgraphs: summed
    assert se_block["latency_ms"]["mean"] == pytest.approx(0.108 + 0.021)
    assert se_block["source"][0]["file"] == "blk09_in_24x6x6-out_32-k3-e3-s2-relu-se1/profile_summary.csv"
    assert records["mbconv1"]["workload_gop"] == 0.002 and records["mbconv1"]["mem_io_mb"] == 0.031
    assert read_profile(out).header["precision"] == "int8"


def test_a_manifest_entry_outside_the_space_is_skipped_on_request(tmp_path):
    for name in ("stem.csv", "head.csv", "block_a_run1.csv"):
        shutil.copy(DATA / "vitis-ai" / name, tmp_path / name)
    manifest = (DATA / "vitis-ai" / "manifest.yaml").read_text()
    manifest = manifest.replace('"kernel": 5', '"kernel": 9').split("  - file: block_a_run2.csv")[0]
    manifest += '  - file: head.csv\n    block_key: "head:resolution=2:in_channels=64:final_expand_channels=192:' \
                'feature_mix_channels=256:num_classes=10:activation=h_swish"\n'
    (tmp_path / "manifest.yaml").write_text(manifest)
    out = tmp_path / "dpu.jsonl"
    with pytest.raises(ImportFormatError, match=r"manifest.yaml:9: block mbconv:.*kernel=9.* does not exist.*"
                                                r"pass --skip-outside-space"):
        import_vitis_ai(tmp_path / "manifest.yaml", out)
    assert not out.exists()
    code = import_tool.main(["--format", "vitis-ai", str(tmp_path / "manifest.yaml"), "--out", str(out),
                             "--skip-outside-space"])
    profile = read_profile(out)
    assert code == 0 and len(profile.records) == 2 and "kernel=9" in profile.header["skipped"][0]["key"]
    assert profile.records[0]["source"][0] == {"file": "stem.csv", "lines": [11],
                                               "rows": profile.records[0]["source"][0]["rows"]}


def test_the_command_line_imports_a_folder_and_checks_its_options(tmp_path, capsys):
    out = tmp_path / "dpu.jsonl"
    assert import_tool.main(["--format", "vitis-ai", str(NAMED), "--space", "mbv3-small", "--device", "zcu102",
                             "--skip-outside-space", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "skipped blk12_in_24x8x8-out_24-k9-e4-s1-relu-se0" in printed and "wrote 3 block record(s)" in printed
    assert import_tool.main(["--format", "vitis-ai", str(NAMED), "--device", "zcu102", "--out",
                             str(tmp_path / "x.jsonl")]) != 0
    assert "--format vitis-ai needs --space" in capsys.readouterr().err
    assert import_tool.main(["--format", "vitis-ai", str(DATA / "vitis-ai" / "manifest.yaml"), "--space",
                             "mbv3-small", "--out", str(tmp_path / "y.jsonl")]) != 0
    assert "a Vitis AI manifest gives these itself" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "y.jsonl").exists()
