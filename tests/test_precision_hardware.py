"""The bit-serial and bit-fusion accelerator models on hand-computed layers; the DPU refuses
precisions other than int8 with a named error."""

import pytest

from hardware_profiles import get_backend
from hardware_profiles.bit_accelerators import (BIT_ACCELERATORS, BitSerialConfig, bit_fusion_layer, bit_serial_layer,
                                                load_bit_accelerator)
from ofa.errors import ConfigError, UnsupportedPrecisionError
from ofa.spaces import LayerShape, get_space
from ofa.spaces.precision import FLOAT_BITS

PYNQ = BIT_ACCELERATORS["bismo-pynq-z1"]  # 8 x 256 x 8 at 200 MHz, 64-bit port
FUSION = BIT_ACCELERATORS["bitfusion-45nm"]  # 16 rows x 32 columns at 500 MHz, 192-bit interface


def pointwise(cin, cout, size, wb, ab):
    return LayerShape("pw", "pointwise", cin, cout, (size, size), (size, size), weight_bits=wb, activation_bits=ab)


def test_bit_serial_on_a_hand_computed_layer():
    cost = bit_serial_layer(pointwise(16, 8, 4, wb=4, ab=2), PYNQ)
    # ceil(8 / 8) x ceil(16 pixels / 8) x ceil(16 / 256) x 4 x 2
    assert cost.compute_cycles == 1 * 2 * 1 * 4 * 2
    # (8 x 16 weights x 4 bits + 16 x 16 inputs x 2 bits + 8 x 16 outputs x 32 bits) / 64 bits per cycle
    assert cost.memory_cycles == (512 + 512 + 4096) // 64 == 80
    assert cost.cycles == 80  # memory-bound: the 32-bit results dominate


def test_bit_serial_compute_is_proportional_to_weight_bits_times_activation_bits():
    layer = lambda wb, ab: pointwise(256, 64, 16, wb, ab)  # noqa: E731
    base = bit_serial_layer(layer(1, 1), PYNQ).compute_cycles
    assert base == 8 * 32 * 1  # ceil(64 / 8) x ceil(256 / 8) x ceil(256 / 256)
    for wb, ab in [(8, 8), (4, 8), (2, 2), (3, 5)]:
        assert bit_serial_layer(layer(wb, ab), PYNQ).compute_cycles == base * wb * ab
    # a floating-point layer runs as 8 x 8
    assert bit_serial_layer(layer(FLOAT_BITS, FLOAT_BITS), PYNQ).compute_cycles == base * 64
    # with a port wide enough to keep up, latency itself scales with the bits
    wide = BitSerialConfig("wide", 8, 256, 8, 200.0, dram_bits_per_cycle=1 << 20)
    assert bit_serial_layer(layer(8, 8), wide).cycles == 16 * bit_serial_layer(layer(2, 2), wide).cycles


def test_bit_fusion_on_hand_computed_layers():
    conv = lambda wb, ab: LayerShape("c", "conv", 32, 64, (8, 8), (8, 8), 3, weight_bits=wb,  # noqa: E731
                                     activation_bits=ab)
    # ceil(64 / 32 columns) x 64 pixels x 9 taps x ceil(32 / (16 rows x MACs per Fusion Unit))
    assert bit_fusion_layer(conv(8, 8), FUSION).compute_cycles == 2 * 64 * 9 * 2
    assert bit_fusion_layer(conv(4, 4), FUSION).compute_cycles == 2 * 64 * 9 * 1  # 4 MACs per unit
    assert bit_fusion_layer(conv(2, 8), FUSION).compute_cycles == 2 * 64 * 9 * 1
    assert bit_fusion_layer(conv(6, 6), FUSION).compute_cycles == 2 * 64 * 9 * 2  # 6 bits fuse as 8
    assert [FUSION.macs_per_unit(*b) for b in [(8, 8), (4, 4), (8, 2), (2, 2), (3, 3)]] == [1, 4, 4, 16, 4]
    cost = bit_fusion_layer(conv(8, 8), FUSION)
    # (64 x 32 x 9 weight bytes + 32 x 64 input bytes + 64 x 64 output bytes) x 8 / 192
    assert cost.memory_cycles == (18432 + 2048 + 4096) * 8 // 192 == 1024
    assert cost.cycles == 2304


def test_depthwise_runs_as_the_fastest_block_diagonal_mapping():
    layer = LayerShape("dw", "depthwise", 64, 64, (8, 8), (8, 8), 3, groups=64, weight_bits=8, activation_bits=8)
    # G channels per product: ceil(64 / G) x ceil(G / 32) x 64 pixels x ceil(9 G / 16); G = 16 or 32: 2304
    # (one channel at a time: 64 x 64 x 1 = 4096)
    assert bit_fusion_layer(layer, FUSION).compute_cycles == 2304
    # bit-serial: G = 8 fills the 8 rows: 8 products x ceil(64 pixels / 8) x ceil(72 / 256) x 8 x 8
    assert bit_serial_layer(layer, PYNQ).compute_cycles == 8 * 8 * 1 * 64


def test_networks_are_sums_of_their_blocks_and_fewer_bits_are_faster():
    space = get_space("mbv3-small", weight_bits=(2, 4, 8), activation_bits=(4, 8, FLOAT_BITS))
    arch = space.sample(rng=0)
    for name in ("fpga-bitserial", "asic-bitfusion"):
        backend = get_backend(name)
        network = backend.measure_arch(space, arch)
        blocks = backend.measure_blocks([block for _, block in space.blocks(arch)])
        assert network["cycles"] == sum(record["cycles"] for record in blocks)
        fast, slow = (backend.measure_arch(space, space.uniform_precision(arch, w, a))["latency_ms"]["median"]
                      for w, a in [(2, 4), (8, 8)])
        assert fast < slow


def test_unsupported_precisions_are_named_errors():
    space = get_space("mbv3-small", weight_bits=(4, 8), activation_bits=(8, FLOAT_BITS))
    arch = space.sample(rng=1)
    dpu = get_backend("fpga-dpu")
    dpu.measure_arch(space, space.uniform_precision(arch, 8, FLOAT_BITS))  # int8 weights, float activations: fine
    with pytest.raises(UnsupportedPrecisionError, match="runs int8 only"):
        dpu.measure_arch(space, space.uniform_precision(arch, 4, 8))
    with pytest.raises(UnsupportedPrecisionError, match="runs 1 to 4 bits"):
        bit_serial_layer(pointwise(8, 8, 2, 8, 8), BitSerialConfig("narrow", 8, 256, 8, 200.0, 64, max_bits=4))
    with pytest.raises(ConfigError, match="unknown BitSerialConfig accelerator"):
        load_bit_accelerator("bitfusion-45nm", BitSerialConfig)
    with pytest.raises(ConfigError, match="must be positive"):
        get_backend("fpga-bitserial", accelerator={"name": "x", "dm": 0, "dk": 256, "dn": 8, "clock_mhz": 200,
                                                   "dram_bits_per_cycle": 64})
