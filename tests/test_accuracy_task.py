"""The cluttered-digits task, the fast subnet evaluation path, and predictor trust checks."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch

from ofa.data import build_datasets
from ofa.data import cluttered
from ofa.data.cluttered import cluttered_digits_source, render_cluttered
from ofa.errors import DataError, PredictorError
from ofa.spaces import get_space


@pytest.fixture(scope="module")
def task():
    return build_datasets("cluttered-digits", resolution=32, channels=3)


# --- the data set ----------------------------------------------------------------------------------
def test_default_task_sizes_shapes_and_balance(task):
    assert (len(task.train), len(task.val), len(task.test)) == (10056, 2160, 2160)
    assert task.num_classes == 10 and task.name == "cluttered-digits"
    raw = task.train.source
    assert raw.images.dtype == torch.uint8 and tuple(raw.images.shape[1:]) == (1, 32, 32)
    images, labels = task.val.get_batch([0, 1, 2], resolution=24)
    assert images.shape == (3, 3, 24, 24) and labels.dtype == torch.int64
    for split in (task.train, task.val, task.test):
        counts = np.bincount(split.labels, minlength=10)
        assert counts.min() >= 0.9 * counts.max()  # as balanced as the source digits
    assert task.train.augmentation == "none"  # every image is already a random placement


def test_splits_are_separated_by_source_digit(task):
    source_digit = task.train.source.source_digit
    parts = [set(source_digit[split.indices].tolist()) for split in (task.train, task.val, task.test)]
    assert not parts[0] & parts[1] and not parts[0] & parts[2] and not parts[1] & parts[2]
    assert sum(len(p) for p in parts) == 1797
    # eight placements of every source digit, all in one split
    assert np.array_equal(np.bincount(source_digit, minlength=1797), np.full(1797, 8))


def test_clutter_comes_only_from_the_same_split(monkeypatch):
    seen = []
    original = cluttered.render_cluttered

    def spy(digits, rng, placements, *args):
        seen.append(digits.clone())
        return original(digits, rng, placements, *args)

    monkeypatch.setattr(cluttered, "render_cluttered", spy)
    source = cluttered_digits_source(placements=1)
    assert len(seen) == 3  # one call per split: clutter can only come from the digits of that call
    from sklearn.datasets import load_digits

    all_digits = torch.from_numpy((load_digits().images / 16.0).astype(np.float32))
    for digits, split in zip(seen, ("train", "val", "test")):
        chosen = np.unique(source.source_digit[source.splits[split]])
        assert torch.equal(digits[:, 0], all_digits[chosen])


def test_the_data_set_is_deterministic_and_seeded():
    a = cluttered_digits_source(placements=1)
    b = cluttered_digits_source(placements=1)
    c = cluttered_digits_source(placements=1, seed=1)
    assert torch.equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images) and np.array_equal(a.labels, c.labels)


def test_the_digit_lands_whole_on_the_canvas():
    digits = torch.zeros(2, 1, 8, 8)
    digits[:, 0, 2:6, 2:6] = 1.0  # a 4x4 block: its area scales with (size / 8) ** 2
    rng = np.random.default_rng(0)
    images = render_cluttered(digits, rng, placements=50, digit_size=(12.0, 12.0), max_rotation=30.0,
                              fragments=(0, 0), noise=0.0)
    assert images.shape == (100, 1, 32, 32)
    mass = images.sum(dim=(1, 2, 3))
    assert torch.allclose(mass, torch.full_like(mass, 16 * (12 / 8) ** 2), rtol=0.05)  # nothing cut off


def test_bad_parameters_are_refused():
    with pytest.raises(DataError, match="placements"):
        cluttered_digits_source(placements=0)
    with pytest.raises(DataError, match="digit_size"):
        cluttered_digits_source(digit_size=(20.0, 40.0))
    with pytest.raises(DataError, match="fragments"):
        cluttered_digits_source(fragments=(5, 2))
    with pytest.raises(DataError, match="at least 2"):
        render_cluttered(torch.zeros(1, 1, 8, 8), np.random.default_rng(0), 1)


def test_shipped_config_names_the_task():
    from ofa.training.config import load_yaml
    from ofa.training.progressive_shrinking import check_config

    config, space, phases = check_config(load_yaml("mbv3-small-cluttered-digits"))
    assert config["data"]["dataset"] == "cluttered-digits" and space.resolutions == (20, 24, 28, 32)
    # the recipe the ablation picked (benchmarks/recipe_ablation.py): one elastic phase, in-place distillation
    assert [p["name"] for p in phases] == ["elastic"] and sum(p["epochs"] for p in phases) == 6
    assert config["train"]["distillation"] == "inplace" and config["train"]["subnet_gradients"] == "sum"


# --- fast evaluation equals the reference path ----------------------------------------------------
def test_fast_evaluation_equals_the_reference_path():
    from ofa.evaluation import SubnetEvaluator
    from ofa.supernets import create_supernet

    space = get_space("mbv3-small")
    torch.manual_seed(0)
    supernet = create_supernet(space)
    for module in supernet.modules():  # non-trivial BN affine parameters, so folding is exercised
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
            torch.nn.init.uniform_(module.bias, -0.2, 0.2)
    data = build_datasets("digits", 32, 3)
    archs = [space.parse({**space.smallest().to_dict(), "resolution": 24}), *space.sample(1, n=2)]
    results = {}
    for fast in (False, True):
        evaluator = SubnetEvaluator(supernet, data, "val", calib_images=100, batch_size=32,
                                    teacher_arch=archs[0], fast=fast)
        results[fast] = evaluator.evaluate_many(archs)
    for slow, quick in zip(results[False], results[True]):
        assert quick["arch"] == slow["arch"]
        for key in ("top1", "loss", "label_loyalty", "probability_loyalty"):
            assert quick[key] == pytest.approx(slow[key], abs=1e-5), key
    # the supernet itself is untouched by either path
    assert all(m.training for m in supernet.modules())


def test_fast_bn_recalibration_matches_exact_statistics():
    from torch import nn

    from ofa.evaluation import recalibrate_bn
    from ofa.fast_evaluation import fold_batchnorm, recalibrate_bn_batches

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1),
                          nn.BatchNorm2d(2))
    images = torch.randn(70, 3, 5, 5) * 3 + 1
    reference = copy.deepcopy(model)
    recalibrate_bn(reference, images, batch_size=32)
    used = recalibrate_bn_batches(model, [images[i:i + 32] for i in range(0, 70, 32)])
    assert used == 70
    for a, b in zip(model.modules(), reference.modules()):
        if isinstance(a, nn.BatchNorm2d):
            assert torch.allclose(a.running_mean, b.running_mean, atol=1e-5)
            assert torch.allclose(a.running_var, b.running_var, rtol=1e-5)
    # the first layer sees the raw images: its statistics are those of all 70 images together
    first = model[0](images)
    assert torch.allclose(model[1].running_mean, first.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(model[1].running_var, first.transpose(0, 1).reshape(4, -1).var(dim=1), rtol=1e-4)
    model.eval()
    with torch.no_grad():
        before = model(images)
        after = fold_batchnorm(model)(images)
    assert torch.allclose(before, after, atol=1e-5)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


# --- predictors say when they cannot be trusted ---------------------------------------------------
def _records(space, n, signal: bool, seed=0):
    rng = np.random.default_rng(seed)
    archs = space.from_genes(space.sample_genes(n, rng))
    macs = np.array([space.cost(a).macs for a in archs], dtype=float)
    top1 = 70 + 6 * np.log(macs / macs.min()) + rng.normal(0, 0.3, n) if signal else 80 + rng.normal(0, 1, n)
    return [{"arch": a.to_dict(), "top1": float(t), "split": "val"} for a, t in zip(archs, top1)]


def test_accuracy_predictors_record_held_out_metrics_and_are_checked(tmp_path):
    from predictors import check_trustworthy, fit_accuracy_predictor, load_predictor

    space = get_space("mbv3-small")
    good = fit_accuracy_predictor(_records(space, 60, signal=True), space, model="gbr", cv=3)
    held = good.metrics_["held_out"]
    assert held["n"] == 60 and held["spearman"] > 0.8 and held["rmse"] < 0.5 * held["target_std"]
    assert held["spearman"] == pytest.approx(good.metrics_["cv"]["gbr"]["spearman"])
    report = check_trustworthy(good)
    assert report["trusted"] and report["reasons"] == []
    loaded = load_predictor(good.save(tmp_path / "good.skops"))
    assert loaded.metrics_["held_out"]["spearman"] == pytest.approx(held["spearman"])
    assert check_trustworthy(loaded)["trusted"]

    noise = fit_accuracy_predictor(_records(space, 60, signal=False), space, model="gbr", cv=3)
    with pytest.raises(PredictorError, match="Spearman"):
        check_trustworthy(noise)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = check_trustworthy(noise, accept_untrusted=True)
    assert not report["trusted"] and caught and "accept_untrusted" in str(caught[0].message)
    assert check_trustworthy(noise, min_spearman=0.0, max_rmse_ratio=10.0)["trusted"]
    with pytest.raises(PredictorError, match="min_spearman"):
        check_trustworthy(good, min_spearman=2)


def test_a_predictor_without_held_out_metrics_is_refused():
    from predictors import check_trustworthy, fit_accuracy_predictor

    space = get_space("mbv3-small")
    predictor = fit_accuracy_predictor(_records(space, 30, signal=True), space, model="gbr", cv=3)
    predictor.metrics_.pop("held_out")  # as saved before held-out metrics were recorded: cv metrics remain
    assert check_trustworthy(predictor)["target_std"] is None
    predictor.metrics_.clear()
    with pytest.raises(PredictorError, match="no held-out metrics"):
        check_trustworthy(predictor)
