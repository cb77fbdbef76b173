"""BN re-calibration is exact; loyalty metrics match hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ofa import create_supernet, get_space
from ofa.errors import DataError
from ofa.evaluation import (SubnetEvaluator, js_divergence, label_loyalty, probability_loyalty, recalibrate_bn)


def _captured_inputs(model, modules, images, batch_size):
    """Inputs of ``modules`` when ``model`` runs ``images`` in batches with
    batch-statistics BN (what re-calibration sees), concatenated per module."""
    seen = {m: [] for m in modules}
    hooks = [m.register_forward_pre_hook(lambda mod, inp: seen[mod].append(inp[0].detach().clone()))
             for m in modules]
    model.eval()
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.train()
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            model(images[start:start + batch_size])
    for h in hooks:
        h.remove()
    return {m: torch.cat(v) for m, v in seen.items()}


def _exact_stats(features):
    per_channel = features.transpose(0, 1).reshape(features.shape[1], -1).double()
    return per_channel.mean(1), per_channel.var(1, unbiased=True)


def test_recalibration_equals_exact_mean_and_variance():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 5, 1), nn.BatchNorm2d(5),
                          nn.Flatten(), nn.Dropout(0.5))
    images = torch.randn(50, 3, 9, 9) * 3 + 1
    model[1].running_mean.fill_(7.0)  # stale statistics to be replaced
    # the pass normalises each batch with its own statistics, as in training; the recorded
    # inputs of each BN are the ones of that pass
    expected = _captured_inputs(model, [model[1], model[4]], images, batch_size=16)
    model[1].running_mean.fill_(7.0)
    model.train()
    used = recalibrate_bn(model, images, batch_size=16)  # 16 does not divide 50: unequal last batch
    assert used == 50 and model.training and model[6].training  # modes restored
    for bn in (model[1], model[4]):
        mean, var = _exact_stats(expected[bn])
        torch.testing.assert_close(bn.running_mean.double(), mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(bn.running_var.double(), var, rtol=1e-5, atol=1e-6)
    # the first BN's input does not depend on batch composition: exact over the whole set
    mean, var = _exact_stats(model[0](images).detach())
    torch.testing.assert_close(model[1].running_mean.double(), mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model[1].running_var.double(), var, rtol=1e-5, atol=1e-6)
    # num_images limits the subset; an iterable of (images, labels) batches works too
    assert recalibrate_bn(model, [(images[:20], None), (images[20:], None)], num_images=30) == 30
    mean30, _ = _exact_stats(model[0](images[:30]).detach())
    torch.testing.assert_close(model[1].running_mean.double(), mean30, rtol=1e-5, atol=1e-6)
    with pytest.raises(DataError):
        recalibrate_bn(model, [])


def test_recalibration_of_a_supernet_subnet_touches_only_its_channels_and_matches_extraction():
    space = get_space("mbv3-small")
    torch.manual_seed(0)
    supernet = create_supernet(space)
    arch = space.smallest()
    supernet.set_active(arch)
    images = torch.randn(24, 3, arch.resolution, arch.resolution)
    block = supernet.stages[0][0]
    mid = block.mid_channels()
    assert mid < block.expand_bn.num_features
    block.expand_bn.running_mean.fill_(3.0)
    untouched = block.expand_bn.running_mean[mid:].clone()
    expected = _captured_inputs(supernet, [block.expand_bn], images, 8)[block.expand_bn]
    recalibrate_bn(supernet, images, batch_size=8)
    mean, var = _exact_stats(expected)
    torch.testing.assert_close(block.expand_bn.running_mean[:mid].double(), mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(block.expand_bn.running_var[:mid].double(), var, rtol=1e-5, atol=1e-6)
    assert torch.equal(block.expand_bn.running_mean[mid:], untouched)
    # a static extracted subnet re-calibrated on the same images ends with the same statistics
    static = supernet.extract(arch)
    static.stem[1].running_mean.zero_()
    recalibrate_bn(static, images, batch_size=8)
    supernet.eval()
    torch.testing.assert_close(static.eval()(images), supernet(images), rtol=1e-4, atol=1e-4)


def test_label_loyalty_by_hand():
    teacher = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    student = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 9.0], [0.0, 3.0, 0.0]])
    assert label_loyalty(student, teacher) == pytest.approx(0.5)
    assert label_loyalty(teacher, teacher) == 1.0
    with pytest.raises(ValueError):
        label_loyalty(student[:, :2], teacher)


def test_probability_loyalty_by_hand():
    p = torch.tensor([[1.0, 0.0]])
    q = torch.tensor([[0.5, 0.5]])
    # M = (0.75, 0.25); KL(P||M) = log2(4/3); KL(Q||M) = 0.5 log2(2/3) + 0.5 log2(2)
    js = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(2 / 3) + 0.5)
    assert js_divergence(p, q).item() == pytest.approx(js, abs=1e-12)
    assert probability_loyalty(q, p, from_logits=False) == pytest.approx(1 - math.sqrt(js), abs=1e-12)
    # identical -> 1, disjoint support -> JS = 1 bit -> 0, averaged over rows
    pair = torch.tensor([[0.2, 0.8], [0.0, 1.0]])
    other = torch.tensor([[0.2, 0.8], [1.0, 0.0]])
    assert probability_loyalty(other, pair, from_logits=False) == pytest.approx(0.5, abs=1e-12)
    logits = torch.randn(6, 4)
    assert probability_loyalty(logits, logits) == pytest.approx(1.0)
    assert probability_loyalty(logits + 5.0, logits) == pytest.approx(1.0)  # softmax is shift-invariant
    assert 0.0 <= probability_loyalty(torch.randn(6, 4), logits) <= 1.0


def test_subnet_evaluator_records_have_the_documented_keys():
    from ofa.data import build_datasets

    space = get_space("mbv3-small")
    torch.manual_seed(0)
    supernet = create_supernet(space)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    data = build_datasets("digits", resolution=32)
    evaluator = SubnetEvaluator(supernet, data, "val", calib_images=64, batch_size=128)
    record = evaluator.evaluate(space.smallest())
    assert {"arch", "top1", "loss", "macs", "params", "label_loyalty", "probability_loyalty", "split"} <= set(record)
    assert record["split"] == "val" and record["macs"] == space.cost(space.smallest()).macs
    assert 0 <= record["label_loyalty"] <= 1 and 0 <= record["probability_loyalty"] <= 1
    largest = evaluator.evaluate(space.largest())
    assert largest["label_loyalty"] == 1.0 and largest["probability_loyalty"] == pytest.approx(1.0)
    assert all(torch.equal(before[k], v) for k, v in supernet.state_dict().items())  # supernet untouched


def _evaluate_tool():
    from ofa_pipeline.commands import evaluate

    return evaluate


def test_evaluate_tool_writes_records_plot_and_skips_done_subnets(tmp_path, capsys):
    import json

    from ofa.training.checkpoint import save_checkpoint
    from ofa.training.progressive_shrinking import DEFAULT_CONFIG

    space = get_space("mbv3-small")
    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "final.pt", trainer="mobilenetv3", space=space,
                                 config={**DEFAULT_CONFIG, "data": {**DEFAULT_CONFIG["data"], "calib_images": 64}},
                                 model=create_supernet(space))
    archs = tmp_path / "archs.jsonl"
    archs.write_text(json.dumps({"arch": space.sample(5).to_dict()}) + "\n")
    tool = _evaluate_tool()
    out = tmp_path / "eval.jsonl"
    args = ["--supernet", str(checkpoint), "--archs", "largest", "smallest", "random:2", str(archs),
            "--out", str(out), "--threads", "1"]
    assert tool.main(args) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 5 and (tmp_path / "eval.png").stat().st_size > 1000
    for record in records:
        assert {"arch", "top1", "loss", "macs", "params", "label_loyalty", "probability_loyalty", "split"} <= set(record)
        assert record["split"] == "val" and space.parse(record["arch"])
    assert "probability_loyalty" in capsys.readouterr().out
    assert tool.main(args) == 0  # a re-run evaluates nothing again
    assert len(out.read_text().splitlines()) == 5
    assert tool.main(["--supernet", str(checkpoint), "--archs", "random:x", "--out", str(out)]) == 2
    (tmp_path / "cut.pt").write_bytes(checkpoint.read_bytes()[:1000])
    assert tool.main(["--supernet", str(tmp_path / "cut.pt"), "--out", str(out)]) == 2
    assert "CheckpointError" in capsys.readouterr().err
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps(get_space("mbv3-small", num_classes=5).largest().to_dict()) + "\n")
    assert tool.main(["--supernet", str(checkpoint), "--archs", str(other), "--out", str(out)]) == 2
    assert "SpaceMismatchError" in capsys.readouterr().err
