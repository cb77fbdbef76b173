"""Latency predictors from shipped data for a space no shipped network profile
measured: the shipped block profile of a simulator reused, the blocks it lacks
simulated here (or predicted where they cannot be), the network-level correction
fitted on the shipped networks of the profile's own space, and a clear refusal
where no shipped profile serves the space. Seconds: fpga-dpu is an analytical model."""

from types import SimpleNamespace

import numpy as np
import pytest

from hardware_profiles import read_profile, shipped_profile_path
from ofa.errors import BackendUnavailableError, ConfigError, PredictorError
from ofa.spaces import get_space
from ofa_pipeline.shipped import shipped_latency_predictor
from predictors import load_predictor
from predictors.blocks import space_blocks

DEVICE = "fpga-dpu"


@pytest.fixture(scope="module")
def original():
    """The original space's shipped networks on the device (measured, not predicted)."""
    return read_profile(shipped_profile_path("mbv3-small", DEVICE))


@pytest.fixture(scope="module")
def three_classes(tmp_path_factory):
    """The README's own-data supernet: mbv3-small trained on 3 classes (another fingerprint)."""
    space = get_space("mbv3-small", num_classes=3)
    lines = []
    path, report = shipped_latency_predictor(space, DEVICE, tmp_path_factory.mktemp("predictors"), log=lines.append)
    return space, path, report, lines


def predictions_match_the_original(space, predictor, original, rel=0.03) -> None:
    """On the architectures of the original space's measured networks (the same genes;
    only the classifier differs, a fraction of a percent of the latency), every
    prediction within ``rel`` of the measured latency."""
    genes = original.space.to_genes(original.archs())
    ours = predictor.predict_archs(space.from_genes(genes))
    label = predictor.metrics_["label"]
    error = ours / original.latencies(label["metric"], label["statistic"]) - 1
    assert np.all(np.isfinite(ours)) and np.all(ours > 0)
    assert np.max(np.abs(error)) < rel, np.max(np.abs(error))


def test_another_classifier_reuses_the_shipped_blocks_and_simulates_only_its_heads(three_classes, original):
    space, path, report, lines = three_classes
    assert space.fingerprint != original.space.fingerprint
    heads = {b.key for b in space_blocks(space) if b.kind == "head"}
    assert report["source"] == "block profile" and report["profile"] == f"mbv3-small_{DEVICE}"
    assert report["blocks_total"] == len(space_blocks(space))
    assert report["blocks_priced_here"] == len(heads) and report["blocks_predicted"] == 0
    assert report["blocks_reused"] == report["blocks_total"] - len(heads)
    assert report["priced_here_by"].startswith(f"simulated on {DEVICE}")
    merged = read_profile(report["block_profile"])
    assert merged.space.fingerprint == space.fingerprint
    assert {r["key"] for r in merged.records} >= heads
    assert any(f"{report['blocks_reused']} of the space's" in line for line in lines)
    # the network-level correction, fitted on the shipped networks of the profile's own space
    correction = report["correction"]
    assert correction["network_profile"] == f"mbv3-small_{DEVICE}" and correction["networks"] == len(original)
    assert correction["space_fingerprint"] == original.space.fingerprint and correction["cv_mape_percent"] < 1
    assert report["source_space_check"]["median_error_percent"] < -1  # plain block sums: off, the correction fixes it
    assert any(f"fitted on the {len(original)} shipped networks" in line for line in lines)
    assert not any("WARNING" in line for line in lines)
    assert report["intervals"] and "not residuals measured on networks of this space" in report["intervals_note"]

    predictor = load_predictor(path, space=space)
    assert predictor.model_name == "block-sum" and predictor.interval_residuals_ is not None
    assert predictor.metrics_["shipped"]["profile"] == report["profile"]
    assert predictor.metrics_["correction_source"]["space_fingerprint"] == original.space.fingerprint
    predictions_match_the_original(space, predictor, original, rel=0.02)


def test_blocks_that_cannot_be_priced_here_are_predicted_and_the_report_says_why(tmp_path, monkeypatch, original):
    from hardware_profiles.backends.fpga_dpu import DPUBackend

    def unavailable(self):
        raise BackendUnavailableError("the DPU model is switched off in this test")

    monkeypatch.setattr(DPUBackend, "check_available", unavailable)
    space = get_space("mbv3-small", num_classes=3)
    path, report = shipped_latency_predictor(space, DEVICE, tmp_path, log=lambda line: None)
    heads = [b for b in space_blocks(space) if b.kind == "head"]
    assert report["blocks_priced_here"] == 0 and report["blocks_predicted"] == len(heads)
    assert "switched off" in report["why_predicted"] and "block model" in report["why_predicted"]
    predictions_match_the_original(space, load_predictor(path, space=space), original)


def test_latency_confidence_uses_the_source_intervals_or_is_refused_without_source_networks(
        three_classes, tmp_path, monkeypatch, original):
    import ofa_pipeline.shipped as shipped
    from ofa_pipeline.commands.specialize import check_shipped_intervals

    space, path, report, _ = three_classes
    check_shipped_intervals(SimpleNamespace(latency_confidence=0.9), load_predictor(path, space=space))

    monkeypatch.setattr(shipped, "_source_network_profile", lambda source, device: None)
    lines = []
    path, report = shipped_latency_predictor(space, DEVICE, tmp_path, log=lines.append)
    predictor = load_predictor(path, space=space)
    assert report["correction"] is None and "no shipped network profile" in report["why_no_correction"]
    assert not report["intervals"] and predictor.interval_residuals_ is None
    assert "--latency-confidence" in report["intervals_note"]
    assert report["source_space_check"]["networks"] == len(original)  # plain sums, and how far off they are
    assert any("no network correction" in line for line in lines)
    check_shipped_intervals(SimpleNamespace(latency_confidence=None), predictor)  # point predictions: fine
    with pytest.raises(PredictorError, match="--latency-confidence 0.9") as error:
        check_shipped_intervals(SimpleNamespace(latency_confidence=0.9), predictor)
    assert "no prediction intervals" in str(error.value) and "ofa-fit-predictor --blocks" in str(error.value)
    predictions_match_the_original(space, predictor, original, rel=0.15)  # plain block sums: -4% to -12%


def test_a_space_no_shipped_profile_serves_is_refused_naming_what_was_considered(tmp_path):
    space = get_space("mbv3-small", stage_widths=(32, 40, 56, 72))  # other widths: other blocks
    with pytest.raises(ConfigError) as error:
        shipped_latency_predictor(space, DEVICE, tmp_path / "out", log=lambda line: None)
    message = str(error.value)
    assert space.fingerprint in message
    assert f"network profile mbv3-small_{DEVICE}" in message and f"block profile mbv3-small_{DEVICE}" in message
    assert "at least 50%" in message and "--latency-predictor" in message
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="no shipped profile is for device 'gpu-tensorrt'"):
        shipped_latency_predictor(space, "gpu-tensorrt", tmp_path / "out", log=lambda line: None)
