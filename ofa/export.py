"""ONNX export of extracted (static) subnets, with an onnxruntime parity check."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .errors import BackendUnavailableError
from .io import atomic_write_bytes

# Opset 17: HardSwish/HardSigmoid and LayerNormalization are native ops, and every
# runtime we target (onnxruntime, TensorRT 10+, pnnx/ncnn) reads it.
DEFAULT_OPSET = 17


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
    return atomic_write_bytes(path, buffer.getvalue())


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
