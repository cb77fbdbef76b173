"""An analytical latency model of a DPU-class CNN accelerator, in the style of
Xilinx's DPUCZDX8G (the Zynq UltraScale+ "DPU"), built from its public
documentation. ``docs/fpga-dpu.md`` gives every formula with the source of
every number; the configs (``configs/dpu-*.json``) carry a ``sources`` entry
per field.

The accelerator
---------------
* a **conv engine** of PP x ICP x OCP multiply-accumulators (pixel, input- and
  output-channel parallelism; PG338 "Architecture of the DPUCZDX8G", Table 1):
  convolutions, pointwise convs, fully connected layers and (as an
  approximation) Transformer matmuls;
* an **ALU** (misc) engine of ALU_PP x ICP lanes (Vitis AI target_factory,
  ``create_target_DPUCZDX8G_ISA1.cpp``: ``alu_engine`` channel_parallel = ICP,
  pixel_parallel = ALU_PP; PG338 v4.1 "DepthwiseConv (ALU)": ALU_PP in 1..PP,
  PP/2 recommended): depthwise convolution, pooling, hard-sigmoid (and, as an
  approximation, softmax and layer norm);
* an **element-wise engine** of ALU_PP x ICP lanes (same source,
  ``eltwise_engine``): residual add and channel-wise multiply;
* **on-chip feature-map banks**: 2 (RAM usage low) or 3 (high) bank groups of
  PP banks, ICP bytes wide and 2048 deep (target_factory ``bank_group`` VB*;
  the BRAM counts this implies reproduce PG338's "Number of BRAM36K Blocks"
  table exactly, see :meth:`DPUConfig.bram36_blocks`); a weight bank of OCP x
  ICP x 2048 bytes and a depthwise weight bank of ICP x 2048 bytes;
* two 128-bit AXI data ports per core (PG338 "Port Descriptions") to the
  board's DDR.

The cycle model (one operation = one layer on one engine)
---------------------------------------------------------
::

    conv      compute = groups * OH * ceil(OW / PP) * ceil(Cout_g / OCP) * taps
              taps    = kh * kw * ceil(Cin_g / ICP)            (or, with channel
                        augmentation and Cin_g < ICP: kh * ceil(Cin_g * kw / ICP))
    depthwise compute = ceil(C / ICP) * OH * ceil(OW / ALU_PP) * k * ceil(k / TAPS)
    pooling   compute = ceil(C / ICP) * OH * ceil(OW / ALU_PP) * kh * ceil(kw / TAPS)
    alu pass  compute = ceil(C / ICP) * H * ceil(W / ALU_PP) * passes
    eltwise   compute = ceil(C / ICP) * H * ceil(W / ALU_PP)
    ddr       cycles  = ceil(DDR bytes of the operation / DDR bytes per cycle)
    operation cycles  = max(compute, ddr) + op_overhead_cycles
    block     cycles  = sum of its operations
    network   cycles  = sum of its blocks + task_overhead_us * clock

Engines overlap their own DDR transfers (separate load, save and compute
engines in target_factory), not each other: the operations of a block run
one after another, which is conservative where the compiler pipelines tiles
of consecutive layers.

Feature maps stay on chip inside a block
----------------------------------------
A block reads its input from DDR and writes its output to DDR (a block is
measured alone: its input in memory, its output written). A tensor produced
inside the block stays in the feature-map banks when it fits into one bank
group, ``H * ceil(W / PP) * ceil(C / ICP) <= 2048`` lines (int4 halves the
channel term); otherwise it is spilled: its producer writes it to DDR and each
consumer reads it back. With three bank groups (RAM usage high) the block
input also stays on chip for the residual add when it fits; with two it is
read from DDR again. Convolution weights are read from DDR once per
operation; when neither the weights fit the weight bank nor the input fits a
bank group, the cheaper of re-reading the input per weight chunk and
re-reading the weights per input chunk is charged.

Transformers (approximation): a sequence of T tokens is a 1 x T map, linear
layers run on the conv engine, attention products on the conv engine with the
key/value operand written to and loaded from DDR (the engine takes its second
operand from the weight bank), softmax and layer norm as passes of the ALU.
The DPUCZDX8G itself runs softmax on a separate core and has no layer norm.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

from ofa.errors import ConfigError, UnsupportedPrecisionError
from ofa.spaces.blocks import (BlockSpec, ClassifierHeadBlock, CrossKVBlock, DecoderLayerBlock, DecoderStepBlock,
                               EmbeddingBlock, EncoderLayerBlock, MBConvBlock, OutputBlock, StemBlock)
from ofa.spaces.precision import FLOAT_BITS

from .config_files import CONFIG_DIR, read_config_json

CONFIG_PREFIX = "dpu-"
DEFAULT_DPU = "dpu-b4096"
MODEL_VERSION = 1  # bump when a formula changes: profiles record it in their header
ENGINES = ("conv", "alu", "eltwise")
RAM_USAGE_GROUPS = {"low": 2, "high": 3}  # image bank groups (see bram36_blocks)
ACTIVATIONS = ("none", "relu", "relu6", "leaky_relu", "h_swish", "h_sigmoid")


@dataclass(frozen=True)
class DPUConfig:
    """One DPU core and the memory system it sees, as plain data (``configs/dpu-*.json``)."""

    name: str
    architecture: str
    pixel_parallel: int
    input_channel_parallel: int
    output_channel_parallel: int
    alu_parallel: int
    clock_mhz: float
    ram_usage: str = "low"
    bank_depth: int = 2048
    channel_augmentation: bool = True
    conv_activations: tuple[str, ...] = ("relu", "relu6", "leaky_relu", "h_swish", "h_sigmoid")
    alu_activations: tuple[str, ...] = ("relu", "relu6")
    alu_taps_per_cycle: int = 4
    data_bits: int = 8
    axi_data_ports: int = 2
    axi_port_bits: int = 128
    ddr_mts: float = 2400.0
    ddr_bus_bits: int = 64
    ddr_efficiency: float = 0.7
    op_overhead_cycles: int = 200
    task_overhead_us: float = 10.0
    softmax_passes: int = 3
    layernorm_passes: int = 2
    description: str = ""
    sources: dict = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self):
        for key in ("pixel_parallel", "input_channel_parallel", "output_channel_parallel", "alu_parallel",
                    "alu_taps_per_cycle", "bank_depth", "axi_data_ports", "axi_port_bits", "ddr_bus_bits", "softmax_passes",
                    "layernorm_passes"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"DPU config {self.name!r}: {key} must be a positive integer, got {value!r}")
        if isinstance(self.op_overhead_cycles, bool) or not isinstance(self.op_overhead_cycles, int) \
                or self.op_overhead_cycles < 0:
            raise ConfigError(f"DPU config {self.name!r}: op_overhead_cycles must be an integer >= 0")
        for key in ("clock_mhz", "ddr_mts"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"DPU config {self.name!r}: {key} must be a positive number, got {value!r}")
        if isinstance(self.task_overhead_us, bool) or not isinstance(self.task_overhead_us, (int, float)) \
                or self.task_overhead_us < 0:
            raise ConfigError(f"DPU config {self.name!r}: task_overhead_us must be a number >= 0")
        if not isinstance(self.ddr_efficiency, (int, float)) or not 0 < self.ddr_efficiency <= 1:
            raise ConfigError(f"DPU config {self.name!r}: ddr_efficiency must be in (0, 1], got "
                              f"{self.ddr_efficiency!r}")
        if self.alu_parallel > self.pixel_parallel:
            raise ConfigError(f"DPU config {self.name!r}: alu_parallel {self.alu_parallel} exceeds pixel_parallel "
                              f"{self.pixel_parallel} (PG338: ALU parallelism ranges from 1 to PP)")
        if self.ram_usage not in RAM_USAGE_GROUPS:
            raise ConfigError(f"DPU config {self.name!r}: ram_usage {self.ram_usage!r} unknown; allowed: "
                              f"{sorted(RAM_USAGE_GROUPS)}")
        if self.data_bits not in (8, 4):
            raise ConfigError(f"DPU config {self.name!r}: data_bits must be 8 (int8) or 4 (int4), got "
                              f"{self.data_bits!r}")
        for key in ("conv_activations", "alu_activations"):
            value = getattr(self, key)
            if isinstance(value, list):
                object.__setattr__(self, key, tuple(value))
                value = tuple(value)
            unknown = sorted(set(value) - set(ACTIVATIONS))
            if unknown:
                raise ConfigError(f"DPU config {self.name!r}: {key} has unknown activation(s) {unknown}; allowed: "
                                  f"{ACTIVATIONS}")
        if not isinstance(self.channel_augmentation, bool):
            raise ConfigError(f"DPU config {self.name!r}: channel_augmentation must be true or false")
        if not isinstance(self.sources, dict):
            raise ConfigError(f"DPU config {self.name!r}: sources must be an object (field -> where it comes from)")

    # --- derived quantities -----------------------------------------------------------------------------------
    @property
    def macs_per_cycle(self) -> int:
        """Peak conv-engine MACs per cycle, PP x ICP x OCP (PG338 Table 1: peak ops = 2 x this)."""
        return self.pixel_parallel * self.input_channel_parallel * self.output_channel_parallel

    @property
    def peak_ops(self) -> int:
        return 2 * self.macs_per_cycle

    @property
    def image_bank_groups(self) -> int:
        return RAM_USAGE_GROUPS[self.ram_usage]

    @property
    def values_per_lane(self) -> int:
        """Feature-map values one ICP-byte bank word holds (1 for int8, 2 for int4)."""
        return 8 // self.data_bits

    @property
    def bank_group_bytes(self) -> int:
        return self.pixel_parallel * self.input_channel_parallel * self.bank_depth

    @property
    def weight_bank_bytes(self) -> int:
        return self.output_channel_parallel * self.input_channel_parallel * self.bank_depth

    @property
    def depthwise_weight_bank_bytes(self) -> int:
        return self.input_channel_parallel * self.bank_depth

    @property
    def ddr_bytes_per_cycle(self) -> float:
        """What one core can move per DPU cycle: its AXI data ports or the DDR, whichever is less."""
        ports = self.axi_data_ports * self.axi_port_bits / 8
        ddr = self.ddr_mts * 1e6 * self.ddr_bus_bits / 8 * self.ddr_efficiency / (self.clock_mhz * 1e6)
        return min(ports, ddr)

    def bram36_blocks(self) -> float:
        """BRAM36K blocks of the on-chip buffers: (image banks + weight banks + depthwise
        weight bank + bias bank) x the blocks one 2048 x (8 ICP)-bit bank takes (2K x 18
        BRAM36s, the remainder in 2K x 9 BRAM18s). Reproduces PG338 v4.x "Number of
        BRAM36K Blocks in Different Architectures for Each DPUCZDX8G Core"."""
        bits = 8 * self.input_channel_parallel
        per_bank = bits // 18 + 0.5 * math.ceil((bits % 18) / 9)
        banks = self.image_bank_groups * self.pixel_parallel + self.output_channel_parallel + 2
        return banks * per_bank * self.bank_depth / 2048

    # --- (de)serialisation ----------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict) -> "DPUConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"a DPU config is a JSON object, got {type(data).__name__}")
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ConfigError(f"unknown DPU config key(s) {unknown}; allowed: {allowed}")
        required = [f.name for f in fields(cls) if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if k not in data]
        if missing:
            raise ConfigError(f"DPU config lacks {missing}")
        try:
            return cls(**data)
        except TypeError as error:
            raise ConfigError(f"bad DPU config: {error}") from None

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        for key in ("conv_activations", "alu_activations"):
            out[key] = list(out[key])
        return out

    def replace(self, **changes) -> "DPUConfig":
        """A copy with some fields changed (validated), e.g. ``config.replace(clock_mhz=281)``."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise ConfigError(f"unknown DPU config key(s) {unknown}")
        return dataclasses.replace(self, **changes)


def list_dpus() -> list[str]:
    """Names of the shipped DPU configs (``configs/dpu-*.json``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob(f"{CONFIG_PREFIX}*.json"))


