"""Imports of measurements taken with other tools, and predictors on plain feature columns.

A user's latency table goes end to end (import and direct fit, intervals,
save/load, the specialize command); every format reads its sample file
(tests/data/imports, see the README there); bad files get named errors with
line numbers and leave nothing behind."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from hardware_profiles import get_backend, read_profile
from hardware_profiles.imports import ImportFormatError, check_format
from hardware_profiles.imports.ofa_lut import import_ofa_lut
from hardware_profiles.imports.table import import_table, read_table, table_features
from hardware_profiles.imports.tflite import import_tflite_benchmark, parse_op_profile
from hardware_profiles.imports.vitis_ai import import_vitis_ai, parse_profile_summary
from ofa.errors import ConfigError, PredictorError, ProfileError
from ofa.spaces import get_space
from ofa.spaces.columns import gene_column_names, gene_values, genes_from_values
from ofa_pipeline.commands import fit_predictor as fit_tool
from ofa_pipeline.commands import import_profile as import_tool
from predictors import load_predictor, make_latency_model
from predictors.tabular import (ArchitectureFeatures, FeatureColumnsError, FeatureTablePredictor,
                                computable_feature_names, fit_feature_predictor)

DATA = Path(__file__).parent / "data" / "imports"
LUT = DATA / "ofa-lut" / "note10_160_lookup_table.yaml"


@pytest.fixture(scope="module")
def measured():
    """60 random mbv3-small subnets and their latencies on the deterministic fpga-analytical simulator."""
    space = get_space("mbv3-small")
    backend = get_backend("fpga-analytical")
    archs = space.sample(5, n=60)
    latency = np.array([backend.measure_arch(space, a)["latency_ms"]["median"] for a in archs])
    return space, archs, latency


def write_table(path, space, archs, latency, extra_rows=()):
    """A user's table: one column per gene, free feature columns, the arch JSON, latency and std."""
    names = gene_column_names(space)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", *names, "macs", "params", "room_temp_c", "arch", "latency_ms", "std_ms"])
        for i, (arch, y) in enumerate(zip(archs, latency)):
            values = gene_values(space, space.to_genes(arch))[0]
            cost = space.cost(arch)
            writer.writerow([i, *["" if np.isnan(v) else f"{v:g}" for v in values], cost.macs, cost.params,
                             21 + i % 5, json.dumps(arch.to_dict()), f"{y:.6f}", f"{0.02 * y:.6f}"])
        for row in extra_rows:
            writer.writerow(row)
    return path


# --- plain-feature predictors ------------------------------------------------------------------------------
def test_latency_recipes_take_plain_feature_matrices_with_a_clear_contract(measured):
    space, archs, y = measured
    names = ("macs", "params", "resolution")
    X = ArchitectureFeatures(space, names).transform(space.to_genes(archs))
    assert X[0, 0] == space.cost(archs[0]).macs and X[0, 2] == archs[0].resolution
    for name in ("linear", "lut", "rf", "gbr", "hybrid"):
        model = make_latency_model(name, None, 0, feature_names=names).fit(X, y)
        assert model.predict(X).shape == (len(y),)
    with pytest.raises(ConfigError, match="gene matrix of shape .* plain feature columns"):
        make_latency_model("gbr", space).fit(X, y)
    with pytest.raises(ConfigError, match="feature_names"):
        make_latency_model("gbr", None)
    with pytest.raises(FeatureColumnsError, match=r"shape \(n, 3\)"):
        make_latency_model("linear", None, feature_names=names).fit(X[:, :2], y)


