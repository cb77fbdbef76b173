"""Once-for-All progressive shrinking for MobileNetV3 supernets.

All phases run one after the other from one command, with no hand-run
switching (Cai et al., ICLR 2020, section 3.2):

0. ``teacher`` - the full network (largest kernel, expand and depth), at
   elastic resolution; a frozen copy of it is the distillation teacher.
1. ``kernel`` - elastic kernel size (7 -> 5, 3).
2. ``depth_1``, ``depth_2`` - elastic depth: {3, 4}, then {2, 3, 4}.
3. ``expand_1``, ``expand_2`` - elastic width: {4, 6}, then {3, 4, 6}; the
   middle channels are re-ordered by L1 importance at the start of each width
   stage, staged so the ratios already trained keep their channels.

Each step samples ``subnets_per_step`` subnets from a generator seeded by
(seed, phase, epoch, step) - the same on every rank and after a resume - and
one resolution for the batch (with ``train.sandwich``, the default, the first
of several subnets is always the phase's smallest one - the "sandwich rule" of
Yu & Huang, ICCV 2019, which lifts the smallest subnets; ``false`` samples all
at random, as the original recipe), and accumulates the subnets' gradients
(loss = CE with label smoothing + kd_ratio x soft-target loss, divided by the
number of subnets with ``train.subnet_gradients: mean`` or summed with ``sum``,
as the reference code accumulates them, so that every subnet's gradient keeps
its full size) before one optimizer step. The soft targets come from one of two teachers
(``train.distillation``):

- ``frozen`` - the reference recipe: a frozen copy of the phase-0 network,
  run once per batch;
- ``inplace`` - in-place distillation (Yu & Huang 2019; BigNAS, Yu et al.,
  ECCV 2020): every step of an elastic phase first trains the phase's largest
  subnet on the labels alone, and its outputs on the batch (detached) are the
  soft targets of the sampled subnets, so the teacher keeps improving instead
  of staying at its phase-0 accuracy.

Two BigNAS choices (Yu et al. 2020, section 3.1) for in-place distillation:
``train.student_loss: teacher`` trains the sampled subnets on the soft targets
alone (the default ``labels+teacher`` adds the labels' cross entropy), and
``train.regularize: largest`` keeps dropout and label smoothing for the
largest subnet only, since the small ones underfit rather than overfit.

With ``exits`` in the config (``{stages: [...], width: n}``, see
:mod:`ofa.spaces.exits`), the supernet carries early-exit heads, and a phase
with ``exits: true`` (after the others) trains them: the main path is frozen
(no gradient, BatchNorm on batch statistics without updating its running
ones), and every exit of each sampled subnet learns from that subnet's own
final head (self-distillation: CE + kd_ratio x soft-target loss against the
final logits), so exits work for every subnet and the subnets' own outputs do
not change (the "IC-only" training of Shallow-Deep Networks, Kaya et al.,
ICML 2019).

Phases have their own epochs, learning rate (cosine with warm-up) and subnet
count; the optimizer and schedule restart at each phase, as in the reference
recipe.

Checkpoints (``last.pt`` each epoch, ``phase<i>-<name>.pt`` at phase ends,
``final.pt``) hold the position ``(phase, epoch)`` to continue from. Because
the data order and augmentation of an epoch are functions of (seed, phase,
epoch) and dropout is re-seeded every epoch, a run killed at any moment and
resumed from its last checkpoint ends with the same weights as an
uninterrupted run.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..io import atomic_write_json
from ..models.quantization import ActivationQuantizer, lockstep_initialization
from ..supernets import create_supernet
from . import register_trainer
from .checkpoint import save_checkpoint, set_rng_state
from .config import check_value, config_space, merge_defaults
from .distributed import (DistInfo, all_reduce_gradients, all_reduce_mean, average_buffers, barrier,
                          broadcast_from_main, setup_process)
from .finite import check_finite_step
from .losses import distillation_loss
from .optim import OPTIMIZERS, build_optimizer
from .resume import resume_payload
from .runlog import MetricsLog, RunClock, format_table
from .sampling import sample_restricted_genes, step_generator
from .schedule import SCHEDULES, build_scheduler

DISTILLATION_TEACHERS = ("frozen", "inplace")
STUDENT_LOSSES = ("labels+teacher", "teacher")  # what a distilled subnet learns from
REGULARIZED = ("all", "largest")  # which subnets get dropout and label smoothing
CHOICE_KEYS = ("kernel_sizes", "expand_ratios", "depths", "resolutions")
SPACE_FIELDS = {"kernel_sizes": "kernel_sizes", "expand_ratios": "expand_ratios", "depths": "depths",
                "resolutions": "resolutions"}

PHASE_DEFAULTS = {
    "name": "", "epochs": 1, "lr": 0.05, "warmup_epochs": 0, "subnets_per_step": 1,
    # allowed choices: "all" | "max" | "min" | "top<k>" | [values]; None means "all"
    "kernel_sizes": None, "expand_ratios": None, "depths": None, "resolutions": None,
    # spaces with precision only (ofa.spaces.precision); None there means "max": a phase trains at the
    # highest precision unless it says otherwise, so only the precision phase shrinks the bits
    "weight_bits": None, "activation_bits": None,
    "exits": False,  # train the exit heads on the frozen main path (needs the config key exits)
}

def zero_init_residual(supernet: nn.Module) -> int:
    """Zero the scale of the last BatchNorm of every block with a shortcut, so each starts as the
    identity and a deep subnet begins as its shallower ones (BigNAS, Yu et al. 2020, section 3.1:
    what lets big and small subnets train together from the start). Returns the blocks changed."""
    changed = 0
    for module in supernet.modules():
        if getattr(module, "use_shortcut", False) and isinstance(getattr(module, "project_bn", None), nn.BatchNorm2d):
            nn.init.zeros_(module.project_bn.weight)
            changed += 1
    return changed


DEFAULT_CONFIG = {
    "space": "mbv3-small",
    "space_overrides": {},
    "seed": 0,
    "device": "auto",
    "data": {
        "dataset": "digits", "augmentation": "auto", "val_fraction": 0.15, "test_fraction": 0.15,
        "max_train_images": 0, "calib_images": 2000,
    },
    "train": {
        "batch_size": 64, "optimizer": "sgd", "momentum": 0.9, "weight_decay": 3e-5, "label_smoothing": 0.1,
        "kd_ratio": 1.0, "kd_temperature": 1.0, "distillation": "frozen", "sandwich": True, "subnet_gradients": "mean",
        "student_loss": "labels+teacher", "regularize": "all",
        "schedule": "cosine", "min_lr_factor": 0.0,
        "dropout": 0.1, "channels_last": True, "threads": 0, "log_every": 10, "log_samples": False, "progress": True,
        "eval_batch_size": 256,
        "zero_init_residual": False,
    },
    "phases": None,
    "exits": None,  # {stages: [...], width: n}: exit heads after those stages (ofa.spaces.exits)
}

# The reference recipe; epochs/lr sized for the small default data set.
DEFAULT_PHASES = (
    {"name": "teacher", "epochs": 15, "lr": 0.1, "warmup_epochs": 1, "subnets_per_step": 1,
     "kernel_sizes": "max", "expand_ratios": "max", "depths": "max"},
    {"name": "kernel", "epochs": 5, "lr": 0.03, "subnets_per_step": 1, "expand_ratios": "max", "depths": "max"},
    {"name": "depth_1", "epochs": 4, "lr": 0.01, "subnets_per_step": 2, "expand_ratios": "max", "depths": "top2"},
    {"name": "depth_2", "epochs": 5, "lr": 0.02, "subnets_per_step": 2, "expand_ratios": "max"},
    {"name": "expand_1", "epochs": 4, "lr": 0.01, "subnets_per_step": 4, "expand_ratios": "top2"},
    {"name": "expand_2", "epochs": 6, "lr": 0.02, "subnets_per_step": 4},
)


# Quantisation-aware training at every precision, after the phases above (spaces with precision only):
# every decision elastic, weight and activation bits included.
DEFAULT_PRECISION_PHASE = {"name": "precision", "epochs": 4, "lr": 0.01, "subnets_per_step": 4,
                           "weight_bits": "all", "activation_bits": "all"}
PRECISION_KEYS = ("weight_bits", "activation_bits")


def default_phases(space) -> list[dict]:
    """The reference recipe, plus the precision phase for a space with precision."""
    phases = [dict(p) for p in DEFAULT_PHASES]
    return phases + [dict(DEFAULT_PRECISION_PHASE)] if getattr(space, "has_precision", False) else phases


def _precision_values(spec, space, key: str) -> tuple:
    """A phase's allowed bits: None means the highest; a space without precision allows no key."""
    if not space.has_precision:
        if spec is not None:
            raise ConfigError(f"config key {key!r} = {spec!r}: this space has no precision decision; build it with "
                              f"space_overrides weight_bits and activation_bits, or leave the key out")
        return ()
    return _choice_values("max" if spec is None else spec, getattr(space, key.rsplit(".", 1)[-1]), key)


