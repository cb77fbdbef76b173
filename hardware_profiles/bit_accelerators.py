"""Accelerators where fewer bits pay: a bit-serial and a bit-flexible spatial one.

Both price a network as the sum of its compute layers
(:class:`~ofa.spaces.LayerShape`, from ``block.layers()``), each at its own
weight and activation precision (``layer.weight_bits``,
``layer.activation_bits``; ``ofa.spaces.precision``). A layer left in floating
point (32 bits) runs as 8-bit integers on both (post-training quantised, as on
the DPU). Element-wise work (batch norm folded into the weights, activations,
residual adds, pooling, the SE multiply) is not priced: both designs are
matrix engines and leave it to their host or to fused post-processing.

**Bit-serial** (BISMO: Umuroglu, Rasnayake and Själander, "BISMO: A Scalable
Bit-Serial Matrix Multiplication Overlay for Reconfigurable Computing", FPL
2018; Umuroglu et al., "Optimizing Bit-Serial Matrix Multiplication for
Reconfigurable Computing", ACM TRETS 2019). A dot-product array of Dm x Dn
units, each an AND-popcount over Dk bits per cycle, computes a product of two
binary matrices; a product of w-bit and a-bit integer matrices is the
w x a products of their bit planes, shifted and summed. A conv layer is a
matrix product per group (weights Cout_g x (Cin_g k k), im2col activations
(Cin_g k k) x pixels), so::

    compute = groups * ceil(Cout_g / Dm) * ceil(pixels / Dn) * ceil(Cin_g k k / Dk) * w * a

Latency is proportional to weight bits x activation bits. Fetch, execute and
result stages run concurrently (BISMO's decoupled stages), so a layer takes
``max(compute, memory) + op_overhead_cycles`` with ``memory`` the bits moved
over the DRAM port: the weights' bit planes, the input's (read once: im2col
happens on chip) and the 32-bit results.

**Bit-flexible spatial** (Bit Fusion: Sharma et al., "Bit Fusion: Bit-Level
Dynamically Composable Architecture for Accelerating Deep Neural Networks",
ISCA 2018). An array of rows x columns Fusion Units, each of 16 BitBricks
(2-bit x 2-bit multipliers) that fuse into one 8x8-bit, four 4x4-bit (or
8x2-bit) or sixteen 2x2-bit multiply-adds per cycle. Output channels run
across the columns, input channels across the rows, and each Fusion Unit
works on ``(8 / w') x (8 / a')`` input channels at once, where ``w'`` and
``a'`` are the bits rounded up to the fused widths (2, 4, 8: a 6-bit operand
costs 8)::

    compute = groups * ceil(Cout_g / columns) * pixels * k * k * ceil(Cin_g / (rows * (8 / w') * (8 / a')))

(the public simulator's channel-wise mapping). A depthwise conv has no input
channels to reduce over: its k x k taps go along the rows instead (im2col),
``ceil(Cin_g k k / (rows * (8 / w') * (8 / a')))`` in place of the last two
factors. Depthwise convs on either design may also run as block-diagonal
products of G channels (:func:`_shapes`), whichever is fastest.

Memory: weights, inputs and outputs (outputs at the layer's activation bits)
over the off-chip interface, each read once unless neither the weights nor
the input fit their buffer (then the input is read once per weight chunk);
``max(compute, memory) + op_overhead_cycles`` per layer.

Every constant of the shipped configurations names its source below; the
ones no public document gives are marked as assumptions.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from dataclasses import asdict, dataclass, field
from typing import Iterable

from ofa.errors import ConfigError, UnsupportedPrecisionError
from ofa.spaces import LayerShape
from ofa.spaces.precision import FLOAT_BITS

FLOAT_LAYER_BITS = 8  # a floating-point layer runs as int8 (post-training quantised) on integer accelerators
RESULT_BITS = 32  # BISMO writes 32-bit accumulators (BitSerialMatMulParams accWidth = 32, EECS-NTNU/bismo)
MATRIX_OPS = ("conv", "depthwise", "pointwise", "linear", "matmul")


@dataclass(frozen=True)
class BitSerialConfig:
    """A BISMO-style bit-serial overlay."""

    name: str
    dm: int  # rows of the dot-product array (LHS, weights: output channels)
    dk: int  # bits each dot-product unit reduces per cycle (common dimension)
    dn: int  # columns of the dot-product array (RHS, activations: pixels)
    clock_mhz: float
    dram_bits_per_cycle: int  # width of the DRAM port at the accelerator clock
    max_bits: int = 8  # the widest operand this model runs (the quantised range of the search space)
    # Assumption (no public number): instruction issue and pipeline fill per layer. 0 keeps the model
    # to what the papers give; a deployment would measure it.
    op_overhead_cycles: int = 0
    sources: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def binary_ops_per_cycle(self) -> int:
        """2 x Dm x Dn x Dk (an AND and a popcount-add per bit), as BISMO reports peak binary TOPS."""
        return 2 * self.dm * self.dn * self.dk

    def to_dict(self) -> dict:
        return {"kind": "bit-serial", **asdict(self)}


@dataclass(frozen=True)
class BitFusionConfig:
    """A Bit Fusion-style array of fusible 2-bit BitBricks."""

    name: str
    rows: int  # Fusion Units along the input channels
    columns: int  # Fusion Units along the output channels
    clock_mhz: float
    interface_bits_per_cycle: int  # off-chip interface width
    weight_buffer_bytes: int
    input_buffer_bytes: int
    output_buffer_bytes: int
    max_bits: int = 8  # a Fusion Unit's 16 BitBricks fuse into one 8x8-bit multiplier
    min_bits: int = 2  # a BitBrick is 2 x 2 bits
    op_overhead_cycles: int = 0  # assumption, as for the bit-serial model
    sources: dict = field(default_factory=dict, compare=False, hash=False)

    def fused_width(self, bits: int) -> int:
        """The operand width a Fusion Unit runs ``bits`` at: the next of 2, 4, 8."""
        width = self.min_bits
        while width < bits:
            width *= 2
        return width

    def macs_per_unit(self, weight_bits: int, activation_bits: int) -> int:
        """Multiply-adds one Fusion Unit does per cycle at this precision (1 at 8x8, 16 at 2x2)."""
        return (self.max_bits // self.fused_width(weight_bits)) * (self.max_bits // self.fused_width(activation_bits))

    def to_dict(self) -> dict:
        return {"kind": "bit-fusion", **asdict(self)}


BIT_ACCELERATORS: dict[str, "BitSerialConfig | BitFusionConfig"] = {
    # HAQ's edge accelerator: BISMO on the Xilinx Zynq-7020 (PYNQ-Z1 board)
    "bismo-pynq-z1": BitSerialConfig(
        "bismo-pynq-z1", dm=8, dk=256, dn=8, clock_mhz=200.0, dram_bits_per_cycle=64,
        sources={"dm, dk, dn, clock_mhz": "EECS-NTNU/bismo doc/platforms.md: PYNQZ1 largest configuration "
                                          "8x256x8 @ 200 MHz, 6.5 binary TOPS (= 2 x 8 x 256 x 8 x 200e6; "
                                          "FPL 2018 abstract: 6.5 TOPS on the PYNQ-Z1)",
                 "dram_bits_per_cycle": "doc/platforms.md: PYNQZ1 'Uses 64-bit AXI HP0 port'",
                 "result bits": "src/main/scala/BISMO.scala: accWidth = 32"}),
    "bismo-ultra96": BitSerialConfig(
        "bismo-ultra96", dm=10, dk=256, dn=10, clock_mhz=300.0, dram_bits_per_cycle=64,
        sources={"dm, dk, dn, clock_mhz": "EECS-NTNU/bismo doc/platforms.md: PYNQU96 largest configuration "
                                          "10x256x10 @ 300 MHz, 15 binary TOPS (TRETS 2019: 15.4 binary TOPS "
                                          "on the Ultra96)",
                 "dram_bits_per_cycle": "doc/platforms.md: PYNQU96 'Uses 64-bit AXI HP0 port'"}),
    # Bit Fusion as the ISCA 2018 paper compares it with Eyeriss (45 nm)
    "bitfusion-45nm": BitFusionConfig(
        "bitfusion-45nm", rows=16, columns=32, clock_mhz=500.0, interface_bits_per_cycle=192,
        weight_buffer_bytes=65536, input_buffer_bytes=32768, output_buffer_bytes=16384,
        sources={"all": "Bit Fusion's public simulator (hsharma35/bitfusion) bf_e_conf.ini, the configuration "
                        "compared with Eyeriss: a = 16, c = 32 (512 Fusion Units), frequency = 500000000, "
                        "if_width = 192, Wgt_SRAM = 65536, Act_SRAM = 32768, Out_SRAM = 16384, high_prec = 8, "
                        "low_prec = 2",
                 "fusion": "ISCA 2018 / act-lab.org artifact page: 16 BitBricks per Fusion Unit fuse into 1, 4 or "
                           "16 processing engines (8x8, 8x2 / 4x4 / 2x8, 2x2 bits)"}),
}
DEFAULT_BIT_SERIAL = "bismo-pynq-z1"
DEFAULT_BIT_FUSION = "bitfusion-45nm"


def load_bit_accelerator(spec, kind: type) -> "BitSerialConfig | BitFusionConfig":
    """A config of class ``kind`` from a shipped name, a dict of its fields or a config."""
    if isinstance(spec, kind):
        return spec
    if isinstance(spec, str):
        config = BIT_ACCELERATORS.get(spec)
        if not isinstance(config, kind):
            names = [n for n, c in BIT_ACCELERATORS.items() if isinstance(c, kind)]
            raise ConfigError(f"unknown {kind.__name__} accelerator {spec!r}; shipped: {names} (or a dict of fields)")
        return config
    if isinstance(spec, dict):
        values = {k: v for k, v in spec.items() if k != "kind"}
        try:
            config = kind(**values)
        except TypeError as error:
            raise ConfigError(f"bad {kind.__name__} accelerator {spec!r}: {error}") from None
        numbers = {k: v for k, v in asdict(config).items() if k not in ("name", "sources")}
        bad = [k for k, v in numbers.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0
               or (v == 0 and k != "op_overhead_cycles")]
        if bad:
            raise ConfigError(f"{kind.__name__} accelerator {config.name!r}: fields {bad} must be positive numbers")
        return config
    raise ConfigError(f"an accelerator is a shipped name, a dict or a {kind.__name__}, got {type(spec).__name__}")


@dataclass(frozen=True)
class LayerCost:
    """Cycles of one layer: its compute, its memory transfers, and what it takes (``cycles``)."""

    name: str
    compute_cycles: int
    memory_cycles: int
    cycles: int
    weight_bits: int
    activation_bits: int


def run_bits(layer: LayerShape, config) -> tuple[int, int]:
    """(weight bits, activation bits) ``layer`` runs at on ``config``; a named error beyond what it runs."""
    bits = []
    for name in ("weight_bits", "activation_bits"):
        value = getattr(layer, name)
        value = FLOAT_LAYER_BITS if value == FLOAT_BITS else value
        if not 1 <= value <= config.max_bits:
            raise UnsupportedPrecisionError(
                f"layer {layer.name!r}: {name} = {value} is not allowed on {config.name}; it runs 1 to "
                f"{config.max_bits} bits (and floating-point layers as {FLOAT_LAYER_BITS}-bit)")
        bits.append(value)
    return bits[0], bits[1]


def _check_op(layer: LayerShape) -> None:
    if layer.op not in MATRIX_OPS:
        raise ConfigError(f"layer {layer.name!r}: op {layer.op!r} is not priced; allowed: {MATRIX_OPS}")


def _shapes(layer: LayerShape):
    """The dense matrix products a layer can run as: ``(groups, Cout_g, Cin_g)`` per mapping.

    A grouped conv is ``groups`` products. A depthwise conv (one input and one output channel
    per group) is also offered as ``ceil(C / G)`` block-diagonal products of G channels (G a
    power of two up to C): zero weights off the diagonal, G times the useful work per product
    but G channels side by side on the array. The caller keeps the mapping that takes the
    fewest cycles (neither paper describes depthwise convs; this is the model's choice)."""
    groups, cout, cin = layer.groups, layer.out_channels // layer.groups, layer.in_channels // layer.groups
    yield groups, cout, cin
    if groups > 1 and cout == cin == 1:
        width = 2
        while width <= layer.in_channels:
            yield math.ceil(layer.in_channels / width), width, width
            width *= 2


def bit_serial_layer(layer: LayerShape, config: BitSerialConfig) -> LayerCost:
    _check_op(layer)
    wb, ab = run_bits(layer, config)
    oh, ow = layer.out_size
    pixels, taps = oh * ow, layer.kernel_size**2
    best = None
    for groups, cout, cin in _shapes(layer):
        compute = (groups * math.ceil(cout / config.dm) * math.ceil(pixels / config.dn)
                   * math.ceil(cin * taps / config.dk) * wb * ab)
        moved = groups * cout * cin * taps * wb + layer.input_elements * ab + layer.output_elements * RESULT_BITS
        memory = math.ceil(moved / config.dram_bits_per_cycle)
        cost = LayerCost(layer.name, compute, memory, max(compute, memory) + config.op_overhead_cycles, wb, ab)
        best = cost if best is None or cost.cycles < best.cycles else best
    return best


def bit_fusion_layer(layer: LayerShape, config: BitFusionConfig) -> LayerCost:
    _check_op(layer)
    wb, ab = run_bits(layer, config)
    oh, ow = layer.out_size
    pixels, taps = oh * ow, layer.kernel_size**2
    per_unit = config.macs_per_unit(wb, ab)
    depthwise = layer.groups > 1 and layer.in_channels == layer.out_channels == layer.groups
    best = None
    for groups, cout, cin in _shapes(layer):
        if depthwise:
            # no input channels to reduce over: the k x k taps go along the rows too (im2col)
            compute = groups * math.ceil(cout / config.columns) * pixels * math.ceil(
                cin * taps / (config.rows * per_unit))
        else:
            compute = groups * math.ceil(cout / config.columns) * pixels * taps * math.ceil(
                cin / (config.rows * per_unit))
        weight_bytes = math.ceil(groups * cout * cin * taps * config.fused_width(wb) / 8)
        input_bytes = math.ceil(layer.input_elements * config.fused_width(ab) / 8)
        output_bytes = math.ceil(layer.output_elements * config.fused_width(ab) / 8)
        if weight_bytes > config.weight_buffer_bytes and input_bytes > config.input_buffer_bytes:
            input_bytes *= math.ceil(weight_bytes / config.weight_buffer_bytes)  # re-read per weight chunk
        memory = math.ceil(8 * (weight_bytes + input_bytes + output_bytes) / config.interface_bits_per_cycle)
        cost = LayerCost(layer.name, compute, memory, max(compute, memory) + config.op_overhead_cycles, wb, ab)
        best = cost if best is None or cost.cycles < best.cycles else best
    return best


@dataclass(frozen=True)
class BitAcceleratorResult:
    cycles: int
    compute_cycles: int
    memory_cycles: int
    latency_ms: float
    layers: tuple[LayerCost, ...]

    def to_dict(self, layers: bool = False) -> dict:
        out = {"cycles": self.cycles, "compute_cycles": self.compute_cycles, "memory_cycles": self.memory_cycles,
               "latency_ms": self.latency_ms}
        if layers:
            out["layers"] = [asdict(layer) for layer in self.layers]
        return out


@functools.lru_cache(maxsize=65536)
def _layer_cost(layer: LayerShape, config) -> LayerCost:
    return bit_serial_layer(layer, config) if isinstance(config, BitSerialConfig) else bit_fusion_layer(layer, config)


def simulate_layers(layers: Iterable[LayerShape], config: "BitSerialConfig | BitFusionConfig"
                    ) -> BitAcceleratorResult:
    """Layers run one after another on ``config``: their cycles summed; latency = cycles / clock."""
    costs = tuple(_layer_cost(layer, config) for layer in layers)
    if not costs:
        raise ConfigError("a bit-accelerator simulation needs at least one compute layer")
    cycles = sum(c.cycles for c in costs)
    return BitAcceleratorResult(cycles, sum(c.compute_cycles for c in costs), sum(c.memory_cycles for c in costs),
                                cycles / (config.clock_mhz * 1e3), costs)


def simulate_network(blocks, config) -> BitAcceleratorResult:
    """A network from its blocks (``space.blocks(arch)``: ``(name, block)`` pairs or blocks)."""
    layers = []
    for item in blocks:
        block = item[1] if isinstance(item, tuple) else item
        layers.extend(block.layers())
    return simulate_layers(layers, config)


def latency_function(space, accelerator: "str | dict | BitSerialConfig | BitFusionConfig"):
    """``genes -> latency in ms`` of every row on ``accelerator`` (a shipped name or a config), for
    search budgets (:class:`ofa.search.Constraint`). Layer costs are cached, so a population costs
    little more than building its block specs."""
    if isinstance(accelerator, (BitSerialConfig, BitFusionConfig)):
        config = accelerator
    elif isinstance(BIT_ACCELERATORS.get(accelerator), BitFusionConfig) or (
            isinstance(accelerator, dict) and "rows" in accelerator):
        config = load_bit_accelerator(accelerator, BitFusionConfig)
    else:
        config = load_bit_accelerator(accelerator, BitSerialConfig)

    def latency_ms(genes):
        return np.array([simulate_network(space.blocks(arch), config).latency_ms for arch in space.from_genes(genes)])

    return latency_ms


__all__ = ["BIT_ACCELERATORS", "BitAcceleratorResult", "BitFusionConfig", "BitSerialConfig", "DEFAULT_BIT_FUSION",
           "DEFAULT_BIT_SERIAL", "FLOAT_LAYER_BITS", "LayerCost", "bit_fusion_layer", "bit_serial_layer",
           "latency_function", "load_bit_accelerator", "run_bits", "simulate_layers", "simulate_network"]
