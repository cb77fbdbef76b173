"""Early exits: the exit rule, the segment export and runner, the expected-latency
formula, threshold calibration, and the exit training phase."""

import numpy as np
import pytest
import torch

from conftest import randomize_batchnorm
from ofa.errors import ConfigError, PredictorError
from ofa.spaces import get_space

EXITS = {"stages": [0, 2], "width": 16}


@pytest.fixture(scope="module")
def subnet_with_exits():
    from ofa.supernets import create_supernet

    space = get_space("mbv3-small")
    torch.manual_seed(0)
    supernet = create_supernet(space, exits=EXITS)
    randomize_batchnorm(supernet)
    arch = space.parse({**space.sample(rng=3).to_dict(), "resolution": 28})
    return space, supernet, supernet.extract(arch).eval()


@pytest.fixture(scope="module")
def exported(subnet_with_exits, tmp_path_factory):
    from ofa.export import export_exit_segments

    directory = tmp_path_factory.mktemp("exits")
    manifest = export_exit_segments(subnet_with_exits[2], directory)
    return directory, manifest


def test_exits_leave_the_space_and_the_supernet_without_them_unchanged(subnet_with_exits):
    from ofa.supernets import create_supernet

    space, with_exits, static = subnet_with_exits
    torch.manual_seed(0)
    plain = create_supernet(space)
    assert not any("exit" in key for key in plain.state_dict())  # old checkpoints load as they did
    missing, unexpected = with_exits.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == [] and all(key.startswith("exit_heads.") for key in missing)
    x = torch.randn(2, 3, 28, 28)
    plain.eval(), with_exits.eval()
    arch = static.arch
    plain.set_active(arch), with_exits.set_active(arch)
    with torch.no_grad():
        assert torch.equal(plain(x), with_exits(x))
        assert torch.equal(with_exits.forward_exits(x)[-1], with_exits(x))
    assert space.fingerprint == get_space("mbv3-small").fingerprint


def test_threshold_one_gives_the_static_subnets_outputs(subnet_with_exits, exported):
    from ofa.export import EarlyExitRunner
    from ofa.models.exits import adaptive_predictions

    _, _, static = subnet_with_exits
    directory, manifest = exported
    assert manifest["thresholds"] == [1.0, 1.0] and len(manifest["segments"]) == 3
    x = torch.randn(5, 3, 28, 28)
    with torch.no_grad():
        expected = static(x).numpy()
        all_logits = [t.numpy() for t in static.forward_exits(x)]
    logits, where = EarlyExitRunner(directory, thresholds=1.0).run(x.numpy())
    assert np.all(where == 2)
    assert np.abs(logits - expected).max() <= 1e-4 * max(1.0, np.abs(expected).max())
    predictions, where = adaptive_predictions(all_logits, 1.0)
    assert np.array_equal(predictions, expected.argmax(1)) and np.all(where == 2)


def test_threshold_zero_exits_every_sample_at_the_first_head(subnet_with_exits, exported):
    from ofa.export import EarlyExitRunner
    from ofa.models.exits import adaptive_predictions

    _, _, static = subnet_with_exits
    directory, _ = exported
    x = torch.randn(6, 3, 28, 28)
    with torch.no_grad():
        first = static.forward_exits(x)[0].numpy()
    for batch in (x[:1], x):  # batch 1 and a batch
        logits, where = EarlyExitRunner(directory, thresholds=[0.0, 0.5]).run(batch.numpy())
        assert np.all(where == 0)
        assert np.abs(logits - first[:len(batch)]).max() <= 1e-4 * max(1.0, np.abs(first).max())
    for measure in ("maxprob", "entropy"):
        _, where = adaptive_predictions([first, first, first], 0.0, measure)
        assert np.all(where == 0)


def test_a_shrinking_batch_keeps_each_samples_own_answer(subnet_with_exits, exported):
    """Samples that go on are gathered and run again as a smaller batch: each still gets the
    logits of the exit it left at."""
    from ofa.export import EarlyExitRunner
    from ofa.models.exits import confidence

    _, _, static = subnet_with_exits
    directory, _ = exported
    x = torch.randn(16, 3, 28, 28)
    with torch.no_grad():
        all_logits = [t.numpy() for t in static.forward_exits(x)]
    threshold = float(np.median(confidence(all_logits[0])))
    logits, where = EarlyExitRunner(directory, thresholds=threshold).run(x.numpy())
    assert 0 < np.sum(where == 0) < 16
    for i, k in enumerate(where):
        assert np.abs(logits[i] - all_logits[k][i]).max() <= 1e-4 * max(1.0, np.abs(all_logits[k]).max())


