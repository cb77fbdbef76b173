"""``fpga-dpu``: the analytical model of a DPU-class CNN accelerator (Xilinx
DPUCZDX8G style) in :mod:`hardware_profiles.dpu`.

A network is priced block by block (``space.blocks(arch)``; spaces without
block specs fall back to their layer list as one chain), a block module
(a static model carrying ``block_spec``, :func:`ofa.models.blocks.build_block`)
or a block spec directly (:meth:`DPUBackend.measure_blocks`). Deterministic:
one "run" per record, no protocol. Configs: ``configs/dpu-*.json``
(``hardware_profiles.dpu.list_dpus()``); every number names its source in
the config's ``sources`` and in ``docs/fpga-dpu.md``.
"""

from __future__ import annotations

from pathlib import Path

from ofa.errors import ConfigError
from ofa.spaces import BlockSpec

from ..dataset import latency_stats
from ..dpu import DEFAULT_DPU, MODEL_VERSION, DPUConfig, DPUResult, load_dpu, simulate_block, simulate_layers, \
    simulate_network
from ..protocol import load_average
from .base import Backend
from .fpga_scalesim import simulated_measure

LATENCY_MODEL = ("per operation max(compute cycles of its engine (conv PP x ICP x OCP, depthwise/pool/misc on the "
                 "ALU, element-wise engine), DDR bytes / DDR bytes per cycle) + op_overhead_cycles; intermediate "
                 "tensors of a block stay in the feature-map banks when they fit one bank group, else go through "
                 "DDR; network = sum of blocks + task overhead; latency = cycles / clock (docs/fpga-dpu.md)")


def _record(result: DPUResult) -> dict:
    return {"latency_ms": latency_stats([result.latency_ms]), "cycles": result.cycles,
            "engine_cycles": result.engines, "ddr_read_bytes": result.ddr_read_bytes,
            "ddr_write_bytes": result.ddr_write_bytes, "onchip_bytes": result.onchip_bytes,
            "spilled": len(result.spilled), "load_average": load_average()}


class DPUBackend(Backend):
    name = "fpga-dpu"
    simulated = True

    def __init__(self, accelerator: "str | Path | dict | DPUConfig" = DEFAULT_DPU):
        self.config = load_dpu(accelerator)
        self.precision = "int8" if self.config.data_bits == 8 else "int4"

    def version(self) -> str:
        from ofa import __version__

        return f"ofa-hw dpu-model {MODEL_VERSION} ({__version__})"

    def default_device(self) -> str:
        return f"fpga-{self.config.name}"

    def header_fields(self) -> dict:
        # the sources of the numbers live in the config file and docs/fpga-dpu.md, not in every profile
        accelerator = {k: v for k, v in self.config.to_dict().items() if k != "sources"}
        return {"accelerator": accelerator, "dpu_model_version": MODEL_VERSION, "latency_model": LATENCY_MODEL}

    def simulate(self, block: BlockSpec) -> DPUResult:
        """The cached simulation of one block (see :func:`hardware_profiles.dpu.simulate_block`)."""
        return simulate_block(block, self.config)

    def measure_arch(self, space, arch) -> dict:
        try:
            blocks = space.blocks(arch)
        except NotImplementedError:  # a space without block specs: its layers as one chain
            return _record(simulate_layers(space.cost(arch).layers, self.config))
        record = _record(simulate_network(blocks, self.config))
        record["blocks"] = len(blocks)
        return record

    def measure_block(self, block: BlockSpec) -> dict:
        if not isinstance(block, BlockSpec):
            raise ConfigError(f"{self.name} measures block specs (ofa.spaces.blocks), got {type(block).__name__}")
        record = _record(self.simulate(block))
        record["input_shapes"] = [list(block.example_input_shape)]
        return record

    def measure_blocks(self, blocks, batch_size: int = 1, *, rng=0) -> list[dict]:
        if batch_size != 1:
            raise ConfigError(f"{self.name} simulates batch size 1 only (got {batch_size})")
        return [self.measure_block(block) for block in blocks]

    def measure_layers(self, layers) -> dict:
        return _record(simulate_layers(layers, self.config))

    def measure_many(self, static_models, batch_size: int = 1, *, space=None, rng=0) -> list[dict]:
        out = []
        for model in static_models:
            block = getattr(model, "block_spec", None)
            if block is not None:
                if batch_size != 1:
                    raise ConfigError(f"{self.name} simulates batch size 1 only (got {batch_size})")
                out.append(self.measure_block(block))
            else:
                out.append(simulated_measure(self, model, batch_size, space))
        return out