def test_feature_predictor_intervals_save_load_and_architectures(measured, tmp_path):
    space, archs, y = measured
    names = ("macs", "params", "resolution", "kernel_sizes.0")
    X = ArchitectureFeatures(space, names).transform(space.to_genes(archs))
    predictor = fit_feature_predictor(X, y, names, space=space, device="fpga-sim", cv=3)
    assert predictor.kind == "feature-latency" and predictor.metrics_["selection"]["reason"]
    low, high = predictor.predict_interval_features(X, 0.8)
    assert np.all(low <= predictor.predict_features(X)) and np.all(predictor.predict_features(X) <= high)
    # an architecture is priced through the same features
    np.testing.assert_allclose(predictor.predict_archs(archs[:5]), predictor.predict_features(X[:5]))
    predictor.save(tmp_path / "p.skops")
    loaded = load_predictor(tmp_path / "p.skops", space=space)
    assert isinstance(loaded, FeatureTablePredictor) and loaded.feature_names == names
    np.testing.assert_allclose(loaded.predict_genes(space.to_genes(archs)), predictor.predict_features(X))
    np.testing.assert_allclose(loaded.predict_interval_archs(archs, 0.9)[1],
                               predictor.predict_interval_features(X, 0.9)[1])
    # a wrapped regressor of the user's own works too (refused until fitted)
    from sklearn.linear_model import Ridge

    with pytest.raises(PredictorError, match="not fitted"):
        FeatureTablePredictor(Ridge(), names)
    own = FeatureTablePredictor(Ridge().fit(X, y), names, space=space)
    assert own.predict_archs(archs[:2]).shape == (2,)
    with pytest.raises(PredictorError, match="no held-out residuals"):
        own.predict_interval_features(X)


def test_uncomputable_or_spaceless_feature_predictors_refuse_architectures(measured, tmp_path):
    space, archs, y = measured
    X = np.column_stack([ArchitectureFeatures(space, ("macs",)).transform(space.to_genes(archs))[:, 0],
                         np.arange(len(y)) % 5])
    with pytest.raises(FeatureColumnsError, match="room_temp_c.*cannot be computed"):
        fit_feature_predictor(X, y, ("macs", "room_temp_c"), space=space)
    table_only = fit_feature_predictor(X, y, ("macs", "room_temp_c"), model="linear")
    assert table_only.predict_features(X[:3]).shape == (3,)
    with pytest.raises(FeatureColumnsError, match="without a search space"):
        table_only.predict_archs(archs[:1])
    table_only.save(tmp_path / "t.skops")
    assert load_predictor(tmp_path / "t.skops").predict_features(X[:2]).shape == (2,)
    with pytest.raises(FeatureColumnsError, match="cannot price architectures"):
        load_predictor(tmp_path / "t.skops", space=space)


def test_hat_features_follow_hats_definitions():
    space = get_space("hat-wmt")
    assert set(computable_feature_names(space)) >= {"encoder_ffn_embed_dim_avg", "decoder_arbitrary_ende_attn_avg"}
    arch = space.parse({"encoder_embed_dim": 640, "encoder_layers": 6, "encoder_ffn_dims": [1024, 2048, 3072] * 2,
                        "encoder_heads": [4, 8, 8, 8, 4, 4], "decoder_embed_dim": 512, "decoder_layers": 3,
                        "decoder_ffn_dims": [3072, 1024, 2048], "decoder_self_heads": [8, 4, 4],
                        "decoder_cross_heads": [4, 4, 8], "decoder_cross_layers": [1, 2, 3]})
    names = ("encoder_embed_dim", "encoder_layer_num", "encoder_ffn_embed_dim_avg",
             "encoder_self_attention_heads_avg", "decoder_embed_dim", "decoder_layer_num",
             "decoder_ffn_embed_dim_avg", "decoder_self_attention_heads_avg", "decoder_ende_attention_heads_avg",
             "decoder_arbitrary_ende_attn_avg")
    values = ArchitectureFeatures(space, names).transform(space.to_genes(arch))[0]
    np.testing.assert_allclose(values, [640, 6, 2048, 6, 512, 3, 2048, 16 / 3, 16 / 3, 2])
    genes = space.sample_genes(20, 0)
    np.testing.assert_array_equal(genes_from_values(space, gene_values(space, genes)), space.normalize_genes(genes))


