"""Issue 22: one table route. ``ofa-import-profile --format table`` and ``ofa-fit-predictor
--profile table.csv`` read a table with the same reader (``hardware_profiles.imports.table.
table_profile``), so a table one accepts the other does: a HAT-style table of feature columns
imports to a feature-row profile, and fitting on that profile equals fitting on the table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hardware_profiles import read_profile
from hardware_profiles.imports.table import table_profile
from ofa.errors import ConfigError, OFAError
from ofa_pipeline.commands import fit_predictor as fit_tool
from ofa_pipeline.commands import import_profile as import_tool

HAT_TABLE = Path(__file__).parent / "data" / "imports" / "table" / "hat_wmt14ende_raspberrypi_first12.csv"
HAT_FEATURES = ("encoder_embed_dim,encoder_layer_num,encoder_ffn_embed_dim_avg,encoder_self_attention_heads_avg,"
                "decoder_embed_dim,decoder_layer_num,decoder_ffn_embed_dim_avg,decoder_self_attention_heads_avg,"
                "decoder_ende_attention_heads_avg,decoder_arbitrary_ende_attn_avg")
TOTAL = "latency_mean_encoder+latency_mean_decoder"
TOTAL_STD = "latency_std_encoder+latency_std_decoder"


def import_hat(tmp_path, *extra):
    return import_tool.main(["--format", "table", str(HAT_TABLE), "--device", "raspberrypi", "--latency-column",
                             TOTAL, "--std-column", TOTAL_STD, "--feature-columns", HAT_FEATURES,
                             "--out", str(tmp_path / "rpi.jsonl"), *extra])


def test_a_feature_table_imports_to_a_feature_row_profile(tmp_path, capsys):
    assert import_hat(tmp_path) == 0
    profile = read_profile(tmp_path / "rpi.jsonl")
    assert profile.level == "features" and profile.space is None and len(profile) == 12
    assert profile.feature_names == HAT_FEATURES.split(",")
    first = profile.records[0]
    assert first["features"]["encoder_embed_dim"] == 512 and first["source"] == {
        "file": HAT_TABLE.name, "lines": [2]}
    assert first["latency_ms"]["median"] == pytest.approx(1990.0972843170166 + 5932.554125785828)
    assert first["latency_ms"]["std"] == pytest.approx(np.hypot(413.8751029968262, 45.89879512786865))
    assert "wrote 12 features record(s)" in capsys.readouterr().out
    with pytest.raises(Exception):
        profile.archs()  # rows of free columns are not architectures


def test_one_reader_gives_both_commands_the_same_rows(tmp_path):
    features = HAT_FEATURES.split(",")
    in_memory = table_profile(HAT_TABLE, None, "raspberrypi", latency=TOTAL, feature_columns=features)
    assert import_hat(tmp_path) == 0
    written = read_profile(tmp_path / "rpi.jsonl")
    np.testing.assert_array_equal(in_memory.feature_matrix(), written.feature_matrix())
    np.testing.assert_array_equal(in_memory.latencies(), written.latencies())
    # fitting the table and fitting its imported profile: the same rows, split and model
    common = ["--device", "raspberrypi", "--model", "linear", "--test-fraction", "0"]
    assert fit_tool.main(["--profile", str(HAT_TABLE), "--latency-column", TOTAL, "--feature-columns", HAT_FEATURES,
                          "--out", str(tmp_path / "from_table.skops"), *common]) == 0
    assert fit_tool.main(["--profile", str(tmp_path / "rpi.jsonl"), "--out", str(tmp_path / "from_profile.skops"),
                          *common]) == 0
    from_table = json.loads((tmp_path / "from_table.json").read_text())
    from_profile = json.loads((tmp_path / "from_profile.json").read_text())
    assert from_table["features"] == from_profile["features"] == features
    assert from_table["cv_chosen"]["mape"] == pytest.approx(from_profile["cv_chosen"]["mape"])


@pytest.mark.parametrize("extra, message", [
    (["--arch-column", "arch"], "rows name what they measured in one way"),
    (["--feature-columns", "encoder_embed_dim,no_such_column"], "no feature column 'no_such_column'"),
    (["--merge-duplicates"], "feature rows are kept row by row"),
])
def test_the_same_refusals_from_both_commands(tmp_path, capsys, extra, message):
    base = ["--latency-column", TOTAL, "--device", "raspberrypi"]
    features = [] if "--feature-columns" in extra else ["--feature-columns", HAT_FEATURES]
    assert import_tool.main(["--format", "table", str(HAT_TABLE), "--out", str(tmp_path / "p.jsonl"),
                             *base, *features, *extra]) != 0
    assert message in capsys.readouterr().err
    assert fit_tool.main(["--profile", str(HAT_TABLE), "--out", str(tmp_path / "p.skops"), *base, *features,
                          *extra]) != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "p.jsonl").exists() and not (tmp_path / "p.skops").exists()


def test_rows_that_name_architectures_still_need_a_space(tmp_path):
    with pytest.raises(ConfigError, match="needs a space"):
        table_profile(HAT_TABLE, None, "raspberrypi", latency=TOTAL)
    assert issubclass(ConfigError, OFAError)
