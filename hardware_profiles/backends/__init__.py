"""Measurement backends, chosen by name.

=================  ======================================================
``cpu-ort``        ONNX Runtime on the CPU (wall clock + thread CPU time)
``gpu-tensorrt``   TensorRT engine built from the ONNX export (FP32/FP16)
``gpu-cuda``       PyTorch on CUDA with CUDA graphs and CUDA events
``mobile-ncnn``    ncnn (the mobile runtime) on a pnnx-converted model
``fpga-scalesim``  SCALE-Sim cycle-level systolic-array simulation
``fpga-analytical``  closed-form systolic-array model (fast, same configs)
``fpga-dpu``       analytical model of a DPUCZDX8G-class CNN accelerator (int8 only)
``fpga-bitserial``  BISMO-style bit-serial overlay: latency ~ weight bits x activation bits
``asic-bitfusion``  Bit Fusion-style array of fusible 2/4/8-bit units
=================  ======================================================

Each backend module imports its runtime only when used, so listing or
creating a backend never fails; ``backend.available()`` says whether it can
run here and ``measure`` raises :class:`~ofa.errors.BackendUnavailableError`
with an install hint otherwise.
"""

from __future__ import annotations

import importlib
import inspect

from ofa.errors import ConfigError

from .base import Backend, TimedBackend

# name -> "module:Class", imported on first use
BACKENDS: dict[str, str] = {
    "cpu-ort": "hardware_profiles.backends.cpu_ort:OnnxRuntimeCPUBackend",
    "gpu-tensorrt": "hardware_profiles.backends.gpu_tensorrt:TensorRTBackend",
    "gpu-cuda": "hardware_profiles.backends.gpu_cuda:CudaTorchBackend",
    "mobile-ncnn": "hardware_profiles.backends.mobile_ncnn:NcnnBackend",
    "fpga-scalesim": "hardware_profiles.backends.fpga_scalesim:ScaleSimBackend",
    "fpga-analytical": "hardware_profiles.backends.fpga_analytical:AnalyticalSystolicBackend",
    "fpga-dpu": "hardware_profiles.backends.fpga_dpu:DPUBackend",
    "fpga-bitserial": "hardware_profiles.backends.bit_accelerators:BitSerialBackend",
    "asic-bitfusion": "hardware_profiles.backends.bit_accelerators:BitFusionBackend",
}


def register_backend(name: str, target: "str | type[Backend]") -> None:
    """Add a backend: a class or a ``"module:Class"`` string."""
    BACKENDS[name] = target


def list_backends() -> list[str]:
    return sorted(BACKENDS)


def backend_class(name: str) -> type[Backend]:
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; available: {list_backends()}")
    target = BACKENDS[name]
    if isinstance(target, str):
        module, _, cls = target.partition(":")
        target = getattr(importlib.import_module(module), cls)
    return target


def get_backend(name: str, **options) -> Backend:
    """A backend by name, e.g. ``get_backend("cpu-ort", threads=1)``.

    Unknown options are refused with the list of allowed ones."""
    cls = backend_class(name)
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown} for backend {name!r}; allowed: {allowed}")
    return cls(**options)


__all__ = ["BACKENDS", "Backend", "TimedBackend", "backend_class", "get_backend", "list_backends",
           "register_backend"]
