"""The DPU model (hardware_profiles/dpu.py) on hand-computed cases, its configs
against the public tables they come from, the fpga-dpu backend, and the
depthwise and re-read fixes of the systolic models."""

import json

import pytest

from hardware_profiles import ProfileWriter, get_backend, latency_stats, profile_space, read_profile
from hardware_profiles.dpu import (BlockPlan, DPUConfig, list_dpus, load_dpu, simulate_block, simulate_layers,
                                   simulate_network)
from hardware_profiles.systolic import SimLayer, analytical_cycles, load_accelerator, map_layer
from ofa.errors import ConfigError, ProfileError
from ofa.spaces import (DecoderStepBlock, EncoderLayerBlock, LayerShape, MBConvBlock, StemBlock, get_space)

# A tiny DPU whose cycles are easy to count by hand: PP 2, ICP = OCP = 4, one ALU pixel lane,
# 2 kernel taps per ALU cycle, banks 16 words deep (a bank group holds 16 lines), one 32-bit
# AXI port (4 bytes per cycle; the DDR itself is faster), 10 cycles per operation.
TINY = {"name": "dpu-tiny", "architecture": "test", "pixel_parallel": 2, "input_channel_parallel": 4,
        "output_channel_parallel": 4, "alu_parallel": 1, "alu_taps_per_cycle": 2, "clock_mhz": 100,
        "bank_depth": 16, "channel_augmentation": False, "axi_data_ports": 1, "axi_port_bits": 32,
        "ddr_mts": 2400, "ddr_bus_bits": 64, "ddr_efficiency": 1.0, "op_overhead_cycles": 10,
        "task_overhead_us": 0.0}


def tiny(**changes) -> DPUConfig:
    return load_dpu({**TINY, **changes})


def test_tiny_config_derived_numbers():
    c = tiny()
    assert c.ddr_bytes_per_cycle == 4 and c.macs_per_cycle == 32
    assert c.bank_group_bytes == 2 * 4 * 16 and c.weight_bank_bytes == 4 * 4 * 16
    assert c.depthwise_weight_bank_bytes == 64 and c.image_bank_groups == 2


def test_depthwise_kernel_size_hand_count():
    """A 4x4x8 block without expand conv: depthwise, project, residual add."""
    def cycles(kernel):
        return simulate_block(MBConvBlock(4, 8, 8, 8, kernel, 1, 0, "relu", expand=False), tiny())

    k3, k5 = cycles(3), cycles(5)
    # depthwise: ceil(8/4) channel groups x 4 rows x ceil(4/1) pixels x 3 rows x ceil(3/2) taps = 192 cycles;
    # DDR: input 128 B + weights 72 B = 50 cycles, hidden; + 10
    # project: 4 rows x ceil(4/2) x ceil(8/4) x ceil(8/4) = 32 (weights 64 B = 16 cycles); + 10
    # residual add: 2 x 4 x 4 = 32 cycles, but the input is read again (128 B) and the output written
    # (128 B): 64 DDR cycles; + 10
    assert [op.cycles for op in k3.ops] == [202, 42, 74]
    assert k3.cycles == 318 and k3.engines == {"conv": 32, "alu": 192, "eltwise": 32, "ddr": 32, "overhead": 30}
    # 5x5: 2 x 4 x 4 x 5 x ceil(5/2) = 480 compute cycles
    assert k5.ops[0].compute_cycles == 480 and k5.cycles == 490 + 42 + 74
    assert k5.cycles > 1.8 * k3.cycles  # kernel size is not free


