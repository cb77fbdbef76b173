"""Per-token early exits of the Transformer (CALM): the exit option, decoding with state
propagation, sequence-level calibration, expected latency and the exit training phase."""

import numpy as np
import pytest
import torch

from ofa import ConfigError, OFAError, create_supernet, get_space
from ofa.data.text import build_text_data
from ofa.models.transformer import EOS, PAD, greedy_decode
from ofa.models.transformer_exits import exit_logits, exit_loss_weights, greedy_decode_exits, sequence_losses
from ofa.search.exits import hoeffding_bentkus_p_value, learn_then_test
from ofa.search.transformer_exits import calibrate_decoder_threshold
from ofa.training.transformer import TransformerTrainer

EXITS = {"layers": [0, 1]}


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return create_supernet("transformer-small", exits=EXITS).eval()


@pytest.fixture(scope="module")
def sources():
    generator = torch.Generator().manual_seed(1)
    src = torch.randint(4, 30, (6, 7), generator=generator)
    src[0, 5:] = PAD  # one padded sentence
    return src


def _archs(space):
    return [space.largest(), space.smallest(), space.parse({**space.largest().to_dict(), "decoder_layers": 2,
                                                            "decoder_ffn_dims": [64, 256],
                                                            "decoder_self_heads": [2, 4],
                                                            "decoder_cross_heads": [4, 2],
                                                            "decoder_cross_layers": [1, 3]})]


def test_exits_are_an_option_of_the_network_not_of_the_space(supernet):
    plain = create_supernet("transformer-small")
    assert plain.state_dict().keys() == supernet.state_dict().keys()  # no weights of their own: old checkpoints load
    supernet.load_state_dict(plain.state_dict())
    assert supernet.space.fingerprint == get_space("transformer-small").fingerprint
    for arch, exits in zip(_archs(supernet.space), ([0, 1], [], [0])):  # elastic depth: an exit needs a layer above
        supernet.set_active(arch)
        assert supernet.active_exit_layers() == exits
        assert len(exit_loss_weights(supernet)) == len(exits) + 1
    supernet.set_active(supernet.space.largest())
    assert exit_loss_weights(supernet) == pytest.approx([1 / 6, 2 / 6, 3 / 6])  # CALM: proportional to depth


@pytest.mark.parametrize("bad, message", [
    ({"layers": [2]}, "0 to 1"), ({"layers": [-1]}, "0 to 1"), ({"layers": [1, 0]}, "increasing"),
    ({"layers": []}, "distinct"), ({"layers": [0.5]}, "distinct"), ({"stages": [0]}, "'layers'"),
    ({"layers": 0}, "list"), ([0, 1], "mapping")])
def test_a_bad_exit_config_is_a_named_error_before_any_work(bad, message):
    with pytest.raises(ConfigError, match=message) as error:
        create_supernet("transformer-small", exits=bad)
    assert isinstance(error.value, OFAError)
    with pytest.raises(ConfigError, match=message):  # the config is checked before the data is built
        TransformerTrainer({"space": "transformer-small", "exits": bad}, "/nonexistent/never-written")
    with pytest.raises(ConfigError, match="no decoder"):
        create_supernet("bort-small", exits={"layers": [0]})
    with pytest.raises(ConfigError, match="exit_phase"):
        TransformerTrainer({"space": "transformer-small", "exit_phase": {"steps": 5, "lr": 0.001}}, "/nonexistent")
    with pytest.raises(ConfigError, match="exit_phase.steps"):
        TransformerTrainer({"space": "transformer-small", "exits": EXITS, "exit_phase": {"steps": 0, "lr": 0.1}},
                           "/nonexistent")


def test_threshold_one_is_the_static_greedy_output_and_zero_exits_every_token_first(supernet, sources):
    for arch in _archs(supernet.space):
        supernet.set_active(arch)
        static = supernet.extract(arch).eval()
        reference = greedy_decode(static, sources, max_length=12)
        for model in (supernet, static):
            never = greedy_decode_exits(model, sources, 1.0, max_length=12)
            assert torch.equal(never.tokens, reference)
            assert never.mean_layers() == arch.decoder_layers
        first = greedy_decode_exits(static, sources, 0.0, max_length=12)
        real = first.exit_index.ge(0)
        if static.active_exit_layers():
            assert bool(first.exit_index[real].eq(0).all())
            assert first.mean_layers() == static.active_exit_layers()[0] + 1
            assert first.exit_distribution()[0] == 1.0
            # leaving after layer 0 answers as the subnet cut to its first layer (same front-sliced weights)
            one_layer = {k: (list(v)[:1] if isinstance(v, (list, tuple)) and k.startswith("decoder_") else v)
                         for k, v in arch.to_dict().items()}
            one_layer["decoder_layers"] = 1
            assert torch.equal(first.tokens, greedy_decode(supernet.extract(one_layer).eval(), sources, 12))
        else:
            assert torch.equal(first.tokens, reference)


