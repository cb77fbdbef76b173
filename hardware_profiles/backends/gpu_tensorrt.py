"""``gpu-tensorrt``: an NVIDIA TensorRT engine built from the ONNX export.

Written against the TensorRT 10/11 Python API: the ONNX file is parsed by
``trt.OnnxParser`` into a *strongly typed* network (the ONNX tensor types
decide the precision, which is the only mode TensorRT 11 offers: FP16 means
exporting an FP16 ONNX, done here by exporting the half-precision model),
built with ``builder.build_serialized_network`` for the exact input shapes,
deserialised, and run with ``context.execute_async_v3`` on a CUDA stream.
Buffers are PyTorch CUDA tensors (no pycuda/cuda-python needed); timing
uses CUDA events around each run and, by default, replays a CUDA graph of
one ``execute_async_v3`` call, as NVIDIA recommends for small networks.

The ``tensorrt`` wheels download NVIDIA's libraries at install time:
``pip install 'ofa-hw[tensorrt]'`` on a machine with a GPU and internet.
No engine file is kept: engines are built in memory per measurement.
"""

from __future__ import annotations

import torch

from ofa.errors import BackendUnavailableError, ConfigError
from ofa.export import TENSORRT_INSTALL_HINT, build_tensorrt_engine

from ..protocol import MeasurementProtocol, Runner
from .base import require
from .gpu_cuda import CudaBackend, CudaRunner, check_cuda, cuda_inputs

INSTALL_HINT = TENSORRT_INSTALL_HINT


def torch_dtype(trt, dtype) -> torch.dtype:
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32,
             trt.int64: torch.int64, trt.bool: torch.bool, trt.int8: torch.int8}
    if hasattr(trt, "bfloat16"):
        table[trt.bfloat16] = torch.bfloat16
    if dtype not in table:
        raise BackendUnavailableError(f"TensorRT tensor type {dtype} has no PyTorch buffer type here")
    return table[dtype]


class TensorRTRunner(CudaRunner):
    def __init__(self, static_model: torch.nn.Module, batch_size: int, precision: str, use_cuda_graph: bool,
                 workspace_bytes: int):
        trt = require("tensorrt", INSTALL_HINT)
        check_cuda()
        inputs = cuda_inputs(static_model, batch_size, precision)
        self.input_shapes = [tuple(x.shape) for x in inputs]
        # the same builder, with the same flags, as the engine deployment ships (ofa.export)
        serialized, self.build_info = build_tensorrt_engine(static_model, batch_size, precision, workspace_bytes)
        logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(logger)
        self.engine = self.runtime.deserialize_cuda_engine(serialized)
        self.context = self.engine.create_execution_context()
        self.buffers = {}
        feeds = dict(zip(static_model.input_names, inputs))
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        for name in names:  # inputs first: output shapes follow from them
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                tensor = feeds[name].to(torch_dtype(trt, self.engine.get_tensor_dtype(name))).contiguous()
                self.context.set_input_shape(name, tuple(tensor.shape))
                self.buffers[name] = tensor
        for name in names:
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
                shape = tuple(self.context.get_tensor_shape(name))
                self.buffers[name] = torch.empty(shape, dtype=torch_dtype(trt, self.engine.get_tensor_dtype(name)),
                                                 device="cuda")
        for name, tensor in self.buffers.items():
            self.context.set_tensor_address(name, tensor.data_ptr())
        self.stream = torch.cuda.Stream()
        self._capture(use_cuda_graph)

    def _launch(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise BackendUnavailableError("TensorRT execute_async_v3 failed")

    def close(self) -> None:
        self.context = self.engine = self.runtime = None
        self.buffers = {}
        super().close()


class TensorRTBackend(CudaBackend):
    name = "gpu-tensorrt"
    install_hint = INSTALL_HINT
    runtime_tag = "trt"

    def __init__(self, precision: str = "fp32", use_cuda_graph: bool = True, workspace_mb: int = 1024,
                 protocol: MeasurementProtocol | dict | None = None):
        super().__init__(precision, use_cuda_graph, protocol)
        if isinstance(workspace_mb, bool) or not isinstance(workspace_mb, int) or workspace_mb < 1:
            raise ConfigError(f"workspace_mb must be a positive integer, got {workspace_mb!r}")
        self.workspace_bytes = workspace_mb << 20

    def check_available(self) -> None:
        require("tensorrt", self.install_hint)
        check_cuda()

    def version(self) -> str:
        return f"tensorrt {require('tensorrt', self.install_hint).__version__}"

    def header_fields(self) -> dict:
        return {**super().header_fields(), "network": "strongly typed (precision from the ONNX types)"}

    def prepare(self, static_model: torch.nn.Module, batch_size: int = 1) -> Runner:
        self.check_available()
        return TensorRTRunner(static_model, batch_size, self.precision, self.use_cuda_graph, self.workspace_bytes)