def test_expanded_tensor_spills_when_it_no_longer_fits():
    """4x4 input, 4 -> 4 channels, 3x3 depthwise: expand ratio 2 keeps the 8-channel tensors in
    a bank group (4 rows x 2 pixel words x 2 channel words = 16 lines); ratio 3 (12 channels,
    24 lines) sends them through DDR."""
    fits = simulate_block(MBConvBlock(4, 4, 4, 8, 3, 1, 0, "relu", True, 2.0), tiny())
    spills = simulate_block(MBConvBlock(4, 4, 4, 12, 3, 1, 0, "relu", True, 3.0), tiny())
    # fits: expand 16 compute / 24 DDR (input 64 B + weights 32 B); depthwise 192 (weights 72 B);
    # project 16 compute (weights 32 B: 8 DDR); residual 16 compute / 32 DDR (input again + output)
    assert [op.cycles for op in fits.ops] == [34, 202, 26, 42] and fits.cycles == 304 and fits.spilled == ()
    # spills: expand writes 192 B more (76 DDR cycles); the depthwise reads them back, and as neither its
    # weights (108 B) fit the 64 B depthwise weight bank nor its input one bank group, it reads the
    # weights twice (108 B < re-reading 192 B of input), and writes its 192 B output: 600 B = 150 cycles
    # against 288 compute; project reads 192 + 48 B = 60 cycles
    assert [op.cycles for op in spills.ops] == [86, 298, 70, 42] and spills.cycles == 496
    assert spills.spilled == ("expand", "depthwise")
    # traffic: the two spilled tensors out and back (4 x 192 B), the re-read weights, wider weights
    assert spills.ddr_bytes - fits.ddr_bytes == 4 * 192 + 108 + 2 * (48 - 32) + (108 - 72)


def test_high_ram_usage_keeps_the_block_input_for_the_residual():
    low = simulate_block(MBConvBlock(4, 4, 4, 8, 3, 1, 0, "relu", True, 2.0), tiny())
    high = simulate_block(MBConvBlock(4, 4, 4, 8, 3, 1, 0, "relu", True, 2.0), tiny(ram_usage="high"))
    # the residual add no longer reads the 64 B input from DDR: 16 DDR cycles, 16 compute
    assert low.cycles - high.cycles == 42 - 26


def test_h_swish_after_depthwise_costs_two_passes():
    relu = simulate_block(MBConvBlock(4, 4, 4, 8, 3, 1, 0, "relu", True, 2.0), tiny())
    hswish = simulate_block(MBConvBlock(4, 4, 4, 8, 3, 1, 0, "h_swish", True, 2.0), tiny())
    # the conv engine applies h-swish itself; the ALU does not: hard-sigmoid (ALU) and multiply (eltwise),
    # 2 x 4 x 4 = 32 cycles each, + 10
    names = [op.name for op in hswish.ops]
    assert "depthwise.hsigmoid" in names and "depthwise.hswish" in names and "expand.hsigmoid" not in names
    assert hswish.cycles - relu.cycles == 2 * 42


def test_squeeze_excitation_is_priced():
    plain = simulate_block(MBConvBlock(4, 4, 4, 8, 3, 1, 0, "relu", True, 2.0), tiny())
    se = simulate_block(MBConvBlock(4, 4, 4, 8, 3, 1, 4, "relu", True, 2.0), tiny())
    names = [op.name for op in se.ops]
    assert names == ["expand", "depthwise", "se.pool", "se.reduce", "se.expand", "se.scale", "project", "residual"]
    # global pool: 2 channel groups x 4 rows x ceil(4/2) taps = 16; two 1-pixel FCs; the multiply 32
    assert se.ops[2].compute_cycles == 16 and se.ops[5].compute_cycles == 32
    assert se.cycles > plain.cycles


