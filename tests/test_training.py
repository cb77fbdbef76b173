"""Progressive-shrinking training: configs, phases, KD loss, checkpoints,
kill-and-resume equality and identical sampling on 2 data-parallel ranks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from ofa import create_supernet, get_space
from ofa.errors import CheckpointError, ConfigError, SpaceMismatchError
from ofa.training import TRAINERS, get_trainer, load_yaml
from ofa.training.checkpoint import load_checkpoint, load_supernet, save_checkpoint
from ofa.training.losses import distillation_loss, soft_target_loss
from ofa.training.progressive_shrinking import build_phases, check_config
from ofa.training.sampling import sample_restricted_genes, step_generator
from ofa.training.schedule import build_scheduler, cosine_factor

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ROOT / "tools" / "train_supernet.py"

# 64 images, 4 steps per epoch; every kind of phase, a width stage that re-orders channels
TINY = {
    "space": "mbv3-small",
    "data": {"max_train_images": 64, "calib_images": 32},
    "train": {"batch_size": 16, "threads": 1, "log_every": 1, "progress": False},
    "phases": [
        {"name": "teacher", "epochs": 1, "lr": 0.05, "kernel_sizes": "max", "expand_ratios": "max", "depths": "max"},
        {"name": "kernel", "epochs": 1, "lr": 0.02, "expand_ratios": "max", "depths": "max"},
        {"name": "depth", "epochs": 2, "lr": 0.02, "subnets_per_step": 2, "expand_ratios": "max"},
        {"name": "expand_1", "epochs": 1, "lr": 0.02, "subnets_per_step": 2, "expand_ratios": "top2"},
        {"name": "expand_2", "epochs": 2, "lr": 0.02, "subnets_per_step": 2},
    ],
}


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def _run(command, timeout=600) -> subprocess.CompletedProcess:
    """Run ``command`` in its own process group; on a timeout kill the whole
    group (torchrun's workers included) so nothing is left behind."""
    process = subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _train(config_path, out, *extra, check=True):
    result = _run([sys.executable, str(TRAIN), "--config", str(config_path), "--out", str(out), *extra])
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def _events(out: Path) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines() if (out / "metrics.jsonl").exists() else []
    return [json.loads(line) for line in lines if line.endswith("}")]


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    return _write_config(tmp_path_factory.mktemp("cfg") / "tiny.yaml", TINY)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_config):
    out = tmp_path_factory.mktemp("run") / "straight"
    result = _train(tiny_config, out)
    return out, result.stdout


# --- configs and phases -----------------------------------------------------------------------------------------
def test_default_config_is_valid_and_chains_all_phases():
    config = load_yaml("mbv3-small-digits")
    _, space, phases = check_config(config)
    assert [p["name"] for p in phases] == ["teacher", "kernel", "depth_1", "depth_2", "expand_1", "expand_2"]
    assert phases[0]["kernel_sizes"] == (7,) and phases[1]["kernel_sizes"] == (3, 5, 7)
    assert phases[2]["depths"] == (3, 4) and phases[3]["depths"] == (2, 3, 4)
    assert phases[4]["expand_ratios"] == (4, 6) and phases[5]["expand_ratios"] == (3, 4, 6)
    assert [p["subnets_per_step"] for p in phases][1:] == sorted(p["subnets_per_step"] for p in phases[1:])
    assert get_trainer(space.type_name) is TRAINERS["mobilenetv3"]
    # without a phases key: the same recipe, resolved for the space
    recipe = build_phases(space, None)
    assert [p["depths"] for p in recipe] == [p["depths"] for p in phases]


@pytest.mark.parametrize("change, key", [
    ({"train": {"batch_size": 0}}, "train.batch_size"),
    ({"train": {"batch_sise": 8}}, "train.batch_sise"),
    ({"train": {"kd_ratio": "lots"}}, "train.kd_ratio"),
    ({"train": {"schedule": "step"}}, "train.schedule"),
    ({"seed": -1}, "seed"),
    ({"phases": [{"name": "t", "epochs": 0}]}, "phases[0].epochs"),
    ({"phases": [{"name": "t", "lr": -0.1}]}, "phases[0].lr"),
    ({"phases": [{"name": "t"}, {"name": "d", "depths": [3, 5]}]}, "phases[1].depths"),
    ({"phases": [{"name": "t", "kernel_sizes": "biggest"}]}, "phases[0].kernel_sizes"),
    ({"phases": []}, "phases"),
    ({"space": "no-such-space"}, "no-such-space"),
])
def test_impossible_config_values_name_the_key(change, key):
    config = {**TINY, **change} if "train" not in change else {**TINY, "train": {**TINY["train"], **change["train"]}}
    with pytest.raises(ConfigError) as error:
        check_config(config)
    assert key in str(error.value)


