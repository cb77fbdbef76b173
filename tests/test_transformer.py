"""The elastic Transformer space and supernet: the Bort count, validation,
genetic operators under constraints, extraction parity, analytic cost equals
measured cost, key/value-cache decoding, encoder-decoder attention masks,
ONNX export."""

import json

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from ofa import ConfigError, SpaceMismatchError, create_supernet, get_space, space_from_dict
from ofa.export import export_model, export_transformer, onnx_parity, onnxruntime_session
from ofa.models.transformer import (BOS, PAD, DecoderStepGraph, EncoderMemory, Transformer, beam_search,
                                    greedy_decode)
from ofa.spaces import TransformerSpace


def make_supernet(name="transformer-small", seed=0, **overrides):
    space = get_space(name, **overrides)
    torch.manual_seed(seed)
    net = create_supernet(space)
    with torch.no_grad():  # non-trivial LayerNorms, as after training, so slicing mistakes show
        for module in net.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.add_(0.2 * torch.randn_like(module.weight))
                module.bias.add_(0.2 * torch.randn_like(module.bias))
    return net.eval()


def tokens(space, batch, length, seed, vocab=None, pad_from=None):
    generator = torch.Generator().manual_seed(seed)
    out = torch.randint(4, vocab or space.src_vocab_size, (batch, length), generator=generator)
    out[:, 0] = BOS
    if pad_from is not None:
        out[-1, pad_from:] = PAD
    return out


# --- the space -------------------------------------------------------------------------------------------
def test_bort_space_has_exactly_300_architectures():
    for name in ("bort", "bort-small"):
        space = get_space(name)
        assert space.size() == 300
        archs = space.enumerate()
        assert len(archs) == 300 and len({a.to_json() for a in archs}) == 300
        for arch in archs:
            assert arch.encoder_embed_dim % arch.encoder_heads[0] == 0
    bort = get_space("bort")
    drawn = {a.to_json() for a in bort.sample(0, 3000)}
    assert len(drawn) == 300  # sampling reaches every architecture and only valid ones


def test_hat_wmt_space_size():
    space = get_space("hat-wmt")
    encoder = 2 * (3 * 2) ** 6  # embed x (ffn x heads) per each of 6 layers
    decoder = 2 * sum((3 * 2 * 2 * 3) ** n for n in range(1, 7))  # embed x (ffn, self, cross heads, cross layers)
    assert space.size() == encoder * decoder
    assert 3e14 < space.size() < 5e14


def test_genetic_operators_respect_constraints():
    for name in ("bort", "transformer-small"):
        space = get_space(name)
        rng = np.random.default_rng(0)
        genes = space.sample_genes(300, rng)
        for G in (genes, space.mutate_genes(genes, rng, 0.5), space.crossover_genes(genes, genes[::-1], rng)):
            archs = space.from_genes(G)  # parse validates every constraint
            assert np.array_equal(space.to_genes(archs), G)
            assert space.encode_genes(G).shape == (300, space.encoding_size)
    # transformer-small: decoder layers never attend to more encoder layers than run
    space = get_space("transformer-small")
    for arch in space.sample(1, 300):
        assert max(arch.decoder_cross_layers) <= arch.encoder_layers


def test_json_round_trip_and_fingerprint():
    space = get_space("transformer-small")
    arch = space.sample(3)
    assert space.parse(json.loads(arch.to_json())) == arch
    assert space_from_dict(json.loads(json.dumps(space.to_dict()))).fingerprint == space.fingerprint
    encoder_only = get_space("bort").smallest().to_dict()
    assert "decoder_layers" not in encoder_only
    with pytest.raises(SpaceMismatchError):
        get_space("bort-small").parse(encoder_only)
    # configs listing every layer up to the maximum depth, unused ones null (HAT's style)
    config = {k: v for k, v in space.smallest().to_dict().items() if k != "space"}
    config["encoder_ffn_dims"] = config["encoder_ffn_dims"] + [None, None]
    assert space.parse(config) == space.smallest()


@pytest.mark.parametrize("change, message", [
    ({"encoder_heads": [12, 12]}, "encoder_heads"),                 # 12 does not divide 512
    ({"encoder_ffn_dims": [2048, 2048]}, "encoder_ffn_dims"),        # FFN size not in the space
    ({"encoder_ffn_dims": [256]}, "2 layers"),                      # wrong number of layers
    ({"encoder_ffn_dims": [256, 512]}, "same value"),               # Bort shares one value across layers
    ({"encoder_layers": 3}, "encoder_layers"),
    ({"decoder_layers": 2}, "unknown key"),                         # encoder-only space
    ({"encoder_embed_dim": True}, "encoder_embed_dim"),
])
def test_bad_bort_architectures_are_refused(change, message):
    config = {k: v for k, v in get_space("bort").smallest().to_dict().items() if k != "space"}
    config.update(change)
    with pytest.raises(ConfigError, match=message):
        get_space("bort").parse(config)