def test_conv_engine_padding_waste_and_channel_augmentation():
    plan = BlockPlan(tiny())
    x = plan.input("x", 3, 3, 5)
    plan.conv("conv", x, 5, 3)
    # 3 rows x ceil(3/2) x ceil(5/4) x 9 taps x ceil(5/4) = 3 x 2 x 2 x 18 = 216: 5 channels waste 3 lanes
    assert plan.ops[0].compute_cycles == 216
    stem = simulate_block(StemBlock(8, 3, 4, 3, 2, "relu"), tiny(channel_augmentation=True))
    # 4 x ceil(4/2) x 1 x (3 rows x ceil(3 channels x 3 taps / 4)) = 8 x 9 = 72 (without: 8 x 9 x 1 = 72 too);
    # with 8 lanes the 9 values of a kernel row take 2 cycles instead of 3
    assert stem.ops[0].compute_cycles == 72
    wide = simulate_block(StemBlock(8, 3, 4, 3, 2, "relu"), tiny(channel_augmentation=True,
                                                                 input_channel_parallel=8))
    narrow = simulate_block(StemBlock(8, 3, 4, 3, 2, "relu"), tiny(input_channel_parallel=8))
    assert wide.ops[0].compute_cycles == 8 * 3 * 2 and narrow.ops[0].compute_cycles == 8 * 9


# PG338 v4.1, "Number of BRAM36K Blocks in Different Architectures for Each DPUCZDX8G Core"
PG338_BRAM36 = {"B512": (72, 88), "B800": (90, 108), "B1024": (104, 136), "B1152": (121, 143), "B1600": (126, 162),
                "B2304": (165, 209), "B3136": (208, 260), "B4096": (255, 315)}
# PG338 Table 1 "Parallelism for Different Convolution Architectures": PP, ICP, OCP
PG338_PARALLELISM = {"B512": (4, 8, 8), "B800": (4, 10, 10), "B1024": (8, 8, 8), "B1152": (4, 12, 12),
                     "B1600": (8, 10, 10), "B2304": (8, 12, 12), "B3136": (8, 14, 14), "B4096": (8, 16, 16)}


def test_shipped_configs_match_pg338():
    names = list_dpus()
    assert {f"dpu-{a.lower()}" for a in PG338_PARALLELISM} <= set(names)
    for name in names:
        c = load_dpu(name)
        pp, icp, ocp = PG338_PARALLELISM[c.architecture]
        assert (c.pixel_parallel, c.input_channel_parallel, c.output_channel_parallel) == (pp, icp, ocp)
        assert c.peak_ops == int(c.architecture[1:])
        assert c.alu_parallel == pp // 2
        # the bank structure (target_factory) reproduces PG338's BRAM table for both RAM usages
        assert (c.bram36_blocks(), c.replace(ram_usage="high").bram36_blocks()) == PG338_BRAM36[c.architecture]
        # every number names its source
        documented = set(c.sources)
        assert {f for f in c.to_dict() if f not in ("name", "architecture", "description", "sources")} <= documented


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown DPU config key"):
        load_dpu({**TINY, "turbo": True})
    with pytest.raises(ConfigError, match="ram_usage"):
        tiny(ram_usage="medium")
    with pytest.raises(ConfigError, match="ALU parallelism ranges"):
        tiny(alu_parallel=4)
    with pytest.raises(ConfigError, match="data_bits"):
        tiny(data_bits=16)
    with pytest.raises(ConfigError, match="neither a shipped config"):
        load_dpu("dpu-b9999")
    bad = tmp_path / "dpu-bad.json"
    bad.write_text("{oops")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_dpu(bad)
    with pytest.raises(ConfigError, match="BlockSpec"):
        simulate_block("mbconv", tiny())


def test_int4_halves_traffic_and_doubles_what_fits():
    int8 = simulate_block(MBConvBlock(4, 4, 4, 12, 3, 1, 0, "relu", True, 3.0), tiny())
    int4 = simulate_block(MBConvBlock(4, 4, 4, 12, 3, 1, 0, "relu", True, 3.0), tiny(data_bits=4))
    assert int8.spilled and not int4.spilled and int4.ddr_bytes < int8.ddr_bytes / 2