def _reference_decode(model, src, threshold, steps):
    """Per-token exits with state propagation, recomputed from scratch at every step (no cache): layer j
    reads, at every earlier position, the state that position left in layer j - 1 (copied upward when the
    token exited below)."""
    from ofa.models.exits import confidence

    memory = model.encode(src)
    layers, exits = model.active_decoder_layers(), set(model.active_exit_layers())
    tokens = torch.tensor([[1]])
    inputs = [[] for _ in layers]  # inputs[j][s]: the state position s fed to layer j
    out = []
    for t in range(steps):
        x = model._embed(tokens[:, -1:], "tgt", t)
        exited, answer = False, None
        for j, layer in enumerate(layers):
            inputs[j].append(x)
            if exited:
                continue
            sequence = torch.cat(inputs[j], dim=1)
            causal = torch.ones(t + 1, t + 1, dtype=torch.bool).triu(1)
            x = layer(sequence, causal, *layer.cross_keys_values(memory))[0][:, -1:]
            if j in exits:
                logits = model.output_logits(x)[:, -1]
                if confidence(logits.numpy())[0] > threshold:
                    exited, answer = True, logits
        answer = model.output_logits(x)[:, -1] if answer is None else answer
        token = answer.argmax(-1)
        out.append(int(token))
        tokens = torch.cat([tokens, token[:, None]], dim=1)
        if int(token) == EOS:
            break
    return out


def test_state_propagation_matches_recomputation_and_keeps_every_layer_cache(supernet, sources):
    supernet.set_active(supernet.space.largest())
    static = supernet.extract().eval()
    first = greedy_decode_exits(static, sources[1:2], 0.0, max_length=10)
    never = greedy_decode_exits(static, sources[1:2], 1.0, max_length=10)
    mixed = None
    for threshold in np.linspace(0.02, 0.5, 25):  # a threshold where some tokens exit and some do not
        decoded = greedy_decode_exits(static, sources[1:2], float(threshold), max_length=10)
        distribution = decoded.exit_distribution()
        if distribution[-1] > 0 and distribution[-1] < 1:
            mixed = (float(threshold), decoded)
            break
    assert mixed is not None and first.tokens.shape[1] and never.tokens.shape[1]
    threshold, decoded = mixed
    with torch.no_grad():
        expected = _reference_decode(static, sources[1:2], threshold, decoded.tokens.shape[1])
    assert decoded.tokens[0, :len(expected)].tolist() == expected
    # the cache of every layer holds every position, exited or not
    for threshold in (0.0, threshold, 1.0):
        decoded = greedy_decode_exits(static, sources[1:4], threshold, max_length=5)
        steps = decoded.tokens.shape[1]
        assert [tuple(k.shape) for k, v in decoded.cache] == [(3, 4, steps, 16)] * 3
        assert all(v.shape == k.shape for k, v in decoded.cache)


@torch.no_grad()
def test_supernet_with_exits_matches_the_extracted_network(supernet, sources):
    tgt = torch.cat([torch.ones(len(sources), 1, dtype=torch.long), sources[:, :5]], dim=1)
    for arch in _archs(supernet.space):
        supernet.set_active(arch)
        static = supernet.extract(arch).eval()
        assert static.exits == supernet.exits
        ours, theirs = exit_logits(supernet, sources, tgt), exit_logits(static, sources, tgt)
        assert len(ours) == len(static.active_exit_layers()) + 1
        assert max(float((a - b).abs().max()) for a, b in zip(ours, theirs)) <= 1e-5
        assert torch.allclose(ours[-1], static(sources, tgt), atol=1e-6)
        for threshold in (0.05, 0.2):
            a, b = greedy_decode_exits(supernet, sources, threshold, max_length=8), \
                greedy_decode_exits(static, sources, threshold, max_length=8)
            assert torch.equal(a.tokens, b.tokens) and torch.equal(a.layers, b.layers)


