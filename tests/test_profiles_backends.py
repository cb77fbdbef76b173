"""Backends on their real runtimes: onnxruntime, ncnn (via pnnx), SCALE-Sim and
the analytical systolic model. TensorRT and CUDA tests skip without a GPU."""

import numpy as np
import pytest
import torch

from hardware_profiles import MeasurementProtocol, get_backend
from hardware_profiles.backends.base import example_inputs
from hardware_profiles.systolic import (AcceleratorConfig, SimLayer, analytical_cycles, decompose, fold_cycles,
                                        load_accelerator, network_cycles)
from ofa.errors import BackendUnavailableError, ConfigError
from ofa.spaces import LayerShape
from ofa.supernets import create_supernet

from conftest import randomize_batchnorm

QUICK = MeasurementProtocol(warmup=2, runs=5, passes=2, max_remeasure=1)


@pytest.fixture(scope="module")
def tiny_subnet():
    from ofa.spaces import get_space

    space = get_space("mbv3-small")
    model = create_supernet(space).extract(space.smallest()).eval()
    randomize_batchnorm(model)
    return space, model


def _check_record(record, shape):
    for metric in ("latency_ms", "cpu_time_ms"):
        stats = record[metric]
        assert stats["runs"] >= 2 * QUICK.runs and 0 < stats["p10"] <= stats["median"] <= stats["p90"]
    assert record["input_shapes"] == [list(shape)]
    assert set(record) >= {"passes_agree", "pass_gap", "remeasured", "load_average"}


def test_cpu_ort_end_to_end(tiny_subnet):
    space, model = tiny_subnet
    backend = get_backend("cpu-ort", threads=1, protocol=QUICK)
    assert backend.available() and backend.version()
    runner = backend.prepare(model)
    directory = runner.export.directory
    assert (directory / "model.onnx").is_file()
    runner.close()
    assert not directory.exists()  # nothing left behind
    record = backend.measure(model)
    _check_record(record, (1, 3, 24, 24))


def test_ncnn_end_to_end_on_tiny_subnet(tiny_subnet):
    pytest.importorskip("ncnn")
    pytest.importorskip("pnnx")
    space, model = tiny_subnet
    backend = get_backend("mobile-ncnn", protocol=QUICK)
    assert backend.available() and "ncnn" in backend.version()
    runner = backend.prepare(model)
    try:
        (output,) = runner.outputs()
        with torch.no_grad():
            expected = model(*example_inputs(model, 1)).numpy()
        assert output.reshape(-1).shape == expected.reshape(-1).shape
        np.testing.assert_allclose(output.reshape(-1), expected.reshape(-1), rtol=1e-3, atol=1e-4)
        assert any(p.suffix == ".param" for p in runner.export.directory.iterdir())
        # a wrongly converted network is refused rather than timed
        runner.outputs = lambda: [output + 1.0]
        with pytest.raises(BackendUnavailableError, match="differs from PyTorch"):
            runner._check_parity(model)
    finally:
        runner.close()
    assert not runner.export.directory.exists()
    _check_record(backend.measure(model), (1, 3, 24, 24))
    with pytest.raises(ConfigError, match="batch_size 1"):
        backend.prepare(model, batch_size=2)


@pytest.mark.parametrize("preset", ["transformer-small", "bort-small"])
def test_ncnn_end_to_end_on_tiny_transformer(preset):
    """Token ids reach ncnn's Embed layer as int32, and the unpadded graph
    (no padding mask, additive causal mask) has only ops ncnn implements."""
    pytest.importorskip("ncnn")
    pytest.importorskip("pnnx")
    from ofa.spaces import get_space

    space = get_space(preset)
    torch.manual_seed(0)
    model = create_supernet(space).extract(space.smallest()).eval()
    for norm in (m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)):  # not the identity
        torch.nn.init.normal_(norm.weight, 1.0, 0.2)
        torch.nn.init.normal_(norm.bias, 0.0, 0.2)
    inputs = example_inputs(model, 1)
    with torch.no_grad():
        expected = model(*inputs).numpy()
        np.testing.assert_array_equal(model.unpadded()(*inputs).numpy(), expected)
    backend = get_backend("mobile-ncnn", protocol=QUICK)
    runner = backend.prepare(model)  # refuses (BackendUnavailableError) if ncnn differs from PyTorch
    try:
        (output,) = runner.outputs()
        np.testing.assert_allclose(output.reshape(-1), expected.reshape(-1), rtol=1e-4, atol=1e-4)
    finally:
        runner.close()
    assert runner.input_shapes == [tuple(x.shape) for x in inputs]


