"""The once-for-all training recipe's pieces on tiny cases with hand-checkable
results: in-place distillation (the largest subnet first, trained on the
labels alone, its outputs the soft targets of the others), the sandwich rule,
and fine-tuning a specialised subnet that resumes after a kill."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from ofa import get_space
from ofa.errors import ConfigError
from ofa.training.losses import distillation_loss, soft_target_loss
from ofa.training.progressive_shrinking import ProgressiveShrinkingTrainer, check_config

TINY = {
    "space": "mbv3-small",
    "data": {"max_train_images": 32, "calib_images": 16},
    "train": {"batch_size": 16, "threads": 1, "progress": False, "distillation": "inplace"},
    "phases": [
        {"name": "teacher", "epochs": 1, "lr": 0.05, "kernel_sizes": "max", "expand_ratios": "max", "depths": "max"},
        {"name": "elastic", "epochs": 1, "lr": 0.02, "subnets_per_step": 2},
    ],
}


def test_soft_target_loss_by_hand():
    # teacher (1, 0) at T=1: p = softmax = (e/(e+1), 1/(e+1)); student uniform: log q = log 1/2 for both classes
    teacher, student = torch.tensor([[1.0, 0.0]]), torch.zeros(1, 2)
    assert soft_target_loss(student, teacher).item() == pytest.approx(np.log(2), rel=1e-6)
    # the teacher's own distribution: the loss is its entropy
    p = np.exp(1) / (np.exp(1) + 1)
    assert soft_target_loss(teacher, teacher).item() == pytest.approx(-(p * np.log(p) + (1 - p) * np.log(1 - p)),
                                                                      rel=1e-6)
    # T = 2 scales by T^2 and softens both
    assert soft_target_loss(student, teacher, 2.0).item() == pytest.approx(4 * np.log(2), rel=1e-6)
    # without a teacher only the cross entropy is left
    labels = torch.tensor([0])
    assert distillation_loss(student, labels, None, 1.0, 0.0).item() == pytest.approx(np.log(2), rel=1e-6)
    assert distillation_loss(student, labels, teacher, 0.5, 0.0).item() == pytest.approx(1.5 * np.log(2), rel=1e-6)


def test_distillation_teacher_is_checked():
    with pytest.raises(ConfigError, match="train.distillation"):
        check_config({**TINY, "train": {**TINY["train"], "distillation": "online"}})


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    trainer = ProgressiveShrinkingTrainer(copy.deepcopy(TINY), tmp_path_factory.mktemp("recipe"))
    trainer._setup()
    return trainer


def test_inplace_step_trains_the_largest_then_the_sandwich(trainer):
    space, phase = trainer.space, trainer.phases[1]
    for seed in range(5):
        archs, genes = trainer._step_archs(phase, np.random.default_rng(seed), 24)
        assert len(archs) == 3 and len(genes) == 3  # the largest + subnets_per_step
        largest, smallest = space.largest(), space.smallest()
        assert archs[0] == space.parse({**largest.to_dict(), "resolution": 24})
        assert archs[1] == space.parse({**smallest.to_dict(), "resolution": 24})
        assert all(a.resolution == 24 for a in archs)


def test_teacher_phase_trains_its_one_network_once(trainer):
    archs, _ = trainer._step_archs(trainer.phases[0], np.random.default_rng(0), 24)
    assert len(archs) == 1 and archs[0].to_dict()["depths"] == [4] * 4


def test_frozen_teacher_steps_are_unchanged(tmp_path):
    config = copy.deepcopy(TINY)
    config["train"]["distillation"] = "frozen"
    trainer = ProgressiveShrinkingTrainer(config, tmp_path)
    trainer._setup()
    archs, _ = trainer._step_archs(trainer.phases[1], np.random.default_rng(0), 24)
    assert len(archs) == 2 and archs[0].to_dict()["depths"] == [2] * 4


def test_inplace_soft_targets_are_the_largest_subnets_outputs(trainer, monkeypatch):
    """One step: the largest subnet's loss has no distillation term; every other subnet's
    soft targets are exactly the largest subnet's (detached) logits on the same batch."""
    import ofa.training.progressive_shrinking as ps

    calls = []
    real = ps.distillation_loss

    def spy(logits, labels, teacher_logits, *args, **kwargs):
        calls.append((logits.detach().clone(), None if teacher_logits is None else teacher_logits.clone()))
        return real(logits, labels, teacher_logits, *args, **kwargs)

    monkeypatch.setattr(ps, "distillation_loss", spy)
    optimizer, scheduler = trainer._new_optimizer(trainer.phases[1])
    trainer._train_epoch(1, 0, 0, optimizer, scheduler)
    assert len(calls) == 3 * trainer.steps_per_epoch
    for step in range(trainer.steps_per_epoch):
        (largest, none), *others = calls[3 * step:3 * step + 3]
        assert none is None
        assert all(torch.equal(teacher, largest) for _, teacher in others)


