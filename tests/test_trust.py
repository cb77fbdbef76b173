"""One trust rule (predictors.trust) for every caller: a weak accuracy predictor, one whose held-out
rank correlation is positive but small, is refused by the specialize API and by ``ofa-specialize``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ofa.errors import PredictorError
from ofa.spaces import get_space
from ofa.supernets import create_supernet
from predictors import TrustRule, check_trustworthy, fit_accuracy_predictor, fit_latency_predictor

PROFILE = "hardware_profiles/data/mbv3-small_cpu-ort.jsonl"


@pytest.fixture(scope="module")
def weak():
    """An accuracy predictor fitted on labels that are mostly noise: held-out Spearman 0.09, RMSE 1.1 x the
    target's spread. The rule the command used to apply (Spearman >= 0) let it through."""
    space = get_space("mbv3-small")
    archs = space.sample(0, n=40)
    macs = np.array([space.cost(a).macs for a in archs], dtype=float)
    signal = (macs - macs.mean()) / macs.std()
    top1 = 60 + 0.5 * signal + 2 * np.random.default_rng(0).standard_normal(len(archs))
    predictor = fit_accuracy_predictor([{"arch": a.to_dict(), "top1": float(t)} for a, t in zip(archs, top1)],
                                       space, model="gbr", cv=3)
    held = predictor.metrics_["held_out"]
    assert 0 <= held["spearman"] < 0.5 and held["rmse_over_std"] > 0.9
    return predictor


@pytest.fixture(scope="module")
def latency():
    return fit_latency_predictor(PROFILE, model="lut", cv=3)


def test_the_rule_refuses_a_weak_predictor_and_accepts_on_request(weak):
    with pytest.raises(PredictorError, match="Spearman rank correlation is 0.0"):
        check_trustworthy(weak)
    with pytest.warns(UserWarning, match="used anyway"):
        assert not TrustRule(accept_untrusted=True).check(weak)["trusted"]
    assert TrustRule(min_spearman=0.0, max_rmse_ratio=2.0).check(weak)["trusted"]


def test_a_published_reference_predictor_without_held_out_figures_is_accepted_as_such(weak):
    reference = fit_accuracy_predictor([{"arch": a.to_dict(), "top1": float(i)}
                                        for i, a in enumerate(weak.space.sample(1, n=20))], weak.space, model="gbr",
                                       cv=3)
    reference.metrics_.clear()
    with pytest.raises(PredictorError, match="no held-out metrics"):
        check_trustworthy(reference)
    reference.metrics_["reference"] = {"encoding": "genes"}
    assert check_trustworthy(reference)["trusted"]


def test_specialize_refuses_a_weak_accuracy_predictor(weak, latency, tmp_path):
    from ofa_pipeline.specialize import Target, specialize

    torch.manual_seed(0)
    supernet = create_supernet(weak.space).eval()
    target = [Target((("cpu-ort", 1.0),))]
    with pytest.raises(PredictorError, match="the accuracy predictor cannot be trusted"):
        specialize(supernet, weak, [latency], target, tmp_path / "out", measure=False, log=lambda *a: None)
    assert not (tmp_path / "out").exists()  # refused before any search or file


def test_the_command_refuses_a_weak_accuracy_predictor(weak, latency, tmp_path, capsys):
    from ofa.training.checkpoint import save_checkpoint
    from ofa.training.progressive_shrinking import DEFAULT_CONFIG
    from ofa_pipeline.commands.specialize import main

    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "final.pt", trainer="mobilenetv3", space=weak.space,
                                 config=DEFAULT_CONFIG, model=create_supernet(weak.space))
    weak.save(tmp_path / "weak.skops")
    latency.save(tmp_path / "cpu.skops")
    argv = ["--supernet", str(checkpoint), "--accuracy-predictor", str(tmp_path / "weak.skops"),
            "--latency-predictor", str(tmp_path / "cpu.skops"), "--device", "cpu-ort", "--latency-ms", "1",
            "--out", str(tmp_path / "deploy"), "--no-measure"]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "PredictorError" in error and "weak.skops" in error and "Spearman" in error
    assert "--accept-untrusted-predictor" in error
    assert not (tmp_path / "deploy" / "summary.json").exists()


def test_the_command_help_states_the_rule_defaults():
    """The command leaves its defaults to the rule (so --help need not import predictors); its help names them."""
    import contextlib
    import io

    from ofa_pipeline.commands.specialize import parse_args
    from predictors.trust import DEFAULT_MAX_RMSE_RATIO, DEFAULT_MIN_SPEARMAN

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(printed.getvalue().split())
    assert f"default {DEFAULT_MIN_SPEARMAN}" in text and f"default {DEFAULT_MAX_RMSE_RATIO}" in text


def test_specialize_takes_its_settings_as_one_config(weak, latency, tmp_path):
    import inspect

    from ofa_pipeline.specialize import SpecializeConfig, Target, specialize

    parameters = inspect.signature(specialize).parameters
    assert "config" in parameters and "population" not in parameters and "trust" not in parameters
    assert SpecializeConfig().trust == TrustRule()
    supernet = create_supernet(weak.space).eval()
    with pytest.raises(TypeError, match="bogus"):  # a field the config does not have: refused before any work
        specialize(supernet, weak, [latency], [Target((("cpu-ort", 1.0),))], tmp_path / "out", bogus=1)
    with pytest.raises(PredictorError):  # the rule travels in the config
        specialize(supernet, weak, [latency], [Target((("cpu-ort", 1.0),))], tmp_path / "out",
                   config=SpecializeConfig(measure=False, trust=TrustRule(min_spearman=0.3)))
