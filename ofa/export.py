"""Everything that turns a static subnet into a deployable file, in one place.

Deployment (:mod:`ofa_pipeline.deploy`) and profiling (the backends of
:mod:`hardware_profiles`) both call these functions, so the file a profile
measures is made exactly like the file a user ships:

* :func:`export_onnx` - the one call to ``torch.onnx.export`` (dynamic batch axis);
  :func:`export_model` for a static network with its own example inputs,
  :func:`export_checked` adds the onnxruntime parity check and, for an
  encoder-decoder Transformer, the encoder and decoder-step graphs;
* :func:`convert_onnx_to_ncnn` - pnnx, ONNX to ncnn ``.param``/``.bin``;
* :func:`build_tensorrt_engine` - the one TensorRT engine builder;
* :func:`quantize_int8` - onnxruntime static INT8 post-training quantisation;
* a fake-quantised mixed-precision subnet (``ofa.models.quantization``) exports through the same
  :func:`export_onnx`: activations as QuantizeLinear/DequantizeLinear pairs at each layer's precision,
  weights as integer initialisers behind DequantizeLinear (:func:`fold_weight_quantization`);
  ncnn and TensorRT refuse what they cannot express (:func:`check_runtime_precision`);
* :func:`save_subnet_weights` / :func:`load_subnet_weights` - the static subnet's weights.

Optional runtimes (pnnx, TensorRT) are imported lazily; a missing one raises
:class:`~ofa.errors.BackendUnavailableError` saying what to install.
"""

from __future__ import annotations

import copy
import importlib
import io
import os
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import (BackendUnavailableError, CheckpointError, ConfigError, DataError, OFAError,
                     UnsupportedPrecisionError)
from .io import atomic_torch_save, atomic_write_bytes, load_plain_torch_file

# Opset 17: HardSwish/HardSigmoid and LayerNormalization are native ops, and every
# runtime we target (onnxruntime, TensorRT 10+, pnnx/ncnn) reads it. HardSwish
# exists from opset 14; the TorchScript exporter of torch 2.13 writes up to 20.
DEFAULT_OPSET = 17
OPSETS = range(14, 21)
PARITY_TOLERANCE = 1e-4  # max |PyTorch - onnxruntime| on the outputs, relative to max(1, |output|)
NCNN_INSTALL_HINT = "pip install ncnn pnnx (or pip install 'ofa-hw[mobile]')"
TENSORRT_INSTALL_HINT = ("TensorRT needs pip install 'tensorrt>=10' (or pip install 'ofa-hw[tensorrt]') on a machine with an "
                         "NVIDIA GPU, its driver and a CUDA build of PyTorch")


def check_opset(opset) -> int:
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in OPSETS:
        raise ConfigError(f"ONNX opset {opset!r} is not supported; allowed: {OPSETS.start}..{OPSETS.stop - 1} "
                          f"(default {DEFAULT_OPSET}: HardSwish needs 14, the exporter writes up to "
                          f"{OPSETS.stop - 1})")
    return opset


def require(module: str, hint: str):
    """Import an optional runtime or raise BackendUnavailableError with ``hint``."""
    try:
        return importlib.import_module(module)
    except Exception as error:  # ImportError, or a broken native library
        raise BackendUnavailableError(f"{module} is not usable here ({error.__class__.__name__}: {error}); "
                                      f"{hint}") from None