def test_sequence_losses():
    full = torch.tensor([[5, 6, EOS], [5, EOS, PAD]])
    assert sequence_losses(full, full).tolist() == [0.0, 0.0]
    early = torch.tensor([[5, 7, EOS, PAD], [5, EOS, PAD, PAD]])
    assert sequence_losses(early, full, "sequence").tolist() == [1.0, 0.0]
    assert sequence_losses(early, full, "token").tolist() == pytest.approx([1 / 3, 0.0])
    with pytest.raises(ConfigError, match="sequence"):
        sequence_losses(early, full, "bleu")


def test_learn_then_test_controls_the_risk_on_a_synthetic_case():
    # losses that grow as the threshold falls: risk(lambda) = 0.3 (1 - lambda)
    grid = np.linspace(0, 1, 51)[::-1]
    tolerance, delta, n = 0.05, 0.1, 300
    violations = 0
    for trial in range(100):
        rng = np.random.default_rng(trial)
        uniform = rng.random(n)

        def losses(threshold, uniform=uniform):
            return (uniform < 0.3 * (1 - threshold)).astype(float)

        chosen, tested = learn_then_test(grid, losses, tolerance, delta)
        assert tested[-1]["p_value"] > delta or chosen == grid[-1]
        violations += 0.3 * (1 - chosen) > tolerance
    assert violations / 100 <= delta
    # bounded losses: the Hoeffding-Bentkus p-value is valid and more conservative than the binomial one
    assert hoeffding_bentkus_p_value(0.0, 300, 0.05) < 0.1 < hoeffding_bentkus_p_value(0.05, 300, 0.05)


def test_sequence_level_calibration_respects_its_tolerance(supernet):
    supernet.set_active(supernet.space.largest())
    generator = torch.Generator().manual_seed(3)
    src = torch.randint(4, 30, (80, 6), generator=generator)
    calibration = calibrate_decoder_threshold(supernet, src, tolerance=0.1, delta=0.2, grid=np.linspace(0, 1, 11),
                                              max_length=6)
    assert calibration.empirical_risk <= 0.1 and calibration.n == 80
    assert calibration.tested[-1]["p_value"] > 0.2 or calibration.threshold == 0.0
    assert all(t["p_value"] <= 0.2 for t in calibration.tested[:-1])
    assert calibration.mean_layers <= calibration.full_layers == 3
    assert sum(calibration.exit_distribution) == pytest.approx(1.0)
    token = calibrate_decoder_threshold(supernet, src, 0.1, 0.2, risk="token", grid=np.linspace(0, 1, 11),
                                        max_length=6)
    assert token.risk == "token" and "Hoeffding-Bentkus" in token.to_dict()["guarantee"]
    supernet.set_active(supernet.space.smallest())
    with pytest.raises(ConfigError, match="at least one exit"):
        calibrate_decoder_threshold(supernet, src)
    supernet.set_active(supernet.space.largest())
    with pytest.raises(ConfigError, match="tolerance"):
        calibrate_decoder_threshold(supernet, src, tolerance=2.0)


def test_expected_latency_counts_the_exits():
    from ofa.spaces.transformer_exits import DecoderExitConfig, decode_exit_blocks
    from predictors.exits import decoder_exit_latencies, expected_latency

    class PerMacs:  # a block-sum regressor stand-in: latency = MACs, no overhead, no correction
        overhead_ = 0.0
        coef_ = None

        def predict_blocks(self, blocks):
            return np.array([float(block.macs) for block in blocks])

        def _apply(self, coef, features):
            return features[:, 0]

    from predictors import blocks as block_module

    regressor = PerMacs()
    space = get_space("transformer-small", workload="decode")
    arch = space.largest()
    exits = DecoderExitConfig.parse(space, EXITS)
    original = block_module.BlockSumRegressor
    block_module.BlockSumRegressor = PerMacs
    try:
        latency = decoder_exit_latencies(regressor, space, exits, arch, target_length=6)
    finally:
        block_module.BlockSumRegressor = original
    first, second, full = latency["cumulative"]
    assert first < second < full == latency["worst_case"]
    assert full > latency["static"]  # the exit checks cost output projections
    assert latency["static"] == pytest.approx(space.cost(arch, mode="decode", target_length=6).macs)
    assert expected_latency([0.5, 0.25, 0.25], latency["cumulative"]) < latency["static"]
    segments = decode_exit_blocks(space, exits, arch, target_length=6)
    assert sum(name.endswith("propagated_kv") for name, _ in segments[0]) == 2 * 6  # two layers skipped per token