def test_bad_encoder_decoder_architectures_are_refused():
    space = get_space("transformer-small")
    base = {k: v for k, v in space.smallest().to_dict().items() if k != "space"}  # 1 encoder layer
    with pytest.raises(ConfigError, match="decoder_cross_layers"):
        space.parse({**base, "decoder_cross_layers": [2]})  # attends past the first encoder layer
    with pytest.raises(ConfigError, match="missing key"):
        space.parse({k: v for k, v in base.items() if k != "decoder_self_heads"})
    with pytest.raises(ConfigError, match="decoder_cross_heads"):
        space.parse({**base, "decoder_cross_heads": [3]})
    with pytest.raises(ConfigError):
        space.from_genes(np.full((1, space.num_genes), 7))


@pytest.mark.parametrize("fields, message", [
    ({"mode": "decoder"}, "mode"),
    ({"head_dim": None, "encoder_embed_dims": (30,), "head_counts": (4, 8)}, "divides"),
    ({"cross_layer_counts": (2, 3), "encoder_layer_counts": (1, 2)}, "cross_layer_counts"),
    ({"ffn_dims": (64, 64)}, "duplicates"),
    ({"max_positions": 0}, "max_positions"),
])
def test_bad_space_definitions_are_refused(fields, message):
    with pytest.raises(ConfigError, match=message):
        TransformerSpace.small().replace(**fields)


# --- supernet and static networks ----------------------------------------------------------------------------
def test_extracted_subnets_match_the_supernet():
    for name in ("transformer-small", "bort-small"):
        net = make_supernet(name)
        space = net.space
        src = tokens(space, 3, 11, 0, pad_from=7)
        tgt = tokens(space, 3, 9, 1, vocab=space.tgt_vocab_size)
        for arch in [space.largest(), space.smallest()] + space.sample(0, 20):
            net.set_active(arch)
            static = net.extract()
            assert isinstance(static, Transformer) and static.arch == arch
            args = (src, tgt) if space.has_decoder else (src,)
            with torch.no_grad():
                assert (net(*args) - static(*args)).abs().max().item() <= 1e-5


def test_classifier_head_parity():
    net = make_supernet("bort-small", encoder_head="classifier", num_classes=5)
    src = tokens(net.space, 2, 8, 0)
    for arch in net.space.sample(1, 5):
        net.set_active(arch)
        with torch.no_grad():
            out = net(src)
            assert out.shape == (2, 5)
            assert (out - net.extract()(src)).abs().max().item() <= 1e-5


def _measured(model, inputs):
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*inputs)
    return counter.get_total_flops() // 2, sum(p.numel() for p in model.parameters())


def test_analytic_macs_and_params_equal_measured():
    net = make_supernet()
    space = net.space
    for arch in [space.largest(), space.smallest()] + space.sample(2, 8):
        static = net.extract(arch).eval()
        macs, params = _measured(static, static.example_inputs(1))
        report = space.cost(arch)
        assert (macs, params) == (report.macs, report.params)
        src, tgt = tokens(space, 1, 7, 0), tokens(space, 1, 5, 0)
        assert _measured(static, (src, tgt))[0] == space.cost(arch, source_length=7, target_length=5).macs
    # fixed head size 64 (HAT) and heads splitting the width (Bort), built directly
    for name in ("hat-wmt", "bort"):
        space = get_space(name, src_vocab_size=50, tgt_vocab_size=60, max_positions=40, source_length=9,
                          target_length=6)
        arch = space.sample(4)
        static = Transformer(space, arch).eval()
        report = space.cost(arch)
        assert _measured(static, static.example_inputs(1)) == (report.macs, report.params)


def test_kv_cache_decoding_equals_full_recomputation():
    net = make_supernet()
    space = net.space
    src = tokens(space, 3, 10, 0, pad_from=6)
    for arch in [space.largest()] + space.sample(5, 3):
        net.set_active(arch)
        memory = net.encode(src)
        prefix = tokens(space, 3, 8, 9, vocab=space.tgt_vocab_size)
        full = net.decode(prefix, memory)
        cache = None
        for t in range(prefix.shape[1]):
            step_logits, cache = net.decode_step(prefix[:, t:t + 1], memory, cache)
            assert (step_logits - full[:, t]).abs().max().item() <= 1e-5
        static = net.extract()
        cached = greedy_decode(net, src, 12)
        assert torch.equal(cached, greedy_decode(net, src, 12, use_cache=False))
        assert torch.equal(cached, greedy_decode(static, src, 12))
        assert torch.equal(beam_search(static, src, 1, 12), cached[:, :beam_search(static, src, 1, 12).shape[1]])
        assert beam_search(static, src, 3, 12).shape[0] == 3


