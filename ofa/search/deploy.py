"""From a chosen subnet to deployable files: ONNX with a parity check, ncnn
(via pnnx), TensorRT engines, and INT8 post-training quantisation with
onnxruntime, compared side by side with FP32.

Every runtime is imported lazily; a missing one raises
:class:`~ofa.errors.BackendUnavailableError` saying what to install.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hardware_profiles.protocol import (WALL_AND_THREAD_CLOCKS, WALL_CLOCK, MeasurementProtocol, Runner,
                                        measure_runners)

from ..evaluation import label_loyalty, probability_loyalty, top1_accuracy
from ..errors import BackendUnavailableError, ConfigError, OFAError
from ..export import DEFAULT_OPSET, export_model, onnx_parity, onnxruntime_session
from ..io import atomic_write_bytes

PARITY_TOLERANCE = 1e-4  # max |PyTorch - onnxruntime| on the logits


class ExportParityError(OFAError):
    """An exported file does not reproduce the PyTorch model's outputs."""


def _inputs(model: nn.Module, batch_size: int) -> tuple[torch.Tensor, ...]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(batch_size)
        inputs = model.example_inputs(batch_size)
    return inputs if isinstance(inputs, tuple) else (inputs,)


def export_checked(model: nn.Module, path: str | os.PathLike, opset: int = DEFAULT_OPSET,
                   tolerance: float = PARITY_TOLERANCE, batch_sizes=(1, 3)) -> dict:
    """Export a static subnet to ONNX (dynamic batch axis) and check that
    onnxruntime reproduces PyTorch at several batch sizes.

    The check is ``max |PyTorch - onnxruntime| <= tolerance * max(1, max |logit|)``:
    absolute for ordinary logits, relative for networks whose outputs are
    large (float32 rounding grows with magnitude, e.g. untrained weights).
    Returns ``{"onnx", "opset", "parity_max_abs_diff", "output_max_abs",
    "parity_batch_sizes", "tolerance"}``; raises :class:`ExportParityError`."""
    model.eval()
    extra_graphs = _export_graphs(model, Path(path), opset)
    diff, scale = 0.0, 1.0
    for batch_size in batch_sizes:
        inputs = _inputs(model, batch_size)
        diff = max(diff, onnx_parity(model, path, inputs))
        with torch.no_grad():
            output = model(*inputs)
        scale = max(scale, float(output.abs().max()))
    report = {"onnx": str(path), "opset": opset, "dynamic_axes": ("batch and sequence length" if extra_graphs
                                                      else "batch (axis 0 of every input and output)"),
              "parity_max_abs_diff": diff, "output_max_abs": scale, "parity_batch_sizes": list(batch_sizes),
              "tolerance": tolerance, **extra_graphs}
    if not diff <= tolerance * scale:
        raise ExportParityError(f"{path}: onnxruntime differs from PyTorch by {diff:.3g} on outputs up to "
                                f"{scale:.3g} (allowed {tolerance:g} x max(1, output)); the export is not faithful "
                                f"- try another --opset")
    return report


def _export_graphs(model: nn.Module, path: Path, opset: int) -> dict:
    """Write ``path`` (the whole network); for an encoder-decoder Transformer also
    ``<stem>.encoder.onnx`` and ``<stem>.decoder_step.onnx`` for incremental
    decoding, with dynamic batch and sequence axes. Returns the extra files."""
    arch = getattr(model, "arch", None)
    if not getattr(arch, "has_decoder", False):
        export_model(model, path, opset=opset)
        return {}
    from ..models.transformer import export_transformer

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        written = export_transformer(model, scratch, opset)
        extra = {}
        for name, source in written.items():
            target = path if name == "model" else path.with_name(f"{path.stem}.{name}.onnx")
            os.replace(source, target)  # same filesystem: atomic
            if name != "model":
                extra[f"onnx_{name}"] = str(target)
    return extra


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


# --- TensorRT --------------------------------------------------------------------------------------------
def require_tensorrt():
    """The ``tensorrt`` module, or :class:`BackendUnavailableError` saying what is missing."""
    try:
        import tensorrt as trt
    except ImportError as error:
        raise BackendUnavailableError("--tensorrt needs TensorRT and an NVIDIA GPU: pip install 'tensorrt>=10' "
                                      "'cuda-python>=12' (or pip install 'ofa-hw[tensorrt]') on a CUDA machine") \
            from error
    if not torch.cuda.is_available():
        raise BackendUnavailableError("--tensorrt needs an NVIDIA GPU with CUDA; none is visible here")
    return trt


def build_tensorrt_engine(onnx_path: str | os.PathLike, engine_path: str | os.PathLike, input_shape: tuple,
                          fp16: bool = False, max_batch: int = 32) -> dict:
    """Build a TensorRT engine from an ONNX file, with a dynamic batch
    profile (1 to ``max_batch``, optimised for 1)."""
    trt = require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ConfigError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    name = network.get_input(0).name
    rest = tuple(input_shape[1:])
    profile.set_shape(name, (1, *rest), (1, *rest), (max_batch, *rest))
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise BackendUnavailableError("TensorRT failed to build an engine for this network (see its log above)")
    atomic_write_bytes(engine_path, bytes(engine))
    return {"tensorrt_engine": str(engine_path), "tensorrt_version": trt.__version__, "fp16": fp16,
            "max_batch": max_batch}