def test_ncnn_names_layers_it_lacks():
    from hardware_profiles.backends.mobile_ncnn import unsupported_layers

    param = ("7767517\n4 4\nInput in0 0 1 in0\nEmbed embed_0 1 1 in0 1 0=48\n"
             "torch.eq eq_0 1 1 in0 2\ntorch.where where_0 2 1 1 2 out0\n")
    assert unsupported_layers(param) == ["torch.eq", "torch.where"]
    assert unsupported_layers("7767517\n1 1\nInput in0 0 1 in0\n") == []


# --- systolic arrays ---------------------------------------------------------------------------------

SMALL = {"name": "test-8x8", "array_rows": 8, "array_cols": 8, "dataflow": "ws", "ifmap_sram_kb": 16,
         "filter_sram_kb": 16, "ofmap_sram_kb": 8, "bandwidth_words_per_cycle": 8, "clock_mhz": 100,
         "layer_overhead_cycles": 10, "vector_lanes": 8}


def small_config(**changes) -> AcceleratorConfig:
    return load_accelerator({**SMALL, **changes})


def test_fold_cycles_known_cases():
    # weight stationary 8x8: window 8 x 8 filters fits in one fold, 16 output pixels stream through:
    # 8 (weight load) + 16 + 8 + 8 - 2 = 38 cycles
    assert fold_cycles(SimLayer(4, 4, 1, 1, 8, 8, 1), small_config()) == (1, 38)
    # 16 input channels need two row folds
    assert fold_cycles(SimLayer(4, 4, 1, 1, 16, 8, 1), small_config()) == (2, 38)
    # output stationary: 16 pixels -> 2 row folds of (T=8 window) + 8 + 8 - 2 cycles
    assert fold_cycles(SimLayer(4, 4, 1, 1, 8, 8, 1), small_config(dataflow="os")) == (2, 22)
    # input stationary: window 27 (3x3x3) -> 4 row folds; 4 output pixels -> 1 column fold; T = 16 filters
    assert fold_cycles(SimLayer(4, 4, 3, 3, 3, 16, 1), small_config(dataflow="is")) == (4, 38)


def test_analytical_model_known_case():
    layer = SimLayer(4, 4, 1, 1, 8, 8, 1)
    cycles = analytical_cycles(layer, small_config())
    # compute 38 - 1; traffic (128 input + 64 weights + 128 output words) / 8 words per cycle = 40
    assert cycles == {"total": 77, "compute": 37, "memory": 40, "folds": 1}
    bigger = analytical_cycles(SimLayer(4, 4, 1, 1, 16, 8, 1), small_config())
    assert bigger["total"] > cycles["total"]


def test_decomposition_of_layers():
    depthwise = LayerShape("dw", "depthwise", 48, 48, (8, 8), (4, 4), kernel_size=5, stride=2, groups=48)
    sim, repeat = decompose(depthwise)
    assert repeat == 48 and sim == SimLayer(11, 11, 5, 5, 1, 1, 2)  # padded input: (4 - 1) * 2 + 5
    assert sim.out_h == sim.out_w == 4 and repeat * sim.macs == depthwise.macs
    linear = LayerShape("fc", "linear", 64, 10, (16, 1), (16, 1))  # a linear over 16 tokens
    assert decompose(linear) == (SimLayer(16, 1, 1, 1, 64, 10, 1), 1)
    attention = LayerShape("qk", "matmul", 4 * 16, 4 * 12, (12, 1), (12, 1), groups=4)  # 4 heads
    sim, repeat = decompose(attention)
    assert repeat == 4 and (sim.channels, sim.filters) == (16, 12) and repeat * sim.macs == attention.macs
    with pytest.raises(ConfigError, match="groups"):
        decompose(LayerShape("bad", "conv", 6, 4, (4, 4), (4, 4), groups=4))


def test_decomposition_preserves_macs_of_a_network(small_space):
    arch = small_space.sample(rng=5)
    layers = small_space.cost(arch).layers
    assert sum(r * s.macs for s, r in map(decompose, layers)) == small_space.cost(arch).macs
    total = network_cycles(layers, lambda sim: 1, small_config())
    assert total["array_cycles"] == sum(decompose(layer)[1] for layer in layers)
    assert total["latency_ms"] == pytest.approx(total["cycles"] / 1e5)


@pytest.fixture
def scalesim_backend(tmp_path):
    pytest.importorskip("scalesim")
    return get_backend("fpga-scalesim", accelerator=SMALL, cache_dir=tmp_path / "cache")


