"""Blocks as values, block modules, block profiles, block-sum predictors and
block-level transfer (tiny spaces, real simulators, a real cpu-ort run on two blocks)."""

import json

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hardware_profiles import (ProfileWriter, get_backend, latency_stats, make_block_header, profile_blocks,
                               read_profile, shipped_block_profile_path, shipped_profile_path)
from ofa.errors import ConfigError, DataError, PredictorError, ProfileError, SpaceMismatchError
from ofa.models.blocks import build_block
from ofa.models.transformer import BOS, Transformer
from ofa.spaces import TransformerSpace, block_from_dict, block_from_key, get_space
from ofa.supernets import create_supernet
from predictors import fit_transfer_predictor, load_predictor
from predictors.blocks import fit_block_predictor, fit_network_correction, space_blocks
from predictors.core import default_label


def tiny_transformer(**changes) -> TransformerSpace:
    fields = dict(encoder_embed_dims=(16, 24), decoder_embed_dims=(16, 24), encoder_layer_counts=(1, 2),
                  decoder_layer_counts=(1, 2), ffn_dims=(16, 32), head_counts=(2, 4), head_dim=4,
                  cross_layer_counts=(1, 2), src_vocab_size=20, tgt_vocab_size=20, max_positions=16,
                  source_length=5, target_length=4)
    fields.update(changes)
    return TransformerSpace(**fields)


def flops(module, inputs) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return counter.get_total_flops() // 2


# --- blocks as values ---------------------------------------------------------------------------------
def test_block_keys_round_trip_for_every_kind():
    cnn = get_space("mbv3-small").distinct_blocks()
    text = tiny_transformer()
    blocks = cnn + text.distinct_blocks() + text.distinct_blocks(mode="decode", beam_size=2)
    assert {b.kind for b in blocks} == {"stem", "mbconv", "head", "embedding", "encoder_layer", "decoder_layer",
                                        "cross_kv", "decoder_step", "output"}
    for block in blocks:
        assert block_from_key(block.key) == block
        assert block_from_dict(json.loads(json.dumps(block.to_dict()))) == block
    for listed in (cnn, text.distinct_blocks(), text.distinct_blocks(mode="decode")):
        assert len({b.key for b in listed}) == len(listed)  # distinct means distinct
    with pytest.raises(ConfigError, match="unknown kind"):
        block_from_key("nope:x=1")
    with pytest.raises(ConfigError, match="missing field"):
        block_from_key("encoder_layer:dim=8")
    with pytest.raises(ConfigError, match="bad field"):
        block_from_key("encoder_layer:width=8")
    with pytest.raises(ConfigError, match="must be an integer"):
        block_from_dict({"kind": "encoder_layer", "dim": 0, "ffn_dim": 8, "heads": 2, "head_size": 4, "tokens": 3})


def test_mbv3_distinct_blocks_count_and_coverage():
    space = get_space("mbv3-small")
    distinct = {b.key for b in space.distinct_blocks()}
    assert len(distinct) == 169  # 3 resolutions of stem, first block, 16 positions x 9 choices, head; shared shapes merged
    for arch in space.sample(rng=0, n=20):
        blocks = space.blocks(arch)
        assert {b.key for _, b in blocks} <= distinct
        assert sum(b.macs for _, b in blocks) == space.cost(arch).macs


@pytest.mark.parametrize("mode", ["encoder-decoder", "encoder"])
def test_transformer_blocks_cover_the_network(mode):
    space = tiny_transformer(mode=mode)
    distinct = {b.key for b in space.distinct_blocks()}
    for arch in space.sample(rng=1, n=10) + [space.smallest(), space.largest()]:
        blocks = space.blocks(arch)
        assert {b.key for _, b in blocks} <= distinct
        cost = space.cost(arch)
        assert sum(b.macs for _, b in blocks) == cost.macs
        assert [layer for _, b in blocks for layer in b.layers(_)] == list(cost.layers)
        model = Transformer(space, arch).eval()
        assert flops(model, model.example_inputs(1)) == cost.macs