# --- INT8 post-training quantisation ---------------------------------------------------------------------
def quantize_int8(onnx_path: str | os.PathLike, out_path: str | os.PathLike, calibration_images: np.ndarray,
                  batch_size: int = 32) -> Path:
    """Static INT8 quantisation (QDQ, per-channel int8 weights, uint8
    activations, min-max calibration on ``calibration_images``)."""
    try:
        from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quant_pre_process,
                                              quantize_static)
    except ImportError as error:
        raise BackendUnavailableError("INT8 quantisation needs onnxruntime: pip install onnxruntime") from error
    images = np.ascontiguousarray(calibration_images, dtype=np.float32)
    if images.ndim != 4 or len(images) == 0:
        raise ConfigError(f"calibration images must be a non-empty (N, C, H, W) array, got shape {images.shape}")
    input_name = onnxruntime_session(onnx_path).get_inputs()[0].name

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{input_name: images[i:i + batch_size]} for i in range(0, len(images), batch_size)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory(prefix="ofa-int8-") as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(quantized), Batches(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return atomic_write_bytes(out_path, quantized.read_bytes())


def onnx_logits(path: str | os.PathLike, images: np.ndarray, batch_size: int = 256, threads: int = 1) -> np.ndarray:
    """Outputs of an ONNX classifier for every image (batched)."""
    session = onnxruntime_session(path, threads)
    name = session.get_inputs()[0].name
    images = np.ascontiguousarray(images, dtype=np.float32)
    return np.concatenate([session.run(None, {name: images[i:i + batch_size]})[0]
                           for i in range(0, len(images), batch_size)])


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
    """The data a supernet checkpoint was trained on: image splits
    (:class:`ofa.data.DataSplits`, or ``source`` instead, same resolution and
    split fractions) or, for a Transformer, its text splits."""
    from ..training.checkpoint import checkpoint_space, load_checkpoint

    payload = load_checkpoint(checkpoint)
    if payload["trainer"] == "transformer":
        if source is not None:
            raise ConfigError("--data applies to image supernets; a Transformer checkpoint rebuilds its own text data")
        from ..training.transformer import load_trained

        return load_trained(checkpoint)[1]
    from ..data import build_datasets

    space = checkpoint_space(payload)
    data = dict(payload["config"].get("data", {}))
    if source is None and "dataset" not in data:
        raise ConfigError(f"checkpoint {checkpoint} records no data set; pass --data (digits, a CIFAR directory "
                          f"or an image folder)")
    return build_datasets(source if source is not None else data["dataset"], max(space.resolutions),
                          space.in_channels, "none", data.get("val_fraction", 0.15), data.get("test_fraction", 0.15))


def image_data(data) -> bool:
    from ..data import DataSplits

    return isinstance(data, DataSplits)


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def deploy_subnet(supernet: nn.Module, arch, out_dir: str | os.PathLike, name: str = "model", data=None,
                  calib_images: int = 2000, opset: int = DEFAULT_OPSET, ncnn: bool = False, tensorrt: bool = False,
                  fp16: bool = False, int8: bool = False, int8_calib_images: int = 512) -> tuple[nn.Module, dict]:
    """Extract ``arch`` from ``supernet``, re-calibrate its BatchNorm statistics
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
    from ..data import fixed_subset
    from ..evaluation import recalibrate_bn
    from ..io import atomic_torch_save

    out_dir = Path(out_dir)
    arch = supernet.space.parse(arch)
    if tensorrt:
        require_tensorrt()  # before any work
    if int8 and not image_data(data):
        raise ConfigError("INT8 quantisation is calibrated on training images: it needs an image model and its "
                          "data set (--data)")
    static = supernet.extract(arch)
    report: dict = {"arch": arch.to_dict(), "space_fingerprint": supernet.space.fingerprint}
    calib = None
    if image_data(data):
        calib = fixed_subset(data.train, calib_images).tensors(resolution=arch.resolution)[0]
        if has_batchnorm(static):
            report["bn_recalibration_images"] = recalibrate_bn(static, calib)
    static.eval()
    atomic_torch_save({"arch": arch.to_dict(), "space": supernet.space.to_dict(), "state_dict": static.state_dict()},
                      out_dir / f"{name}.pt")
    report["weights"] = str(out_dir / f"{name}.pt")
    onnx_path = out_dir / f"{name}.onnx"
    report.update(export_checked(static, onnx_path, opset))
    if ncnn:
        report.update(convert_ncnn(static, out_dir, name))
    if tensorrt:
        shape = tuple(static.example_inputs(1)[0].shape)
        report.update(build_tensorrt_engine(onnx_path, out_dir / f"{name}.engine", shape, fp16=fp16))
    if int8:
        int8_path = quantize_int8(onnx_path, out_dir / f"{name}.int8.onnx", calib[:int8_calib_images].numpy())
        images, labels = data.val.tensors(resolution=arch.resolution)
        report["precision"] = compare_precisions({"fp32": onnx_path, "int8": int8_path}, images.numpy(),
                                                 labels.numpy())
        report["int8_calibration_images"] = int(min(len(calib), int8_calib_images))
    return static, report


def load_subnet_weights(path: str | os.PathLike) -> nn.Module:
    """The static subnet saved by :func:`deploy_subnet` (``name.pt``), in eval mode."""
    from ..errors import CheckpointError
    from ..spaces import space_from_dict
    from ..supernets import create_supernet

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        space = space_from_dict(payload["space"])
        arch = space.parse(payload["arch"])
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path} is not a subnet weights file written by specialize/export_onnx "
                              f"({type(error).__name__}: {str(error)[:200]})") from None
    # the supernet of the space knows how to build the static network of any of its architectures
    static = create_supernet(space).extract(arch)
    static.load_state_dict(payload["state_dict"])
    return static.eval()
