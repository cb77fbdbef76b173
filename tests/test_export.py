"""Deploying one subnet: ONNX parity, ncnn, INT8 with its FP32 comparison,
TensorRT's clear error without a GPU, and the export_onnx command line."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ofa.data import build_datasets
from ofa.errors import BackendUnavailableError, ConfigError
from ofa.export import export_checked, load_subnet_weights
from ofa_pipeline.deploy import deploy_subnet
from ofa.spaces import get_space
from ofa.supernets import create_supernet
from ofa.training.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def space():
    return get_space("mbv3-small")


@pytest.fixture(scope="module")
def supernet(space):
    torch.manual_seed(0)
    return create_supernet(space).eval()


@pytest.fixture(scope="module")
def digits():
    return build_datasets("digits", resolution=32, augmentation="none")


def export_tool():
    return importlib.import_module("ofa_pipeline.commands.export_onnx")


def test_onnx_export_reproduces_pytorch_at_several_batch_sizes(space, supernet, tmp_path):
    static = supernet.extract(space.sample(rng=3))
    report = export_checked(static, tmp_path / "m.onnx")
    assert report["parity_max_abs_diff"] <= 1e-4 * max(1.0, report["output_max_abs"]) and report["opset"] == 17
    from ofa.export import onnx_logits

    images = torch.randn(5, 3, static.arch.resolution, static.arch.resolution)
    with torch.no_grad():
        expected = static(images).numpy()
    scale = max(1.0, float(np.abs(expected).max()))
    assert np.abs(onnx_logits(tmp_path / "m.onnx", images.numpy()) - expected).max() <= 1e-4 * scale


def test_deploy_writes_weights_onnx_ncnn_and_int8_report(space, supernet, digits, tmp_path):
    arch = space.sample(rng=5)
    static, report = deploy_subnet(supernet, arch, tmp_path, "net", data=digits, calib_images=256, ncnn=True,
                                   int8=True, int8_calib_images=128)
    for name in ("net.pt", "net.onnx", "net.ncnn.param", "net.ncnn.bin", "net.int8.onnx"):
        assert (tmp_path / name).is_file(), name
    assert report["bn_recalibration_images"] == 256
    assert report["parity_max_abs_diff"] <= 1e-4 * max(1.0, report["output_max_abs"])
    assert report["ncnn_parity_max_abs_diff"] <= 1e-3 * max(1.0, report["output_max_abs"])
    fp32, int8 = report["precision"]["fp32"], report["precision"]["int8"]
    assert 0 <= fp32["top1"] <= 100 and 0 <= int8["top1"] <= 100
    assert fp32["latency_ms"] > 0 and int8["latency_ms"] > 0
    assert 0 <= int8["label_loyalty"] <= 1 and 0 <= int8["probability_loyalty"] <= 1
    assert int8["size_bytes"] < fp32["size_bytes"]
    # the saved weights rebuild the same network (BN re-calibrated, not the supernet's statistics)
    loaded = load_subnet_weights(tmp_path / "net.pt")
    x = static.example_inputs(2)[0]
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), static(x))
        assert not torch.allclose(supernet.extract(arch).eval()(x), static(x))


def test_tensorrt_without_tensorrt_is_a_clear_error_before_any_work(space, supernet, tmp_path):
    if importlib.util.find_spec("tensorrt") is not None and torch.cuda.is_available():
        pytest.skip("TensorRT and a GPU are present: the engine build is exercised on GPU machines")
    with pytest.raises(BackendUnavailableError, match="TensorRT"):
        deploy_subnet(supernet, space.smallest(), tmp_path, tensorrt=True)
    assert not any(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="INT8"):
        deploy_subnet(supernet, space.smallest(), tmp_path, int8=True)


def test_export_onnx_command_line(space, supernet, tmp_path, capsys):
    checkpoint = save_checkpoint(tmp_path / "supernet.pt", trainer="mobilenetv3", space=space,
                                 config={"data": {"dataset": "digits"}}, model=supernet)
    arch = space.sample(rng=7)
    (tmp_path / "arch.json").write_text(json.dumps({"arch": arch.to_dict(), "note": "as specialize writes it"}))
    tool = export_tool()
    code = tool.main(["--supernet", str(checkpoint), "--arch", str(tmp_path / "arch.json"),
                      "--out", str(tmp_path / "out" / "model.onnx"), "--calib-images", "128"])
    assert code == 0
    assert "parity max |diff|" in capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "model.export.json").read_text())
    assert report["arch"] == arch.to_dict()
    assert report["parity_max_abs_diff"] <= 1e-4 * max(1.0, report["output_max_abs"])
    # bad input: a named error and exit code 2, nothing written
    (tmp_path / "bad.json").write_text(json.dumps({"kernel_sizes": [9]}))
    code = tool.main(["--supernet", str(checkpoint), "--arch", str(tmp_path / "bad.json"),
                      "--out", str(tmp_path / "bad" / "model.onnx")])
    assert code == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