def test_a_subnet_can_keep_some_of_its_exits(subnet_with_exits, tmp_path):
    from ofa.export import EarlyExitRunner, export_exit_segments

    _, _, static = subnet_with_exits
    second = static.keep_exits([1])
    assert second.exits.stages == (2,) and static.exits.stages == (0, 2)
    x = torch.randn(3, 3, 28, 28)
    with torch.no_grad():
        every, kept = static.forward_exits(x), second.forward_exits(x)
    assert torch.equal(kept[0], every[1]) and torch.equal(kept[1], every[2])
    export_exit_segments(second, tmp_path, thresholds=0.0)
    logits, where = EarlyExitRunner(tmp_path).run(x.numpy())
    assert np.all(where == 0) and np.abs(logits - every[1].numpy()).max() <= 1e-4 * max(1.0, every[1].abs().max())
    with pytest.raises(ConfigError, match="exit indices"):
        static.keep_exits([2])


def test_subnet_weights_keep_their_exits(subnet_with_exits, tmp_path):
    from ofa.export import load_subnet_weights, save_subnet_weights

    space, _, static = subnet_with_exits
    save_subnet_weights(static, space, tmp_path / "model.pt")
    loaded = load_subnet_weights(tmp_path / "model.pt")
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(loaded.forward_exits(x), static.forward_exits(x)))


def test_expected_latency_on_a_hand_computed_case():
    from ofa.spaces.exits import ExitConfig, exit_block
    from predictors.blocks import BlockSumRegressor, space_blocks
    from predictors.exits import exit_latencies, expected_latency

    space = get_space("mbv3-small")
    exits = ExitConfig.parse(space, EXITS)
    arch = space.parse({"kernel_sizes": [3] * space.num_blocks, "expand_ratios": [4] * space.num_blocks,
                        "depths": [2] * space.num_stages, "resolution": 32})
    # every block 1 ms, the stem 0.5 ms, each exit head 0.25 ms; no runtime overhead, no correction
    table = {b.key: (0.5 if b.kind == "stem" else 1.0) for b in space_blocks(space)}
    table.update({exit_block(space, exits, arch, k).key: 0.25 for k in range(2)})
    regressor = BlockSumRegressor(space.to_dict(), table, runtime_overhead=None, correction="none").fit()
    latency = exit_latencies(regressor, space, exits, arch)
    # segment 0: stem + first block + stage 0 (2 blocks) + exit head; segment 1: stages 1-2 (4) + exit head;
    # segment 2: stage 3 (2 blocks) + head
    assert latency["segments"] == pytest.approx([0.5 + 1 + 2 + 0.25, 4 + 0.25, 2 + 1])
    assert latency["cumulative"] == pytest.approx([3.75, 8.0, 11.0])
    assert latency["worst_case"] == pytest.approx(11.0)
    assert latency["static"] == pytest.approx(11.0 - 2 * 0.25)  # the same blocks without the exit heads
    assert expected_latency([0.5, 0.3, 0.2], latency["cumulative"]) == pytest.approx(
        0.5 * 3.75 + 0.3 * 8.0 + 0.2 * 11.0)
    # the runner's cost per segment after the first: 0.5 ms more to reach exit 1, 1 ms more for the final head
    assert exit_latencies(regressor, space, exits, arch, 0.5)["cumulative"] == pytest.approx([3.75, 8.5, 12.0])
    with pytest.raises(ConfigError, match="sum to 1"):
        expected_latency([0.5, 0.3, 0.3], latency["cumulative"])
    with pytest.raises(PredictorError, match="block-sum"):
        exit_latencies(object(), space, exits, arch)


