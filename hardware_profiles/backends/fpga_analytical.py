"""``fpga-analytical``: a closed-form systolic-array model on the same
accelerator configs and layer decomposition as ``fpga-scalesim``
(:func:`hardware_profiles.systolic.analytical_cycles`). Microseconds per
architecture instead of seconds; ``benchmarks/measurement_noise.py`` reports
how closely it tracks SCALE-Sim."""

from __future__ import annotations

from pathlib import Path

from ..dataset import latency_stats
from ..protocol import load_average
from ..systolic import (DEFAULT_ACCELERATOR, AcceleratorConfig, analytical_cycles, load_accelerator, map_layer,
                        network_cycles)
from .base import Backend
from .fpga_scalesim import simulated_measure


class AnalyticalSystolicBackend(Backend):
    name = "fpga-analytical"
    simulated = True
    precision = "int8"

    def __init__(self, accelerator: "str | Path | dict | AcceleratorConfig" = DEFAULT_ACCELERATOR):
        self.config = load_accelerator(accelerator)

    def version(self) -> str:
        from ofa import __version__

        return f"ofa-hw analytical {__version__}"

    def default_device(self) -> str:
        return f"fpga-{self.config.name}-analytical"

    def header_fields(self) -> dict:
        return {"accelerator": self.config.to_dict(), "latency_model": (
            "sum over layers of repeats (groups; depthwise: block-diagonal channel groups) x closed-form cycles "
            "(folds x (2R + C + T - 2) - 1 + DRAM traffic, each operand read once unless neither fits its SRAM) "
            "+ layer_overhead_cycles + ceil(output elements / vector_lanes); latency = cycles / clock")}

    def measure_arch(self, space, arch) -> dict:
        return self.measure_layers(space.cost(arch).layers)

    def measure_layers(self, layers) -> dict:
        total = network_cycles(layers, lambda sim: analytical_cycles(sim, self.config)["total"], self.config,
                               mapping=lambda layer: map_layer(layer, self.config))
        return {"latency_ms": latency_stats([total["latency_ms"]]), "cycles": total["cycles"],
                "array_cycles": total["array_cycles"], "overhead_cycles": total["overhead_cycles"],
                "load_average": load_average()}

    def measure_many(self, static_models, batch_size: int = 1, *, space=None, rng=0) -> list[dict]:
        return [simulated_measure(self, model, batch_size, space) for model in static_models]