def test_decode_cost_is_what_cached_greedy_decoding_computes():
    space = tiny_transformer()
    distinct = {b.key for b in space.distinct_blocks(mode="decode", beam_size=3)}
    for arch in space.sample(rng=2, n=4):
        model = Transformer(space, arch).eval()
        src = torch.randint(4, space.src_vocab_size, (1, space.source_length))
        for beams in (1, 3):
            with torch.no_grad(), FlopCounterMode(display=False) as counter:
                memory = model.encode(src).index_select(torch.zeros(beams, dtype=torch.long))
                token, cache = torch.full((beams, 1), BOS), None
                for _ in range(space.target_length):
                    logits, cache = model.decode_step(token, memory, cache)
                    token = logits.argmax(-1, keepdim=True)
            decode = space.cost(arch, mode="decode", beam_size=beams)
            assert counter.get_total_flops() // 2 == decode.macs
            assert decode.params == space.cost(arch).params
        assert {b.key for _, b in space.blocks(arch, mode="decode", beam_size=3)} <= distinct
    with pytest.raises(ConfigError, match="decode"):
        tiny_transformer(mode="encoder").cost(tiny_transformer(mode="encoder").smallest(), mode="decode")
    with pytest.raises(ConfigError, match="cache_lengths"):
        space.distinct_blocks(mode="decode", cache_lengths=(99,))


def test_hat_attention_convention_fixed_qkv_width():
    # HAT's latency space: FFN {512, 1024, 2048, 3072}, heads {2, 4, 8}, Q/K/V width 512 split by the heads
    hat = get_space("hat-wmt").replace(head_dim=None, qkv_dim=512, ffn_dims=(512, 1024, 2048, 3072),
                                       head_counts=(2, 4, 8))
    arch = hat.sample(rng=0)
    assert all(layer.out_channels == 512 for layer in hat.cost(arch).layers if layer.name.endswith("q_proj"))
    assert "qkv_dim" not in get_space("hat-wmt").to_dict()  # existing spaces keep their fingerprints
    with pytest.raises(ConfigError, match="not both"):
        TransformerSpace(qkv_dim=512)
    space = tiny_transformer(head_dim=None, qkv_dim=8, encoder_embed_dims=(12, 16), decoder_embed_dims=(12, 16),
                             head_counts=(1, 2, 4))
    supernet = create_supernet(space).eval()
    for arch in space.sample(rng=3, n=4):
        static = supernet.extract(arch).eval()
        inputs = static.example_inputs(1)
        supernet.set_active(arch)
        with torch.no_grad():
            assert torch.equal(supernet(*inputs), static(*inputs))
        assert flops(static, inputs) == space.cost(arch).macs
        widths = {layer.self_attn.q_proj.weight.shape[0] for layer in static.encoder_layers}
        assert widths == {8}


# --- block modules ---------------------------------------------------------------------------------------
def test_build_block_shapes_and_work():
    cnn = get_space("mbv3-small")
    text = tiny_transformer()
    picks = {}
    for block in (cnn.distinct_blocks([24]) + text.distinct_blocks()
                  + text.distinct_blocks(mode="decode", beam_size=2, cache_lengths=(0, 2))):
        picks.setdefault((block.kind, getattr(block, "cache_length", 0) > 0, getattr(block, "stride", 1)), block)
    for block in picks.values():
        module = build_block(block)
        assert module.block_spec == block and not module.training
        inputs = module.example_inputs(1)
        assert len(inputs) == len(module.input_names)
        with torch.no_grad():
            outputs = module(*inputs)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        assert len(outputs) == len(module.output_names)
        assert flops(module, inputs) == block.macs, block.key
        if block.kind in ("stem", "mbconv"):
            assert outputs[0].shape == (1, block.out_channels, block.out_resolution, block.out_resolution)
        if block.kind == "head":
            assert outputs[0].shape == (1, block.num_classes)
        if block.kind in ("encoder_layer", "decoder_layer"):
            assert outputs[0].shape == inputs[0].shape
        if block.kind == "decoder_step":
            assert outputs[1].shape[2] == block.cache_length + 1
    with pytest.raises(ConfigError):
        build_block("mbconv")