# --- ONNX ------------------------------------------------------------------------------------------------
def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    example_inputs: torch.Tensor | tuple,
    input_names=("input",),
    output_names=("logits",),
    dynamic_axes: dict | None = None,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Export ``model`` (in eval mode) to ONNX, written atomically.

    By default the first axis of every input and output is dynamic (batch).
    Uses the TorchScript-based exporter: it needs no extra packages and
    gives plain graphs that every runtime reads."""
    check_opset(opset)
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    if dynamic_axes is None:
        dynamic_axes = {name: {0: "batch"} for name in (*input_names, *output_names)}
    was_training = model.training
    model.eval()
    buffer = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, example_inputs, buffer, input_names=list(input_names),
                              output_names=list(output_names), dynamic_axes=dynamic_axes, opset_version=opset,
                              do_constant_folding=True, dynamo=False)
    finally:
        model.train(was_training)
    return atomic_write_bytes(path, fold_weight_quantization(buffer.getvalue()))


def fold_weight_quantization(onnx_bytes: bytes) -> bytes:
    """A QDQ graph with each constant weight stored quantised: the exporter writes a fake-quantised
    weight as ``QuantizeLinear(float weight) -> DequantizeLinear``, which a runtime executes on every
    call; here each QuantizeLinear of an initializer becomes the int8/uint8 initializer it computes
    (ONNX's rule: saturate(round-half-to-even(w / scale) + zero_point), per axis where the scale is a
    vector), so the weight reaches DequantizeLinear as integers, the form runtimes fuse into integer
    kernels. A graph without such a pattern is returned unchanged."""
    if b"QuantizeLinear" not in onnx_bytes:
        return onnx_bytes
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(onnx_bytes)
    graph = model.graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    constants = {node.output[0]: node for node in graph.node if node.op_type == "Constant"}

    def value(name):
        if name in initializers:
            return numpy_helper.to_array(initializers[name])
        node = constants.get(name)
        if node is None:
            return None
        attribute = next((a for a in node.attribute if a.name == "value"), None)
        return None if attribute is None else numpy_helper.to_array(attribute.t)

    folded, kept = [], []
    for node in graph.node:
        weight = value(node.input[0]) if node.op_type == "QuantizeLinear" and node.input[0] in initializers else None
        scale = value(node.input[1]) if weight is not None else None
        zero_point = value(node.input[2]) if weight is not None and len(node.input) > 2 else None
        if weight is None or scale is None or zero_point is None:
            kept.append(node)
            continue
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if scale.ndim == 1 and weight.ndim > 1:  # per-axis: one scale and zero point per slice of `axis`
            shape = [1] * weight.ndim
            shape[axis] = -1
            scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
        limits = np.iinfo(zero_point.dtype)
        quantized = np.rint(weight.astype(np.float32) / scale.astype(np.float32)) + zero_point.astype(np.float32)
        quantized = np.clip(quantized, limits.min, limits.max).astype(zero_point.dtype)
        folded.append(numpy_helper.from_array(quantized, node.output[0]))
    if not folded:
        return onnx_bytes
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(folded)
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    unused = [tensor for tensor in graph.initializer if tensor.name not in used]
    for tensor in unused:  # the float weights the folded nodes read
        graph.initializer.remove(tensor)
    return model.SerializeToString()


def export_model(model: nn.Module, path: str | os.PathLike, batch_size: int = 1, opset: int = DEFAULT_OPSET) -> Path:
    """Export an extracted static network, using its own ``example_inputs``,
    ``input_names`` and ``output_names`` (every static model defines them)."""
    return export_onnx(model, path, model.example_inputs(batch_size), model.input_names, model.output_names,
                       opset=opset)


def onnxruntime_session(path: str | os.PathLike, threads: int = 1):
    """An onnxruntime CPU session with fixed thread counts."""
    try:
        import onnxruntime as ort
    except ImportError as error:  # pragma: no cover - a core dependency
        raise BackendUnavailableError("onnxruntime is not installed: pip install onnxruntime") from error
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_parity(model: nn.Module, path: str | os.PathLike, example_inputs: torch.Tensor | tuple) -> float:
    """Max absolute difference between PyTorch (eval) and onnxruntime outputs."""
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    session = onnxruntime_session(path)
    feeds = {i.name: t.detach().cpu().numpy() for i, t in zip(session.get_inputs(), example_inputs)}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        expected = model(*example_inputs)
    model.train(was_training)
    expected = expected if isinstance(expected, (tuple, list)) else (expected,)
    got = session.run(None, feeds)
    return max(float(np.max(np.abs(e.detach().cpu().numpy() - g))) for e, g in zip(expected, got))


def _example_inputs(model: nn.Module, batch_size: int) -> tuple[torch.Tensor, ...]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(batch_size)
        inputs = model.example_inputs(batch_size)
    return inputs if isinstance(inputs, tuple) else (inputs,)


class ExportParityError(OFAError):
    """An exported file does not reproduce the PyTorch model's outputs."""


