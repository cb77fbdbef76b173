"""Issue 22: the DPU model's DDR traffic per block, next to a profiler's measured traffic."""

from __future__ import annotations

from pathlib import Path

import pytest

from hardware_profiles.dpu import PROFILER_MB, memory_traffic_comparison, simulate_block
from hardware_profiles.imports.vitis_ai import vitis_ai_profile
from ofa.spaces import block_from_key

NAMED = Path(__file__).parent / "data" / "imports" / "vitis-ai-named"


def test_predicted_traffic_sits_next_to_the_measured_one():
    profile = vitis_ai_profile(NAMED, space="mbv3-small", device="zcu102", skip_outside_space=True)
    rows = memory_traffic_comparison(profile, "dpu-b4096-zcu102")
    assert len(rows) == 3 and {r["key"].split(":")[0] for r in rows} == {"mbconv", "head"}
    head = next(r for r in rows if r["key"].startswith("head:"))
    result = simulate_block(block_from_key(head["key"]), "dpu-b4096-zcu102")
    assert head["measured_mb"] == pytest.approx(0.118) and head["measured_ms"] == pytest.approx(2.459)
    assert head["predicted_mb"] == pytest.approx((result.ddr_read_bytes + result.ddr_write_bytes) / PROFILER_MB)
    assert head["ratio"] == pytest.approx(head["predicted_mb"] / 0.118)
    assert head["predicted_ms"] == pytest.approx(result.latency_ms) and head["spilled"] == list(result.spilled)