def test_exit_phase_trains_on_a_finished_run_and_resumes_exactly(tmp_path):
    from ofa.training.progressive_shrinking import seed_exit_phase

    data = build_text_data("numbers", train_size=200, val_size=20, test_size=20)
    config = {"space": "transformer-small", "data": {"train_size": 200, "val_size": 20, "test_size": 20},
              "train": {"steps": 2, "batch_size": 16, "checkpoint_every": 2, "eval_every": 100, "warmup_steps": 1,
                        "eval_sentences": 8, "progress": False, "subnets_per_step": 2}}
    TransformerTrainer(config, tmp_path / "plain", data=data).run()
    phase = {"steps": 4, "lr": 0.001}
    for name in ("full", "killed"):
        seed_exit_phase(tmp_path / "plain" / "final.pt", tmp_path / name, EXITS, phase)
    from ofa.training.config import load_yaml

    exit_config = load_yaml(tmp_path / "full" / "config.yaml")
    assert exit_config["exits"] == EXITS and exit_config["exit_phase"] == phase
    TransformerTrainer(exit_config, tmp_path / "full", resume=True, data=data).run()
    killed = TransformerTrainer(exit_config, tmp_path / "killed", resume=True, data=data)
    killed.setup()
    payload = killed._resume_payload
    killed.model.load_state_dict(payload["model"])
    killed.optimizer.load_state_dict(payload["optimizer"])
    killed.scheduler.load_state_dict(payload["scheduler"])
    for step in range(2, 4):
        killed.train_step(step)
    killed._save(tmp_path / "killed" / "last.pt", 4)
    TransformerTrainer(exit_config, tmp_path / "killed", resume=True, data=data).run()
    a, b = (torch.load(tmp_path / name / "final.pt", weights_only=True) for name in ("full", "killed"))
    assert a["step"] == b["step"] == 6
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    before = torch.load(tmp_path / "plain" / "final.pt", weights_only=True)["model"]
    assert any(not torch.equal(before[k], a["model"][k]) for k in before)  # the phase trained the decoder
    from ofa.training import load_supernet

    trained = load_supernet(tmp_path / "full" / "final.pt")
    assert trained.exits is not None and trained.exits.to_dict() == EXITS
    with pytest.raises(ConfigError, match="already has exits"):
        seed_exit_phase(tmp_path / "full" / "final.pt", tmp_path / "again", EXITS, phase)


@pytest.mark.parametrize("call, error, message", [
    (lambda model, src: greedy_decode_exits(model, src.float(), 0.5, max_length=4), "DataError", "integer"),
    (lambda model, src: greedy_decode_exits(model, src[0], 0.5, max_length=4), "DataError", "sentences"),
    (lambda model, src: greedy_decode_exits(model, src + 10_000, 0.5, max_length=4), "DataError", "vocabulary"),
    (lambda model, src: greedy_decode_exits(model, src, "high", max_length=4), "ConfigError", "in \\[0, 1\\]"),
    (lambda model, src: greedy_decode_exits(model, src, 0.5, max_length=4.0), "ConfigError", "max_length"),
    (lambda model, src: calibrate_decoder_threshold(model, src, 0.1, 0.2, grid=[], max_length=4), "ConfigError",
     "grid"),
    (lambda model, src: calibrate_decoder_threshold(model, src, 0.1, 0.2, grid=[float("nan"), 0.5], max_length=4),
     "ConfigError", "grid"),
    (lambda model, src: calibrate_decoder_threshold(model, src, 0.1, 0.2, grid=[1.5, 0.5], max_length=4),
     "ConfigError", "grid"),
    (lambda model, src: calibrate_decoder_threshold(model, src, 0.1, 0.2, batch_size=0, max_length=4),
     "ConfigError", "batch_size"),
    (lambda model, src: calibrate_decoder_threshold(model, src, 0.1, 0.2, batch_size=-1, max_length=4),
     "ConfigError", "batch_size"),
    (lambda model, src: calibrate_decoder_threshold(model, src.float(), 0.1, 0.2, max_length=4), "DataError",
     "integer"),
    (lambda model, src: calibrate_decoder_threshold(model, src, 0.1, 0.2, max_length=4.0), "ConfigError",
     "max_length"),
    (lambda model, src: calibrate_decoder_threshold(model, src, 0.1, 0.2, max_length=4, reference=[[EOS]] * 4),
     "DataError", "reference"),
    (lambda model, src: sequence_losses(torch.zeros(3, 4, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long)),
     "DataError", "3 adaptive outputs"),
])
def test_bad_decoding_and_calibration_input_is_a_named_error_before_any_work(supernet, call, error, message,
                                                                              monkeypatch):
    import ofa.errors

    supernet.set_active(supernet.space.largest())
    src = torch.randint(4, 30, (4, 6), generator=torch.Generator().manual_seed(5))
    # every decoding starts with the encoder: nothing is decoded before the input is refused
    monkeypatch.setattr(type(supernet), "encode", lambda *a, **k: pytest.fail("the model ran before the check"))
    with pytest.raises(getattr(ofa.errors, error), match=message):
        call(supernet, src)


