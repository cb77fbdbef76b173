"""Systolic-array accelerators: configs, layer decomposition and a closed-form
cycle model. Shared by the ``fpga-scalesim`` (cycle-level SCALE-Sim) and
``fpga-analytical`` backends.

Layer decomposition
-------------------
Both backends see a network as its per-layer shapes
(``space.cost(arch).layers``, :class:`~ofa.spaces.LayerShape`), so they work
for every search space. Each layer becomes one :class:`SimLayer` - a dense
convolution in SCALE-Sim's terms - times a repeat count:

* SCALE-Sim models *valid* convolutions; our layers pad by ``k // 2``, so the
  simulated input is the padded one, ``(out - 1) * stride + k`` per side, which
  gives exactly our output size;
* SCALE-Sim does not model grouped convolutions. A conv with ``g`` groups is
  ``g`` independent convs of ``in/g -> out/g`` channels that the array runs one
  after another, so we simulate *one* of them and multiply its cycles by
  ``g``. A depthwise conv over C channels is the extreme case: C
  single-channel, single-filter convs. The groups are identical in shape, and
  SCALE-Sim starts every layer from empty buffers, so ``g x cycles(one)``
  equals what SCALE-Sim reports for the ``g`` convs run as separate layers
  (its own ``DP`` topology rows do exactly that, and the tests check the
  equality) - at the cost of one simulation instead of ``g``;
* that per-channel split is SCALE-Sim's own handling of depthwise layers, and
  a poor one: each channel is a k*k-row, one-column fold with its own fill and
  drain, and every kernel up to the array height costs the same (a 5x5
  depthwise as much as a 3x3 on 32 rows). By default (``depthwise_mapping:
  "channel-groups"``, :func:`map_layer`) a depthwise conv over C channels is
  mapped instead as ``ceil(C / G)`` block-diagonal dense convs of G channels
  and G filters - channels across the array's columns, their k*k windows
  stacked along its rows, zero weights off the diagonal - with the G that
  needs the fewest compute cycles (:func:`fold_cycles`). Kernel size then
  costs what it costs on a real array: k*k*G rows to fold. ``"channel-serial"``
  keeps SCALE-Sim's split;
* a linear layer over T tokens is a 1x1 conv on a T x 1 map; an attention
  matmul of H heads is a grouped 1x1 conv with H groups (``op == "matmul"``).

Latency of an architecture (both backends)::

    cycles = sum over layers of  repeat * array_cycles(sim layer)
                                 + layer_overhead_cycles
                                 + ceil(output elements / vector_lanes)
    latency_ms = cycles / (clock_mhz * 1e3)

``layer_overhead_cycles`` stands for configuring the array and DMA
descriptors per layer; the last term for element-wise work (bias, batch-norm,
activation, residual add, pooling) done by a vector unit of ``vector_lanes``
lanes on each layer's output. Both are plain config values.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Iterable

from ofa.errors import ConfigError
from ofa.spaces import LayerShape

from .config_files import CONFIG_DIR, read_config_json

DEFAULT_ACCELERATOR = "systolic-32x32-ws"
DATAFLOWS = ("ws", "os", "is")
DEPTHWISE_MAPPINGS = ("channel-groups", "channel-serial")


@dataclass(frozen=True)
class AcceleratorConfig:
    """A systolic-array accelerator, as plain data (``configs/*.json``)."""

    name: str
    array_rows: int
    array_cols: int
    dataflow: str
    ifmap_sram_kb: int
    filter_sram_kb: int
    ofmap_sram_kb: int
    bandwidth_words_per_cycle: int
    clock_mhz: float
    layer_overhead_cycles: int = 0
    vector_lanes: int = 32
    read_request_buffer: int = 32
    write_request_buffer: int = 32
    depthwise_mapping: str = "channel-groups"
    description: str = ""

    def __post_init__(self):
        for key in ("array_rows", "array_cols", "ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb",
                    "bandwidth_words_per_cycle", "vector_lanes", "read_request_buffer", "write_request_buffer"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"accelerator {self.name!r}: {key} must be a positive integer, got {value!r}")
        if self.dataflow not in DATAFLOWS:
            raise ConfigError(f"accelerator {self.name!r}: dataflow {self.dataflow!r} unknown; allowed: {DATAFLOWS}")
        if not isinstance(self.clock_mhz, (int, float)) or self.clock_mhz <= 0:
            raise ConfigError(f"accelerator {self.name!r}: clock_mhz must be positive, got {self.clock_mhz!r}")
        if not isinstance(self.layer_overhead_cycles, int) or self.layer_overhead_cycles < 0:
            raise ConfigError(f"accelerator {self.name!r}: layer_overhead_cycles must be an integer >= 0")
        if self.depthwise_mapping not in DEPTHWISE_MAPPINGS:
            raise ConfigError(f"accelerator {self.name!r}: depthwise_mapping {self.depthwise_mapping!r} unknown; "
                              f"allowed: {DEPTHWISE_MAPPINGS}")

    @classmethod
    def from_dict(cls, data: dict) -> "AcceleratorConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"an accelerator config is a JSON object, got {type(data).__name__}")
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ConfigError(f"unknown accelerator config key(s) {unknown}; allowed: {allowed}")
        required = [f.name for f in fields(cls) if f.default is MISSING]
        missing = [k for k in required if k not in data]
        if missing:
            raise ConfigError(f"accelerator config lacks {missing}")
        return cls(**data)

    def to_dict(self) -> dict:
        return asdict(self)

    def simulation_key(self) -> dict:
        """The fields that change a simulated layer's cycle count (cache key)."""
        return {k: getattr(self, k) for k in ("array_rows", "array_cols", "dataflow", "ifmap_sram_kb",
                                              "filter_sram_kb", "ofmap_sram_kb", "bandwidth_words_per_cycle",
                                              "read_request_buffer", "write_request_buffer")}


def list_accelerators() -> list[str]:
    """Shipped systolic-array configs (``configs/dpu-*.json`` belong to :mod:`hardware_profiles.dpu`)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json") if not p.stem.startswith("dpu-"))


def load_accelerator(spec: "str | Path | dict | AcceleratorConfig" = DEFAULT_ACCELERATOR) -> AcceleratorConfig:
    """A shipped config by name, a JSON file path, a dict or a config."""
    if isinstance(spec, AcceleratorConfig):
        return spec
    if isinstance(spec, dict):
        return AcceleratorConfig.from_dict(spec)
    data = read_config_json(spec, list_accelerators(), "accelerator")
    return AcceleratorConfig.from_dict(data)


@dataclass(frozen=True)
class SimLayer:
    """A dense, unpadded convolution as SCALE-Sim describes it (one topology row)."""

    ifmap_h: int
    ifmap_w: int
    filter_h: int
    filter_w: int
    channels: int
    filters: int
    stride: int

    @property
    def out_h(self) -> int:
        return (self.ifmap_h - self.filter_h) // self.stride + 1

    @property
    def out_w(self) -> int:
        return (self.ifmap_w - self.filter_w) // self.stride + 1

    @property
    def window(self) -> int:
        return self.filter_h * self.filter_w * self.channels

    @property
    def macs(self) -> int:
        return self.out_h * self.out_w * self.window * self.filters

    def as_row(self) -> list[int]:
        return [self.ifmap_h, self.ifmap_w, self.filter_h, self.filter_w, self.channels, self.filters, self.stride]


def decompose(layer: LayerShape) -> tuple[SimLayer, int]:
    """(one dense conv, how many times it runs) for a conv/linear/matmul layer."""
    if layer.groups < 1 or layer.in_channels % layer.groups or layer.out_channels % layer.groups:
        raise ConfigError(f"layer {layer.name}: {layer.in_channels} -> {layer.out_channels} channels cannot be "
                          f"split into {layer.groups} groups")
    k, s = layer.kernel_size, layer.stride
    (oh, ow) = layer.out_size
    sim = SimLayer(ifmap_h=(oh - 1) * s + k, ifmap_w=(ow - 1) * s + k, filter_h=k, filter_w=k,
                   channels=layer.in_channels // layer.groups, filters=layer.out_channels // layer.groups, stride=s)
    return sim, layer.groups


def is_depthwise(layer: LayerShape) -> bool:
    return layer.groups > 1 and layer.groups == layer.in_channels == layer.out_channels


def map_layer(layer: LayerShape, config: AcceleratorConfig) -> tuple[SimLayer, int]:
    """(one dense conv, how many times it runs) for a layer on this accelerator.

    As :func:`decompose`, except for depthwise convs under ``depthwise_mapping:
    "channel-groups"``: ``ceil(C / G)`` block-diagonal dense convs of G channels and G
    filters, G in 1..min(C, max(rows, cols)) chosen for the fewest compute cycles (ties:
    the smaller G, fewer zero weights to load)."""
    sim, repeat = decompose(layer)
    if config.depthwise_mapping != "channel-groups" or not is_depthwise(layer):
        return sim, repeat
    channels = layer.in_channels
    best = None
    for group in range(1, min(channels, max(config.array_rows, config.array_cols)) + 1):
        grouped = dataclasses.replace(sim, channels=group, filters=group)
        folds, per_fold = fold_cycles(grouped, config)
        cost = math.ceil(channels / group) * folds * per_fold
        if best is None or cost < best[0]:
            best = (cost, grouped, math.ceil(channels / group))
    return best[1], best[2]


def fold_cycles(sim: SimLayer, config: AcceleratorConfig) -> tuple[int, int]:
    """(folds, cycles per fold) of the array for one dense layer.

    Spatial dims (S_r, S_c) and temporal dim T per dataflow as in the SCALE-Sim
    paper (Samajdar et al., ISPASS 2020); a fold maps an S_r x S_c tile onto the
    R x C array. Weight- and input-stationary folds first load the stationary
    operand (R cycles), then stream T vectors through (T + R + C - 2 cycles);
    output-stationary folds only stream and drain. These are the compute cycles
    SCALE-Sim 3 reports (checked in the tests)."""
    ofmap_px = sim.out_h * sim.out_w
    if config.dataflow == "ws":
        s_row, s_col, t = sim.window, sim.filters, ofmap_px
    elif config.dataflow == "os":
        s_row, s_col, t = ofmap_px, sim.filters, sim.window
    else:  # "is"
        s_row, s_col, t = sim.window, ofmap_px, sim.filters
    rows, cols = config.array_rows, config.array_cols
    folds = math.ceil(s_row / rows) * math.ceil(s_col / cols)
    preload = 0 if config.dataflow == "os" else rows
    return folds, preload + t + rows + cols - 2


def analytical_cycles(sim: SimLayer, config: AcceleratorConfig) -> dict:
    """Closed-form cycles of one dense layer: compute folds, then the layer's
    DRAM traffic (input, weights, output) through the interface, not
    overlapped (a serial, pessimistic-about-overlap model).

    Each operand is read once when either fits in its half of the
    double-buffered SRAM (that one stays resident while the other streams
    through). Only when neither fits is one of them read again: the input
    once per extra column fold, or the weights once per extra input chunk,
    whichever moves fewer words. (Re-reading the input for every column fold
    whenever the input alone did not fit over-charged large-resolution layers,
    whose weights are small.)"""
    folds, per_fold = fold_cycles(sim, config)
    compute = folds * per_fold - 1
    ifmap_words = sim.ifmap_h * sim.ifmap_w * sim.channels
    filter_words = sim.window * sim.filters
    ofmap_words = sim.out_h * sim.out_w * sim.filters
    ifmap_half, filter_half = config.ifmap_sram_kb * 512, config.filter_sram_kb * 512
    extra = 0
    if ifmap_words > ifmap_half and filter_words > filter_half:
        col_dim = sim.out_h * sim.out_w if config.dataflow == "is" else sim.filters
        col_folds = math.ceil(col_dim / config.array_cols)
        ifmap_chunks = math.ceil(ifmap_words / ifmap_half)
        extra = min((col_folds - 1) * ifmap_words, (ifmap_chunks - 1) * filter_words)
    memory = (ifmap_words + filter_words + ofmap_words + extra) / config.bandwidth_words_per_cycle
    return {"total": int(round(compute + memory)), "compute": int(compute), "memory": int(round(memory)),
            "folds": folds}


def layer_overhead_cycles(layer: LayerShape, config: AcceleratorConfig) -> int:
    """Per-layer cycles besides the array's: setup plus element-wise work on the output."""
    return config.layer_overhead_cycles + math.ceil(layer.output_elements / config.vector_lanes)


def network_cycles(layers: Iterable[LayerShape], layer_cycles, config: AcceleratorConfig, mapping=None) -> dict:
    """Sum per-layer cycles: ``layer_cycles(sim_layer) -> int`` (array cycles of one dense conv).

    ``mapping(layer) -> (sim layer, repeat)``: :func:`decompose` by default; the
    backends pass :func:`map_layer` bound to their config."""
    mapping = mapping or decompose
    array = overhead = 0
    for layer in layers:
        sim, repeat = mapping(layer)
        array += repeat * layer_cycles(sim)
        overhead += layer_overhead_cycles(layer, config)
    total = array + overhead
    return {"cycles": total, "array_cycles": array, "overhead_cycles": overhead,
            "latency_ms": total / (config.clock_mhz * 1e3)}
