"""Issue 22: block-level transfer re-weights the source simulator's latency components
(compute, memory stalls, per-op overhead) instead of scaling one predicted latency."""

from __future__ import annotations

import numpy as np
import pytest

from hardware_profiles import read_profile, shipped_block_profile_path
from predictors.blocks import (BlockLatencyRegressor, fit_block_predictor, record_components, select_block_model,
                               source_block_table)


@pytest.fixture(scope="module")
def dpu():
    profile = read_profile(shipped_block_profile_path("mbv3-small", "fpga-dpu"))
    table, components = source_block_table(profile, profile.blocks())
    return profile, table, components


def test_components_split_the_simulated_latency(dpu):
    profile, table, components = dpu
    record = next(r for r in profile.records if r["engine_cycles"]["ddr"] > 0)
    parts = record_components(record)
    assert set(parts) == {"alu", "conv", "ddr", "eltwise", "overhead"}
    assert sum(parts.values()) == pytest.approx(record["latency_ms"]["median"])
    assert sum(components[record["key"]].values()) == pytest.approx(table[record["key"]])
    scalesim = {"cycles": 1000, "array_cycles": 600, "overhead_cycles": 300, "latency_ms": {"median": 2.0}}
    assert record_components(scalesim) == pytest.approx({"array": 1.2, "other": 0.2, "overhead": 0.6})
    assert record_components({"latency_ms": {"median": 1.0}, "cpu_time_ms": {"median": 1.0}}) is None
    timed = read_profile(shipped_block_profile_path("mbv3-small", "cpu-ort"))
    assert source_block_table(timed, timed.blocks()[:5])[1] is None


def test_re_weighted_components_recover_a_device_whose_parts_scale_differently(dpu):
    _, table, components = dpu
    keys = sorted(k for k in components if not k.startswith("null:") and table[k] > 0)
    # a device like the DPU whose memory stalls cost 2.5x and per-op overheads 0.5x of the model's
    truth = {k: 1.3 * (components[k]["conv"] + components[k]["alu"] + components[k]["eltwise"])
             + 2.5 * components[k]["ddr"] + 0.5 * components[k]["overhead"] for k in keys}
    rng = np.random.default_rng(0)
    fit = list(rng.choice(keys, 40, replace=False))
    held = [k for k in keys if k not in fit]
    y = np.array([truth[k] for k in fit])
    expected = np.array([truth[k] for k in held])

    def mape(model):
        return float(np.mean(np.abs(model.fit(fit, y).predict(held) / expected - 1)))

    weighted = mape(BlockLatencyRegressor("components", table, components))
    assert weighted < 0.05 and weighted < mape(BlockLatencyRegressor("scale", table)) / 2
    # with 3 blocks the weights stay near the one scale factor (shrunk towards it)
    few = BlockLatencyRegressor("components", table, components).fit(fit[:3], y[:3])
    ratios = few.component_weights_ / few.scale_factor_
    assert np.all(np.abs(ratios - 1) < 0.9)


def test_the_choice_offers_components_and_can_prefer_the_default(dpu):
    _, table, components = dpu
    keys = sorted(k for k in components if not k.startswith("null:"))[:12]
    y = np.array([2 * table[k] for k in keys])
    name, metrics = select_block_model(keys, y, table, source_components=components)
    assert "components" in metrics and metrics[name]["mape"] == min(m["mape"] for m in metrics.values())
    assert select_block_model(keys[:3], y[:3], table, source_components=components) == ("components", {})
    kept, _ = select_block_model(keys, y, table, source_components=components, prefer_default=True)
    assert kept == "components"  # an exact 2x device: nothing is clearly better than the default
    predictor = fit_block_predictor(dict(zip(keys, y)), space="mbv3-small", source="fpga-dpu")
    assert "components" in predictor.metrics_["blocks"]["cv"]