def test_calibration_refuses_a_model_in_training_mode(supernet):
    # dropout makes threshold 1 differ from the full output: the guarantee would not hold
    supernet.set_active(supernet.space.largest())
    src = torch.randint(4, 30, (4, 6), generator=torch.Generator().manual_seed(5))
    supernet.train()
    try:
        with pytest.raises(ConfigError, match="eval"):
            calibrate_decoder_threshold(supernet, src, 0.1, 0.2, max_length=4)
    finally:
        supernet.eval()


def test_exit_latency_blocks_take_an_exit_mapping_and_refuse_none():
    from ofa.spaces.transformer_exits import DecoderExitConfig, decode_exit_blocks

    space = get_space("transformer-small", workload="decode")
    parsed = DecoderExitConfig.parse(space, EXITS)
    as_mapping, as_config = (decode_exit_blocks(space, exits, space.largest(), target_length=3)
                             for exits in (EXITS, parsed))
    assert [[name for name, _ in segment] for segment in as_mapping] == \
        [[name for name, _ in segment] for segment in as_config]
    for bad in (None, {"layers": [5]}):
        with pytest.raises(ConfigError, match="exit"):
            decode_exit_blocks(space, bad, space.largest(), target_length=3)


@pytest.mark.parametrize("arguments, message", [(["--tolerances", "0.02", "2"], "tolerance"),
                                                (["--delta", "0"], "delta"), (["--time-sentences", "0"], "time")])
def test_the_benchmark_refuses_bad_arguments_before_training(tmp_path, arguments, message):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "early_exit.py"
    result = subprocess.run([sys.executable, str(script), "--family", "transformer", "--supernet",
                             str(tmp_path / "missing.pt"), "--work", str(tmp_path / "work"), *arguments],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "ConfigError" in result.stderr and message in result.stderr
    assert not (tmp_path / "work").exists()  # nothing was written


@torch.no_grad()
def test_a_batch_decodes_each_sentence_as_it_would_alone_with_early_ends():
    # sentences of one batch exit at different layers and end at different steps: each row must be what
    # decoding that sentence alone gives (tokens and layers), and threshold 1 must stay greedy_decode's output
    torch.manual_seed(0)  # its own weights: the module's supernet is reloaded by other tests
    static = create_supernet("transformer-small", exits=EXITS).extract().eval()
    src = torch.randint(4, 30, (8, 7), generator=torch.Generator().manual_seed(2))
    src[0, 4:] = PAD
    src[3, 2:] = PAD
    eos_row = static._embedding_weights("tgt")[0][EOS]
    original = eos_row.detach().clone()
    # EOS made to win often, so the sentences end early and unevenly; the smallest boost that does so (tied
    # greedy choices can fall either way with the thread count, so no one factor is assumed)
    for boost in (1.6, 1.8, 2.0, 2.3, 2.6, 3.0):
        with torch.no_grad():
            eos_row.copy_(original * boost)
        reference = greedy_decode(static, src, max_length=12)
        if len({int(row.ne(PAD).sum()) for row in reference}) > 1 and bool(reference.eq(EOS).any()):
            break
    else:
        pytest.fail("no EOS boost made the sentences end at different steps")
    assert torch.equal(greedy_decode_exits(static, src, 1.0, max_length=12).tokens, reference)
    mixed = 0
    for threshold in (0.1, 0.15, 0.2):
        batch = greedy_decode_exits(static, src, threshold, max_length=12)
        mixed += len(set(batch.exit_index[batch.exit_index.ge(0)].tolist())) > 1
        for row in range(len(src)):
            alone = greedy_decode_exits(static, src[row:row + 1], threshold, max_length=12)
            length = alone.tokens.shape[1]
            assert torch.equal(batch.tokens[row, :length], alone.tokens[0])
            assert torch.equal(batch.layers[row, :length], alone.layers[0])
            assert bool(batch.tokens[row, length:].eq(PAD).all()) and bool(batch.exit_index[row, length:].eq(-1).all())
    assert mixed  # some batch had tokens leaving at different places