def export_checked(model: nn.Module, path: str | os.PathLike, opset: int = DEFAULT_OPSET,
                   tolerance: float = PARITY_TOLERANCE, batch_sizes=(1, 3), write=None) -> dict:
    """Export a static subnet to ONNX (dynamic batch axis) and check that
    onnxruntime reproduces PyTorch at several batch sizes.

    ``write(model, path, opset) -> {extra files}`` writes the graph(s): by
    default :func:`export_model`; a model family may write more graphs (see
    :meth:`ofa.families.ModelFamily.write_onnx`). The check is
    ``max |PyTorch - onnxruntime| <= tolerance * max(1, max |output|)``:
    absolute for ordinary logits, relative for networks whose outputs are
    large (float32 rounding grows with magnitude, e.g. untrained weights).
    Returns ``{"onnx", "opset", "parity_max_abs_diff", "output_max_abs",
    "parity_batch_sizes", "tolerance", ...extra files}``; raises
    :class:`ExportParityError` (after removing what it wrote)."""
    check_opset(opset)
    model.eval()
    path = Path(path)
    if write is None:
        export_model(model, path, opset=opset)
        extra_graphs = {}
    else:
        extra_graphs = write(model, path, opset)
    diff, scale = 0.0, 1.0
    for batch_size in batch_sizes:
        inputs = _example_inputs(model, batch_size)
        diff = max(diff, onnx_parity(model, path, inputs))
        with torch.no_grad():
            output = model(*inputs)
        scale = max(scale, float(output.abs().max()))
    report = {"onnx": str(path), "opset": opset, "dynamic_axes": ("batch and sequence length" if extra_graphs
                                                      else "batch (axis 0 of every input and output)"),
              "parity_max_abs_diff": diff, "output_max_abs": scale, "parity_batch_sizes": list(batch_sizes),
              "tolerance": tolerance, **extra_graphs}
    if not diff <= tolerance * scale:
        for written in [path, *map(Path, extra_graphs.values())]:
            written.unlink(missing_ok=True)
        raise ExportParityError(f"{path}: onnxruntime differs from PyTorch by {diff:.3g} on outputs up to "
                                f"{scale:.3g} (allowed {tolerance:g} x max(1, output)); the export is not faithful "
                                f"- try another --opset")
    return report


def export_transformer(model: nn.Module, directory: str | os.PathLike, opset: int | None = None) -> dict:
    """Export a static Transformer to ONNX in ``directory`` (atomic writes).

    Encoder-decoder: ``encoder.onnx`` and ``decoder_step.onnx`` (incremental
    decoding with a key/value cache), plus ``model.onnx`` (teacher-forced
    forward). Encoder-only: ``model.onnx``. Batch and sequence axes are
    dynamic. Returns {name: path}."""
    from .models.transformer import DecoderStepGraph, EncoderGraph

    opset = DEFAULT_OPSET if opset is None else opset
    directory = Path(directory)
    seq_axes = {"src_tokens": {0: "batch", 1: "source_length"}, "tgt_tokens": {0: "batch", 1: "target_length"},
                "logits": {0: "batch", 1: "length"}}
    if not model.arch.has_decoder and model.space.encoder_head == "classifier":
        seq_axes["logits"] = {0: "batch"}
    paths = {"model": export_onnx(model, directory / "model.onnx", model.example_inputs(2), model.input_names,
                                  model.output_names, {n: seq_axes[n] for n in (*model.input_names, "logits")},
                                  opset)}
    if model.arch.has_decoder:
        encoder = EncoderGraph(model)
        paths["encoder"] = export_onnx(encoder, directory / "encoder.onnx", encoder.example_inputs(2),
                                       encoder.input_names, encoder.output_names,
                                       {"src_tokens": {0: "batch", 1: "source_length"},
                                        "encoder_states": {1: "batch", 2: "source_length"}}, opset)
        step = DecoderStepGraph(model)
        paths["decoder_step"] = export_onnx(step, directory / "decoder_step.onnx", step.example_inputs(2),
                                            step.input_names, step.output_names, step.dynamic_axes(), opset)
    return paths


# --- ncnn (pnnx) -----------------------------------------------------------------------------------------
_PNNX_TYPES = {np.dtype("float32"): "f32", np.dtype("float16"): "f16", np.dtype("int64"): "i64",
               np.dtype("int32"): "i32"}


# --- precision a runtime can express ----------------------------------------------------------------------
# TensorRT runs explicit (Q/DQ) quantisation at 8 bits; ncnn's converter (pnnx) takes no Q/DQ graphs at all.
RUNTIME_BITS = {"tensorrt": (8,), "ncnn": ()}