def test_distillation_alone_by_hand():
    # label_ratio 0 with a teacher: only the soft-target term (log 2 for a uniform student)
    teacher, student, labels = torch.tensor([[1.0, 0.0]]), torch.zeros(1, 2), torch.tensor([0])
    assert distillation_loss(student, labels, teacher, 1.0, 0.1, label_ratio=0.0).item() == pytest.approx(
        soft_target_loss(student, teacher).item(), rel=1e-6)
    # without a teacher the labels stay, whatever label_ratio
    assert distillation_loss(student, labels, None, 1.0, 0.0, label_ratio=0.0).item() == pytest.approx(np.log(2))


def test_bignas_options_are_checked():
    with pytest.raises(ConfigError, match="train.regularize"):
        check_config({**TINY, "train": {**TINY["train"], "distillation": "frozen", "regularize": "largest"}})
    with pytest.raises(ConfigError, match="train.student_loss"):
        check_config({**TINY, "train": {**TINY["train"], "student_loss": "teacher", "kd_ratio": 0.0}})
    with pytest.raises(ConfigError, match="train.regularize"):
        check_config({**TINY, "train": {**TINY["train"], "regularize": "smallest"}})


def test_only_the_largest_is_regularized_and_students_learn_from_it_alone(tmp_path, monkeypatch):
    """``regularize: largest`` + ``student_loss: teacher``: per step, the largest subnet gets label
    smoothing and dropout and no soft targets; the others no smoothing, no dropout, no labels."""
    import ofa.training.progressive_shrinking as ps

    config = copy.deepcopy(TINY)
    config["train"].update(regularize="largest", student_loss="teacher")
    trainer = ProgressiveShrinkingTrainer(config, tmp_path)
    trainer._setup()
    calls = []
    real = ps.distillation_loss

    def spy(logits, labels, teacher_logits, kd_ratio, label_smoothing, temperature, label_ratio=1.0):
        calls.append((teacher_logits is None, label_smoothing, label_ratio, trainer.model.dropout.training))
        return real(logits, labels, teacher_logits, kd_ratio, label_smoothing, temperature, label_ratio=label_ratio)

    monkeypatch.setattr(ps, "distillation_loss", spy)
    optimizer, scheduler = trainer._new_optimizer(trainer.phases[1])
    trainer._train_epoch(1, 0, 0, optimizer, scheduler)
    assert len(calls) == 3 * trainer.steps_per_epoch
    for step in range(trainer.steps_per_epoch):
        largest, *others = calls[3 * step:3 * step + 3]
        assert largest == (True, 0.1, 0.0, True)
        assert all(other == (False, 0.0, 0.0, False) for other in others)


@pytest.fixture(scope="module")
def digits():
    from ofa.data import build_datasets, fixed_subset

    data = build_datasets("digits", 16, 3, "none", 0.15, 0.15)
    return fixed_subset(data.train, 48)


def _tiny_classifier():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Dropout(0.2), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 10))