def load_dpu(spec: "str | Path | dict | DPUConfig" = DEFAULT_DPU) -> DPUConfig:
    """A shipped config by name (``dpu-b4096``), a JSON file path, a dict or a config."""
    if isinstance(spec, DPUConfig):
        return spec
    if isinstance(spec, dict):
        return DPUConfig.from_dict(spec)
    data = read_config_json(spec, list_dpus(), "DPU config")
    return DPUConfig.from_dict(data)


# --- results ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OpResult:
    """One operation: its engine, compute and DDR cycles, total cycles (with overhead) and traffic."""

    name: str
    engine: str
    compute_cycles: int
    ddr_cycles: int
    cycles: int
    ddr_read_bytes: int
    ddr_write_bytes: int
    onchip_bytes: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class DPUResult:
    """The simulated cost of a block or a network on one DPU config."""

    cycles: int
    latency_ms: float
    engine_cycles: tuple[tuple[str, int], ...]  # conv, alu, eltwise, ddr (stalls), overhead: sums to cycles
    ddr_read_bytes: int
    ddr_write_bytes: int
    onchip_bytes: int
    spilled: tuple[str, ...]
    ops: tuple[OpResult, ...]

    @property
    def engines(self) -> dict[str, int]:
        return dict(self.engine_cycles)

    @property
    def ddr_bytes(self) -> int:
        return self.ddr_read_bytes + self.ddr_write_bytes

    def to_dict(self, ops: bool = False) -> dict:
        out = {"cycles": self.cycles, "latency_ms": self.latency_ms, "engine_cycles": self.engines,
               "ddr_read_bytes": self.ddr_read_bytes, "ddr_write_bytes": self.ddr_write_bytes,
               "onchip_bytes": self.onchip_bytes, "spilled": list(self.spilled)}
        if ops:
            out["ops"] = [op.to_dict() for op in self.ops]
        return out