def check_runtime_precision(model: nn.Module, runtime: str) -> None:
    """Refuse a fake-quantised subnet whose precisions ``runtime`` cannot express
    (:class:`~ofa.errors.UnsupportedPrecisionError` naming the layer and what the runtime runs)."""
    from .models.quantization import quantized_convs

    allowed = RUNTIME_BITS[runtime]
    for name, conv in quantized_convs(model):
        for what, bits in (("weight_bits", conv.weight_bits), ("activation_bits", conv.activation_bits)):
            if bits not in allowed:
                runs = (f"{', '.join(map(str, allowed))}-bit Q/DQ and floating point" if allowed
                        else "floating point only")
                raise UnsupportedPrecisionError(
                    f"layer {name!r}: {what} = {bits} is not allowed on {runtime}: it runs {runs}; deploy the "
                    f"mixed-precision subnet as QDQ ONNX (onnxruntime) or pick a precision it runs")


def _onnx_has_qdq(path: Path) -> bool:
    try:
        import onnx
    except ImportError:  # pragma: no cover - without onnx the converter reports the failure itself
        return False
    return any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in onnx.load(str(path)).graph.node)


def pnnx_input_arg(inputs: list[np.ndarray]) -> str:
    """pnnx's ``inputshape=`` argument, e.g. ``[1,3,32,32]f32,[1,16]i64``."""
    parts = []
    for x in inputs:
        if x.dtype not in _PNNX_TYPES:
            raise ConfigError(f"pnnx cannot take inputs of dtype {x.dtype}; allowed: {sorted(map(str, _PNNX_TYPES))}")
        parts.append("[" + ",".join(str(d) for d in x.shape) + "]" + _PNNX_TYPES[x.dtype])
    return ",".join(parts)


def convert_onnx_to_ncnn(onnx_path: Path, inputs: list[np.ndarray], out_dir: Path, stem: str = "model",
                         fp16_weights: bool = False) -> tuple[Path, Path]:
    """Run the pnnx converter; returns the ncnn (.param, .bin). Every file pnnx
    writes goes into ``out_dir``. A QDQ graph (a mixed-precision subnet) is refused: pnnx cannot
    express QuantizeLinear/DequantizeLinear."""
    if _onnx_has_qdq(Path(onnx_path)):
        raise UnsupportedPrecisionError(f"{Path(onnx_path).name} holds QuantizeLinear/DequantizeLinear nodes (a "
                                        f"fake-quantised subnet); ncnn runs floating point only here: convert the "
                                        f"floating-point subnet instead")
    pnnx = require("pnnx", NCNN_INSTALL_HINT)
    out_dir, onnx_path = Path(out_dir).resolve(), Path(onnx_path).resolve()  # pnnx runs inside out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    param, weights = out_dir / f"{stem}.ncnn.param", out_dir / f"{stem}.ncnn.bin"
    command = [pnnx.EXEC_PATH, str(onnx_path), f"inputshape={pnnx_input_arg(inputs)}",
               f"ncnnparam={param}", f"ncnnbin={weights}", f"ncnnpy={out_dir / (stem + '_ncnn.py')}",
               f"pnnxparam={out_dir / (stem + '.pnnx.param')}", f"pnnxbin={out_dir / (stem + '.pnnx.bin')}",
               f"pnnxpy={out_dir / (stem + '_pnnx.py')}", f"pnnxonnx={out_dir / (stem + '.pnnx.onnx')}",
               f"fp16={1 if fp16_weights else 0}"]
    done = subprocess.run(command, cwd=out_dir, capture_output=True, text=True)
    if done.returncode != 0 or not param.is_file() or not weights.is_file():
        tail = (done.stderr or done.stdout or "")[-800:]
        raise BackendUnavailableError(f"pnnx could not convert {onnx_path.name} to ncnn (exit {done.returncode}): "
                                      f"{tail}")
    return param, weights


def unsupported_layers(param_text: str) -> list[str]:
    """Layer types in an ncnn ``.param`` that ncnn does not implement.

    pnnx keeps operators it cannot map to an ncnn layer under their PyTorch
    name (``torch.eq``, ``torch.where``, ``F.xxx``, ``pnnx.Expression``);
    ncnn's own layer types never contain a dot."""
    types = []
    for line in param_text.splitlines()[2:]:  # magic number, then the layer/blob counts
        fields = line.split()
        if fields and "." in fields[0] and fields[0] not in types:
            types.append(fields[0])
    return types


