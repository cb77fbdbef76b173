"""``gpu-cuda``: PyTorch on a CUDA GPU, timed with CUDA events.

The model runs on its own stream; after warm-up its forward pass is captured
once in a CUDA graph (``use_cuda_graph=True``) and each timed run replays the
graph, so the latency is the GPU's work without Python launch overhead.
``latency_ms`` is GPU time between two CUDA events around each run;
``host_latency_ms`` is the host wall clock of the same run including the
synchronisation. Needs a CUDA build of PyTorch and a GPU.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch

from ofa.errors import BackendUnavailableError, ConfigError

from ..protocol import MeasurementProtocol, Runner
from .base import TimedBackend, example_inputs

INSTALL_HINT = ("needs an NVIDIA GPU and a CUDA build of PyTorch "
                "(pip install torch --index-url https://download.pytorch.org/whl/cu128)")
PRECISIONS = ("fp32", "fp16")


def check_cuda() -> None:
    if not torch.cuda.is_available():
        raise BackendUnavailableError(f"no CUDA GPU is visible to PyTorch (torch {torch.__version__}); "
                                      f"{INSTALL_HINT}")


def cuda_inputs(static_model: torch.nn.Module, batch_size: int, precision: str) -> list[torch.Tensor]:
    """The model's example inputs on the GPU; floating inputs in the run precision."""
    dtype = torch.float16 if precision == "fp16" else torch.float32
    return [x.to("cuda", dtype=dtype if x.is_floating_point() else x.dtype)
            for x in example_inputs(static_model, batch_size)]


class CudaRunner(Runner):
    """Times ``self._launch`` (enqueues one inference on ``self.stream``) with CUDA events."""

    stream: torch.cuda.Stream
    graph: "torch.cuda.CUDAGraph | None" = None

    def _launch(self) -> None:
        raise NotImplementedError

    def _capture(self, use_cuda_graph: bool) -> None:
        """Warm up on the side stream, then capture one launch into a CUDA graph."""
        with torch.cuda.stream(self.stream):
            for _ in range(3):
                self._launch()
        self.stream.synchronize()
        if use_cuda_graph:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=self.stream):
                self._launch()
            self.graph = graph

    def _enqueue(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        else:
            self._launch()

    def run(self) -> None:
        with torch.cuda.stream(self.stream):
            self._enqueue()
        self.stream.synchronize()

    def time_runs(self, runs: int) -> dict[str, np.ndarray]:
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(runs)]
        host = np.empty(runs)
        with torch.cuda.stream(self.stream):
            for i in range(runs):
                begin = time.perf_counter_ns()
                starts[i].record(self.stream)
                self._enqueue()
                ends[i].record(self.stream)
                ends[i].synchronize()
                host[i] = (time.perf_counter_ns() - begin) / 1e6
        device = np.array([s.elapsed_time(e) for s, e in zip(starts, ends)], dtype=np.float64)
        return {"latency_ms": device, "host_latency_ms": host}

    def close(self) -> None:
        self.graph = None
        torch.cuda.empty_cache()


class TorchCudaRunner(CudaRunner):
    def __init__(self, static_model: torch.nn.Module, batch_size: int, precision: str, use_cuda_graph: bool):
        check_cuda()
        self.inputs = cuda_inputs(static_model, batch_size, precision)
        self.input_shapes = [tuple(x.shape) for x in self.inputs]
        model = copy.deepcopy(static_model).eval().to("cuda")
        self.model = model.half() if precision == "fp16" else model
        self.stream = torch.cuda.Stream()
        self._capture(use_cuda_graph)

    @torch.no_grad()
    def _launch(self) -> None:
        self.output = self.model(*self.inputs)

    def close(self) -> None:
        self.model = self.inputs = self.output = None
        super().close()


class CudaBackend(TimedBackend):
    """What the GPU backends share: precision, CUDA graphs, device naming."""

    runtime_tag = "cuda"

    def __init__(self, precision: str = "fp32", use_cuda_graph: bool = True,
                 protocol: MeasurementProtocol | dict | None = None):
        super().__init__(protocol)
        if precision not in PRECISIONS:
            raise ConfigError(f"precision {precision!r} unknown for {self.name}; allowed: {PRECISIONS}")
        self.precision = precision
        self.use_cuda_graph = bool(use_cuda_graph)

    def check_available(self) -> None:
        check_cuda()

    def default_device(self) -> str:
        from .base import slug

        name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cuda"
        return f"{slug(name)}-{self.runtime_tag}-{self.precision}"

    def header_fields(self) -> dict:
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        return {"gpu": gpu, "clocks": ["latency_ms (CUDA events)", "host_latency_ms"],
                "cuda_graph": self.use_cuda_graph}


class CudaTorchBackend(CudaBackend):
    name = "gpu-cuda"
    install_hint = INSTALL_HINT
    runtime_tag = "torch"

    def version(self) -> str:
        return f"torch {torch.__version__}, cuda {torch.version.cuda}"

    def prepare(self, static_model: torch.nn.Module, batch_size: int = 1) -> Runner:
        self.check_available()
        return TorchCudaRunner(static_model, batch_size, self.precision, self.use_cuda_graph)