def _synthetic(n: int, rng: np.random.Generator, classes: int = 10):
    """An exit whose answer agrees with the final head's with probability equal to its confidence
    (max softmax probability, uniform in (0.1, 1)); the final head is right 90% of the time."""
    labels = rng.integers(classes, size=n)
    full_pred = np.where(rng.random(n) < 0.9, labels, (labels + 1) % classes)
    conf = rng.uniform(0.1, 1.0, size=n)
    agree = rng.random(n) < conf
    exit_pred = np.where(agree, full_pred, (full_pred + 1 + rng.integers(classes - 1, size=n)) % classes)
    # logits whose softmax puts probability conf on exit_pred, the rest spread evenly
    exit_logits = np.full((n, classes), 0.0)
    exit_logits[np.arange(n), exit_pred] = np.log(conf * (classes - 1) / (1 - conf + 1e-12))
    full_logits = np.zeros((n, classes))
    full_logits[np.arange(n), full_pred] = 5.0
    return [exit_logits, full_logits], labels


def test_calibration_keeps_the_accuracy_loss_within_tolerance():
    from ofa.search.exits import calibrate_threshold, exit_losses

    tolerance, delta = 0.05, 0.1
    fresh, fresh_labels = _synthetic(100_000, np.random.default_rng(123))  # stands for the true risk
    thresholds, violations, losses = [], 0, []
    trials = 60
    for seed in range(trials):
        logits, labels = _synthetic(1000, np.random.default_rng(seed))
        result = calibrate_threshold(logits, labels, tolerance, delta)
        assert result.empirical_risk <= tolerance
        risk = exit_losses(fresh, result.threshold, fresh_labels)[0].mean()
        violations += risk > tolerance
        thresholds.append(result.threshold)
        full = 100 * np.mean(fresh[-1].argmax(1) == fresh_labels)
        from ofa.models.exits import adaptive_predictions

        adaptive = 100 * np.mean(adaptive_predictions(fresh, result.threshold)[0] == fresh_labels)
        losses.append(full - adaptive)
    assert violations / trials <= delta
    assert max(losses) <= 100 * tolerance  # the accuracy loss is below the disagreement bound
    # not vacuous: samples do exit (risk(lambda) = (1 - lambda)^2 / 1.8 here, so about 0.7 meets 5%)
    assert 0.6 < np.median(thresholds) < 0.85
    # 'accuracy' risk permits earlier exits than 'consistency'
    logits, labels = _synthetic(1000, np.random.default_rng(0))
    assert (calibrate_threshold(logits, labels, tolerance, delta, risk="accuracy").threshold
            <= calibrate_threshold(logits, labels, tolerance, delta).threshold)


def test_too_few_calibration_samples_never_exit():
    from ofa.search.exits import calibrate_threshold

    logits, labels = _synthetic(20, np.random.default_rng(0))
    result = calibrate_threshold(logits, labels, tolerance=0.01, delta=0.1)  # 0.99^20 > 0.1: nothing certified
    assert result.threshold == 1.0 and result.exit_distribution == [0.0, 1.0]


def _bad_exit_calls():
    from ofa.models.exits import check_thresholds, confidence
    from ofa.search.exits import calibrate_threshold
    from ofa.spaces.exits import ExitConfig
    from ofa.training.progressive_shrinking import check_config
    from ofa_pipeline.exits import check_budgets
    from predictors.exits import check_call_overhead

    space, two = get_space("mbv3-small"), [np.zeros((4, 3)), np.zeros((4, 3))]
    return [
        (lambda: ExitConfig.parse(space, {"stages": [3]}), "stage indices from 0 to 2"),
        (lambda: ExitConfig.parse(space, {"stages": [1, 0]}), "increasing"),
        (lambda: ExitConfig.parse(space, {"stage": [1]}), "'stages'"),
        (lambda: check_thresholds([0.5, 1.5], 2), r"in \[0, 1\]"),
        (lambda: confidence(np.zeros((1, 3)), "margin"), "maxprob"),
        (lambda: calibrate_threshold(two, tolerance=1.5), "tolerance"),
        (lambda: calibrate_threshold(two, risk="accuracy"), "needs the labels"),
        (lambda: check_budgets(1.0, 0.5), "worst-case"),
        (lambda: check_call_overhead(float("nan")), "finite latency"),
        (lambda: check_config({"exits": EXITS, "phases": [{"name": "exits", "exits": True}, {"name": "more"}]}),
         "put the phases with exits: true last"),
    ]