def test_transformer_blocks_and_decode_steps():
    c = load_dpu("dpu-b4096")
    space = get_space("transformer-small")
    for block in space.distinct_blocks()[:40] + space.distinct_blocks(mode="decode", cache_lengths=(0, 9))[:40]:
        result = simulate_block(block, c)
        assert result.cycles > 0 and set(result.engines) == {"conv", "alu", "eltwise", "ddr", "overhead"}
        assert sum(result.engines.values()) == result.cycles
    step = dict(dim=48, encoder_dim=48, ffn_dim=64, self_heads=4, self_head_size=16, cross_heads=4,
                cross_head_size=16, cross_layers=1, source_tokens=16)
    short = simulate_block(DecoderStepBlock(**step, cache_length=0), c)
    long = simulate_block(DecoderStepBlock(**step, cache_length=19), c)
    assert long.ddr_read_bytes > short.ddr_read_bytes and long.cycles >= short.cycles
    encoder = simulate_block(EncoderLayerBlock(48, 64, 4, 16, 16), c)
    assert any(op.name == "self_attn.softmax" and op.engine == "alu" for op in encoder.ops)


def test_network_is_its_blocks_plus_the_task_overhead():
    c = load_dpu("dpu-b1152")
    space = get_space("ofa-mbv3-w1.2")
    arch = space.sample(rng=3)
    blocks = space.blocks(arch)
    network = simulate_network(blocks, c)
    assert network.cycles == sum(simulate_block(b, c).cycles for _, b in blocks) + round(10.0 * c.clock_mhz)
    assert network.latency_ms == pytest.approx(network.cycles / (c.clock_mhz * 1e3))
    layers = simulate_layers(space.cost(arch).layers, c)  # the chain fallback prices every layer
    assert len(layers.ops) == len(space.cost(arch).layers)


def test_published_figures_bound_the_model():
    """Sanity, not calibration: the model is no faster than its compute-bound floor and no
    slower than the Model Zoo's end-to-end figures (DPU time plus Arm pre/post-processing)."""
    from hardware_profiles.dpu_reference import NETWORKS, PUBLISHED, published_latency_ms, simulate_reference

    for network, board, config, figure, value, source in PUBLISHED:
        assert network in NETWORKS and source
        predicted = simulate_reference(network, config)
        c = load_dpu(config)
        conv_macs = sum(op.compute_cycles for op in predicted.ops if op.engine == "conv")
        assert predicted.latency_ms > conv_macs / (c.clock_mhz * 1e3)
        assert predicted.latency_ms < published_latency_ms(figure, value)


# --- the backend ---------------------------------------------------------------------------------------------
def test_backend_network_block_and_module_levels(small_space):
    from ofa.models.blocks import build_block
    from ofa.supernets import create_supernet

    backend = get_backend("fpga-dpu")
    assert backend.simulated and backend.precision == "int8" and backend.default_device() == "fpga-dpu-b4096"
    model = create_supernet(small_space).extract(small_space.smallest()).eval()
    first, again = backend.measure(model, space=small_space), backend.measure(model, space=small_space)
    assert first["cycles"] == again["cycles"] and first["latency_ms"]["runs"] == 1
    assert first["input_shapes"] == [[1, 3, 24, 24]] and first["blocks"] == len(small_space.blocks(
        small_space.smallest()))
    block = small_space.distinct_blocks()[7]
    direct = backend.measure_blocks([block])[0]
    as_module = backend.measure(build_block(block))  # a static block module carries block_spec
    assert direct["cycles"] == as_module["cycles"] == simulate_block(block, backend.config).cycles
    assert direct["input_shapes"] == [list(block.example_input_shape)]
    with pytest.raises(ConfigError, match="search space"):
        backend.measure(model)
    with pytest.raises(ConfigError, match="batch size 1"):
        backend.measure_blocks([block], batch_size=2)
    with pytest.raises(ConfigError):
        get_backend("fpga-dpu", accelerator="systolic-32x32-ws")
    other = get_backend("fpga-dpu", accelerator="dpu-b512")
    assert other.measure(model, space=small_space)["cycles"] > first["cycles"]