# --- a user's table end to end ----------------------------------------------------------------------------------
def test_user_table_end_to_end_import_fit_intervals_and_specialize(measured, tmp_path, capsys):
    import torch

    from ofa.search import SyntheticObjectives
    from ofa.supernets import create_supernet
    from ofa.training.checkpoint import save_checkpoint
    from ofa.training.progressive_shrinking import DEFAULT_CONFIG
    from ofa_pipeline.commands import specialize as specialize_tool
    from predictors import fit_accuracy_predictor

    space, archs, y = measured
    table = write_table(tmp_path / "my-fpga.csv", space, archs, y)
    # 1. import the rows (one column per gene) as a network profile of a simulator backend
    profile_path = tmp_path / "my-fpga.jsonl"
    assert import_tool.main(["--format", "table", str(table), "--space", "mbv3-small", "--device", "my-fpga",
                             "--backend", "fpga-analytical", "--latency-column", "latency_ms", "--std-column",
                             "std_ms", "--out", str(profile_path)]) == 0
    profile = read_profile(profile_path)
    assert len(profile) == 60 and profile.header["backend"] == "fpga-analytical"
    np.testing.assert_allclose(profile.latencies("latency_ms", "median"), np.round(y, 6))
    np.testing.assert_allclose(profile.latencies("latency_ms", "std"), 0.02 * y, atol=1e-6)
    assert [space.parse(a) for a in profile.archs()] == list(archs)
    # the arch JSON column describes the same profile
    same = tmp_path / "same.jsonl"
    assert import_tool.main(["--format", "table", str(table), "--space", "mbv3-small", "--device", "my-fpga",
                             "--latency-column", "latency_ms", "--arch-column", "arch", "--out", str(same)]) == 0
    assert read_profile(same).archs() == profile.archs()

    # 2. fit on the imported profile; and straight from the CSV on free (computable) feature columns
    arch_predictor = tmp_path / "arch.skops"
    assert fit_tool.main(["--profile", str(profile_path), "--out", str(arch_predictor), "--model", "hybrid",
                          "--cv", "3"]) == 0  # imported numbers: latency_ms, median by default
    feature_predictor = tmp_path / "features.skops"
    assert fit_tool.main(["--profile", str(table), "--space", "mbv3-small", "--device", "my-fpga-features",
                          "--latency-column", "latency_ms", "--feature-columns", "macs,params",
                          "--feature-columns", "resolution", "--out", str(feature_predictor), "--cv", "3",
                          "--model", "linear"]) == 0
    report = json.loads(feature_predictor.with_suffix(".json").read_text())
    assert report["kind"] == "feature-latency" and report["drives_search"] is True
    assert report["features"] == ["macs", "params", "resolution"] and report["n_test"] == 12
    assert set(report["interval_coverage_test"]) == {"80%", "90%"} and feature_predictor.with_suffix(".png").exists()
    for path in (arch_predictor, feature_predictor):
        predictor = load_predictor(path, space=space)
        low, high = predictor.predict_interval_archs(archs, 0.9)
        assert np.mean((low <= y) & (y <= high)) >= 0.7
    assert load_predictor(arch_predictor).metrics_["test"]["within_10"] >= 80

    # a table without its latency column named gets a clear error (not "not valid JSON")
    assert fit_tool.main(["--profile", str(table), "--out", str(tmp_path / "x.skops")]) == 2
    assert "name its latency column with --latency-column" in capsys.readouterr().err

    # 3. a column no architecture determines: refused with --space, fitted without, refused by specialize
    assert fit_tool.main(["--profile", str(table), "--space", "mbv3-small", "--latency-column", "latency_ms",
                          "--feature-columns", "macs,room_temp_c", "--out", str(tmp_path / "bad.skops")]) == 2
    assert "room_temp_c" in capsys.readouterr().err and not (tmp_path / "bad.skops").exists()
    table_only = tmp_path / "table-only.skops"
    assert fit_tool.main(["--profile", str(table), "--latency-column", "latency_ms", "--device", "lab",
                          "--feature-columns", "macs,room_temp_c", "--out", str(table_only), "--cv", "3",
                          "--model", "linear"]) == 0

    # 4. specialize on both predictors (one subnet for both budgets), with a small untrained supernet
    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "final.pt", trainer="mobilenetv3", space=space,
                                 config={**DEFAULT_CONFIG, "data": {**DEFAULT_CONFIG["data"], "calib_images": 64}},
                                 model=create_supernet(space))
    synthetic = SyntheticObjectives(space, seed=0)
    records = [{"arch": a.to_dict(), "top1": float(100 * synthetic.accuracy(space.to_genes(a))[0])}
               for a in space.sample(0, n=40)]
    fit_accuracy_predictor(records, space, model="gbr", cv=3).save(tmp_path / "accuracy.skops")
    budget = float(np.quantile(y, 0.6))
    common = ["--supernet", str(checkpoint), "--accuracy-predictor", str(tmp_path / "accuracy.skops"),
              "--population", "12", "--generations", "4", "--pareto-generations", "2", "--calib-images", "64"]
    out = tmp_path / "deploy"
    assert specialize_tool.main(common + ["--latency-predictor", str(arch_predictor), "--latency-predictor",
                                          str(feature_predictor), "--device", "my-fpga", "--latency-ms", str(budget),
                                          "--device", "my-fpga-features", "--latency-ms", str(budget), "--joint",
                                          "--out", str(out)]) == 0
    result = json.loads(next(out.glob("*/result.json")).read_text())
    devices = result["summary"]["devices"] if "summary" in result else result["devices"]
    assert {d["device"] for d in devices} == {"my-fpga", "my-fpga-features"}
    for device in devices:
        assert device["predicted_latency_ms"] <= budget
    # re-measured on the backend the imported profile names (the simulator that made the table)
    measured_ms = next(d["measured_latency_ms"] for d in devices if d["device"] == "my-fpga")
    arch = space.parse(result["summary"]["arch"] if "summary" in result else result["arch"])
    assert measured_ms == pytest.approx(get_backend("fpga-analytical").measure_arch(space, arch)["latency_ms"]["median"])
    assert specialize_tool.main(common + ["--latency-predictor", str(table_only), "--device", "lab",
                                          "--latency-ms", "2", "--out", str(tmp_path / "refused")]) == 2
    assert "FeatureColumnsError" in capsys.readouterr().err