def test_bad_exit_inputs_are_named_errors():
    for call, match in _bad_exit_calls():
        with pytest.raises(ConfigError, match=match):
            call()


def test_exit_phase_needs_exits_in_the_config():
    from ofa.training.progressive_shrinking import check_config

    with pytest.raises(ConfigError, match="train exit heads"):
        check_config({"phases": [{"name": "exits", "exits": True}]})
    config, _, _ = check_config({})
    assert "exits" not in config  # configs without exits are what they were (resume compares them)


def test_exit_phase_trains_the_heads_only_and_resumes(tmp_path, monkeypatch, capsys):
    """A finished run gets exits (seed_exit_phase); its exit phase resumes like any phase and leaves
    the main path - weights and BatchNorm statistics - exactly as trained."""
    from ofa.training import load_supernet
    from ofa.training.progressive_shrinking import ProgressiveShrinkingTrainer, seed_exit_phase

    config = {"space": "mbv3-small", "device": "cpu", "data": {"dataset": "digits", "max_train_images": 64,
                                                                "calib_images": 32},
              "train": {"batch_size": 32, "threads": 1, "progress": False, "eval_batch_size": 512},
              "phases": [{"name": "elastic", "epochs": 1, "lr": 0.05}]}
    ProgressiveShrinkingTrainer(config, tmp_path / "base").run()
    config_path = seed_exit_phase(tmp_path / "base" / "final.pt", tmp_path / "exits", EXITS,
                                  {"name": "exits", "epochs": 2, "lr": 0.05, "exits": True})
    from ofa.training.config import load_yaml

    trainer = ProgressiveShrinkingTrainer(load_yaml(config_path), tmp_path / "exits", resume=True)
    trainer.run()
    base = load_supernet(tmp_path / "base" / "final.pt")
    with_exits = load_supernet(tmp_path / "exits" / "final.pt")
    assert with_exits.exits.stages == (0, 2)
    trained = with_exits.state_dict()
    for key, value in base.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, trained[key]), key
    seeded = torch.load(tmp_path / "exits" / "phase1-exits.pt", weights_only=True)["model"]
    assert all(torch.equal(seeded[k], trained[k]) for k in seeded)
    # the heads learned: at a fresh start they would differ from these
    fresh = seed_exit_phase(tmp_path / "base" / "final.pt", tmp_path / "again", EXITS)
    initial = torch.load(fresh.parent / "last.pt", weights_only=True)["model"]
    assert any(not torch.equal(initial[k], trained[k]) for k in trained if k.startswith("exit_heads."))
    with pytest.raises(ConfigError, match="already has exit heads"):
        seed_exit_phase(tmp_path / "exits" / "final.pt", tmp_path / "twice", EXITS)
    with pytest.raises(ConfigError, match="would be overwritten"):  # the source run's own directory
        seed_exit_phase(tmp_path / "base" / "final.pt", tmp_path / "base", EXITS)

    # the command refuses a supernet without exits before any work (no data built, nothing written)
    from ofa_pipeline.commands import specialize_exits
    from predictors.blocks import fit_block_predictor, space_blocks

    space = base.space
    block_predictor = fit_block_predictor({b.key: 1.0 for b in space_blocks(space)}, space=space)
    block_predictor.save(tmp_path / "blocks.skops")
    argv = ["--latency-predictor", str(tmp_path / "blocks.skops"), "--expected-latency-ms", "5",
            "--out", str(tmp_path / "deploy")]
    assert specialize_exits.main(["--supernet", str(tmp_path / "base" / "final.pt"), *argv]) == 2
    assert "has no exit heads" in capsys.readouterr().err
    assert not (tmp_path / "deploy").exists()

    # killed after the first epoch of the exit phase and resumed: the same weights as the run above
    config_path = seed_exit_phase(tmp_path / "base" / "final.pt", tmp_path / "killed", EXITS,
                                  {"name": "exits", "epochs": 2, "lr": 0.05, "exits": True})
    original = ProgressiveShrinkingTrainer._train_exits_epoch

    def killed_at_second_epoch(self, phase_index, epoch, *args):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, phase_index, epoch, *args)

    with monkeypatch.context() as patch:
        patch.setattr(ProgressiveShrinkingTrainer, "_train_exits_epoch", killed_at_second_epoch)
        with pytest.raises(KeyboardInterrupt):
            ProgressiveShrinkingTrainer(load_yaml(config_path), tmp_path / "killed", resume=True).run()
    ProgressiveShrinkingTrainer(load_yaml(config_path), tmp_path / "killed", resume=True).run()
    resumed = load_supernet(tmp_path / "killed" / "final.pt").state_dict()
    assert all(torch.equal(resumed[k], trained[k]) for k in trained)