# --- block profiles -----------------------------------------------------------------------------------
def test_block_profile_write_resume_read(tmp_path, small_space):
    path = tmp_path / "blocks.jsonl"
    header = make_block_header(small_space, "dev", "manual", "1", threads=1, batch_size=1, precision="fp32",
                               protocol={})
    blocks = small_space.distinct_blocks([24])[:4]
    writer = ProfileWriter(path, header)
    for i, block in enumerate(blocks[:3]):
        writer.append_block(block, latency_stats([1.0 + i, 1.2 + i]), cpu_time_ms=latency_stats([0.9 + i]))
    writer.close()
    with open(path, "a") as handle:  # an interrupted append
        handle.write('{"kind": "block", "key": "stem')
    with pytest.raises(ProfileError, match="incomplete"):
        read_profile(path)
    writer = ProfileWriter(path, header)  # resume: drops the partial line
    assert writer.measured == {b.key for b in blocks[:3]}
    writer.append_block(blocks[3], latency_stats([5.0]))
    profile = read_profile(path)
    assert profile.level == "block" and len(profile) == 4 and profile.blocks() == blocks
    assert profile.block_latencies()[blocks[0].key] == pytest.approx(1.1)
    with pytest.raises(ProfileError, match="block profile"):
        profile.archs()
    with pytest.raises(ProfileError, match="append blocks"):
        writer.append(small_space.smallest(), latency_stats([1.0]))
    writer.close()
    network_header = {k: v for k, v in header.items() if k != "level"}
    with pytest.raises(ProfileError, match="level"):
        ProfileWriter(path, network_header)
    lines = path.read_text().splitlines()
    record = json.loads(lines[1])
    record["key"] = blocks[1].key
    (tmp_path / "bad.jsonl").write_text("\n".join([lines[0], json.dumps(record)]) + "\n")
    with pytest.raises(ProfileError, match="does not match"):
        read_profile(tmp_path / "bad.jsonl")


def test_profile_device_blocks_on_fpga_analytical(tmp_path):
    from ofa_pipeline.commands.profile_device import main

    out = tmp_path / "fpga.blocks.jsonl"
    args = ["--space", "mbv3-small", "--backend", "fpga-analytical", "--blocks", "--resolutions", "24",
            "--out", str(out), "--no-progress"]
    assert main(args) == 0
    profile = read_profile(out)
    space = get_space("mbv3-small")
    assert profile.level == "block" and {b.key for b in profile.blocks()} == {
        b.key for b in space.distinct_blocks([24])}
    assert main(args) == 0 and len(read_profile(out)) == len(profile)  # resumed: nothing measured twice
    assert main(args[:-3] + ["--workload", "decode", "--out", str(tmp_path / "x.jsonl")]) == 2


def test_cpu_ort_times_blocks(tmp_path):
    backend = get_backend("cpu-ort", protocol={"warmup": 1, "runs": 3, "max_remeasure": 0})
    blocks = get_space("mbv3-small").distinct_blocks([24])[:1] + tiny_transformer().distinct_blocks()[1:2]
    profile = profile_blocks("mbv3-small", backend, tmp_path / "cpu.jsonl", blocks=blocks, progress=False)
    # a timed backend also times the runtime's per-inference overhead, on the first block's input
    assert [r["key"] for r in profile.records] == [b.key for b in blocks] + ["null:shape=1x3x24x24:dtype=float32"]
    assert all(r["cpu_time_ms"]["median"] > 0 and r["latency_ms"]["runs"] == 6 for r in profile.records)
    label = default_label(profile)  # timed beside the reference network where the protocol says so: corrected
    assert label == ("corrected_cpu_time_ms" if "drift" in profile.records[0] else "cpu_time_ms", "p10")
    predictor = fit_block_predictor(profile, space=get_space("mbv3-small"), block_model="linear")
    overhead = profile.block_latencies(*label)["null:shape=1x3x24x24:dtype=float32"]
    assert predictor.metrics_["blocks"]["runtime_overhead_ms"] == pytest.approx(overhead)


# --- block-sum predictors and transfer ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def analytical_blocks(tmp_path_factory):
    path = tmp_path_factory.mktemp("blocks") / "analytical.jsonl"
    return profile_blocks("mbv3-small", "fpga-analytical", path, resolutions=(24, 28), progress=False)


def small_res_space():
    return get_space("mbv3-small", resolutions=(24, 28))


def simulate(space, archs):
    backend = get_backend("fpga-analytical")
    return np.array([backend.measure_arch(space, a)["latency_ms"]["median"] for a in archs])