def _choice_values(spec, space_values: tuple, key: str) -> tuple:
    """Resolve a phase's ``"all" | "max" | "min" | "top<k>" | [values]`` into values of the space."""
    ordered = tuple(sorted(space_values))
    if spec is None:
        return ordered
    if isinstance(spec, str):
        if spec == "all":
            return ordered
        if spec == "max":
            return ordered[-1:]
        if spec == "min":
            return ordered[:1]
        if spec.startswith("top") and spec[3:].isdigit() and int(spec[3:]) >= 1:
            return ordered[-int(spec[3:]):]
        raise ConfigError(f"config key {key!r} = {spec!r} is not allowed; use 'all', 'max', 'min', 'top<k>' "
                          f"or a list of values from {list(ordered)}")
    if not isinstance(spec, list) or not spec:
        raise ConfigError(f"config key {key!r} must be 'all', 'max', 'top<k>' or a non-empty list, got {spec!r}")
    bad = [v for v in spec if isinstance(v, bool) or v not in space_values]
    if bad:
        raise ConfigError(f"config key {key!r}: {bad} not in the space; allowed values: {list(ordered)}")
    return tuple(sorted(set(spec)))


def build_phases(space, phases) -> list[dict]:
    """Validated phase dicts with the allowed choices resolved to value tuples."""
    phases = default_phases(space) if phases is None else phases
    if not isinstance(phases, list) or not phases:
        raise ConfigError("config key 'phases' must be a non-empty list of phase mappings (or left out for the "
                          "standard recipe)")
    out = []
    for i, raw in enumerate(phases):
        key = f"phases[{i}]"
        phase = merge_defaults(raw, PHASE_DEFAULTS, prefix=f"{key}.")
        phase["name"] = phase["name"] or f"phase{i}"
        check_value(phase["epochs"], f"{key}.epochs", minimum=1, integer=True)
        check_value(phase["lr"], f"{key}.lr", above=0)
        check_value(phase["warmup_epochs"], f"{key}.warmup_epochs", minimum=0, maximum=phase["epochs"],
                    integer=True)
        check_value(phase["subnets_per_step"], f"{key}.subnets_per_step", minimum=1, integer=True)
        if not isinstance(phase["exits"], bool):
            raise ConfigError(f"config key {key}.exits must be true or false, got {phase['exits']!r}")
        for choice in CHOICE_KEYS:
            phase[choice] = _choice_values(phase[choice], getattr(space, SPACE_FIELDS[choice]), f"{key}.{choice}")
        for choice in PRECISION_KEYS:
            phase[choice] = _precision_values(phase[choice], space, f"{key}.{choice}")
        out.append(phase)
    return out