def _logits_with_confidence(predicted: np.ndarray, conf: np.ndarray, classes: int = 10) -> np.ndarray:
    """Logits whose softmax puts probability ``conf`` on ``predicted`` and spreads the rest evenly."""
    logits = np.zeros((len(predicted), classes))
    logits[np.arange(len(predicted)), predicted] = np.log(conf * (classes - 1) / (1 - conf))
    return logits


def test_calibration_stops_at_the_first_threshold_it_cannot_certify():
    """Fixed-sequence testing: a threshold further down the grid that would pass on its own is never
    reached once one before it fails, and the p-value is the exact binomial tail."""
    import math

    from ofa.search.exits import binomial_p_value, calibrate_threshold

    assert binomial_p_value(0, 300, 0.05) == pytest.approx(0.95 ** 300)
    assert binomial_p_value(2, 40, 0.1) == pytest.approx(sum(math.comb(40, i) * 0.1 ** i * 0.9 ** (40 - i)
                                                             for i in range(3)))
    n, risky = 300, 90
    full = np.zeros(n, dtype=np.int64)
    # the risky samples: exit 0 agrees with the full head at confidence 0.7, exit 1 disagrees at 0.9; the others
    # are unsure everywhere. At 0.8 they leave at exit 1 (risk 0.3); at 0.6 at exit 0 (risk 0).
    conf0 = np.where(np.arange(n) < risky, 0.7, 0.2)
    conf1 = np.where(np.arange(n) < risky, 0.9, 0.2)
    wrong = np.where(np.arange(n) < risky, 1, 0)
    logits = [_logits_with_confidence(full, conf0), _logits_with_confidence(wrong, conf1),
              _logits_with_confidence(full, np.full(n, 0.95))]
    result = calibrate_threshold(logits, tolerance=0.05, delta=0.1, grid=[0.4, 0.6, 0.8, 1.0])
    assert result.threshold == 1.0 and [t["threshold"] for t in result.tested] == [1.0, 0.8]
    assert result.tested[1]["losses"] == risky and result.exit_distribution == [0.0, 0.0, 1.0]
    # on its own, 0.6 certifies (zero losses): the stop above is the procedure, not the data
    assert calibrate_threshold(logits, tolerance=0.05, delta=0.1, grid=[0.6, 1.0]).threshold == 0.6


def test_a_tampered_or_foreign_exit_directory_is_a_named_error(exported, tmp_path):
    import json
    import shutil

    from ofa.errors import CheckpointError, DataError
    from ofa.export import EarlyExitRunner

    directory, manifest = exported
    bad = tmp_path / "bad"
    shutil.copytree(directory, bad)
    path = bad / "exits.json"
    for change, match in [({"segments": ["../segment0.onnx", "segment1.onnx", "segment2.onnx"]}, "no paths"),
                          ({"segments": ["segment0.onnx"]}, "at least 2"),
                          ({"segments": ["segment0.onnx", "segment1.onnx", "missing.onnx"]}, "lacks"),
                          ({"measure": "margin"}, "'measure'"),
                          ({"thresholds": [0.5, "high"]}, "'thresholds'"),
                          ({"thresholds": [0.5, 0.5, 0.5]}, "'thresholds'")]:
        path.write_text(json.dumps({**manifest, **change}))
        with pytest.raises(CheckpointError, match=match):
            EarlyExitRunner(bad)
    path.write_text(json.dumps(manifest))
    (bad / "segment1.onnx").write_bytes(b"not a graph")
    with pytest.raises(CheckpointError, match="not a readable ONNX graph"):
        EarlyExitRunner(bad)
    runner = EarlyExitRunner(directory)
    for images in (np.zeros((2, 3, 32, 32), np.float32), np.zeros((3, 28, 28), np.float32)):
        with pytest.raises(DataError, match="batch of shape"):
            runner.run(images)