# --- TensorRT --------------------------------------------------------------------------------------------
def require_tensorrt():
    """The ``tensorrt`` module, or :class:`BackendUnavailableError` saying what is missing."""
    trt = require("tensorrt", TENSORRT_INSTALL_HINT)
    if not torch.cuda.is_available():
        raise BackendUnavailableError("TensorRT needs an NVIDIA GPU with CUDA; none is visible here")
    return trt


def tensorrt_onnx_bytes(static_model: nn.Module, precision: str = "fp32", opset: int = DEFAULT_OPSET) -> bytes:
    """The ONNX that TensorRT builds from: the model in the run precision (TensorRT 10/11 strongly
    typed networks take their precision from the ONNX types, so FP16 is an FP16 export)."""
    model = copy.deepcopy(static_model).eval().to("cuda")
    model = model.half() if precision == "fp16" else model
    dtype = torch.float16 if precision == "fp16" else torch.float32
    inputs = tuple(x.to("cuda", dtype=dtype if x.is_floating_point() else x.dtype)
                   for x in _example_inputs(static_model, 1))
    with tempfile.TemporaryDirectory(prefix="ofa-trt-") as tmp:
        path = export_onnx(model, Path(tmp) / "model.onnx", inputs, static_model.input_names,
                           static_model.output_names, opset=opset)
        return path.read_bytes()