def test_backend_profiles_resume(tmp_path, small_space):
    archs = small_space.sample(rng=1, n=5)
    path = tmp_path / "dpu.jsonl"
    full = profile_space(small_space, get_backend("fpga-dpu"), 5, path, archs=archs, progress=False)
    assert len(full) == 5 and full.header["backend"] == "fpga-dpu"
    assert full.header["accelerator"]["name"] == "dpu-b4096" and "latency_model" in full.header
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])  # killed while writing record 3
    resumed = profile_space(small_space, get_backend("fpga-dpu"), 5, path, archs=archs, progress=False)
    assert sorted(json.dumps(r["arch"]) for r in resumed.records) == sorted(json.dumps(r["arch"])
                                                                              for r in full.records)
    assert [r["cycles"] for r in resumed.records[2:]] != [] and resumed.latencies().shape == (5,)


def test_backend_block_profile(tmp_path, small_space):
    from hardware_profiles.profiler import profile_blocks

    blocks = small_space.distinct_blocks()[:6]
    path = tmp_path / "blocks.jsonl"
    profile = profile_blocks(small_space, "fpga-dpu", path, blocks=blocks, progress=False)
    assert profile.level == "block" and [b.key for b in profile.blocks()] == [b.key for b in blocks]
    table = profile.block_latencies()
    assert table[blocks[0].key] == pytest.approx(simulate_block(blocks[0], load_dpu("dpu-b4096")).latency_ms)
    before = path.read_text()
    profile_blocks(small_space, "fpga-dpu", path, blocks=blocks, progress=False)  # complete: nothing to do
    assert path.read_text() == before
    with pytest.raises(ProfileError):
        ProfileWriter(path, {**profile.header, "backend": "fpga-analytical"})
    assert latency_stats([1.0])["runs"] == 1


def test_backend_prices_transformer_networks():
    from ofa.supernets import create_supernet

    space = get_space("transformer-small")
    model = create_supernet(space).extract(space.sample(rng=2)).eval()
    record = get_backend("fpga-dpu").measure(model, space=space)
    assert record["latency_ms"]["median"] > 0 and record["engine_cycles"]["conv"] > 0


# --- the systolic models' fixes --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["systolic-16x16-os", "systolic-32x32-ws", "systolic-64x64-ws"])
def test_systolic_depthwise_kernel_size_is_not_free(name):
    config = load_accelerator(name)
    costs = {}
    for k in (3, 5, 7):
        layer = LayerShape("dw", "depthwise", 144, 144, (28, 28), (28, 28), k, 1, 144)
        sim, repeat = map_layer(layer, config)
        assert repeat * sim.filters >= 144 and sim.channels == sim.filters  # block-diagonal channel groups
        costs[k] = repeat * analytical_cycles(sim, config)["compute"]
    assert costs[3] < costs[5] < costs[7]
    serial = load_accelerator({**config.to_dict(), "depthwise_mapping": "channel-serial"})
    assert map_layer(LayerShape("dw", "depthwise", 8, 8, (4, 4), (4, 4), 3, 1, 8), serial)[1] == 8


def test_analytical_reads_each_operand_once_when_one_fits():
    small = load_accelerator({"name": "t", "array_rows": 8, "array_cols": 8, "dataflow": "ws", "ifmap_sram_kb": 16,
                              "filter_sram_kb": 16, "ofmap_sram_kb": 8, "bandwidth_words_per_cycle": 8,
                              "clock_mhz": 100})
    # a 100x100x2 input (20000 words) does not fit the 8192-word half buffer, the 32 weight words do:
    # everything is read once: (20000 + 32 + 160000) / 8
    assert analytical_cycles(SimLayer(100, 100, 1, 1, 2, 16, 1), small)["memory"] == 22504
    # neither fits (25600 input words, 9216 weight words): the input again for the second column fold
    # (25600 words) is cheaper than the weights three more times (27648)
    assert analytical_cycles(SimLayer(20, 20, 3, 3, 64, 16, 1), small)["memory"] == (25600 + 9216 + 5184
                                                                                    + 25600) // 8