# --- the planner: operations of one block ---------------------------------------------------------------------
@dataclass
class Tensor:
    """A feature map of a block: ``height x width x channels`` values, on chip or in DDR."""

    name: str
    height: int
    width: int
    channels: int
    on_chip: bool = False

    @property
    def elements(self) -> int:
        return self.height * self.width * self.channels


class BlockPlan:
    """The operations of one block on one DPU, in execution order.

    Methods add one operation each and return its output tensor; :meth:`result`
    prices the plan. Used by :func:`simulate_block` for every block kind, and
    usable directly for networks that have no block spec (``benchmarks/fpga_models.py``
    builds ResNet bottlenecks with it)."""

    def __init__(self, config: DPUConfig):
        self.config = config
        self.ops: list[OpResult] = []
        self.spilled: list[str] = []
        self._inputs: set[int] = set()

    # tensors ---------------------------------------------------------------------------------------------
    def bytes_of(self, elements: int) -> int:
        return math.ceil(elements * self.config.data_bits / 8)

    def lines(self, height: int, width: int, channels: int) -> int:
        """Bank words a tensor takes in one bank group (PP banks of ICP-value words)."""
        c = self.config
        return height * math.ceil(width / c.pixel_parallel) * math.ceil(
            channels / (c.input_channel_parallel * c.values_per_lane))

    def fits(self, height: int, width: int, channels: int) -> bool:
        return self.lines(height, width, channels) <= self.config.bank_depth

    def input(self, name: str, height: int, width: int, channels: int) -> Tensor:
        """The block's input: in DDR."""
        tensor = Tensor(name, height, width, channels, on_chip=False)
        self._inputs.add(id(tensor))
        return tensor

    def _reads(self, *tensors: Tensor) -> tuple[int, int]:
        ddr = onchip = 0
        for t in tensors:
            if t.on_chip:
                onchip += self.bytes_of(t.elements)
            else:
                ddr += self.bytes_of(t.elements)
                if id(t) in self._inputs:
                    # the block input, once loaded, stays in a third bank group (RAM usage high) if it fits
                    t.on_chip = self.config.image_bank_groups >= 3 and self.fits(t.height, t.width, t.channels)
                    self._inputs.discard(id(t))
        return ddr, onchip

    def _output(self, name: str, height: int, width: int, channels: int, final: bool,
                to_ddr: bool = False) -> tuple[Tensor, int, int]:
        on_chip = not final and not to_ddr and self.fits(height, width, channels)
        if not on_chip and not final and not to_ddr:
            self.spilled.append(name)
        tensor = Tensor(name, height, width, channels, on_chip)
        size = self.bytes_of(tensor.elements)
        return tensor, (0 if on_chip else size), (size if on_chip else 0)

    def _add(self, name: str, engine: str, compute: int, ddr_read: int, ddr_write: int, onchip: int) -> None:
        c = self.config
        ddr = math.ceil((ddr_read + ddr_write) / c.ddr_bytes_per_cycle)
        cycles = max(compute, ddr) + c.op_overhead_cycles
        self.ops.append(OpResult(name, engine, int(compute), int(ddr), int(cycles), int(ddr_read), int(ddr_write),
                                 int(onchip)))

    def _activation(self, name: str, out: Tensor, activation: str, engine: str, final: bool) -> Tensor:
        """Activations the engine cannot apply itself: h-swish as hard-sigmoid (ALU) x input (eltwise)."""
        supported = self.config.conv_activations if engine == "conv" else self.config.alu_activations
        if activation in ("none", *supported):
            return out
        if activation == "h_swish":
            gate = self.alu_pass(f"{name}.hsigmoid", out, passes=1)
            return self.eltwise(f"{name}.hswish", out, gate, final=final)
        if activation == "h_sigmoid":
            return self.alu_pass(f"{name}.hsigmoid", out, passes=1, final=final)
        # relu-like activations the ALU lacks: one ALU pass
        return self.alu_pass(f"{name}.{activation}", out, passes=1, final=final)

    # operations -------------------------------------------------------------------------------------------
    def conv(self, name: str, x: Tensor, out_channels: int, kernel: int = 1, stride: int = 1, groups: int = 1,
             activation: str = "none", final: bool = False, to_ddr: bool = False,
             operand: Tensor | None = None) -> Tensor:
        """A (grouped) convolution, pointwise conv, linear layer or - with ``operand``, the
        second matrix of an attention product, read through the weight bank - a matmul.
        Padding ``kernel // 2``: the output is ``ceil(size / stride)``."""
        c = self.config
        _check_activation(activation)
        if x.channels % groups or out_channels % groups:
            raise ConfigError(f"{name}: {x.channels} -> {out_channels} channels cannot be split into {groups} "
                              f"groups")
        oh, ow = -(-x.height // stride), -(-x.width // stride)
        cin_g, cout_g = x.channels // groups, out_channels // groups
        if c.channel_augmentation and cin_g < c.input_channel_parallel and kernel > 1:
            # PG338 "Channel Augmentation": the taps of a kernel row share the channel lanes
            taps = kernel * math.ceil(cin_g * kernel / c.input_channel_parallel)
        else:
            taps = kernel * kernel * math.ceil(cin_g / c.input_channel_parallel)
        compute = groups * oh * math.ceil(ow / c.pixel_parallel) * math.ceil(cout_g / c.output_channel_parallel) \
            * taps
        ddr_in, onchip = self._reads(x)
        if operand is not None:
            weights = self.bytes_of(operand.elements)
            ddr_w, onchip_w = self._reads(operand)
            onchip += onchip_w
        else:
            weights = self.bytes_of(kernel * kernel * cin_g * out_channels)
            ddr_w = weights
        ddr_in += ddr_w + self._refetch(x, weights, c.weight_bank_bytes)
        out, ddr_out, onchip_out = self._output(name, oh, ow, out_channels,
                                                final and activation in ("none", *c.conv_activations), to_ddr)
        self._add(name, "conv", compute, ddr_in, ddr_out, onchip + onchip_out)
        return self._activation(name, out, activation, "conv", final)

    def depthwise(self, name: str, x: Tensor, kernel: int, stride: int = 1, activation: str = "none",
                  final: bool = False) -> Tensor:
        """A depthwise conv on the ALU: ALU_PP pixels x ICP channels, ``alu_taps_per_cycle`` taps
        of a kernel row per cycle."""
        c = self.config
        _check_activation(activation)
        oh, ow = -(-x.height // stride), -(-x.width // stride)
        compute = math.ceil(x.channels / c.input_channel_parallel) * oh * math.ceil(ow / c.alu_parallel) \
            * self.alu_taps(kernel, kernel)
        weights = self.bytes_of(kernel * kernel * x.channels)
        ddr_in, onchip = self._reads(x)
        ddr_in += weights + self._refetch(x, weights, c.depthwise_weight_bank_bytes)
        out, ddr_out, onchip_out = self._output(name, oh, ow, x.channels,
                                                final and activation in ("none", *c.alu_activations))
        self._add(name, "alu", compute, ddr_in, ddr_out, onchip + onchip_out)
        return self._activation(name, out, activation, "alu", final)

    def pool(self, name: str, x: Tensor, kernel: int | None = None, stride: int | None = None,
             final: bool = False) -> Tensor:
        """Average/max pooling on the ALU (``kernel=None``: global pooling to 1 x 1)."""
        c = self.config
        if kernel is None:
            taps, oh, ow = self.alu_taps(x.height, x.width), 1, 1
        else:
            stride = stride or kernel
            taps, oh, ow = self.alu_taps(kernel, kernel), -(-x.height // stride), -(-x.width // stride)
        compute = math.ceil(x.channels / c.input_channel_parallel) * oh * math.ceil(ow / c.alu_parallel) * taps
        ddr_in, onchip = self._reads(x)
        out, ddr_out, onchip_out = self._output(name, oh, ow, x.channels, final)
        self._add(name, "alu", compute, ddr_in, ddr_out, onchip + onchip_out)
        return out

    def alu_pass(self, name: str, x: Tensor, passes: int = 1, final: bool = False) -> Tensor:
        """``passes`` element-wise passes of the ALU over ``x`` (hard-sigmoid; softmax, layer norm)."""
        c = self.config
        compute = math.ceil(x.channels / c.input_channel_parallel) * x.height * math.ceil(x.width / c.alu_parallel) \
            * passes
        ddr_in, onchip = self._reads(x)
        out, ddr_out, onchip_out = self._output(name, x.height, x.width, x.channels, final)
        self._add(name, "alu", compute, ddr_in, ddr_out, onchip + onchip_out)
        return out

    def eltwise(self, name: str, a: Tensor, b: Tensor, final: bool = False) -> Tensor:
        """Element-wise add or multiply of ``a`` and ``b`` (``b`` may broadcast over pixels)."""
        c = self.config
        compute = math.ceil(a.channels / c.input_channel_parallel) * a.height * math.ceil(a.width / c.alu_parallel)
        ddr_in, onchip = self._reads(a, b)
        out, ddr_out, onchip_out = self._output(name, a.height, a.width, a.channels, final)
        self._add(name, "eltwise", compute, ddr_in, ddr_out, onchip + onchip_out)
        return out

    def gather(self, name: str, rows: int, width: int, final: bool = False) -> Tensor:
        """Rows of a table in DDR (an embedding lookup): loaded, no compute."""
        out, ddr_out, onchip_out = self._output(name, 1, rows, width, final)
        self._add(name, "eltwise", 0, self.bytes_of(rows * width), ddr_out, onchip_out)
        return out

    def alu_taps(self, kernel_h: int, kernel_w: int) -> int:
        """ALU cycles per output pixel for a kernel: its rows one after another, up to
        ``alu_taps_per_cycle`` taps of a row at once."""
        return kernel_h * math.ceil(kernel_w / self.config.alu_taps_per_cycle)

    def _refetch(self, x: Tensor, weight_bytes: int, bank_bytes: int) -> int:
        """Extra DDR bytes when neither the weights fit their bank nor the input a bank group:
        the cheaper of re-reading the input per weight chunk or the weights per input chunk."""
        if x.on_chip or weight_bytes <= bank_bytes:
            return 0
        input_chunks = math.ceil(self.lines(x.height, x.width, x.channels) / self.config.bank_depth)
        if input_chunks <= 1:
            return 0
        weight_chunks = math.ceil(weight_bytes / bank_bytes)
        return min((weight_chunks - 1) * self.bytes_of(x.elements), (input_chunks - 1) * weight_bytes)

    # pricing ----------------------------------------------------------------------------------------------
    def result(self, extra_cycles: int = 0) -> DPUResult:
        engines = {name: 0 for name in (*ENGINES, "ddr", "overhead")}
        for op in self.ops:
            engines[op.engine] += op.compute_cycles
            engines["ddr"] += max(0, op.ddr_cycles - op.compute_cycles)
            engines["overhead"] += op.cycles - max(op.compute_cycles, op.ddr_cycles)
        engines["overhead"] += extra_cycles
        cycles = sum(op.cycles for op in self.ops) + extra_cycles
        return DPUResult(cycles=int(cycles), latency_ms=cycles / (self.config.clock_mhz * 1e3),
                         engine_cycles=tuple(engines.items()),
                         ddr_read_bytes=sum(op.ddr_read_bytes for op in self.ops),
                         ddr_write_bytes=sum(op.ddr_write_bytes for op in self.ops),
                         onchip_bytes=sum(op.onchip_bytes for op in self.ops), spilled=tuple(self.spilled),
                         ops=tuple(self.ops))


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ConfigError(f"activation {activation!r} unknown; allowed: {ACTIVATIONS}")


# --- block kinds -------------------------------------------------------------------------------------------------
def _plan_stem(plan: BlockPlan, b: StemBlock) -> None:
    x = plan.input("input", b.resolution, b.resolution, b.in_channels)
    plan.conv("conv", x, b.out_channels, b.kernel, b.stride, activation=b.activation, final=True)


def _plan_mbconv(plan: BlockPlan, b: MBConvBlock) -> None:
    x = plan.input("input", b.resolution, b.resolution, b.in_channels)
    h = plan.conv("expand", x, b.mid_channels, activation=b.activation) if b.expand else x
    d = plan.depthwise("depthwise", h, b.kernel, b.stride, activation=b.activation)
    if b.use_se:
        pooled = plan.pool("se.pool", d)
        reduced = plan.conv("se.reduce", pooled, b.se_channels, activation="relu")
        gate = plan.conv("se.expand", reduced, b.mid_channels, activation="h_sigmoid")
        d = plan.eltwise("se.scale", d, gate)
    y = plan.conv("project", d, b.out_channels, final=not b.residual)
    if b.residual:
        plan.eltwise("residual", y, x, final=True)


def _plan_head(plan: BlockPlan, b: ClassifierHeadBlock) -> None:
    x = plan.input("input", b.resolution, b.resolution, b.in_channels)
    h = plan.conv("final_expand", x, b.final_expand_channels, activation=b.activation)
    p = plan.pool("pool", h)
    f = plan.conv("feature_mix", p, b.feature_mix_channels, activation=b.activation)
    plan.conv("classifier", f, b.num_classes, final=True)


def _attention(plan: BlockPlan, name: str, q_in: Tensor, heads: int, head_size: int, kv_tokens: int, *,
               kv_in: Tensor | None = None, beams: int = 1, out_dim: int | None = None) -> Tensor:
    """Attention of ``beams`` sequences laid side by side in ``q_in`` (a 1 x (beams * T) map):
    q projection; k, v projections of ``kv_in`` written to DDR, or (``kv_in`` None) the
    ``kv_tokens`` cached keys/values per sequence read from DDR; scores, softmax, context (one
    group per head and sequence), output projection."""
    width = heads * head_size
    q = plan.conv(f"{name}.q_proj", q_in, width)
    if kv_in is not None:
        k = plan.conv(f"{name}.k_proj", kv_in, width, to_ddr=True)
        v = plan.conv(f"{name}.v_proj", kv_in, width, to_ddr=True)
    else:
        k = Tensor(f"{name}.k_cache", 1, beams * kv_tokens, width)
        v = Tensor(f"{name}.v_cache", 1, beams * kv_tokens, width)
    groups = heads * beams
    q_tokens = q_in.width // beams
    q = Tensor(q.name, 1, q_tokens, groups * head_size, q.on_chip)  # the sequences side by side in channels
    scores = plan.conv(f"{name}.scores", q, groups * kv_tokens, groups=groups, operand=k)
    probs = plan.alu_pass(f"{name}.softmax", scores, passes=plan.config.softmax_passes)
    context = plan.conv(f"{name}.context", probs, groups * head_size, groups=groups, operand=v)
    context = Tensor(context.name, 1, q_in.width, width, context.on_chip)
    return plan.conv(f"{name}.out_proj", context, out_dim or q_in.channels)


def _ffn(plan: BlockPlan, x: Tensor, ffn_dim: int, dim: int) -> Tensor:
    n = plan.alu_pass("ln_ffn", x, passes=plan.config.layernorm_passes)
    h = plan.conv("ffn.fc1", n, ffn_dim, activation="relu")
    y = plan.conv("ffn.fc2", h, dim)
    return plan.eltwise("residual_ffn", y, x, final=True)


def _plan_encoder_layer(plan: BlockPlan, b: EncoderLayerBlock) -> None:
    x = plan.input("input", 1, b.tokens, b.dim)
    n = plan.alu_pass("ln1", x, passes=plan.config.layernorm_passes)
    a = _attention(plan, "self_attn", n, b.heads, b.head_size, b.tokens, kv_in=n)
    _ffn(plan, plan.eltwise("residual1", a, x), b.ffn_dim, b.dim)


def _plan_decoder_layer(plan: BlockPlan, b: DecoderLayerBlock) -> None:
    x = plan.input("input", 1, b.tokens, b.dim)
    memory = plan.input("encoder_states", 1, b.cross_layers * b.source_tokens, b.encoder_dim)
    n = plan.alu_pass("ln1", x, passes=plan.config.layernorm_passes)
    a = _attention(plan, "self_attn", n, b.self_heads, b.self_head_size, b.tokens, kv_in=n)
    x1 = plan.eltwise("residual1", a, x)
    n2 = plan.alu_pass("ln2", x1, passes=plan.config.layernorm_passes)
    c = _attention(plan, "cross_attn", n2, b.cross_heads, b.cross_head_size, b.cross_layers * b.source_tokens,
                   kv_in=memory, out_dim=b.dim)
    _ffn(plan, plan.eltwise("residual2", c, x1), b.ffn_dim, b.dim)


def _plan_decoder_step(plan: BlockPlan, b: DecoderStepBlock) -> None:
    x = plan.input("input", 1, b.beams, b.dim)
    n = plan.alu_pass("ln1", x, passes=plan.config.layernorm_passes)
    width = b.self_heads * b.self_head_size
    # the new token's key and value are projected and appended to the cache in DDR
    plan.conv("self_attn.k_proj", n, width, to_ddr=True)
    plan.conv("self_attn.v_proj", n, width, to_ddr=True)
    a = _attention(plan, "self_attn", n, b.self_heads, b.self_head_size, b.cache_length + 1, beams=b.beams)
    x1 = plan.eltwise("residual1", a, x)
    n2 = plan.alu_pass("ln2", x1, passes=plan.config.layernorm_passes)
    c = _attention(plan, "cross_attn", n2, b.cross_heads, b.cross_head_size, b.cross_layers * b.source_tokens,
                   beams=b.beams, out_dim=b.dim)
    _ffn(plan, plan.eltwise("residual2", c, x1), b.ffn_dim, b.dim)


def _plan_cross_kv(plan: BlockPlan, b: CrossKVBlock) -> None:
    memory = plan.input("encoder_states", 1, b.beams * b.source_tokens, b.encoder_dim)
    width = b.heads * b.head_size
    plan.conv("k_proj", memory, width, final=True)
    plan.conv("v_proj", memory, width, final=True)


def _plan_embedding(plan: BlockPlan, b: EmbeddingBlock) -> None:
    tokens = plan.gather("token_embedding", b.tokens, b.dim)
    positions = plan.gather("position_embedding", b.tokens, b.dim)
    plan.eltwise("add_positions", tokens, positions, final=True)


def _plan_output(plan: BlockPlan, b: OutputBlock) -> None:
    x = plan.input("input", 1, b.tokens, b.dim)
    if b.norm:
        x = plan.alu_pass("final_norm", x, passes=plan.config.layernorm_passes)
    plan.conv("projection", x, b.vocab_size, final=True)


def _plan_layers(plan: BlockPlan, block: BlockSpec) -> None:
    """Any other block kind: its layers (``block.layers()``) as a chain."""
    _plan_chain(plan, block.layers())


def _plan_chain(plan: BlockPlan, layers) -> None:
    """Layers run one after another, each consuming the previous one's output; the first
    reads the input from DDR, the last writes to DDR."""
    layers = list(layers)
    if not layers:
        return
    h, w = _map_size(layers[0].op, layers[0].in_size)
    x = plan.input("input", h, w, layers[0].in_channels)
    for index, layer in enumerate(layers):
        final = index == len(layers) - 1
        h, w = _map_size(layer.op, layer.in_size)
        if (h, w, layer.in_channels) != (x.height, x.width, x.channels):
            x = Tensor(x.name, h, w, layer.in_channels, x.on_chip)
        if layer.op == "depthwise":
            x = plan.depthwise(layer.name, x, layer.kernel_size, layer.stride, final=final)
        else:
            x = plan.conv(layer.name, x, layer.out_channels, layer.kernel_size, layer.stride, layer.groups,
                          final=final)


def _map_size(op: str, size: tuple[int, int]) -> tuple[int, int]:
    """Token sequences ((T, 1) in LayerShape) become 1 x T maps: tokens along the pixel lanes."""
    return (1, size[0] * size[1]) if op in ("linear", "matmul") else size


PLANNERS = {StemBlock: _plan_stem, MBConvBlock: _plan_mbconv, ClassifierHeadBlock: _plan_head,
            EncoderLayerBlock: _plan_encoder_layer, DecoderLayerBlock: _plan_decoder_layer,
            DecoderStepBlock: _plan_decoder_step, CrossKVBlock: _plan_cross_kv, EmbeddingBlock: _plan_embedding,
            OutputBlock: _plan_output}


@functools.lru_cache(maxsize=65536)
def _simulate(block: BlockSpec, config: DPUConfig) -> DPUResult:
    check_precision(block.layers(), config)
    plan = BlockPlan(config)
    PLANNERS.get(type(block), _plan_layers)(plan, block)
    return plan.result()


def check_precision(layers, config: DPUConfig) -> None:
    """The DPU runs int8 (``data_bits``) only: a layer quantised to other bits is a named error
    (floating-point layers are quantised to int8 by the vendor flow, as always)."""
    for layer in layers:
        for name in ("weight_bits", "activation_bits"):
            bits = getattr(layer, name)
            if bits not in (config.data_bits, FLOAT_BITS):
                raise UnsupportedPrecisionError(
                    f"layer {layer.name!r}: {name} = {bits} is not allowed on the DPU model {config.name!r}: it runs "
                    f"int{config.data_bits} only (floating-point layers are quantised to int{config.data_bits}); "
                    f"price mixed precision on fpga-bitserial or asic-bitfusion")


def simulate_block(block: BlockSpec, config: "DPUConfig | str | dict" = DEFAULT_DPU) -> DPUResult:
    """Cycles, per-engine breakdown and traffic of one block run alone (input in DDR,
    output written to DDR). Cached per (block, config)."""
    if not isinstance(block, BlockSpec):
        raise ConfigError(f"simulate_block needs a BlockSpec (ofa.spaces.blocks), got {type(block).__name__}")
    return _simulate(block, load_dpu(config))


def simulate_network(blocks: Iterable, config: "DPUConfig | str | dict" = DEFAULT_DPU) -> DPUResult:
    """A network: the sum of its blocks (``space.blocks(arch)``: ``(name, block)`` pairs or
    blocks) plus the per-inference task overhead (start and completion interrupt)."""
    config = load_dpu(config)
    results = []
    for item in blocks:
        block = item[1] if isinstance(item, tuple) else item
        results.append(simulate_block(block, config))
    if not results:
        raise ConfigError("simulate_network needs at least one block")
    return combine(results, config, extra_cycles=round(config.task_overhead_us * config.clock_mhz))


def simulate_layers(layers, config: "DPUConfig | str | dict" = DEFAULT_DPU) -> DPUResult:
    """Layers (:class:`~ofa.spaces.LayerShape`) run as one chain plus the task overhead: for
    spaces without block specs. Not cached."""
    config = load_dpu(config)
    layers = list(layers)
    check_precision(layers, config)
    plan = BlockPlan(config)
    _plan_chain(plan, layers)
    if not plan.ops:
        raise ConfigError("simulate_layers needs at least one layer")
    return plan.result(extra_cycles=round(config.task_overhead_us * config.clock_mhz))


def combine(results: Iterable[DPUResult], config: DPUConfig, extra_cycles: int = 0) -> DPUResult:
    """Sum results (blocks of a network), adding ``extra_cycles`` of overhead."""
    results = list(results)
    engines = {name: 0 for name in (*ENGINES, "ddr", "overhead")}
    for r in results:
        for name, value in r.engine_cycles:
            engines[name] += value
    engines["overhead"] += extra_cycles
    cycles = sum(r.cycles for r in results) + extra_cycles
    return DPUResult(cycles=int(cycles), latency_ms=cycles / (config.clock_mhz * 1e3),
                     engine_cycles=tuple(engines.items()),
                     ddr_read_bytes=sum(r.ddr_read_bytes for r in results),
                     ddr_write_bytes=sum(r.ddr_write_bytes for r in results),
                     onchip_bytes=sum(r.onchip_bytes for r in results),
                     spilled=tuple(s for r in results for s in r.spilled),
                     ops=tuple(op for r in results for op in r.ops))


def cache_info() -> Any:
    return _simulate.cache_info()


# vaitrace's "Mem IO(MB)" / "Mem (MB)": the total load/store size of a subgraph - feature maps,
# weights and biases loaded from DDR plus feature maps stored to it (UG1414 "Vitis AI User Guide",
# Profiling, "Text Summary": LdFM + LdWB + StFM, unit MB). UG1414 does not say 10^6 or 2^20
# bytes; 10^6 is used (2^20 would make the measured traffic 4.9% larger than read here).
PROFILER_MB = 1e6


def memory_traffic_comparison(profile, config: "DPUConfig | str | dict" = DEFAULT_DPU) -> list[dict]:
    """The model's DDR traffic of every block of an imported block profile whose records
    hold the profiler's measured traffic (``mem_io_mb``, ``--format vitis-ai``) next to it:
    ``{key, measured_mb, predicted_mb, ratio (predicted / measured), predicted_read_bytes,
    predicted_write_bytes, spilled (the intermediate tensors the model sends through DDR),
    measured_ms, predicted_ms}`` per block; blocks without a measured traffic are left out."""
    from ofa.spaces import block_from_key

    config = load_dpu(config)
    rows = []
    for record in profile.records:
        measured = record.get("mem_io_mb")
        if record.get("kind") != "block" or not isinstance(measured, (int, float)) or \
                str(record.get("key", "")).startswith("null:"):
            continue
        result = simulate_block(block_from_key(record["key"]), config)
        predicted = result.ddr_bytes / PROFILER_MB
        rows.append({"key": record["key"], "measured_mb": float(measured), "predicted_mb": predicted,
                     "ratio": predicted / measured if measured > 0 else None,
                     "predicted_read_bytes": result.ddr_read_bytes, "predicted_write_bytes": result.ddr_write_bytes,
                     "spilled": list(result.spilled), "measured_ms": record["latency_ms"]["median"],
                     "predicted_ms": result.latency_ms})
    return rows

__all__ = ["BlockPlan", "CONFIG_PREFIX", "DEFAULT_DPU", "DPUConfig", "DPUResult", "MODEL_VERSION", "OpResult",
           "PROFILER_MB", "memory_traffic_comparison",
           "Tensor", "cache_info", "combine", "list_dpus", "load_dpu", "simulate_block", "simulate_layers",
           "simulate_network"]