def test_scalesim_two_small_layers(scalesim_backend):
    from hardware_profiles.backends.fpga_scalesim import run_scalesim

    small, double = SimLayer(4, 4, 1, 1, 8, 8, 1), SimLayer(4, 4, 1, 1, 16, 8, 1)
    a, b = run_scalesim([small, double], scalesim_backend.config)
    # compute cycles match the hand count: one fold of 38 cycles, two folds (the last cycle overlaps)
    assert a["compute_cycles"] == 37 and b["compute_cycles"] == 75
    assert a["mapping_efficiency"] == 100.0
    # invariants: more channels -> more cycles; DRAM transfers only add cycles
    assert b["cycles"] > a["cycles"] and a["cycles"] >= a["compute_cycles"]
    # the analytical model's compute cycles are SCALE-Sim's exactly
    for layer, result in ((small, a), (double, b)):
        assert analytical_cycles(layer, scalesim_backend.config)["compute"] == result["compute_cycles"]


def test_depthwise_decomposition_matches_scalesim_split(scalesim_backend):
    """One single-channel conv x C equals SCALE-Sim's own per-channel split of a depthwise layer."""
    from hardware_profiles.backends.fpga_scalesim import run_scalesim

    depthwise = LayerShape("dw", "depthwise", 4, 4, (6, 6), (6, 6), kernel_size=3, groups=4)
    sim, repeat = decompose(depthwise)
    (single,) = run_scalesim([sim], scalesim_backend.config)
    native = run_scalesim([SimLayer(sim.ifmap_h, sim.ifmap_w, 3, 3, 4, 1, 1)], scalesim_backend.config,
                          names=["DP_dw"])
    assert len(native) == 4  # SCALE-Sim ran one layer per channel
    assert sum(r["cycles"] for r in native) == repeat * single["cycles"]


def test_scalesim_backend_caches_layers(small_space, tmp_path):
    pytest.importorskip("scalesim")
    backend = get_backend("fpga-scalesim", cache_dir=tmp_path / "cache")  # the shipped 32x32 config
    model = create_supernet(small_space).extract(small_space.smallest())
    first = backend.measure(model, space=small_space)
    distinct = {backend.mapping(layer)[0] for layer in small_space.cost(small_space.smallest()).layers}
    assert first["cache_misses"] == first["sim_layers"] == len(distinct)  # one lookup per distinct layer
    assert first["cache_hits"] == 0
    assert first["latency_ms"]["median"] == pytest.approx(first["cycles"] / (backend.config.clock_mhz * 1e3))
    assert first["cycles"] == first["array_cycles"] + first["overhead_cycles"]
    again = backend.measure(model, space=small_space)
    assert again["cache_misses"] == 0 and again["cycles"] == first["cycles"]
    # a fresh backend on the same cache directory reuses the files
    other = get_backend("fpga-scalesim", cache_dir=tmp_path / "cache")
    assert other.measure(model, space=small_space)["cache_misses"] == 0
    assert other.cache_stats()["hit_rate"] == 1.0
    with pytest.raises(ConfigError, match="search space"):
        other.measure(model)
    with pytest.raises(ConfigError, match="batch size 1"):
        other.measure(model, batch_size=4, space=small_space)


def test_scalesim_traces_stay_out_of_the_working_directory(scalesim_backend, tmp_path, monkeypatch):
    from hardware_profiles.backends.fpga_scalesim import run_scalesim

    monkeypatch.chdir(tmp_path)
    run_scalesim([SimLayer(4, 4, 1, 1, 8, 8, 1)], scalesim_backend.config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"] or not any(tmp_path.iterdir())


def test_accelerator_configs_ship_and_validate(tmp_path):
    from hardware_profiles.systolic import list_accelerators

    names = list_accelerators()
    assert "systolic-32x32-ws" in names and len(names) >= 3
    for name in names:
        assert load_accelerator(name).name == name
    with pytest.raises(ConfigError, match="dataflow"):
        small_config(dataflow="diagonal")
    with pytest.raises(ConfigError, match="unknown accelerator config key"):
        load_accelerator({**SMALL, "turbo": True})
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_accelerator(bad)


# --- GPUs (skip cleanly without them) ------------------------------------------------------------------

def _cuda_or_skip():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU and a CUDA build of PyTorch")


@pytest.mark.gpu
def test_gpu_cuda_end_to_end(tiny_subnet):
    _cuda_or_skip()
    space, model = tiny_subnet
    for precision in ("fp32", "fp16"):
        record = get_backend("gpu-cuda", precision=precision, protocol=QUICK).measure(model)
        assert record["latency_ms"]["median"] > 0 and record["host_latency_ms"]["median"] > 0


@pytest.mark.gpu
def test_gpu_tensorrt_end_to_end(tiny_subnet):
    _cuda_or_skip()
    pytest.importorskip("tensorrt")
    space, model = tiny_subnet
    for precision in ("fp32", "fp16"):
        record = get_backend("gpu-tensorrt", precision=precision, protocol=QUICK).measure(model)
        assert record["latency_ms"]["median"] > 0 and record["input_shapes"] == [[1, 3, 24, 24]]
