"""FGSM / PGD on cases checkable by hand, on a briefly trained model, and through SubnetEvaluator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ofa.errors import ConfigError
from ofa.robustness import attack_accuracy, fgsm, parse_attacks, pgd, pixel_bounds


def identity_classifier() -> nn.Module:
    """logits = x for 2-d inputs: the gradient of the cross entropy is softmax(x) - onehot(y)."""
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    return model


def test_fgsm_by_hand_on_a_linear_model():
    model = identity_classifier()
    x = torch.tensor([[0.6, 0.4]])
    y = torch.tensor([0])
    # grad_x CE = softmax([0.6, 0.4]) - [1, 0] = [-0.45, +0.45]: FGSM moves x by (-eps, +eps)
    assert torch.allclose(fgsm(model, x, y, 0.05), torch.tensor([[0.55, 0.45]]))
    assert torch.allclose(fgsm(model, x, y, 0.15), torch.tensor([[0.45, 0.55]]))
    small = attack_accuracy(model, x, y, "fgsm", 0.05)
    large = attack_accuracy(model, x, y, "fgsm", 0.15)
    assert small["clean_top1"] == 100.0 and small["adversarial_top1"] == 100.0 and small["success_rate"] == 0.0
    assert large["adversarial_top1"] == 0.0 and large["success_rate"] == 100.0  # margin 0.2 < 2 * 0.15


def test_pgd_by_hand_stays_in_the_ball_and_the_pixel_range():
    model = identity_classifier()
    x = torch.tensor([[0.6, 0.4], [0.1, 0.9]])
    y = torch.tensor([0, 1])
    adversarial = pgd(model, x, y, epsilon=0.15, steps=5)
    # each step moves along the same sign, so PGD ends at the corner of the ball, like FGSM
    assert torch.allclose(adversarial, torch.tensor([[0.45, 0.55], [0.25, 0.75]]), atol=1e-6)
    assert (adversarial - x).abs().max() <= 0.15 + 1e-6
    images = torch.tensor([[[[0.95]]], [[[0.02]]]])  # (N, C, H, W) pixels near the edges of [0, 1]
    conv = nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1.0]]], [[[-1.0]]]]))
        conv.bias.zero_()
    flat = nn.Sequential(conv, nn.Flatten())
    bounds = pixel_bounds(torch.tensor([0.0]), torch.tensor([1.0]))
    clipped = pgd(flat, images, torch.tensor([1, 0]), epsilon=0.2, steps=3, bounds=bounds)
    assert clipped.min() >= 0.0 and clipped.max() <= 1.0


def test_epsilon_zero_changes_nothing():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(20, 5), torch.randint(0, 3, (20,))
    assert torch.equal(fgsm(model, x, y, 0.0), x) and torch.equal(pgd(model, x, y, 0.0), x)
    for attack in ("fgsm", "pgd"):
        result = attack_accuracy(model, x, y, attack, 0.0)
        assert result["adversarial_top1"] == result["clean_top1"] and result["success_rate"] in (0.0, None)


def test_attacks_lower_the_accuracy_of_a_trained_model_and_leave_it_untouched():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(((digits.data / 16.0 - 0.3) / 0.4).astype(np.float32))
    y = torch.from_numpy(digits.target.astype(np.int64))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):  # full batch: well above 90% on the training digits
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    before = [p.detach().clone() for p in model.parameters()]
    clean = attack_accuracy(model, x, y, "fgsm", 0.0)["clean_top1"]
    weak = attack_accuracy(model, x, y, "fgsm", 0.1)
    strong = attack_accuracy(model, x, y, "fgsm", 0.5)
    iterated = attack_accuracy(model, x, y, "pgd", 0.5, steps=10)
    assert clean > 90
    assert clean > weak["adversarial_top1"] > strong["adversarial_top1"]
    assert iterated["adversarial_top1"] <= strong["adversarial_top1"] and iterated["success_rate"] > 50
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters()) and model.training  # no gradients left behind


def test_bad_attack_settings_are_refused():
    model = identity_classifier()
    x, y = torch.zeros(1, 2), torch.zeros(1, dtype=torch.long)
    with pytest.raises(ConfigError, match="epsilon"):
        fgsm(model, x, y, -0.1)
    with pytest.raises(ConfigError, match="steps"):
        pgd(model, x, y, 0.1, steps=0)
    with pytest.raises(ConfigError, match="unknown attack"):
        attack_accuracy(model, x, y, "cw", 0.1)
    assert parse_attacks("fgsm, pgd,fgsm") == ("fgsm", "pgd")
    with pytest.raises(ConfigError, match="fgsm"):
        parse_attacks("fgsm,deepfool")


def test_subnet_evaluator_robustness_on_a_tiny_supernet():
    from ofa.data import build_datasets
    from ofa.evaluation import SubnetEvaluator
    from ofa.spaces import get_space
    from ofa.supernets import create_supernet

    space = get_space("mbv3-small")
    torch.manual_seed(0)
    supernet = create_supernet(space)
    data = build_datasets("digits", 32, 3)
    evaluator = SubnetEvaluator(supernet, data, "val", calib_images=64, teacher_arch=space.smallest())
    arch = space.parse({**space.smallest().to_dict(), "resolution": 24})
    result = evaluator.robustness(arch, epsilon=0.0, steps=2, images=40)
    assert set(result) == {"fgsm", "pgd"}
    for attack in result.values():
        assert attack["images"] == 40 and attack["adversarial_top1"] == attack["clean_top1"]
    attacked = evaluator.robustness(arch, attacks=("fgsm",), epsilon=1.0, images=40)["fgsm"]
    assert attacked["adversarial_top1"] <= attacked["clean_top1"]