def test_block_sum_predictor_fit_predict_intervals_save_load(tmp_path, analytical_blocks):
    space = small_res_space()
    archs = space.sample(rng=0, n=30)
    y = simulate(space, archs)
    assert default_label(analytical_blocks) == ("latency_ms", "median")
    # a simulator's network latency is the sum of its blocks': the block sum is exact
    predictor = fit_block_predictor(analytical_blocks, space=space)
    assert predictor.model_name == "block-sum"
    np.testing.assert_allclose(predictor.predict_archs(archs), y, rtol=1e-9)
    with pytest.raises(PredictorError, match="held-out residuals"):
        predictor.predict_interval_archs(archs)
    # with networks: a network-level correction and intervals from its cross-validated residuals
    genes = space.to_genes(archs)
    corrected = fit_block_predictor(analytical_blocks, (genes[:12], 1.5 * y[:12] + 0.01), space=space)
    np.testing.assert_allclose(corrected.predict_genes(genes[12:]), 1.5 * y[12:] + 0.01, rtol=0.02)
    low, high = corrected.predict_interval_genes(genes[12:], 0.8)
    assert np.all(low <= high)
    corrected.save(tmp_path / "p.skops")
    loaded = load_predictor(tmp_path / "p.skops", space=space)
    np.testing.assert_array_equal(loaded.predict_genes(genes), corrected.predict_genes(genes))
    with pytest.raises(SpaceMismatchError):
        load_predictor(tmp_path / "p.skops", space="mbv3-small")
    # blocks the profile lacks are predicted by the block model; none measured is an error
    partial = {r["key"]: r["latency_ms"]["median"] for r in analytical_blocks.records[::2]}
    sparse = fit_block_predictor(partial, space=space)
    assert sparse.metrics_["blocks"]["predicted"] > 0
    assert np.all(sparse.predict_genes(genes) > 0)
    with pytest.raises(DataError):
        fit_block_predictor({}, space=space)


def test_block_level_and_network_level_transfer(tmp_path, analytical_blocks):
    space = small_res_space()
    archs = space.sample(rng=1, n=25)
    y = simulate(space, archs)
    genes = space.to_genes(archs)
    # a "new device" twice as slow as the analytical model, measured on 12 blocks only
    header = make_block_header(space, "slow", "manual", "1", threads=1, batch_size=1, precision="int8", protocol={})
    writer = ProfileWriter(tmp_path / "slow.jsonl", header)
    for record in analytical_blocks.records[::7]:
        writer.append_block(block_from_dict(record["block"]), latency_stats([2 * record["latency_ms"]["median"]]))
    writer.close()
    target = read_profile(tmp_path / "slow.jsonl")
    predictor = fit_transfer_predictor("fpga-analytical", target)
    assert predictor.model_name == "block-sum" and predictor.metrics_["blocks"]["model"] in ("scale", "log-linear",
                                                                                              "linear")
    np.testing.assert_allclose(predictor.predict_genes(genes), 2 * y, rtol=0.02)
    # whole networks of the new device, a MACs source
    network = fit_transfer_predictor("macs", (genes[:15], 2 * y[:15]), space=space)
    assert network.model_name.startswith("transfer-")
    assert np.all(network.predict_genes(genes[15:]) > 0)
    with pytest.raises(ConfigError, match="space="):
        fit_transfer_predictor("macs", (genes[:15], y[:15]))


# --- a network correction fitted on another space of the device ----------------------------------------------
@pytest.fixture(scope="module")
def dpu_source():
    """The shipped fpga-dpu block and network profiles of mbv3-small, and the correction fitted on them."""
    blocks = read_profile(shipped_block_profile_path("mbv3-small", "fpga-dpu"))
    networks = read_profile(shipped_profile_path("mbv3-small", "fpga-dpu"))
    return blocks, networks, fit_network_correction(blocks, networks)