def test_config_errors_reach_the_command_line_before_any_work(tmp_path):
    path = _write_config(tmp_path / "bad.yaml", {**TINY, "train": {**TINY["train"], "batch_size": -3}})
    result = _train(path, tmp_path / "out", check=False)
    assert result.returncode == 2 and "ConfigError" in result.stderr and "train.batch_size" in result.stderr
    assert not (tmp_path / "out").exists()
    (tmp_path / "broken.yaml").write_text("space: [unclosed")
    result = _train(tmp_path / "broken.yaml", tmp_path / "out", check=False)
    assert result.returncode == 2 and "not valid YAML" in result.stderr


# --- losses, schedules, sampling -------------------------------------------------------------------------------
def test_soft_target_loss_is_kl_plus_teacher_entropy_and_kd_adds_to_ce():
    torch.manual_seed(0)
    student, teacher = torch.randn(5, 4, requires_grad=True), torch.randn(5, 4)
    p_t = F.softmax(teacher, -1)
    kl = (p_t * (p_t.log() - F.log_softmax(student, -1))).sum(-1).mean()
    entropy = -(p_t * p_t.log()).sum(-1).mean()
    loss = soft_target_loss(student, teacher)
    torch.testing.assert_close(loss, kl + entropy)
    loss.backward()
    torch.testing.assert_close(student.grad, (F.softmax(student, -1) - p_t).detach() / 5)  # d/ds of soft CE
    labels = torch.tensor([0, 1, 2, 3, 0])
    ce = F.cross_entropy(student, labels, label_smoothing=0.1)
    torch.testing.assert_close(distillation_loss(student, labels), ce)
    torch.testing.assert_close(distillation_loss(student, labels, teacher, kd_ratio=0.5), ce + 0.5 * loss)
    torch.testing.assert_close(distillation_loss(student, labels, teacher, kd_ratio=0.0), ce)
    # temperature: T^2-scaled soft CE of the softened distributions
    t = 2.0
    soft = -(F.softmax(teacher / t, -1) * F.log_softmax(student / t, -1)).sum(-1).mean() * t * t
    torch.testing.assert_close(soft_target_loss(student, teacher, t), soft)


def test_cosine_schedule_with_warmup_and_checkpointable_state(tmp_path):
    assert cosine_factor(0, 100, 10) == pytest.approx(1 / 11)
    assert cosine_factor(10, 100, 10) == pytest.approx(1.0)
    assert cosine_factor(55, 100, 10) == pytest.approx(0.5)
    assert cosine_factor(100, 100, 10) == pytest.approx(0.0)
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.4)
    scheduler = build_scheduler("cosine", optimizer, total_steps=20, warmup_steps=4)
    for _ in range(7):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.4 * cosine_factor(7, 20, 4))
    torch.save(scheduler.state_dict(), tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=True)
    fresh = build_scheduler("cosine", torch.optim.SGD(model.parameters(), lr=0.4), 20, 4)
    fresh.load_state_dict(state)
    assert fresh.last_epoch == 7


def test_restricted_sampling_is_seeded_and_stays_in_the_allowed_choices():
    space = get_space("mbv3-small")
    phase = build_phases(space, [{"name": "d", "expand_ratios": [6], "depths": "top2"}])[0]
    from ofa.training.progressive_shrinking import _allowed_gene_indices

    allowed = _allowed_gene_indices(space, phase, 28)
    a = sample_restricted_genes(space, 50, step_generator(0, 2, 3, 4), allowed)
    b = sample_restricted_genes(space, 50, step_generator(0, 2, 3, 4), allowed)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, sample_restricted_genes(space, 50, step_generator(0, 2, 3, 5), allowed))
    for arch in space.from_genes(a):
        assert set(arch.depths) <= {3, 4} and arch.resolution == 28
        assert {e for e in arch.expand_ratios if e is not None} == {6}
    assert {k for arch in space.from_genes(a) for k in arch.kernel_sizes if k} == {3, 5, 7}