def test_encoder_decoder_attention_over_the_last_k_encoder_layers():
    net = make_supernet()
    space = net.space
    base = {k: v for k, v in space.largest().to_dict().items() if k != "space"}  # 3 encoder layers
    src = tokens(space, 2, 6, 0, pad_from=4)
    for k in (1, 2, 3):
        arch = net.set_active({**base, "decoder_cross_layers": [k, 1, k]})
        memory = net.encode(src)
        assert len(memory.states) == k  # only what the decoder reads is kept
        layer = net.decoder_layers[0]
        (keys, values), blocked = layer.cross_keys_values(memory)
        heads, size = layer.cross_attn._shape()
        assert keys.shape == values.shape == (2, heads, k * 6, size)
        assert blocked.shape == (2, 1, 1, k * 6)
        assert torch.equal(blocked[1, 0, 0], src[1].eq(PAD).repeat(k))  # padding mask tiled per encoder layer
        # encoder outputs behind the padding are never read, whichever layer they come from
        tgt = tokens(space, 2, 5, 3, vocab=space.tgt_vocab_size)
        with torch.no_grad():
            expected = net.decode(tgt, memory)
            garbage = EncoderMemory(tuple(s.clone() for s in memory.states), memory.padding)
            for state in garbage.states:
                state[1, 4:] += 100.0
            assert (net.decode(tgt, garbage) - expected).abs().max().item() <= 1e-5
        assert net.extract(arch).decoder_layers[0].cross_layers == k


def test_sequences_longer_than_max_positions_are_refused():
    net = make_supernet()
    too_long = torch.full((1, net.space.max_positions + 1), 5)
    with pytest.raises(ConfigError, match="max_positions"):
        net.encode(too_long)
    with pytest.raises(ConfigError, match="target tokens"):
        net(too_long[:, :4])


# --- ONNX ---------------------------------------------------------------------------------------------------
def test_onnx_encoder_and_decoder_step_graphs_match_pytorch(tmp_path):
    net = make_supernet()
    space = net.space
    static = net.extract(space.sample(11)).eval()
    paths = export_transformer(static, tmp_path)
    src = tokens(space, 3, 13, 0, pad_from=9)  # other lengths than at export: dynamic axes
    tgt = tokens(space, 3, 7, 1, vocab=space.tgt_vocab_size)
    with torch.no_grad():
        expected = static(src, tgt).numpy()
        memory = static.encode(src)
    got = onnxruntime_session(paths["model"]).run(None, {"src_tokens": src.numpy(), "tgt_tokens": tgt.numpy()})[0]
    assert np.abs(got - expected).max() <= 1e-4
    states = onnxruntime_session(paths["encoder"]).run(None, {"src_tokens": src.numpy()})[0]
    assert np.abs(states - torch.stack(memory.states).numpy()).max() <= 1e-4
    step = onnxruntime_session(paths["decoder_step"])
    names = [i.name for i in step.get_inputs()]
    graph = DecoderStepGraph(static)
    assert names == list(graph.input_names)
    pasts = []
    for layer in static.decoder_layers:
        heads, size = layer.self_attn._shape()
        pasts += [np.zeros((3, heads, 0, size), np.float32)] * 2  # the first step has no past
    cache = None
    for t in range(tgt.shape[1]):
        with torch.no_grad():
            logits, cache = static.decode_step(tgt[:, t:t + 1], memory, cache)
        outputs = step.run(None, dict(zip(names, [tgt[:, t:t + 1].numpy(), np.array(t), src.numpy(), states]
                                          + pasts)))
        assert np.abs(outputs[0] - logits.numpy()).max() <= 1e-4
        pasts = outputs[1:]


def test_onnx_encoder_only_and_export_model(tmp_path):
    net = make_supernet("bort-small")
    static = net.extract(net.space.sample(2)).eval()
    paths = export_transformer(static, tmp_path)
    assert set(paths) == {"model"}
    src = tokens(net.space, 2, 12, 0, pad_from=8)
    assert onnx_parity(static, paths["model"], (src,)) <= 1e-4
    enc_dec = make_supernet().extract(get_space("transformer-small").sample(0)).eval()
    path = export_model(enc_dec, tmp_path / "fixed.onnx")  # the generic exporter, fixed lengths
    assert onnx_parity(enc_dec, path, enc_dec.example_inputs(1)) <= 1e-4