def check_config(raw: dict) -> tuple[dict, object, list[dict]]:
    """(validated config, space, phases); ConfigError naming the key on any impossible value."""
    config = merge_defaults(raw, DEFAULT_CONFIG, open_keys=("space", "space_overrides"))
    space = config_space(config)
    if space.type_name != "mobilenetv3":
        raise ConfigError(f"the progressive-shrinking trainer trains mobilenetv3 spaces, got {space.type_name!r}")
    check_value(config["seed"], "seed", minimum=0, integer=True)
    check_value(config["device"], "device", choices=("auto", "cpu", "cuda"))
    data, train = config["data"], config["train"]
    check_value(data["val_fraction"], "data.val_fraction", above=0, maximum=0.49)
    check_value(data["test_fraction"], "data.test_fraction", above=0, maximum=0.49)
    check_value(data["max_train_images"], "data.max_train_images", minimum=0, integer=True)
    check_value(data["calib_images"], "data.calib_images", minimum=1, integer=True)
    check_value(train["batch_size"], "train.batch_size", minimum=1, integer=True)
    check_value(train["optimizer"], "train.optimizer", choices=OPTIMIZERS)
    check_value(train["momentum"], "train.momentum", minimum=0, maximum=0.999)
    check_value(train["weight_decay"], "train.weight_decay", minimum=0, maximum=1)
    check_value(train["label_smoothing"], "train.label_smoothing", minimum=0, maximum=0.99)
    check_value(train["kd_ratio"], "train.kd_ratio", minimum=0)
    check_value(train["kd_temperature"], "train.kd_temperature", above=0)
    check_value(train["distillation"], "train.distillation", choices=DISTILLATION_TEACHERS)
    check_value(train["subnet_gradients"], "train.subnet_gradients", choices=("mean", "sum"))
    check_value(train["student_loss"], "train.student_loss", choices=STUDENT_LOSSES)
    check_value(train["regularize"], "train.regularize", choices=REGULARIZED)
    if train["regularize"] == "largest" and train["distillation"] != "inplace":
        raise ConfigError("config key 'train.regularize' = 'largest' needs 'train.distillation: inplace' (the largest "
                          "subnet of each step is the one that sees the labels); use 'all' with a frozen teacher")
    if train["student_loss"] == "teacher" and train["kd_ratio"] <= 0:
        raise ConfigError("config key 'train.student_loss' = 'teacher' needs 'train.kd_ratio' > 0 (with no soft "
                          "targets the subnets would learn nothing); use 'labels+teacher' or raise kd_ratio")
    check_value(train["schedule"], "train.schedule", choices=sorted(SCHEDULES))
    check_value(train["min_lr_factor"], "train.min_lr_factor", minimum=0, maximum=1)
    check_value(train["dropout"], "train.dropout", minimum=0, maximum=0.99)
    check_value(train["threads"], "train.threads", minimum=0, integer=True)
    check_value(train["log_every"], "train.log_every", minimum=1, integer=True)
    check_value(train["eval_batch_size"], "train.eval_batch_size", minimum=1, integer=True)
    if not isinstance(train["zero_init_residual"], bool):
        raise ConfigError(f"config key 'train.zero_init_residual' = {train['zero_init_residual']!r} is not allowed; "
                          f"allowed values: [False, True]")
    if not train["zero_init_residual"]:
        del train["zero_init_residual"]  # a config without it is the config it always was (resume compares configs)
    phases = build_phases(space, config["phases"])
    if config["exits"] is None:
        del config["exits"]  # a config without exits is the config it always was (resume compares configs)
    else:
        from ..spaces.exits import ExitConfig

        config["exits"] = ExitConfig.parse(space, config["exits"]).to_dict()
    exit_phases = [p["name"] for p in phases if p["exits"]]
    if exit_phases and "exits" not in config:
        raise ConfigError(f"phases {exit_phases} train exit heads, but the config has none: add "
                          f"exits: {{stages: [...], width: n}} (stage indices 0..{space.num_stages - 2})")
    first_exit = next((i for i, p in enumerate(phases) if p["exits"]), len(phases))
    later = [p["name"] for p in phases[first_exit:] if not p["exits"]]
    if later:  # a phase that trains the main path after the exits would leave them reading other features
        raise ConfigError(f"phases {later} come after the exit phase {phases[first_exit]['name']!r} but train the "
                          f"main path, which the exit heads learned to read: put the phases with exits: true last")
    return config, space, phases