def test_the_commands_refuse_bad_exit_options_before_any_work(tmp_path, capsys):
    from ofa_pipeline.commands import quickstart, specialize_exits

    base = ["--supernet", str(tmp_path / "none.pt"), "--latency-predictor", str(tmp_path / "none.skops"),
            "--expected-latency-ms", "1", "--out", str(tmp_path / "deploy")]
    for extra in (["--seed", "-1"], ["--call-overhead-ms", "nan"], ["--call-overhead-ms", "-0.1"]):
        with pytest.raises(SystemExit):
            specialize_exits.main(base + extra)
    for extra, match in ((["--time-images", "100"], "give --time too"),
                         (["--time", "--time-images", "8"], "at least 32"),
                         (["--tolerance", "0"], "tolerance must be in"), (["--delta", "1.5"], "delta must be in")):
        assert specialize_exits.main(base + extra) == 2
        assert match in capsys.readouterr().err
    out = tmp_path / "qs"
    assert quickstart.main(["--out", str(out), "--exits", "--config", "transformer-small-digits"]) == 2
    assert "MobileNetV3" in capsys.readouterr().err and not out.exists()


def test_the_best_static_subnet_is_compared_even_when_its_exits_are_over_the_worst_case():
    """A subnet whose exit heads push its worst case over budget is out with exits, but as a static
    network under the budget it still counts for the comparison."""
    from types import SimpleNamespace

    from ofa.spaces.exits import ExitConfig, exit_block
    from ofa_pipeline.exits import specialize_exits
    from predictors.blocks import fit_block_predictor, space_blocks

    space = get_space("mbv3-small")
    exits = ExitConfig.parse(space, {"stages": [0], "width": 16})
    small, large = space.smallest(), space.largest()
    table = {b.key: (0.5 if b.kind == "stem" else 1.0) for b in space_blocks(space)}
    table.update({exit_block(space, exits, arch, 0).key: 2.0 for arch in (small, large)})
    predictor = fit_block_predictor(table, space=space)  # small: static 10.5, worst 12.5; large: 18.5, 20.5
    sizes = {"val": 600, "test": 200}

    class Evaluator:
        def labels(self, split):
            return np.zeros(sizes[split], dtype=np.int64)

        def logits(self, arch, split="val"):
            n = sizes[split]
            right = np.arange(n) % 2 == 0 if arch == small else np.ones(n, dtype=bool)
            final = _logits_with_confidence(np.where(right, 0, 1), np.full(n, 0.9))
            return [final.copy(), final]  # the exit agrees with the final head

    report = specialize_exits(SimpleNamespace(space=space, exits=exits), None, predictor, 19.5, 19.5,
                              tolerance=0.05, candidates=0, rounds=0, evaluator=Evaluator())
    assert space.parse(report["chosen"]["arch"]) == small
    assert space.parse(report["static"]["arch"]) == large and report["static"]["test_top1"] == 100.0
    from ofa.errors import SearchError

    with pytest.raises(SearchError, match="lowest worst case was 12.5 ms"):  # a budget below every subnet
        specialize_exits(SimpleNamespace(space=space, exits=exits), None, predictor, 5.0, 5.0, candidates=0,
                         rounds=0, evaluator=Evaluator())


def test_quickstart_exits_keeps_the_standard_recipe_and_refuses_a_misplaced_exit_phase(tmp_path, capsys):
    import yaml

    from ofa.training.progressive_shrinking import DEFAULT_PHASES
    from ofa_pipeline.commands import quickstart

    config = tmp_path / "no-phases.yaml"
    config.write_text(yaml.safe_dump({"space": "mbv3-small"}))
    path = quickstart.exits_config(config, tmp_path, fast=False)
    phases = yaml.safe_load(path.read_text())["phases"]  # the main path is trained before the exit phase
    assert len(phases) == len(DEFAULT_PHASES) + 1 and phases[-1]["exits"] is True
    config.write_text(yaml.safe_dump({"space": "mbv3-small", "phases": [{"name": "mine", "exits": True},
                                                                         {"name": "after"}]}))
    out = tmp_path / "qs"
    assert quickstart.main(["--out", str(out), "--exits", "--config", str(config)]) == 2
    assert "put the phases with exits: true last" in capsys.readouterr().err and not out.exists()