def test_sample_tables_import():
    space = get_space("mbv3-small")
    profile_table = read_table(DATA / "table" / "mbv3-small_fpga-analytical.csv")
    assert profile_table.columns == ("arch", "latency_ms", "std_ms") and len(profile_table) == 6
    X, y = table_features(profile_table, ["std_ms"], "latency_ms")
    assert X.shape == (6, 1) and np.all(y > 0)
    from hardware_profiles.imports.table import table_profile

    blocks = table_profile(DATA / "table" / "mbv3-small_blocks_fpga-analytical.csv", space, "sim",
                           latency="latency_ms", block_column="block")
    assert blocks.level == "block" and len(blocks) == 5
    backend = get_backend("fpga-analytical")
    for block, record in zip(blocks.blocks(), blocks.records):
        expected = backend.measure_layers(block.layers())["latency_ms"]["median"]
        assert record["latency_ms"]["median"] == pytest.approx(expected, abs=1e-6)


def test_bad_tables_get_line_numbers_and_nothing_is_written(measured, tmp_path):
    space, archs, y = measured
    out = tmp_path / "out.jsonl"
    columns = len(gene_column_names(space)) + 7

    def refused(path, match, **options):
        options = {"latency": "latency_ms", **options}
        with pytest.raises(ImportFormatError, match=match):
            import_table(path, out, space, "dev", **options)
        assert not out.exists() and not list(tmp_path.glob(".out.jsonl*"))

    good = write_table(tmp_path / "good.csv", space, archs[:3], y[:3])
    text = good.read_text().splitlines()
    nan = tmp_path / "nan.csv"
    nan.write_text("\n".join(text[:2] + [text[2].rsplit(",", 2)[0] + ",nan," + text[2].rsplit(",", 1)[1]]
                             + text[3:]) + "\n")
    refused(nan, r"nan.csv:3: latency column 'latency_ms' is nan")
    refused(good, r"good.csv:1: no latency column 'latency_sec'", latency="latency_sec")
    refused(good, r"did you mean 'latency_ms'", latency="latency_mss")
    short = tmp_path / "short.csv"
    short.write_text("\n".join(text + ["1,2,3"]) + "\n")
    refused(short, rf"short.csv:5: 3 cells, but the header has {columns} columns")
    rows = list(csv.reader(good.read_text().splitlines()))
    rows[2][rows[0].index("kernel_sizes.0")] = "9"
    wrong_choice = tmp_path / "choice.csv"
    with open(wrong_choice, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    refused(wrong_choice, r"choice.csv:3: not an architecture of the space: kernel_sizes.0 = 9.* allowed")
    negative = tmp_path / "negative.csv"
    negative.write_text("block,latency_ms\n" + space.blocks(archs[0])[0][1].key + ",-1\n")
    refused(negative, r"negative.csv:2: latency column 'latency_ms' = -1", block_column="block")
    unknown_block = tmp_path / "unknown_block.csv"
    unknown_block.write_text("block,latency_ms\nstem:resolution=33:in_channels=3:out_channels=16:kernel=3:stride=2:"
                             "activation=h_swish,1.0\n")
    refused(unknown_block, r"unknown_block.csv:2: block stem:resolution=33.* does not exist", block_column="block")
    no_genes = tmp_path / "no_genes.csv"
    no_genes.write_text("macs,latency_ms\n1,2\n")
    refused(no_genes, r"say what each row measured")
    # an existing output is never replaced without --overwrite
    out.write_text("keep\n")
    with pytest.raises(ProfileError, match="already exists"):
        import_table(good, out, space, "dev", latency="latency_ms")
    assert out.read_text() == "keep\n"


# --- Once-for-All lookup tables -------------------------------------------------------------------------------
def ofa_lut_network_latency(lut: dict, space, arch) -> float:
    """Once-for-All's MBv3LatencyTable.predict_network_latency_given_config, on our architecture: the oracle."""
    def query(kind, inp, out, **fields):
        key = "-".join([kind, "input:" + "x".join(map(str, inp)), "output:" + "x".join(map(str, out))]
                       + [f"{k}:{v}" for k, v in fields.items()])
        return lut[key]["mean"]

    size, total = arch.resolution, 0.0
    total += query("Conv", [size, size, 3], [(size + 1) // 2, (size + 1) // 2, space.stem_width])
    size = (size + 1) // 2
    convs = [(space.stem_width, space.first_block_width, space.stem_width, 3, 1, False, "relu")]
    for stage, index, kernel, expand in arch.active_blocks():
        cin = space.block_in_channels(stage, index)
        convs.append((cin, space.stage_widths[stage], space.mid_channels(cin, expand), kernel,
                      space.stage_strides[stage] if index == 0 else 1, space.stage_use_se[stage],
                      space.stage_activations[stage]))
    for cin, cout, mid, kernel, stride, se, act in convs:
        out = int((size - 1) / stride + 1)
        total += query("expanded_conv", [size, size, cin], [out, out, cout], expand=mid, kernel=kernel,
                       stride=stride, idskip=int(stride == 1 and cin == cout), se=int(se), hs=int(act == "h_swish"))
        size = out
    final, mix = space.final_expand_width, space.feature_mix_width
    total += query("Conv_1", [size, size, space.stage_widths[-1]], [size, size, final])
    total += query("AvgPool2D", [size, size, final], [1, 1, final])
    total += query("Conv_2", [1, 1, final], [1, 1, mix])
    total += query("Logits", [1, 1, mix], [space.num_classes])
    return total


def test_ofa_lookup_table_import_matches_once_for_all_and_exports_back(tmp_path):
    space = get_space("ofa-mbv3-w1.2")
    lut = yaml.safe_load(LUT.read_text())
    out = tmp_path / "note10.blocks.jsonl"
    assert import_tool.main(["--format", "ofa-lut", str(LUT), "--space", "ofa-mbv3-w1.2", "--device", "note10",
                             "--out", str(out)]) == 0
    profile = read_profile(out)
    assert profile.level == "block" and len(profile) == len(lut) - 3  # the head's four entries are one block
    table = profile.block_latencies("latency_ms", "mean")
    rng = np.random.default_rng(0)
    for arch in space.sample(rng, n=25):
        arch = space.parse({**arch.to_dict(), "resolution": 160})
        ours = sum(table[block.key] for _, block in space.blocks(arch))
        assert ours == pytest.approx(ofa_lut_network_latency(lut, space, arch), rel=1e-12)
    head = next(r for r in profile.records if r["key"].startswith("head:"))
    parts = [lut[k] for k in lut if k.startswith(("Conv_1", "AvgPool2D", "Conv_2", "Logits"))]
    assert head["latency_ms"]["std"] == pytest.approx(math.sqrt(sum(p["std"] ** 2 for p in parts)))
    # export: every block entry comes back; the head's latency sits in Conv_1
    exported = tmp_path / "lut.yaml"
    assert import_tool.main(["--format", "ofa-lut", "--export", str(out), "--out", str(exported)]) == 0
    back = yaml.safe_load(exported.read_text())
    assert set(back) == set(lut)
    for key, value in lut.items():
        if key.startswith(("AvgPool2D", "Conv_2", "Logits")):
            assert back[key]["mean"] == 0
        elif key.startswith("Conv_1"):
            assert back[key]["mean"] == pytest.approx(sum(p["mean"] for p in parts))
        else:
            assert back[key] == {"count": value["count"], "mean": pytest.approx(value["mean"]),
                                 "std": pytest.approx(value["std"])}


def test_ofa_lookup_table_errors_name_the_line(tmp_path):
    with pytest.raises(ImportFormatError, match=r"note10_160_lookup_table.yaml:5: .*Conv-input:160x160x3.* no "
                                                r"architecture of the space runs"):
        import_ofa_lut(LUT, tmp_path / "x.jsonl", "ofa-mbv3-w1.0", "note10")  # a w1.2 table, a w1.0 space
    text = LUT.read_text().splitlines()
    broken = tmp_path / "broken.yaml"
    broken.write_text("\n".join(text[:8] + ["expanded_conv-input:10x10x136-kernel:3:", "  mean: 1.0"] + text[8:]))
    with pytest.raises(ImportFormatError, match=r"broken.yaml:9: .* is not a lookup-table key"):
        import_ofa_lut(broken, tmp_path / "x.jsonl", "ofa-mbv3-w1.2", "note10")
    negative = tmp_path / "negative.yaml"
    negative.write_text("\n".join(text[:6] + ["  mean: -0.5"] + text[7:]))
    with pytest.raises(ImportFormatError, match=r"negative.yaml:7: 'Conv-input:160x160x3-output:80x80x24' mean = "
                                                r"-0.5"):
        import_ofa_lut(negative, tmp_path / "x.jsonl", "ofa-mbv3-w1.2", "note10")
    no_head = tmp_path / "no_head.yaml"
    no_head.write_text("\n".join(text[4:]))  # drops the AvgPool2D entry
    with pytest.raises(ImportFormatError, match=r"no_head.yaml:\d+: the head of 'Conv_1-input:5x5x192"):
        import_ofa_lut(no_head, tmp_path / "x.jsonl", "ofa-mbv3-w1.2", "note10")
    assert not (tmp_path / "x.jsonl").exists()


# --- Vitis AI -----------------------------------------------------------------------------------------------------
def test_vitis_ai_summaries_become_a_block_profile(tmp_path):
    summary = parse_profile_summary(DATA / "vitis-ai" / "block_a_run1.csv")
    assert [r["cu"] for r in summary["dpu"]] == ["DPUCZDX8G_1:batch-1", "DPUCZDX8G_2:batch-1"]
    assert summary["cpu"][0]["name"] == "vart::Runner::execute_async" and summary["meta"]["Target devices"] == "zcu102"
    with pytest.raises(ImportFormatError, match=r"manifest.yaml:11 \(block_a_run2.csv\): block mbconv:.* is measured "
                                                r"again \(first at .*manifest.yaml:9 \(block_a_run1.csv\)\): pass "
                                                r"--merge-duplicates"):
        import_vitis_ai(DATA / "vitis-ai" / "manifest.yaml", tmp_path / "dpu.jsonl")
    assert not (tmp_path / "dpu.jsonl").exists()
    profile = import_vitis_ai(DATA / "vitis-ai" / "manifest.yaml", tmp_path / "dpu.jsonl", merge_duplicates=True)
    assert [len(m["sources"]) for m in profile.header["merged"]] == [2]
    assert profile.level == "block" and profile.device == "zcu102-dpu-b4096" and profile.header["precision"] == "int8"
    latency = {r["key"].split(":")[0]: r["latency_ms"] for r in profile.records}
    assert latency["stem"]["mean"] == pytest.approx(0.044)
    assert latency["head"]["mean"] == pytest.approx(0.055 + 0.023)  # two DPU subgraphs add
    run1 = (600 * 0.092 + 400 * 0.095) / 1000  # two DPU cores: runs-weighted
    assert latency["mbconv"]["mean"] == pytest.approx((run1 + 0.094) / 2) and latency["mbconv"]["runs"] == 2000


def test_vitis_ai_bad_files_and_manifests(tmp_path):
    source = (DATA / "vitis-ai" / "stem.csv").read_text()
    manifest = (DATA / "vitis-ai" / "manifest.yaml").read_text()
    out = tmp_path / "out.jsonl"

    def refused(files: dict, match, manifest_text=None):
        for name, text in files.items():
            (tmp_path / name).write_text(text)
        (tmp_path / "manifest.yaml").write_text(manifest_text or manifest)
        for name in ("block_a_run1.csv", "block_a_run2.csv", "head.csv", "stem.csv"):
            if not (tmp_path / name).exists():
                (tmp_path / name).write_text((DATA / "vitis-ai" / name).read_text())
        with pytest.raises(ProfileError, match=match):
            import_vitis_ai(tmp_path / "manifest.yaml", out)
        assert not out.exists()

    throughput = "DPU Throughput\ntimestamp,FPS\n0.1,4000\n\nDDR Bandwidth\ntimestamp,DDRC_PORT_S1_Read\n0.1,2.0\n"
    refused({"stem.csv": throughput}, r"stem.csv: no 'DPU Summary' section \(sections found: \['DPU Throughput', "
                                      r"'DDR Bandwidth'\]\)")
    refused({"stem.csv": source.replace("Average Time (ms),", "")}, r"stem.csv:10: the DPU Summary header lacks "
                                                                    r"column\(s\) \['Average Time \(ms\)'\]")
    refused({"stem.csv": source.replace("0.044", "nan")}, r"stem.csv:11: Average Time \(ms\) is 'nan'")
    refused({}, r"manifest.yaml:7: not a valid block: .*unknown kind 'stm'",
            manifest.replace('block_key: "stem:', 'block_key: "stm:'))
    refused({}, r"manifest.yaml:9: block mbconv:.*kernel=9.* does not exist in the mobilenetv3 space",
            manifest.replace('"kernel": 5', '"kernel": 9'))
    refused({}, r"manifest.yaml: unknown manifest key\(s\) \['devcie'\]", manifest.replace("device:", "devcie:"))
    refused({}, r"manifest.yaml:11: entry 2: no file .*missing.csv",
            manifest.replace("file: block_a_run2.csv", "file: missing.csv"))
    with pytest.raises(ImportFormatError, match=r"import format 'vitis' unknown \(did you mean 'vitis-ai'\?\)"):
        check_format("vitis")
    with pytest.raises(SystemExit) as exit_info:  # the command line refuses it while parsing the arguments
        import_tool.main(["--format", "vitis", str(tmp_path / "manifest.yaml"), "--out", str(out)])
    assert exit_info.value.code == 2 and not out.exists()


# --- TFLite benchmark_model ----------------------------------------------------------------------------------------
def test_tflite_benchmark_network_and_block_levels(tmp_path):
    space = get_space("mbv3-small")
    network = import_tflite_benchmark(DATA / "tflite" / "manifest.yaml", tmp_path / "net.jsonl")
    assert network.level == "network" and len(network) == 1
    assert network.records[0]["latency_ms"]["mean"] == pytest.approx(4.003)  # Inference (avg): 4003.0 us
    assert network.records[0]["latency_ms"]["std"] == pytest.approx(0.120)
    assert network.records[0]["latency_ms"]["runs"] == 470
    manifest = (DATA / "tflite" / "manifest.yaml").read_text().replace("level: network", "level: block")
    (tmp_path / "manifest.yaml").write_text(manifest)
    (tmp_path / "net_a.txt").write_text((DATA / "tflite" / "net_a.txt").read_text())
    blocks = import_tflite_benchmark(tmp_path / "manifest.yaml", tmp_path / "blocks.jsonl")
    ops = parse_op_profile(DATA / "tflite" / "net_a.txt")
    arch = network.archs()[0]
    assert [b.key for b in blocks.blocks()] == list(dict.fromkeys(b.key for _, b in space.blocks(arch)))
    assert sum(r["latency_ms"]["mean"] for r in blocks.records) == pytest.approx(sum(o["avg_ms"] for o in ops))
    stem = blocks.records[0]
    assert stem["latency_ms"]["mean"] == pytest.approx(sum(o["avg_ms"] for o in ops if "/stem/" in o["name"]))
    # names without our module names (a delegate fused the graph) cannot be split into blocks
    fused = (DATA / "tflite" / "net_a.txt").read_text()
    for name in ("stem", "first_block", "blocks", "final_expand", "feature_mix", "classifier"):
        fused = fused.replace(f"/{name}", "/op")
    (tmp_path / "net_a.txt").write_text(fused)
    with pytest.raises(ImportFormatError, match="no op name names a block"):
        import_tflite_benchmark(tmp_path / "manifest.yaml", tmp_path / "fused.jsonl")
    (tmp_path / "net_a.txt").write_text("INFO: STARTING!\nINFO: count=5 first=1 curr=1 min=1 max=1 avg=1 std=0\n")
    with pytest.raises(ImportFormatError, match="no 'Run Order' op profile"):
        import_tflite_benchmark(tmp_path / "manifest.yaml", tmp_path / "empty.jsonl")
    (tmp_path / "manifest.yaml").write_text(manifest.replace("level: block", "level: network"))
    with pytest.raises(ImportFormatError, match="no 'Inference timings in us"):
        import_tflite_benchmark(tmp_path / "manifest.yaml", tmp_path / "empty.jsonl")
    assert not list(tmp_path.glob("fused.jsonl")) and not list(tmp_path.glob("empty.jsonl"))
