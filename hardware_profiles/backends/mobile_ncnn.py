"""``mobile-ncnn``: Tencent's ncnn, the inference runtime of many Android/iOS
apps, on a model converted by pnnx (``pip install ncnn pnnx``).

The static model is exported to ONNX, converted by pnnx to an ncnn
``.param``/``.bin`` pair (the very files a phone app loads), and timed
through ncnn's Python binding with one thread and no Vulkan, like the CPU
backend: wall clock plus the calling thread's CPU time. The same ``.param``
files run on a phone with ncnn's ``benchncnn`` (see
``tools/phone_benchmark.sh`` and ``ofa-profile-device --import``).
"""

from __future__ import annotations

import numpy as np
import torch

from ofa.errors import BackendUnavailableError, ConfigError
from ofa.export import NCNN_INSTALL_HINT, convert_onnx_to_ncnn, unsupported_layers
from ofa.families import family_or_none

from ..protocol import WALL_AND_THREAD_CLOCKS, WALL_CLOCK, MeasurementProtocol, Runner
from .base import TemporaryExport, TimedBackend, example_inputs, numpy_inputs, require

INSTALL_HINT = NCNN_INSTALL_HINT
PRECISIONS = ("fp32", "fp16")
class NcnnRunner(Runner):
    def __init__(self, static_model: torch.nn.Module, batch_size: int, threads: int, precision: str,
                 check_parity: bool = True):
        ncnn = require("ncnn", INSTALL_HINT)
        if batch_size != 1:
            raise ConfigError(f"ncnn runs one sample at a time (batch_size 1), got batch_size={batch_size}")
        family = family_or_none(static_model)
        static_model = family.ncnn_graph(static_model) if family is not None else static_model
        inputs = numpy_inputs(example_inputs(static_model, batch_size))
        self.input_shapes = [x.shape for x in inputs]
        self.export = TemporaryExport(static_model, batch_size)
        try:
            param, weights = convert_onnx_to_ncnn(self.export.path, inputs, self.export.directory,
                                                  fp16_weights=precision == "fp16")
            missing = unsupported_layers(param.read_text())
            if missing:
                raise BackendUnavailableError(
                    f"ncnn has no layers for {missing}, which this network uses (pnnx left them unconverted), "
                    f"so ncnn cannot run it as exported; use cpu-ort, or change the model to avoid these ops")
            self.net = ncnn.Net()
            options = self.net.opt
            options.num_threads = threads
            options.use_vulkan_compute = False
            fp16 = precision == "fp16"
            options.use_fp16_packed = options.use_fp16_storage = options.use_fp16_arithmetic = fp16
            options.use_bf16_storage = False
            if self.net.load_param(str(param)) != 0 or self.net.load_model(str(weights)) != 0:
                raise BackendUnavailableError(f"ncnn could not load the converted model {param.name}")
            self.input_names = list(self.net.input_names())
            # pnnx names outputs out0, out1, ... in the model's order but lists them in graph order
            self.output_names = sorted(self.net.output_names(),
                                       key=lambda n: (0, int(n[3:])) if n[:3] == "out" and n[3:].isdigit() else (1, 0))
            # ncnn blobs have no batch axis; it keeps its own copy of each input. Token ids go in
            # as int32: ncnn's Embed layer reads its input's bits as int32, not as float values
            self.mats = [ncnn.Mat(np.ascontiguousarray(x[0], dtype=np.int32 if x.dtype.kind in "iu" else np.float32))
                         .clone() for x in inputs]
            if check_parity:
                self._check_parity(static_model)
        except BaseException:
            self.export.cleanup()
            raise
        self.clocks = WALL_AND_THREAD_CLOCKS if threads == 1 else WALL_CLOCK

    def _check_parity(self, static_model: torch.nn.Module) -> None:
        """Refuse to time a network that pnnx converted wrongly: ncnn's outputs
        must match PyTorch's on the example inputs."""
        with torch.no_grad():
            expected = static_model.eval()(*example_inputs(static_model, 1))
        expected = expected if isinstance(expected, (tuple, list)) else (expected,)
        for want, got in zip(expected, self.outputs()):
            want = want.detach().cpu().numpy().reshape(-1)
            got = got.reshape(-1)
            error = float(np.max(np.abs(want - got))) if want.shape == got.shape else float("inf")
            if not error <= 1e-3 + 1e-2 * float(np.max(np.abs(want))):
                raise BackendUnavailableError(
                    f"ncnn's output differs from PyTorch's (max abs difference {error:.3g}): pnnx did not convert "
                    f"this network faithfully, so its ncnn latency would not be this network's")

    def outputs(self) -> list[np.ndarray]:
        """Run once and return the outputs (for parity checks)."""
        extractor = self.net.create_extractor()
        for name, mat in zip(self.input_names, self.mats):
            extractor.input(name, mat)
        results = []
        for name in self.output_names:
            status, mat = extractor.extract(name)
            if status != 0:
                raise BackendUnavailableError(f"ncnn failed to compute output {name!r} (status {status})")
            results.append(np.array(mat))
        return results

    def run(self) -> None:
        self.outputs()

    def close(self) -> None:
        if getattr(self, "net", None) is not None:
            self.net.clear()
            self.net = None
        self.export.cleanup()


class NcnnBackend(TimedBackend):
    name = "mobile-ncnn"
    install_hint = INSTALL_HINT

    def __init__(self, threads: int = 1, precision: str = "fp32", protocol: MeasurementProtocol | dict | None = None):
        super().__init__(protocol)
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads must be a positive integer, got {threads!r}")
        if precision not in PRECISIONS:
            raise ConfigError(f"precision {precision!r} unknown for mobile-ncnn; allowed: {PRECISIONS}")
        self.threads = threads
        self.precision = precision

    def check_available(self) -> None:
        require("ncnn", self.install_hint)
        require("pnnx", self.install_hint)

    def version(self) -> str:
        from importlib import metadata

        ncnn = require("ncnn", self.install_hint)
        try:
            pnnx_version = metadata.version("pnnx")
        except metadata.PackageNotFoundError:
            pnnx_version = "unknown"
        return f"ncnn {ncnn.__version__}, pnnx {pnnx_version}"

    def default_device(self) -> str:
        from ..dataset import host_info
        from .base import slug

        return f"{slug(host_info().get('cpu', 'cpu'))}-ncnn-{self.threads}t"

    def header_fields(self) -> dict:
        return {"clocks": ["latency_ms", "cpu_time_ms"] if self.threads == 1 else ["latency_ms"],
                "runtime_options": {"vulkan": False, "fp16": self.precision == "fp16"}}

    def prepare(self, static_model: torch.nn.Module, batch_size: int = 1) -> NcnnRunner:
        self.check_available()
        # fp16 changes the numbers on purpose: the parity check is for fp32
        return NcnnRunner(static_model, batch_size, self.threads, self.precision,
                          check_parity=self.precision == "fp32")