def _allowed_gene_indices(space, phase: dict, resolution: int) -> list[list[int]]:
    """Per gene, the choice indices this phase may sample. Gene layout of a
    MobileNetV3 space: [kernel per block] [expand per block] [depth per stage]
    [resolution]; the resolution is the batch's."""
    b, s = space.num_blocks, space.num_stages
    values = ([phase["kernel_sizes"]] * b + [phase["expand_ratios"]] * b + [phase["depths"]] * s
              + [(resolution,)])
    if space.has_precision:  # then [weight bits per block] [activation bits per block]
        values += [phase["weight_bits"]] * b + [phase["activation_bits"]] * b
    return [[choices.index(v) for v in allowed] for choices, allowed in zip(space.gene_choices, values)]


class ProgressiveShrinkingTrainer:
    """Trains an elastic MobileNetV3 supernet through all progressive-shrinking phases.

    ``ProgressiveShrinkingTrainer(config, out_dir, resume=False, dist=None).run()``;
    ``config`` is the YAML mapping (see ``configs/mbv3-small-digits.yaml``)."""

    name = "mobilenetv3"

    def __init__(self, config: dict, out_dir: str | Path, resume: bool = False, dist: DistInfo | None = None):
        self.raw_config = config
        self.config, self.space, self.phases = check_config(config)
        self.out_dir = Path(out_dir)
        self.resume = resume
        self.dist = dist
        self.data = self._load_data()  # DataError for a bad path or file, before any work
        overrides = config.get("space_overrides") or {}
        if "num_classes" in overrides and overrides["num_classes"] != self.data.num_classes:
            raise ConfigError(f"space_overrides.num_classes = {overrides['num_classes']!r} disagrees with the data "
                              f"set, which has {self.data.num_classes} classes: remove the override or set it to "
                              f"{self.data.num_classes}")
        if self.data.num_classes != self.space.num_classes:  # the classifier follows the data set
            self.space = self.space.replace(num_classes=self.data.num_classes)
        # checks the checkpoint, space and config before any work (CheckpointError, SpaceMismatchError, ConfigError)
        self._resume_payload = resume_payload(self.out_dir, resume, self.space, self.name, self.config)

    # --- setup ------------------------------------------------------------------------------------
    def _load_data(self):
        from ..data import build_datasets

        data = self.config["data"]
        return build_datasets(data["dataset"], max(self.space.resolutions), self.space.in_channels,
                              data["augmentation"], data["val_fraction"], data["test_fraction"])

    def _setup(self) -> None:
        from ..data import fixed_subset

        cfg, train = self.config, self.config["train"]
        self.dist = setup_process(cfg["device"], train["threads"], train["batch_size"], self.dist)
        self.device = self.dist.device
        self.local_batch = train["batch_size"] // self.dist.world_size
        data = cfg["data"]
        self.train_set = self.data.train
        if data["max_train_images"]:
            self.train_set = fixed_subset(self.train_set, data["max_train_images"], cfg["seed"])
            self.train_set.augmentation = self.data.train.augmentation
        if len(self.train_set) // self.dist.world_size < self.local_batch:
            raise ConfigError(f"train.batch_size = {train['batch_size']} is larger than the training set "
                              f"({len(self.train_set)} images)")
        torch.manual_seed(cfg["seed"])  # the initial weights
        self.model = create_supernet(self.space, **self._supernet_kwargs()).to(self.device)
        if train.get("zero_init_residual"):
            zero_init_residual(self.model)
        self.memory_format = torch.channels_last if train["channels_last"] else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.teacher = None
        self.clock = RunClock()  # wall and CPU time over all segments of a resumed run
        self.log = MetricsLog(self.out_dir / "metrics.jsonl", enabled=self.dist.is_main, clock=self.clock)
        self._phase_started = 0.0  # run seconds (self.clock) when the current phase began
        self.steps_per_epoch = len(self._epoch_batches(0, 0))
        self.history: list[dict] = []

    def _supernet_kwargs(self) -> dict:
        kwargs = {"dropout": self.config["train"]["dropout"]}
        if "exits" in self.config:
            kwargs["exits"] = self.config["exits"]
        return kwargs

    def _epoch_batches(self, phase: int, epoch: int) -> list[np.ndarray]:
        from ..data import epoch_batches

        # (seed, phase, epoch) fixes the order, so a resumed epoch replays exactly
        return epoch_batches(len(self.train_set), self.local_batch, True, self.config["seed"],
                             phase * 100003 + epoch, self.dist.rank, self.dist.world_size, drop_last=True)

    def _new_optimizer(self, phase: dict):
        train = self.config["train"]
        optimizer = build_optimizer(train["optimizer"], self.model, phase["lr"], train["weight_decay"],
                                    train["momentum"])
        total = phase["epochs"] * self.steps_per_epoch
        scheduler = build_scheduler(train["schedule"], optimizer, total, phase["warmup_epochs"] * self.steps_per_epoch,
                                    train["min_lr_factor"])
        return optimizer, scheduler

    def _freeze_teacher(self) -> None:
        teacher = copy.deepcopy(self.model)
        teacher.set_active(self.space.largest())
        for p in teacher.parameters():
            p.requires_grad_(False)
        self.teacher = teacher

    def _start_phase(self, index: int) -> None:
        """What happens once when a phase begins: freeze the teacher after phase
        0, re-order channels when the allowed expand ratios grow."""
        if (index >= 1 and self.teacher is None and self.config["train"]["distillation"] == "frozen"
                and not self.phases[index]["exits"]):
            self._freeze_teacher()
        if index >= 1:
            previous, current = self.phases[index - 1]["expand_ratios"], self.phases[index]["expand_ratios"]
            if set(current) > set(previous):
                keep = previous if len(previous) > 1 else ()
                self.model.sort_channels(keep_expand_ratios=keep)
                self.log.write("sort_channels", phase=index, keep_expand_ratios=list(keep))

    def _save(self, path: Path, phase: int, epoch: int, step: int, optimizer=None, scheduler=None) -> None:
        if not self.dist.is_main:
            return
        extra = {"teacher": self.teacher.state_dict() if self.teacher is not None else None,
                 "supernet_kwargs": self._supernet_kwargs(),
                 "history": self.history, "phase_names": [p["name"] for p in self.phases],
                 "run_log": {**self.log.state(), "phase_started": self._phase_started}}
        save_checkpoint(path, trainer=self.name, space=self.space, config=self.config, model=self.model,
                        optimizer=optimizer, scheduler=scheduler, phase=phase, epoch=epoch, step=step, extra=extra)

    # --- the loop ---------------------------------------------------------------------------------
    def run(self) -> dict:
        self._setup()
        phase_index, epoch, step = 0, 0, 0
        optimizer = scheduler = None
        if self._resume_payload is not None:
            payload = self._resume_payload
            self.model.load_state_dict(payload["model"])
            self.history = list(payload["extra"].get("history", []))
            if payload["extra"].get("teacher") is not None:
                self._freeze_teacher()
                self.teacher.load_state_dict(payload["extra"]["teacher"])
            phase_index, epoch, step = payload["phase"], payload["epoch"], payload["step"]
            if payload["rng"] is not None:
                set_rng_state(payload["rng"])
            if phase_index < len(self.phases) and epoch > 0:  # mid-phase: continue its optimizer and schedule
                optimizer, scheduler = self._new_optimizer(self.phases[phase_index])
                optimizer.load_state_dict(payload["optimizer"])
                scheduler.load_state_dict(payload["scheduler"])
            run_log = payload["extra"].get("run_log") or {}
            dropped = self.log.resume(run_log, step)  # no record twice; the time of earlier segments counts
            self._phase_started = run_log.get("phase_started", self.clock.wall_seconds())
            self.log.write("resume", phase=phase_index, epoch=epoch, step=step, segment=self.clock.segment,
                           dropped_records=dropped)
            self._print(f"resuming at phase {phase_index} ({self._phase_name(phase_index)}), epoch {epoch}")
        else:
            self.log.start()
            self.log.write("start", config=self.config, space=self.space.to_dict(),
                           world_size=self.dist.world_size, train_images=len(self.train_set),
                           steps_per_epoch=self.steps_per_epoch)
        while phase_index < len(self.phases):
            phase = self.phases[phase_index]
            if epoch == 0:
                self._phase_started = self.clock.wall_seconds()
                self._start_phase(phase_index)
                optimizer, scheduler = self._new_optimizer(phase)
                self.log.write("phase_start", phase=phase_index, name=phase["name"],
                               **{k: list(phase[k]) for k in CHOICE_KEYS},
                               subnets_per_step=phase["subnets_per_step"], epochs=phase["epochs"], lr=phase["lr"])
                self._print(f"phase {phase_index + 1}/{len(self.phases)} {phase['name']}: kernels "
                            f"{list(phase['kernel_sizes'])}, expand {list(phase['expand_ratios'])}, depths "
                            f"{list(phase['depths'])}, {phase['subnets_per_step']} subnet(s)/step, "
                            f"{phase['epochs']} epochs")
            while epoch < phase["epochs"]:
                with lockstep_initialization():  # every process runs the same training steps
                    stats = self._train_epoch(phase_index, epoch, step, optimizer, scheduler)
                step += stats["steps"]
                epoch += 1
                average_buffers(self.model)
                self.log.write("epoch", phase=phase_index, name=phase["name"], epoch=epoch, step=step, **stats)
                if epoch < phase["epochs"]:
                    self._save(self.out_dir / "last.pt", phase_index, epoch, step, optimizer, scheduler)
            summary = self._end_phase(phase_index, stats)
            self.history.append(summary)
            phase_index, epoch = phase_index + 1, 0
            self._save(self.out_dir / f"phase{phase_index - 1}-{phase['name']}.pt", phase_index, 0, step)
            self._save(self.out_dir / "last.pt", phase_index, 0, step)
        self._save(self.out_dir / "final.pt", phase_index, 0, step)
        barrier()
        # wall/CPU seconds over all segments of a resumed run, and this process's share
        result = {"phases": self.history, "steps": step, **self.clock.totals()}
        if self.dist.is_main:
            atomic_write_json(self.out_dir / "summary.json", result)
            self.log.write("done", steps=step)
            self._print("\n" + format_table(self.history, ["phase", "name", "epochs", "minutes", "train_loss",
                                                           "largest_top1", "smallest_top1"]))
            self._print(f"final supernet: {self.out_dir / 'final.pt'}")
        return result

    def _train_epoch(self, phase_index: int, epoch: int, step: int, optimizer, scheduler) -> dict:
        from tqdm import tqdm

        cfg, train = self.config, self.config["train"]
        phase = self.phases[phase_index]
        seed, rank = cfg["seed"], self.dist.rank
        torch.manual_seed(int(step_generator(seed, phase_index, epoch, rank, 1).integers(2**62)))  # dropout
        self.model.train()
        if phase["exits"]:
            return self._train_exits_epoch(phase_index, epoch, step, optimizer, scheduler)
        self._freeze_body(False)
        if self.teacher is not None:
            self.teacher.train()  # batch statistics, as the reference trainer
            self.teacher.dropout.eval()
        batches = self._epoch_batches(phase_index, epoch)
        show = self.dist.is_main and train["progress"]
        bar = tqdm(batches, desc=f"{phase['name']} {epoch + 1}/{phase['epochs']}", disable=not show, leave=False,
                   file=sys.stderr, dynamic_ncols=True)
        total_loss = torch.zeros(2, dtype=torch.float64)  # (loss sum, batches)
        correct = torch.zeros(2, dtype=torch.float64)  # (correct, seen)
        n = phase["subnets_per_step"]
        for b, positions in enumerate(bar):
            resolution, archs, genes, images, labels = self._step_batch(phase_index, epoch, b, positions)
            teacher_logits = None
            if self.teacher is not None and train["kd_ratio"] > 0:
                with torch.no_grad():
                    teacher_logits = self.teacher(images)
            inplace_teacher = train["distillation"] == "inplace" and len(archs) > n  # archs[0] is the largest
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for i, arch in enumerate(archs):
                self.model.set_active(arch)
                is_teacher = inplace_teacher and i == 0
                regularized = train["regularize"] == "all" or is_teacher or not inplace_teacher
                self.model.dropout.train(regularized)
                logits = self.model(images)
                loss = distillation_loss(logits, labels, None if is_teacher else teacher_logits, train["kd_ratio"],
                                         train["label_smoothing"] if regularized else 0.0, train["kd_temperature"],
                                         label_ratio=0.0 if train["student_loss"] == "teacher" else 1.0)
                if train["subnet_gradients"] == "mean":
                    loss = loss / len(archs)
                loss.backward()
                if is_teacher and train["kd_ratio"] > 0:
                    teacher_logits = logits.detach()
                step_loss += loss.item()
                correct += torch.tensor([(logits.argmax(1) == labels).sum().item(), len(labels)], dtype=torch.float64)
            all_reduce_gradients(self.model)
            check_finite_step(step_loss, self.model, optimizer,
                              f"phase {phase_index} ({self.phases[phase_index]['name']}), epoch {epoch}, "
                              f"batch {b}, step {step + b + 1}")
            optimizer.step()
            scheduler.step()
            total_loss += torch.tensor([step_loss, 1.0], dtype=torch.float64)
            global_step = step + b + 1
            if train["log_samples"]:
                self._log_samples(phase_index, epoch, b, resolution, genes, positions)
            if b % train["log_every"] == 0 or b == len(batches) - 1:
                lr = optimizer.param_groups[0]["lr"]
                bar.set_postfix(loss=f"{step_loss:.3f}", res=resolution, lr=f"{lr:.4f}")
                self.log.write("step", phase=phase_index, epoch=epoch, batch=b, step=global_step, loss=step_loss,
                               lr=lr, resolution=resolution, subnets=genes.tolist())
        bar.close()
        all_reduce_mean(total_loss)
        all_reduce_mean(correct)
        return {"steps": len(batches), "train_loss": total_loss[0].item() / max(1.0, total_loss[1].item()),
                "train_top1": 100.0 * correct[0].item() / max(1.0, correct[1].item())}

    def _freeze_body(self, frozen: bool) -> None:
        """Exit phases train the exit heads alone: the main path gets no gradient, and its
        BatchNorm layers normalise with batch statistics (as in training) without moving
        their running ones (momentum 0)."""
        if getattr(self.model, "exits", None) is None:
            return
        for p in self.model.body_parameters():
            p.requires_grad_(not frozen)
        heads = set(self.model.exit_heads.modules())
        for module in self.model.modules():
            if isinstance(module, torch.nn.BatchNorm2d) and module not in heads:
                if frozen and not hasattr(module, "_trained_momentum"):
                    module._trained_momentum = module.momentum
                    module.momentum = 0.0
                elif not frozen and hasattr(module, "_trained_momentum"):
                    module.momentum = module._trained_momentum
                    del module._trained_momentum

    def _train_exits_epoch(self, phase_index: int, epoch: int, step: int, optimizer, scheduler) -> dict:
        """One epoch of an exit phase: each subnet of a step runs once; every exit's loss is CE on the
        labels plus kd_ratio x the soft-target loss against the subnet's final logits."""
        from tqdm import tqdm

        cfg, train = self.config, self.config["train"]
        phase = self.phases[phase_index]
        self._freeze_body(True)
        self.model.dropout.eval()  # the final logits are the exits' soft targets: no dropout noise on them
        batches = self._epoch_batches(phase_index, epoch)
        bar = tqdm(batches, desc=f"{phase['name']} {epoch + 1}/{phase['epochs']}",
                   disable=not (self.dist.is_main and train["progress"]), leave=False, file=sys.stderr,
                   dynamic_ncols=True)
        total_loss = torch.zeros(2, dtype=torch.float64)
        correct = torch.zeros(2, dtype=torch.float64)  # first exit's agreement with the labels
        try:
            for b, positions in enumerate(bar):
                resolution, archs, genes, images, labels = self._step_batch(phase_index, epoch, b, positions)
                optimizer.zero_grad(set_to_none=True)
                step_loss = 0.0
                for arch in archs:
                    self.model.set_active(arch)
                    *exit_logits, final = self.model.forward_exits(images, body_grad=False)
                    loss = sum(distillation_loss(logits, labels, final.detach(), train["kd_ratio"],
                                                 train["label_smoothing"], train["kd_temperature"])
                               for logits in exit_logits) / len(exit_logits)
                    if train["subnet_gradients"] == "mean":
                        loss = loss / len(archs)
                    loss.backward()
                    step_loss += loss.item()
                    correct += torch.tensor([(exit_logits[0].argmax(1) == labels).sum().item(), len(labels)],
                                            dtype=torch.float64)
                all_reduce_gradients(self.model)
                check_finite_step(step_loss, self.model, optimizer,
                                  f"phase {phase_index} ({phase['name']}), epoch {epoch}, batch {b}, "
                                  f"step {step + b + 1}")
                optimizer.step()
                scheduler.step()
                total_loss += torch.tensor([step_loss, 1.0], dtype=torch.float64)
                if b % train["log_every"] == 0 or b == len(batches) - 1:
                    lr = optimizer.param_groups[0]["lr"]
                    bar.set_postfix(loss=f"{step_loss:.3f}", res=resolution, lr=f"{lr:.4f}")
                    self.log.write("step", phase=phase_index, epoch=epoch, batch=b, step=step + b + 1,
                                   loss=step_loss, lr=lr, resolution=resolution, subnets=genes.tolist())
        finally:
            bar.close()
            self._freeze_body(False)
        all_reduce_mean(total_loss)
        all_reduce_mean(correct)
        return {"steps": len(batches), "train_loss": total_loss[0].item() / max(1.0, total_loss[1].item()),
                "train_top1": 100.0 * correct[0].item() / max(1.0, correct[1].item())}

    def _step_batch(self, phase_index: int, epoch: int, batch: int, positions) -> tuple:
        """(resolution, subnets, their genes, images, labels) of one step: the resolution and subnets
        from the generator of (seed, phase, epoch, step), the augmentation from this rank's own."""
        seed, phase = self.config["seed"], self.phases[phase_index]
        rng = step_generator(seed, phase_index, epoch, batch)
        resolution = int(phase["resolutions"][rng.integers(len(phase["resolutions"]))])
        archs, genes = self._step_archs(phase, rng, resolution, batch)
        augment_gen = torch.Generator().manual_seed(int(step_generator(seed, phase_index, epoch, batch,
                                                                      self.dist.rank, 2).integers(2**62)))
        images, labels = self.train_set.get_batch(positions, resolution, augment_gen)
        return (resolution, archs, genes, images.to(self.device, memory_format=self.memory_format),
                labels.to(self.device))

    def _step_archs(self, phase: dict, rng: np.random.Generator, resolution: int,
                    batch: int = 0) -> tuple[list, np.ndarray]:
        """The subnets one step trains, in order, and their genes: ``subnets_per_step``
        draws from the phase's choices (with the sandwich rule the first is the
        phase's smallest), preceded by the phase's largest subnet for in-place
        distillation when the phase has more than that one subnet. With in-place
        distillation and one draw per step, the sandwich alternates: the smallest
        at even ``batch`` indices, a random subnet at odd ones."""
        train, n = self.config["train"], phase["subnets_per_step"]
        genes = sample_restricted_genes(self.space, n, rng, _allowed_gene_indices(self.space, phase, resolution))
        largest, smallest = self._phase_extreme(phase, max, resolution), self._phase_extreme(phase, min, resolution)
        inplace = train["distillation"] == "inplace" and largest != smallest
        if train["sandwich"] and (n > 1 or (inplace and batch % 2 == 0)):  # the phase's smallest trains too
            genes[0] = self.space.to_genes(smallest)[0]
        if inplace:
            genes = np.concatenate([self.space.to_genes(largest), genes])
        return self.space.from_genes(genes), genes

    def _log_samples(self, phase, epoch, batch, resolution, genes, positions) -> None:
        """Audit trail of what each rank trained (``train.log_samples``): one file per rank."""
        from ..io import append_jsonl

        checksum = float(sum(p.detach().double().sum().item() for p in self.model.parameters()))
        append_jsonl(self.out_dir / f"samples.rank{self.dist.rank}.jsonl",
                     {"phase": phase, "epoch": epoch, "batch": batch, "resolution": resolution,
                      "genes": genes.tolist(), "positions": [int(p) for p in positions],
                      "param_checksum": checksum})

    def _end_phase(self, index: int, stats: dict) -> dict:
        """Evaluate the largest and smallest subnets of the phase (re-calibrated BN) on the val split."""
        from ..evaluation import SubnetEvaluator

        phase = self.phases[index]
        summary = {"phase": index, "name": phase["name"], "epochs": phase["epochs"],
                   "minutes": round((self.clock.wall_seconds() - self._phase_started) / 60, 2),
                   "train_loss": round(stats["train_loss"], 4)}
        if self.dist.is_main:
            evaluator = SubnetEvaluator(self.model, self.data, "val", self.config["data"]["calib_images"],
                                        self.config["train"]["eval_batch_size"])
            largest = evaluator.evaluate(self.space.largest())
            smallest_arch = self._phase_extreme(phase, min)
            smallest = evaluator.evaluate(smallest_arch)
            summary.update(largest_top1=round(largest["top1"], 2), smallest_top1=round(smallest["top1"], 2),
                           smallest_macs=smallest["macs"])
            largest_arch = self._phase_extreme(phase, max)
            one_network = largest_arch == self._phase_extreme(phase, min, largest_arch.resolution)
            what = "teacher (full network)" if index == 0 and one_network else "largest subnet"
            self.log.write("phase_end", **summary, largest=largest, smallest=smallest)
            self._print(f"phase {phase['name']} done: {what} val top-1 {largest['top1']:.2f}%, smallest subnet of "
                        f"this phase {smallest['top1']:.2f}% ({smallest['macs']:,} MACs)")
        barrier()
        # the evaluation above, on the main process only, may have started quantisers no training step had run
        broadcast_from_main([tensor for module in self.model.modules() if isinstance(module, ActivationQuantizer)
                             for tensor in (module.step, module.initialized)])
        return summary

    def _phase_extreme(self, phase: dict, pick, resolution: int | None = None):
        """The phase's smallest (``pick=min``) or largest subnet."""
        b = self.space.num_blocks
        config = {"kernel_sizes": [pick(phase["kernel_sizes"])] * b,
                  "expand_ratios": [pick(phase["expand_ratios"])] * b, "depths": [pick(phase["depths"])] * self.space.num_stages,
                  "resolution": resolution or pick(phase["resolutions"])}
        if self.space.has_precision:
            config.update({key: [pick(phase[key])] * b for key in PRECISION_KEYS})
        return self.space.parse(config)

    def _phase_name(self, index: int) -> str:
        return self.phases[index]["name"] if index < len(self.phases) else "done"

    def _print(self, message: str) -> None:
        if self.dist.is_main:
            print(message, flush=True)