def build_tensorrt_engine(static_model: nn.Module, batch_size: int = 1, precision: str = "fp32",
                          workspace_bytes: int = 1 << 30, max_batch: int = 32) -> tuple[bytes, dict]:
    """The one TensorRT engine builder: a strongly typed network parsed from
    :func:`tensorrt_onnx_bytes`, one optimisation profile per input with the
    batch axis dynamic from 1 to ``max(max_batch, batch_size)`` and optimised
    for ``batch_size``, the workspace limited to ``workspace_bytes``.
    Profiling builds with the batch size it times; deployment with batch 1.
    Returns the serialised engine and a report."""
    if precision not in ("fp32", "fp16"):
        raise ConfigError(f"TensorRT precision {precision!r} unknown; allowed: fp32, fp16")
    check_runtime_precision(static_model, "tensorrt")
    trt = require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(tensorrt_onnx_bytes(static_model, precision)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendUnavailableError(f"TensorRT could not parse the ONNX export: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    profile = builder.create_optimization_profile()
    largest = max(max_batch, batch_size)
    for i, example in enumerate(_example_inputs(static_model, 1)):
        rest = tuple(example.shape[1:])
        profile.set_shape(network.get_input(i).name, (1, *rest), (batch_size, *rest), (largest, *rest))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendUnavailableError("TensorRT failed to build an engine (see the TensorRT log above)")
    return bytes(serialized), {"tensorrt_version": trt.__version__, "precision": precision,
                               "optimised_batch": batch_size, "max_batch": largest,
                               "workspace_bytes": workspace_bytes, "network": "strongly typed"}


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


# --- the static subnet's weights ---------------------------------------------------------------------------
def save_subnet_weights(static: nn.Module, space, path: str | os.PathLike) -> Path:
    """``{"arch", "space", "state_dict"}`` (and ``"exits"`` for a subnet with exit heads),
    loadable with ``torch.load(..., weights_only=True)``."""
    payload = {"arch": static.arch.to_dict(), "space": space.to_dict(), "state_dict": static.state_dict()}
    if getattr(static, "exits", None) is not None:
        payload["exits"] = static.exits.to_dict()
    return atomic_torch_save(payload, path)


def load_subnet_weights(path: str | os.PathLike) -> nn.Module:
    """The static subnet saved by :func:`save_subnet_weights` (``name.pt``), in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"subnet weights {str(path)!r} " + ("is a directory; pass the .pt file written by "
                              "specialize/export_onnx" if path.is_dir() else "does not exist"))
    from .spaces import space_from_dict
    from .supernets import create_supernet

    payload = load_plain_torch_file(path, CheckpointError, "subnet weights",
                                    "pass the .pt file written by specialize/export_onnx")
    try:
        space = space_from_dict(payload["space"])
        arch = space.parse(payload["arch"])
    except Exception as error:  # missing keys, a foreign dict: the file is not ours
        raise CheckpointError(f"{path} is not a subnet weights file written by specialize/export_onnx "
                              f"({type(error).__name__}: {str(error)[:200]})") from None
    # the supernet of the space knows how to build the static network of any of its architectures
    try:
        static = create_supernet(space, **({"exits": payload["exits"]} if payload.get("exits") else {})).extract(arch)
    except ConfigError as error:
        raise CheckpointError(f"{path}: its exit heads do not fit its space ({error})") from None
    try:
        static.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError, AttributeError) as error:
        raise CheckpointError(f"{path}: its weights do not fit the subnet it names ({type(error).__name__}: "
                              f"{str(error).splitlines()[0][:200] if str(error) else ''})") from None
    return static.eval()


# --- early exits: one graph per segment ----------------------------------------------------------------------
# A network with exits is exported as one ONNX graph per segment (the blocks up to an exit, with the exit
# head), not as one graph with control flow: a batch whose samples leave at different exits needs a
# gather of the samples that go on, which each runtime handles its own way in an If/Loop graph (ncnn and
# TensorRT poorly), while plain graphs run on every backend; the price is one runtime call per segment
# reached, whose overhead the latency model counts.
EXITS_MANIFEST = "exits.json"


def export_exit_segments(static: nn.Module, directory: str | os.PathLike, thresholds=None, measure: str = "maxprob",
                         opset: int = DEFAULT_OPSET, tolerance: float = PARITY_TOLERANCE) -> dict:
    """Write ``segment<k>.onnx`` for every segment of a subnet with exits
    (:meth:`ofa.models.MobileNetV3.segments`) and ``exits.json`` (files, exit
    rule, thresholds: default 1, never exit), then check that
    :class:`EarlyExitRunner` reproduces the PyTorch logits of every exit and of
    the final head (batches 1 and 3). Returns the manifest."""
    from .io import atomic_write_json
    from .models.exits import check_measure, check_thresholds

    if getattr(static, "exits", None) is None:
        raise ConfigError("this subnet has no exit heads: extract it from a supernet trained with exits "
                          "(training config key 'exits')")
    check_opset(opset)
    check_measure(measure)
    count = len(static.exits.stages)
    thresholds = check_thresholds(1.0 if thresholds is None else thresholds, count)
    directory = Path(directory)
    static = static.eval()
    x = _example_inputs(static, 1)[0]
    files = []
    for k, segment in enumerate(static.segments()):
        last = k == count
        path = directory / f"segment{k}.onnx"
        export_onnx(segment, path, (x,), ("input",), ("logits",) if last else ("features", "logits"), opset=opset)
        files.append(path.name)
        if not last:
            with torch.no_grad():
                x = segment(x)[0]
    manifest = {"format": "ofa-early-exit", "segments": files, "exits": static.exits.to_dict(), "measure": measure,
                "thresholds": thresholds.tolist(), "arch": static.arch.to_dict(), "opset": opset}
    atomic_write_json(directory / EXITS_MANIFEST, manifest)
    runner = EarlyExitRunner(directory)
    diff, scale = 0.0, 1.0
    for batch in (1, 3):
        images = _example_inputs(static, batch)[0]
        with torch.no_grad():
            expected = [t.numpy() for t in static.forward_exits(images)]
        got = runner.all_logits(images.numpy())
        diff = max(diff, *(float(np.abs(e - g).max()) for e, g in zip(expected, got)))
        scale = max(scale, *(float(np.abs(e).max()) for e in expected))
    if not diff <= tolerance * scale:
        for name in [*files, EXITS_MANIFEST]:
            (directory / name).unlink(missing_ok=True)
        raise ExportParityError(f"{directory}: the segment graphs differ from PyTorch by {diff:.3g} on outputs up to "
                                f"{scale:.3g} (allowed {tolerance:g} x max(1, output)); try another --opset")
    manifest["parity_max_abs_diff"] = diff
    atomic_write_json(directory / EXITS_MANIFEST, manifest)
    return manifest


class EarlyExitRunner:
    """Runs the segment graphs of :func:`export_exit_segments` on onnxruntime and stops early.

    ``run(images)`` takes a batch, runs segment 0 on all of it, and sends on to
    the next segment only the samples whose confidence did not pass the exit's
    threshold (the batch shrinks as samples leave). Returns the logits each
    sample left with and the exit it left at (``len(exits)`` = the final head).
    ``thresholds`` / ``measure`` override the manifest's."""

    def __init__(self, directory: str | os.PathLike, thresholds=None, measure: str | None = None, threads: int = 1):
        import json

        from .models.exits import CONFIDENCE_MEASURES, check_measure, check_thresholds

        directory = Path(directory)
        path = directory / EXITS_MANIFEST
        if not path.is_file():
            raise CheckpointError(f"{directory} holds no {EXITS_MANIFEST}: export the subnet with "
                                  f"export_exit_segments (ofa-specialize-exits)")
        try:
            manifest = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise CheckpointError(f"{path} is not valid JSON ({error})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != "ofa-early-exit":
            raise CheckpointError(f"{path} is not an early-exit manifest (no 'format': 'ofa-early-exit')")
        segments = manifest.get("segments")
        if (not isinstance(segments, list) or len(segments) < 2 or len(set(map(str, segments))) != len(segments)
                or not all(isinstance(name, str) and name.endswith(".onnx") and Path(name).name == name
                           and not name.startswith(".") for name in segments)):
            raise CheckpointError(f"{path}: 'segments' must list at least 2 distinct .onnx file names of this "
                                  f"directory (no paths), got {segments!r}")
        missing = [name for name in segments if not (directory / name).is_file()]
        if missing:
            raise CheckpointError(f"{directory} lacks the segment graphs {missing} that {EXITS_MANIFEST} names")
        if manifest.get("measure") not in CONFIDENCE_MEASURES:
            raise CheckpointError(f"{path}: 'measure' must be one of {list(CONFIDENCE_MEASURES)}, got "
                                  f"{manifest.get('measure')!r}")
        try:
            saved = check_thresholds(manifest.get("thresholds"), len(segments) - 1)
        except (ConfigError, TypeError, ValueError):
            raise CheckpointError(f"{path}: 'thresholds' must be {len(segments) - 1} number(s) in [0, 1], one per "
                                  f"exit, got {manifest.get('thresholds')!r}") from None
        self.manifest = manifest
        self.measure = check_measure(measure or manifest["measure"])
        self.exits = len(segments) - 1
        self.thresholds = saved if thresholds is None else check_thresholds(thresholds, self.exits)
        self.sessions = []
        for name in segments:
            try:
                self.sessions.append(onnxruntime_session(directory / name, threads))
            except OFAError:
                raise
            except Exception as error:  # onnxruntime's own errors for a truncated or foreign file
                raise CheckpointError(f"{directory / name} is not a readable ONNX graph "
                                      f"({type(error).__name__}: {str(error)[:200]})") from None
        shape = self.sessions[0].get_inputs()[0].shape
        self.input_shape = tuple(d if isinstance(d, int) else None for d in shape[1:])

    def _check_images(self, images) -> np.ndarray:
        x = np.ascontiguousarray(images, dtype=np.float32)
        if x.ndim != 1 + len(self.input_shape) or len(x) == 0 or any(
                want is not None and got != want for got, want in zip(x.shape[1:], self.input_shape)):
            raise DataError(f"the segment graphs take a non-empty batch of shape (n, "
                            f"{', '.join('?' if d is None else str(d) for d in self.input_shape)}), got "
                            f"{tuple(x.shape)}")
        return x

    def all_logits(self, images: np.ndarray) -> list[np.ndarray]:
        """Every exit's logits and the final logits, running every segment on the whole batch."""
        x, out = self._check_images(images), []
        for session in self.sessions[:-1]:
            x, logits = session.run(None, {"input": x})
            out.append(logits)
        return out + [self.sessions[-1].run(None, {"input": x})[0]]

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from .models.exits import confidence

        x = self._check_images(images)
        n = len(x)
        index = np.arange(n)
        logits_out: np.ndarray | None = None
        where = np.full(n, self.exits, dtype=np.int64)
        for k, session in enumerate(self.sessions):
            if k == self.exits:  # the final head: everyone still here leaves
                logits = session.run(None, {"input": x})[0]
                if logits_out is None:
                    return logits, where
                logits_out[index] = logits
                break
            features, logits = session.run(None, {"input": x})
            leave = confidence(logits, self.measure) > self.thresholds[k]
            if not leave.any():  # nobody leaves: the features go on as they are
                x = features
                continue
            if logits_out is None:
                logits_out = np.empty((n, logits.shape[1]), dtype=logits.dtype)
            logits_out[index[leave]] = logits[leave]
            where[index[leave]] = k
            if leave.all():
                break
            x, index = np.ascontiguousarray(features[~leave]), index[~leave]
        return logits_out, where