# --- checkpoints ----------------------------------------------------------------------------------------------
def test_checkpoint_round_trip_and_named_errors(tmp_path):
    space = get_space("mbv3-small")
    torch.manual_seed(0)
    model = create_supernet(space)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    path = save_checkpoint(tmp_path / "c.pt", trainer="mobilenetv3", space=space, config={"seed": 1}, model=model,
                           optimizer=optimizer, phase=2, epoch=1, step=9)
    payload = load_checkpoint(path, space=space)
    assert (payload["phase"], payload["epoch"], payload["step"]) == (2, 1, 9)
    assert payload["optimizer"]["state"] and payload["rng"]["torch"].dtype == torch.uint8
    supernet = load_supernet(path)
    assert supernet.space == space and not supernet.training
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in supernet.state_dict().items())
    with pytest.raises(SpaceMismatchError, match="fingerprint"):
        load_checkpoint(path, space=space.replace(num_classes=7))
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path / "cut.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "junk.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        load_checkpoint(tmp_path / "empty.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an ofa-checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_supernet(tmp_path / "missing.pt")


def test_metrics_log_resume_drops_records_after_the_checkpoint_and_keeps_the_time(tmp_path):
    from ofa.training.runlog import MetricsLog, RunClock

    path = tmp_path / "metrics.jsonl"
    path.write_text('{"event": "step", "step": 1}\n')  # an attempt killed before its first checkpoint
    log = MetricsLog(path, clock=RunClock())
    log.start()
    assert _events(tmp_path) == []
    for step in (1, 2):
        log.write("step", step=step)
    state = log.state()  # what the checkpoint of step 2 stores
    log.write("step", step=3)
    with open(path, "a") as handle:
        handle.write('{"event": "step", "ste')  # the kill cut this record
    seen = _events(tmp_path)[-1]["elapsed_s"]
    resumed = MetricsLog(path, clock=RunClock())
    assert resumed.resume(state, 2) == 1
    assert [e["step"] for e in _events(tmp_path)] == [1, 2]
    assert resumed.clock.segment == 2 and resumed.clock.wall_seconds() >= seen
    resumed.write("resume", step=2, segment=resumed.clock.segment)
    resumed.write("step", step=3)
    assert [e.get("step") for e in _events(tmp_path)] == [1, 2, 2, 3]
    assert resumed.state()["records"] == 4
    # a checkpoint from before record counts: records of later steps go
    path.write_text("".join(json.dumps({"event": "step", "step": s}) + "\n" for s in (1, 2, 3)))
    assert MetricsLog(path).resume({}, 2) == 1 and [e["step"] for e in _events(tmp_path)] == [1, 2]


# --- end to end -------------------------------------------------------------------------------------------------
def test_all_phases_chain_in_one_run(uninterrupted):
    out, stdout = uninterrupted
    events = _events(out)
    starts = [e["name"] for e in events if e["event"] == "phase_start"]
    assert starts == [p["name"] for p in TINY["phases"]]
    sorts = [(e["phase"], e["keep_expand_ratios"]) for e in events if e["event"] == "sort_channels"]
    assert sorts == [(3, []), (4, [4, 6])]  # each width stage re-orders, keeping the ratios already trained
    ends = [e for e in events if e["event"] == "phase_end"]
    assert len(ends) == 5 and all(0 <= e["largest_top1"] <= 100 for e in ends)
    steps = [e for e in events if e["event"] == "step"]
    assert len(steps) == 7 * 4 and all(len(e["subnets"]) == (1 if e["phase"] < 2 else 2) for e in steps)
    space = get_space("mbv3-small")
    for e in steps:  # sandwich rule: with several subnets per step, the first is the phase's smallest
        if e["phase"] >= 2:
            expand = 6 if e["phase"] == 2 else (4 if e["phase"] == 3 else 3)
            smallest = space.parse({"kernel_sizes": [3] * 16, "expand_ratios": [expand] * 16, "depths": [2] * 4,
                                    "resolution": e["resolution"]})
            assert e["subnets"][0] == space.to_genes(smallest)[0].tolist()
            assert e["subnets"][1] != e["subnets"][0]
    for name in ("final.pt", "last.pt", "phase0-teacher.pt", "phase4-expand_2.pt", "summary.json"):
        assert (out / name).exists()
    assert "largest_top1" in stdout and "teacher" in stdout
    payload = load_checkpoint(out / "final.pt")
    assert payload["phase"] == 5 and payload["extra"]["teacher"] is not None


def test_kill_9_mid_epoch_then_resume_equals_uninterrupted_run(tmp_path, tiny_config, uninterrupted):
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, str(TRAIN), "--config", str(tiny_config), "--out", str(out)],
                               env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # kill once the depth phase has a finished epoch (a mid-phase checkpoint) and its next epoch has begun
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        events = _events(out)
        if any(e["event"] == "epoch" and e["phase"] == 2 and e["epoch"] == 1 for e in events) and \
                any(e["event"] == "step" and e["phase"] == 2 and e["epoch"] == 1 for e in events):
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    assert process.wait(timeout=60) == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    position = load_checkpoint(out / "last.pt")
    assert (position["phase"], position["epoch"]) == (2, 1)  # resumes mid-phase
    assert not (out / "final.pt").exists()
    before = _events(out)
    assert max(e["step"] for e in before if e["event"] == "step") > position["step"]  # work the kill threw away
    first_segment = before[-1]["time"] - before[0]["time"]
    result = _train(tiny_config, out, "--resume")
    assert "resuming at phase 2" in result.stdout
    # the log holds each step once, as the uninterrupted run's does, and the summary counts both segments
    events = _events(out)
    steps = [(e["phase"], e["epoch"], e["batch"], e["step"]) for e in events if e["event"] == "step"]
    assert steps == [(e["phase"], e["epoch"], e["batch"], e["step"]) for e in _events(uninterrupted[0])
                     if e["event"] == "step"]
    assert [e["step"] for e in events if e["event"] == "step"] == list(range(1, 29))
    assert [e["name"] for e in events if e["event"] == "phase_start"] == [p["name"] for p in TINY["phases"]]
    resumes = [e for e in events if e["event"] == "resume"]
    assert len(resumes) == 1 and resumes[0]["segment"] == 2 and resumes[0]["dropped_records"] >= 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["segments"] == 2
    assert summary["wall_seconds"] >= first_segment + summary["seconds_this_process"] - 0.2
    assert summary["cpu_seconds"] > summary["cpu_seconds_this_process"]
    elapsed = [e["elapsed_s"] for e in events]
    assert elapsed == sorted(elapsed)  # one clock over both segments
    resumed = load_checkpoint(out / "final.pt")
    straight = load_checkpoint(uninterrupted[0] / "final.pt")
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    for key, value in straight["extra"]["teacher"].items():
        assert torch.equal(value, resumed["extra"]["teacher"][key]), key