DEFAULT_EXIT_PHASE = {"name": "exits", "epochs": 2, "lr": 0.05, "subnets_per_step": 2, "exits": True}


def seed_exit_phase(source, out_dir, exits: dict, phase: dict | None = None) -> Path:
    """Prepare ``out_dir`` to train exit heads on the weights of a finished run.

    Writes ``out_dir/config.yaml`` (the source run's config with ``exits`` and
    one more phase, default :data:`DEFAULT_EXIT_PHASE`) and ``out_dir/last.pt``,
    a checkpoint of the supernet with exits (the source's weights, fresh exit
    heads) positioned at the start of that phase, so that
    ``train_supernet --config out_dir/config.yaml --out out_dir --resume``
    trains the exit phase only (and resumes after a kill like any run).
    Returns the config path. A Transformer run gets per-token decoder exits instead
    (:func:`ofa.training.transformer.seed_exit_phase`: ``exits={"layers": [...]}``,
    ``phase={"steps": n, "lr": x}``)."""
    import yaml

    from ..io import atomic_write_text
    from .checkpoint import checkpoint_space, load_checkpoint

    if Path(out_dir).resolve() == Path(source).resolve().parent:
        raise ConfigError(f"out_dir {str(out_dir)!r} is the directory of {str(source)!r}: its last.pt and config.yaml "
                          f"would be overwritten; give another directory for the exit phase")
    payload = load_checkpoint(source)
    if payload["trainer"] == "transformer":  # per-token decoder exits: the Transformer trainer seeds its own phase
        from .transformer import seed_exit_phase as seed_transformer_exit_phase

        return seed_transformer_exit_phase(source, out_dir, exits, phase)
    if payload["trainer"] != ProgressiveShrinkingTrainer.name:
        raise ConfigError(f"{source} was written by the {payload['trainer']!r} trainer; exits are trained on "
                          f"MobileNetV3 supernets (the {ProgressiveShrinkingTrainer.name!r} trainer)")
    raw = copy.deepcopy(payload["config"])
    if raw.get("exits") is not None:
        raise ConfigError(f"{source} already has exit heads ({raw['exits']}); train its exit phase with --resume")
    done = len(build_phases(checkpoint_space(payload), raw.get("phases")))
    if payload["phase"] < done:
        raise ConfigError(f"{source} stopped in phase {payload['phase']} of {done}: finish that run first "
                          f"(--resume), then add exits to its final checkpoint")
    phases = raw.get("phases") or [dict(p) for p in DEFAULT_PHASES]
    raw["phases"] = list(phases) + [dict(phase or DEFAULT_EXIT_PHASE)]
    raw["exits"] = exits
    config, _, checked = check_config(raw)
    if not checked[-1]["exits"]:
        raise ConfigError("the phase added to train exits needs exits: true")
    space = checkpoint_space(payload)
    out_dir = Path(out_dir)
    config_path = atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(raw, sort_keys=False))
    torch.manual_seed(config["seed"])  # the exit heads' initial weights
    kwargs = {"dropout": config["train"]["dropout"], "exits": config["exits"]}
    model = create_supernet(space, **kwargs)
    state = model.state_dict()
    state.update(payload["model"])
    model.load_state_dict(state)
    extra = {**payload["extra"], "supernet_kwargs": kwargs}
    save_checkpoint(out_dir / "last.pt", trainer=payload["trainer"], space=space, config=config, model=model,
                    phase=len(checked) - 1, epoch=0, step=payload["step"], extra=extra)
    return config_path


register_trainer("mobilenetv3", ProgressiveShrinkingTrainer)

__all__ = ["CHOICE_KEYS", "DEFAULT_CONFIG", "DEFAULT_EXIT_PHASE", "DEFAULT_PHASES", "DISTILLATION_TEACHERS",
           "ProgressiveShrinkingTrainer", "build_phases", "check_config", "seed_exit_phase"]
