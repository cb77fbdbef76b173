"""``cpu-ort``: ONNX Runtime on the CPU, fixed thread counts.

With one intra-op thread and sequential execution, onnxruntime computes on the
calling thread, so besides wall clock we record that thread's CPU time
(``cpu_time_ms``), which waiting for a busy core does not inflate.
"""

from __future__ import annotations

import torch

from ofa.errors import ConfigError
from ofa.export import onnxruntime_session

from ..dataset import host_info
from ..protocol import WALL_AND_THREAD_CLOCKS, WALL_CLOCK, MeasurementProtocol, Runner
from .base import TemporaryExport, TimedBackend, example_inputs, numpy_inputs, require, slug


class OnnxRuntimeRunner(Runner):
    def __init__(self, static_model: torch.nn.Module, batch_size: int, threads: int):
        self.export = TemporaryExport(static_model, batch_size)
        try:
            self.session = onnxruntime_session(self.export.path, threads)
            inputs = numpy_inputs(example_inputs(static_model, batch_size))
            self.feeds = {i.name: x for i, x in zip(self.session.get_inputs(), inputs)}
        except BaseException:
            self.export.cleanup()
            raise
        self.input_shapes = [x.shape for x in inputs]
        # Thread CPU time measures the inference only when it runs on this thread.
        self.clocks = WALL_AND_THREAD_CLOCKS if threads == 1 else WALL_CLOCK

    def run(self) -> None:
        self.session.run(None, self.feeds)

    def close(self) -> None:
        self.session = None
        self.export.cleanup()


class OnnxRuntimeCPUBackend(TimedBackend):
    name = "cpu-ort"
    install_hint = "pip install onnxruntime"

    def __init__(self, threads: int = 1, protocol: MeasurementProtocol | dict | None = None):
        super().__init__(protocol)
        if not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads must be a positive integer, got {threads!r}")
        self.threads = threads

    def check_available(self) -> None:
        require("onnxruntime", self.install_hint)

    def version(self) -> str:
        return require("onnxruntime", self.install_hint).__version__

    def default_device(self) -> str:
        return f"{slug(host_info().get('cpu', 'cpu'))}-ort-{self.threads}t"

    def header_fields(self) -> dict:
        return {"clocks": ["latency_ms", "cpu_time_ms"] if self.threads == 1 else ["latency_ms"],
                "execution_provider": "CPUExecutionProvider"}

    def prepare(self, static_model: torch.nn.Module, batch_size: int = 1) -> Runner:
        return OnnxRuntimeRunner(static_model, batch_size, self.threads)