def test_finetuning_killed_mid_epoch_resumes_to_the_same_weights(tmp_path, digits, monkeypatch):
    from ofa.training import static

    teacher = _tiny_classifier()
    kwargs = dict(epochs=3, resolution=16, lr=0.05, batch_size=16, warmup_epochs=0, teacher=teacher, kd_ratio=1.0)
    uninterrupted = _tiny_classifier()
    static.train_classifier(uninterrupted, digits, **kwargs)

    checkpoint = tmp_path / "finetune.ckpt"
    real, calls = static.check_finite_step, []

    def killed_in_epoch_two(loss, model, optimizer, where):
        calls.append(where)
        if len(calls) == 5:  # 3 steps per epoch: the second step of epoch 2
            raise KeyboardInterrupt
        return real(loss, model, optimizer, where)

    monkeypatch.setattr(static, "check_finite_step", killed_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        static.train_classifier(_tiny_classifier(), digits, checkpoint=checkpoint, **kwargs)
    steps_after_resume = []
    monkeypatch.setattr(static, "check_finite_step", lambda *a: (steps_after_resume.append(a[3]), real(*a)))
    resumed = _tiny_classifier()
    history = static.train_classifier(resumed, digits, checkpoint=checkpoint, **kwargs)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert len(steps_after_resume) == 6  # epoch 1 came from the checkpoint: epochs 2 and 3 ran again
    for a, b in zip(uninterrupted.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_finetuning_checkpoint_of_other_settings_is_refused(tmp_path, digits):
    from ofa.errors import CheckpointError
    from ofa.training.static import train_classifier

    checkpoint = tmp_path / "finetune.ckpt"
    train_classifier(_tiny_classifier(), digits, 1, 16, batch_size=16, warmup_epochs=0, checkpoint=checkpoint)
    with pytest.raises(CheckpointError, match="other settings"):
        train_classifier(_tiny_classifier(), digits, 2, 16, batch_size=16, warmup_epochs=0, checkpoint=checkpoint)


def test_finetuning_is_refused_for_a_family_without_it():
    from ofa.families import get_family

    assert get_family(get_space("mbv3-small")).can_finetune
    assert not get_family(get_space("transformer-small")).can_finetune


def test_summed_subnet_gradients_are_the_mean_times_the_subnets(tmp_path):
    """The first step sees the same weights and batch either way: its logged loss (what
    backpropagates) is the subnets' losses summed, or that sum over the 3 subnets."""
    import json

    losses = {}
    for reduction in ("mean", "sum"):
        config = copy.deepcopy(TINY)
        config["train"]["subnet_gradients"] = reduction
        trainer = ProgressiveShrinkingTrainer(config, tmp_path / reduction)
        trainer._setup()
        trainer.log.start()
        optimizer, scheduler = trainer._new_optimizer(trainer.phases[1])
        trainer._train_epoch(1, 0, 0, optimizer, scheduler)
        steps = [json.loads(line) for line in (tmp_path / reduction / "metrics.jsonl").read_text().splitlines()]
        losses[reduction] = next(e["loss"] for e in steps if e["event"] == "step")
    assert losses["sum"] == pytest.approx(3 * losses["mean"], rel=1e-5)


def test_inplace_with_one_draw_alternates_smallest_and_random(tmp_path):
    config = copy.deepcopy(TINY)
    config["phases"][1]["subnets_per_step"] = 1
    trainer = ProgressiveShrinkingTrainer(config, tmp_path)
    trainer._setup()
    smallest = trainer.space.parse({**trainer.space.smallest().to_dict(), "resolution": 24})
    for batch in range(4):
        archs, _ = trainer._step_archs(trainer.phases[1], np.random.default_rng(batch), 24, batch)
        assert len(archs) == 2 and archs[0].to_dict()["depths"] == [4] * 4
        assert (archs[1] == smallest) == (batch % 2 == 0)


def test_zero_init_residual_makes_every_shortcut_block_the_identity():
    """BigNAS's initialisation: the last BatchNorm scale of a block with a shortcut is zero, so in
    evaluation mode (running mean 0, variance 1, shift 0) the block adds nothing to its input, for
    every kernel and expand ratio; blocks without a shortcut are untouched."""
    from ofa.supernets import create_supernet
    from ofa.training.progressive_shrinking import zero_init_residual

    space = get_space("mbv3-small")
    torch.manual_seed(0)
    supernet = create_supernet(space).eval()
    blocks = [b for b in supernet.modules() if hasattr(b, "project_bn") and hasattr(b, "use_shortcut")]
    plain = [b for b in blocks if not b.use_shortcut]
    before = [b.project_bn.weight.clone() for b in plain]
    assert zero_init_residual(supernet) == sum(b.use_shortcut for b in blocks) > 0
    assert all(torch.equal(b.project_bn.weight, w) for b, w in zip(plain, before)) and plain
    for block in blocks:
        if not block.use_shortcut:
            continue
        x = torch.randn(2, block.in_channels, 8, 8)
        for kernel, expand in [(min(space.kernel_sizes), min(space.expand_ratios)),
                               (max(space.kernel_sizes), max(space.expand_ratios))]:
            block.active_kernel, block.active_expand = kernel, expand
            with torch.no_grad():
                assert torch.equal(block(x), x)


def test_zero_init_residual_is_a_checked_boolean():
    config = copy.deepcopy(TINY)
    config["train"]["zero_init_residual"] = 1
    with pytest.raises(ConfigError, match="zero_init_residual"):
        check_config(config)
    config["train"]["zero_init_residual"] = False  # the default: not recorded, so older runs resume unchanged
    checked, _, _ = check_config(config)
    assert "zero_init_residual" not in checked["train"]