def test_resume_refusals(tmp_path, tiny_config, uninterrupted):
    out = tmp_path / "r"
    out.mkdir()
    (out / "last.pt").write_bytes((uninterrupted[0] / "last.pt").read_bytes()[:5000])
    result = _train(tiny_config, out, "--resume", check=False)
    assert result.returncode == 2 and "CheckpointError" in result.stderr
    result = _train(tiny_config, out, check=False)  # no --resume into a used directory
    assert result.returncode == 2 and "--resume" in result.stderr
    (out / "last.pt").write_bytes((uninterrupted[0] / "last.pt").read_bytes())
    other = _write_config(tmp_path / "other.yaml", {**TINY, "space_overrides": {"num_classes": 10, "stem_width": 8}})
    result = _train(other, out, "--resume", check=False)
    assert result.returncode == 2 and "SpaceMismatchError" in result.stderr
    changed = _write_config(tmp_path / "changed.yaml", {**TINY, "seed": 5})
    result = _train(changed, out, "--resume", check=False)
    assert result.returncode == 2 and "config differs" in result.stderr


def test_two_ranks_sample_the_same_subnets_with_torchrun(tmp_path):
    config = {**TINY, "train": {**TINY["train"], "log_samples": True},
              "phases": [TINY["phases"][0], {**TINY["phases"][2], "epochs": 1}]}
    path = _write_config(tmp_path / "ddp.yaml", config)
    out = tmp_path / "ddp"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    result = _run([*torchrun, str(TRAIN), "--config", str(path), "--out", str(out)], timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [[json.loads(line) for line in (out / f"samples.rank{r}.jsonl").read_text().splitlines()]
             for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 2 * 4  # 2 phases x 4 steps (32 images per rank, 8 per batch)
    for a, b in zip(*ranks):
        assert (a["phase"], a["epoch"], a["batch"]) == (b["phase"], b["epoch"], b["batch"])
        assert a["genes"] == b["genes"] and a["resolution"] == b["resolution"]  # same subnets, same resolution
        assert not set(a["positions"]) & set(b["positions"])  # different images
        assert a["param_checksum"] == b["param_checksum"]  # gradients were averaged: weights stay identical
    assert any(len(r["genes"]) == 2 for r in ranks[0])
    assert (out / "final.pt").exists() and not list(out.glob("*.tmp"))


def test_classifier_follows_the_data_set_and_bad_data_fails_up_front(tmp_path):
    from PIL import Image

    from ofa.errors import DataError
    from ofa.training import ProgressiveShrinkingTrainer

    for c in range(3):
        (tmp_path / "images" / f"class{c}").mkdir(parents=True)
        for i in range(8):
            image = Image.fromarray(np.full((10, 10, 3), 60 * c + i, np.uint8))
            image.save(tmp_path / "images" / f"class{c}" / f"{i}.png")
    config = {**TINY, "data": {"dataset": str(tmp_path / "images")}}
    trainer = ProgressiveShrinkingTrainer(config, tmp_path / "out")
    assert trainer.space.num_classes == 3 and trainer.data.class_names == ("class0", "class1", "class2")
    with pytest.raises(DataError, match="neither a built-in"):
        ProgressiveShrinkingTrainer({**TINY, "data": {"dataset": str(tmp_path / "nowhere")}}, tmp_path / "out")
    assert not (tmp_path / "out").exists()