def test_a_network_correction_carries_to_a_space_with_another_classifier(tmp_path, dpu_source):
    blocks, networks, correction = dpu_source
    target = get_space("mbv3-small", num_classes=3)
    backend = get_backend("fpga-dpu")
    table = blocks.block_latencies("latency_ms", "median")
    missing = [b for b in space_blocks(target) if b.key not in table]
    assert missing and {b.kind for b in missing} == {"head"}
    table.update({b.key: r["latency_ms"]["median"] for b, r in zip(missing, backend.measure_blocks(missing))})
    predictor = fit_block_predictor(table, space=target, correction_from=(blocks, networks))
    plain = fit_block_predictor(table, space=target)
    # the source space's measured networks as networks of the new space (only the classifier differs)
    genes = networks.space.to_genes(networks.archs())[:60]
    y = networks.latencies("latency_ms", "median")[:60]
    assert np.max(np.abs(predictor.predict_genes(genes) / y - 1)) < 0.03
    assert np.median(np.abs(plain.predict_genes(genes) / y - 1)) > 0.03  # what the correction fixes
    archs = target.from_genes(genes[:4])  # the simulator's own latency of the new networks
    truth = np.array([backend.measure_arch(target, a)["latency_ms"]["median"] for a in archs])
    np.testing.assert_allclose(predictor.predict_archs(archs), truth, rtol=1e-6)
    # intervals from the source networks' out-of-fold residuals, and the metrics say so
    assert predictor.interval_residuals_ is not None and plain.interval_residuals_ is None
    low, high = predictor.predict_interval_genes(genes, 0.9)
    assert np.all(low <= high)
    source = predictor.metrics_["correction_source"]
    assert source["space_fingerprint"] == networks.space.fingerprint != target.fingerprint
    assert source["n_networks"] == len(networks) and source["cv"]["n"] == len(networks)
    assert source["blocks_shared"] == source["blocks_total"] - len(missing)
    assert "not measured on this one" in source["note"]
    assert predictor.metrics_["label"] == networks.label("latency_ms", "median").to_dict()
    assert predictor.metrics_["n_train"] == 0 and "cv" not in predictor.metrics_
    # a fitted NetworkCorrection applies the same, and survives save/load
    again = fit_block_predictor(table, space=target, correction_from=correction)
    np.testing.assert_array_equal(again.predict_genes(genes), predictor.predict_genes(genes))
    again.save(tmp_path / "p.skops")
    loaded = load_predictor(tmp_path / "p.skops", space=target)
    np.testing.assert_array_equal(loaded.predict_genes(genes), predictor.predict_genes(genes))
    np.testing.assert_array_equal(loaded.interval_residuals_, predictor.interval_residuals_)


def test_a_network_correction_is_refused_across_spaces_devices_and_mostly_other_blocks(dpu_source):
    blocks, networks, correction = dpu_source
    other_space = shipped_profile_path("mbv3-small-r20-32", "fpga-dpu")
    with pytest.raises(SpaceMismatchError, match="both must measure the same space"):
        fit_network_correction(blocks, other_space)
    with pytest.raises(ConfigError, match="both must measure the same space"):
        fit_block_predictor(blocks, correction_from=(blocks, other_space))
    with pytest.raises(ConfigError, match="not both"):
        fit_block_predictor(blocks, networks, correction_from=correction)
    with pytest.raises(ConfigError, match="fitted on device 'fpga-dpu-b4096'"):
        fit_block_predictor(shipped_block_profile_path("mbv3-small", "fpga-scalesim"), correction_from=correction)
    other_blocks = get_space("mbv3-small", stage_widths=(32, 40, 56, 72))
    with pytest.raises(ConfigError, match="not evidence for networks of mostly other blocks"):
        fit_block_predictor(blocks.block_latencies("latency_ms", "median"), space=other_blocks,
                            correction_from=correction)


def test_decode_workload_space_prices_decoding_everywhere(tmp_path):
    forward = tiny_transformer()
    space = forward.replace(workload="decode")
    assert space.fingerprint == forward.fingerprint  # same architectures and supernet
    assert "workload" in space.to_dict() and "workload" not in forward.to_dict()
    arch = space.largest()
    assert space.cost(arch).macs == forward.cost(arch, mode="decode").macs != forward.cost(arch).macs
    from predictors.features import ArchFeaturizer

    genes = space.sample_genes(10, rng=0)
    macs = ArchFeaturizer(space.to_dict(), ("macs",)).fit().transform(genes)[:, 0]
    assert list(macs) == [space.cost(a).macs for a in space.from_genes(genes)]
    # decoding steps measured as blocks sum to the simulated decoding of whole networks
    blocks = profile_blocks(space, "fpga-analytical", tmp_path / "decode.jsonl", progress=False)
    assert {b.kind for b in blocks.blocks()} >= {"decoder_step", "cross_kv"}
    predictor = fit_block_predictor(blocks)
    archs = space.from_genes(genes)
    np.testing.assert_allclose(predictor.predict_archs(archs), simulate(space, archs), rtol=1e-9)
    with pytest.raises(ConfigError, match="workload"):
        from hardware_profiles import profile_space

        profile_space(space, get_backend("cpu-ort"), 2, tmp_path / "x.jsonl", progress=False)
    with pytest.raises(ConfigError, match="encoder-decoder"):
        tiny_transformer(mode="encoder", workload="decode")
