"""``fpga-bitserial`` and ``asic-bitfusion``: accelerators whose latency falls with the bits
(:mod:`hardware_profiles.bit_accelerators`; docs/mixed-precision.md).

Both price networks (``space.blocks(arch)``), block modules (a static model with
``block_spec``) and block specs (:meth:`Backend.measure_blocks`, through
:meth:`measure_layers`), each layer at its own weight and activation precision.
Deterministic: one "run" per record.
"""

from __future__ import annotations

from ofa.errors import ConfigError

from ..bit_accelerators import (DEFAULT_BIT_FUSION, DEFAULT_BIT_SERIAL, BitFusionConfig, BitSerialConfig,
                                load_bit_accelerator, simulate_layers)
from ..dataset import latency_stats
from ..protocol import load_average
from .base import Backend
from .fpga_scalesim import simulated_measure


class _BitAcceleratorBackend(Backend):
    simulated = True
    precision = "mixed"
    config_kind: type = BitSerialConfig
    latency_model = ""

    def __init__(self, accelerator=None):
        self.config = load_bit_accelerator(accelerator or self.default_accelerator, self.config_kind)

    def version(self) -> str:
        from ofa import __version__

        return f"ofa-hw {self.name} {__version__}"

    def default_device(self) -> str:
        return self.config.name

    def header_fields(self) -> dict:
        accelerator = {k: v for k, v in self.config.to_dict().items() if k != "sources"}
        return {"accelerator": accelerator, "latency_model": self.latency_model}

    def measure_layers(self, layers) -> dict:
        result = simulate_layers(layers, self.config)
        return {"latency_ms": latency_stats([result.latency_ms]), "cycles": result.cycles,
                "compute_cycles": result.compute_cycles, "memory_cycles": result.memory_cycles,
                "load_average": load_average()}

    def measure_arch(self, space, arch) -> dict:
        try:
            blocks = space.blocks(arch)
        except NotImplementedError:
            return self.measure_layers(space.cost(arch).layers)
        layers = [layer for _, block in blocks for layer in block.layers()]
        record = self.measure_layers(layers)
        record["blocks"] = len(blocks)
        return record

    def measure_many(self, static_models, batch_size: int = 1, *, space=None, rng=0) -> list[dict]:
        out = []
        for model in static_models:
            block = getattr(model, "block_spec", None)
            if block is None:
                out.append(simulated_measure(self, model, batch_size, space))
                continue
            if batch_size != 1:
                raise ConfigError(f"{self.name} simulates batch size 1 only (got {batch_size})")
            record = self.measure_layers(block.layers())
            record["input_shapes"] = [list(block.example_input_shape)]
            out.append(record)
        return out


class BitSerialBackend(_BitAcceleratorBackend):
    name = "fpga-bitserial"
    config_kind = BitSerialConfig
    default_accelerator = DEFAULT_BIT_SERIAL
    latency_model = ("per layer max(groups x ceil(Cout_g / Dm) x ceil(pixels / Dn) x ceil(Cin_g k k / Dk) x weight "
                     "bits x activation bits, DRAM bits / port width) + op_overhead_cycles; float layers as 8-bit; "
                     "latency = sum / clock (BISMO, Umuroglu et al. FPL 2018)")


class BitFusionBackend(_BitAcceleratorBackend):
    name = "asic-bitfusion"
    config_kind = BitFusionConfig
    default_accelerator = DEFAULT_BIT_FUSION
    latency_model = ("per layer max(groups x ceil(Cout_g / columns) x pixels x k k x ceil(Cin_g / (rows x (8 / w') x "
                     "(8 / a'))), off-chip bits / interface width) + op_overhead_cycles, w' and a' the bits rounded "
                     "up to 2, 4, 8; float layers as 8-bit (Bit Fusion, Sharma et al. ISCA 2018)")
