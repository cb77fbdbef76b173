"""From a chosen subnet to deployable files: ONNX with a parity check, ncnn
(via pnnx), TensorRT engines, and INT8 post-training quantisation with
onnxruntime, compared side by side with FP32.

Every runtime is imported lazily; a missing one raises
:class:`~ofa.errors.BackendUnavailableError` saying what to install.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hardware_profiles.protocol import (WALL_AND_THREAD_CLOCKS, WALL_CLOCK, MeasurementProtocol, Runner,
                                        measure_runners)

from ofa.errors import ConfigError
from ofa.families import get_family
from ofa.evaluation import label_loyalty, probability_loyalty, top1_accuracy
from ofa.export import (DEFAULT_OPSET, ExportParityError, build_tensorrt_engine, check_opset, export_checked,
                        onnx_logits, onnxruntime_session, quantize_int8, require_tensorrt, save_subnet_weights)
from ofa.io import atomic_write_bytes

__all__ = ["ExportParityError", "compare_precisions", "convert_ncnn", "deploy_subnet", "export_checked",
           "onnx_logits"]


# --- ncnn -----------------------------------------------------------------------------------------------
def convert_ncnn(model: nn.Module, out_dir: str | os.PathLike, name: str = "model",
                 tolerance: float = 1e-3) -> dict:
    """Convert a static subnet to ncnn (``name.ncnn.param`` / ``.bin``) the way
    the ``mobile-ncnn`` backend does (ONNX -> pnnx -> ncnn, refusing layers
    ncnn lacks), and check ncnn's output against PyTorch on one input before
    writing anything to ``out_dir``."""
    from hardware_profiles.backends.base import example_inputs
    from hardware_profiles.backends.mobile_ncnn import NcnnRunner

    model.eval()
    runner = NcnnRunner(model, batch_size=1, threads=1, precision="fp32")  # converts in a temporary directory
    try:
        got = runner.outputs()[0].reshape(-1)
        with torch.no_grad():
            expected = model(*example_inputs(model, 1)).numpy().reshape(-1)  # the inputs the runner was given
        diff = float(np.max(np.abs(got - expected)))
        scale = max(1.0, float(np.max(np.abs(expected))))
        if not diff <= tolerance * scale:
            raise ExportParityError(f"ncnn output differs from PyTorch by {diff:.3g} on outputs up to {scale:.3g} "
                                    f"(allowed {tolerance:g} x max(1, output))")
        converted = runner.export.directory
        out_dir = Path(out_dir)
        paths = [atomic_write_bytes(out_dir / f"{name}.ncnn.{ext}", (converted / f"model.ncnn.{ext}").read_bytes())
                 for ext in ("param", "bin")]
    finally:
        runner.close()
    return {"ncnn_param": str(paths[0]), "ncnn_bin": str(paths[1]), "ncnn_parity_max_abs_diff": diff,
            "ncnn_tolerance": tolerance, "ncnn_inputs": runner.input_names, "ncnn_outputs": runner.output_names}


class OnnxFileRunner(Runner):
    """An ONNX file on onnxruntime (one thread), timed by the profiling protocol."""

    def __init__(self, path: str | os.PathLike, example: np.ndarray, threads: int = 1):
        self.session = onnxruntime_session(path, threads)
        self.feeds = {self.session.get_inputs()[0].name: np.ascontiguousarray(example, dtype=np.float32)}
        self.input_shapes = [example.shape]
        self.clocks = WALL_AND_THREAD_CLOCKS if threads == 1 else WALL_CLOCK

    def run(self) -> None:
        self.session.run(None, self.feeds)


def compare_precisions(files: dict[str, str | os.PathLike], images: np.ndarray, labels: np.ndarray,
                       reference: str = "fp32", runs: int = 30) -> dict:
    """Top-1 accuracy (%), latency (median ms, one thread, measured with the
    profiling protocol, files interleaved) and loyalty to the ``reference``
    file (see :mod:`ofa.evaluation`) for each ONNX file in ``files``
    (e.g. ``{"fp32": ..., "int8": ...}``)."""
    logits = {name: onnx_logits(path, images) for name, path in files.items()}
    runners = [OnnxFileRunner(path, images[:1]) for path in files.values()]
    timings = measure_runners(runners, MeasurementProtocol(warmup=5, runs=runs), rng=0)
    labels = torch.as_tensor(np.asarray(labels))
    report = {}
    for (name, path), timing in zip(files.items(), timings):
        entry = {"onnx": str(path), "top1": top1_accuracy(torch.from_numpy(logits[name]), labels),
                 "latency_ms": timing["latency_ms"]["median"], "size_bytes": Path(path).stat().st_size}
        if "cpu_time_ms" in timing:
            entry["cpu_time_ms"] = timing["cpu_time_ms"]["median"]
        if name != reference:
            student, teacher = torch.from_numpy(logits[name]), torch.from_numpy(logits[reference])
            entry["label_loyalty"] = label_loyalty(student, teacher)
            entry["probability_loyalty"] = probability_loyalty(student, teacher)
        report[name] = entry
    return report


# --- one subnet, end to end -------------------------------------------------------------------------------
def checkpoint_data(checkpoint: str | os.PathLike, source: str | os.PathLike | None = None):
    """The data a supernet checkpoint was trained on (or ``source`` instead), as its family defines it."""
    from ofa.families import get_family
    from ofa.training.checkpoint import checkpoint_space, load_checkpoint

    return get_family(checkpoint_space(load_checkpoint(checkpoint))).checkpoint_data(checkpoint, source)


def image_data(data) -> bool:
    from ofa.families import get_family

    return get_family("mobilenetv3").is_data(data)


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def deploy_subnet(supernet: nn.Module, arch, out_dir: str | os.PathLike, name: str = "model", data=None,
                  calib_images: int = 2000, opset: int = DEFAULT_OPSET, ncnn: bool = False, tensorrt: bool = False,
                  fp16: bool = False, int8: bool = False, int8_calib_images: int = 512,
                  static: nn.Module | None = None) -> tuple[nn.Module, dict]:
    """Extract ``arch`` from ``supernet`` (or take ``static``, its fine-tuned
    weights), re-calibrate its BatchNorm statistics
    on ``calib_images`` training images of ``data`` (:class:`ofa.data.DataSplits`;
    models without BatchNorm, e.g. Transformers, keep their weights as they
    are), and write into ``out_dir``:

    * ``name.pt`` - the static subnet's weights: ``{"arch", "space", "state_dict"}``,
      loadable with ``torch.load(..., weights_only=True)``;
    * ``name.onnx`` - ONNX, dynamic batch, parity-checked against PyTorch;
    * with ``ncnn``: ``name.ncnn.param`` / ``.bin``; with ``tensorrt``: ``name.engine``;
    * with ``int8``: ``name.int8.onnx`` calibrated on training images, with
      accuracy, latency and loyalty compared to FP32 on the validation split.

    Returns the static (eval-mode) subnet and a report dict."""
    from ofa.data import fixed_subset
    from ofa.evaluation import recalibrate_bn

    out_dir = Path(out_dir)
    arch = supernet.space.parse(arch)
    check_opset(opset)
    if tensorrt:
        require_tensorrt()  # before any work
    if int8 and not image_data(data):
        raise ConfigError("INT8 quantisation is calibrated on training images: it needs an image model and its "
                          "data set (--data)")
    static = supernet.extract(arch) if static is None else static
    report: dict = {"arch": arch.to_dict(), "space_fingerprint": supernet.space.fingerprint}
    calib = None
    if image_data(data):
        calib = fixed_subset(data.train, calib_images).tensors(resolution=arch.resolution)[0]
        if has_batchnorm(static):
            report["bn_recalibration_images"] = recalibrate_bn(static, calib)
    static.eval()
    save_subnet_weights(static, supernet.space, out_dir / f"{name}.pt")
    report["weights"] = str(out_dir / f"{name}.pt")
    onnx_path = out_dir / f"{name}.onnx"
    report.update(export_checked(static, onnx_path, opset, write=get_family(supernet.space).write_onnx))
    if ncnn:
        report.update(convert_ncnn(static, out_dir, name))
    if tensorrt:
        engine, info = build_tensorrt_engine(static, batch_size=1, precision="fp16" if fp16 else "fp32")
        report.update({"tensorrt_engine": str(atomic_write_bytes(out_dir / f"{name}.engine", engine)), **info})
    if int8:
        int8_path = quantize_int8(onnx_path, out_dir / f"{name}.int8.onnx", calib[:int8_calib_images].numpy())
        images, labels = data.val.tensors(resolution=arch.resolution)
        report["precision"] = compare_precisions({"fp32": onnx_path, "int8": int8_path}, images.numpy(),
                                                 labels.numpy())
        report["int8_calibration_images"] = int(min(len(calib), int8_calib_images))
    return static, report
