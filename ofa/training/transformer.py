"""Training elastic Transformer supernets (HAT) on text.

``ofa-train-supernet --config configs/transformer-small.yaml --out runs/t``

Every step draws ``subnets_per_step`` architectures from a generator seeded
by (seed, step) - the same on every rank and after a resume - either
uniformly (``sampling: uniform``) or by the sandwich rule (``sampling:
sandwich``: the largest, the smallest, and random ones). With ``kd_ratio > 0``
the largest subnet's outputs on the same batch are the soft targets of the
others (in-place distillation, Yu et al. 2020); the loss is the
label-smoothed cross entropy plus ``kd_ratio`` x the soft-target loss
(:func:`ofa.training.losses.distillation_loss`), gradients of all subnets are
accumulated before one optimizer step. The learning rate follows
``inverse_sqrt`` (Vaswani et al.: linear warm-up, then ``1/sqrt(step)``) or
``cosine``.

Encoder-decoder spaces train on parallel text (the default task translates
numbers written in words, English -> French, :mod:`ofa.data.text`);
encoder-only spaces with a masked-LM head train with BERT's masking on the
source side. The space's vocabulary sizes are enlarged if the data's
vocabulary does not fit (otherwise the space stays as named).

With ``exits: {layers: [...]}`` the supernet has per-token early exits after
those decoder layers (:mod:`ofa.spaces.transformer_exits`; CALM, Schuster et
al. 2022), and every subnet's loss is CALM's weighted average of the losses
at its exits and at its final output, weights proportional to the depth each
reads (:func:`ofa.models.transformer_exits.exit_loss_weights`); at an exit the
loss is the label-smoothed cross entropy plus ``kd_ratio`` x the soft-target
loss against the same subnet's final output (self-distillation, detached).
``exit_phase: {steps: n, lr: x}`` adds ``n`` steps after ``train.steps`` at
the constant learning rate ``x``: :func:`seed_exit_phase` prepares a directory
that adds exits to a finished run and trains only that phase.

Checkpoints (``last.pt`` every ``checkpoint_every`` steps, ``final.pt``) use
:mod:`ofa.training.checkpoint`; the data order of an epoch, the subnets and
the dropout of a step are functions of (seed, step), so a run killed at any
moment and resumed ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from ..evaluation import evaluate_subnet, translation_scores  # noqa: F401 (re-exported: the trainer's metrics)
from ..io import atomic_write_json
from ..models.transformer import PAD
from ..supernets import create_supernet
from . import register_trainer
from .checkpoint import load_checkpoint, save_checkpoint, set_rng_state
from .config import check_value, config_space, merge_defaults
from .distributed import DistInfo, all_reduce_gradients, barrier, setup_process
from .finite import check_finite_step
from .losses import distillation_loss
from .optim import OPTIMIZERS, build_optimizer
from .resume import resume_payload
from .runlog import MetricsLog, RunClock, format_table
from .sampling import step_generator
from .schedule import SCHEDULES, build_scheduler, inverse_sqrt_factor



SAMPLINGS = ("uniform", "sandwich")
DEFAULT_EXIT_PHASE = {"steps": 300, "lr": 0.0005}

DEFAULT_CONFIG = {
    "space": "transformer-small",
    "space_overrides": {},
    "seed": 0,
    "device": "auto",
    "data": {
        "source": "numbers",   # "numbers" or {train: [src, tgt], val: [...], test: [...]}
        "level": "word",
        "train_size": 20000, "val_size": 500, "test_size": 500, "src_lang": "en", "tgt_lang": "fr",
        "max_digits": 6, "val_fraction": 0.05, "test_fraction": 0.05,
        "seed": None,          # the data's own seed (generation, splits); None: the run's seed
    },
    "train": {
        "steps": 1500, "batch_size": 64, "optimizer": "adamw", "lr": 0.002, "momentum": 0.9,
        "weight_decay": 0.01, "schedule": "inverse_sqrt", "warmup_steps": 200, "min_lr_factor": 0.0,
        "sampling": "sandwich", "subnets_per_step": 3, "kd_ratio": 1.0, "kd_temperature": 1.0,
        "label_smoothing": 0.1, "dropout": 0.1, "clip_grad_norm": 1.0, "mask_prob": 0.15,
        "threads": 0, "log_every": 50, "eval_every": 500, "checkpoint_every": 250, "eval_batch_size": 250,
        "eval_sentences": 500, "progress": True,
    },
    "exits": None,       # {layers: [...]}: per-token early exits after those decoder layers
    "exit_phase": None,  # {steps: n, lr: x}: n more steps after train.steps at the constant rate x
}


def check_config(raw: dict) -> tuple[dict, object]:
    """(validated config, space as named - vocabulary sizes not yet set)."""
    config = merge_defaults(raw, DEFAULT_CONFIG, open_keys=("space", "space_overrides", "data.source"))
    space = config_space(config)
    if space.type_name != "transformer":
        raise ConfigError(f"the Transformer trainer trains transformer spaces, got {space.type_name!r}")
    if not space.has_decoder and space.encoder_head != "lm":
        raise ConfigError("encoder-only spaces train with the masked-LM head here (encoder_head: lm); "
                          "a classifier head needs labelled data this trainer does not read")
    check_value(config["seed"], "seed", minimum=0, integer=True)
    check_value(config["device"], "device", choices=("auto", "cpu", "cuda"))
    data, train = config["data"], config["train"]
    check_value(data["level"], "data.level", choices=("word", "char"))
    if data["seed"] is not None:
        check_value(data["seed"], "data.seed", minimum=0, integer=True)
    for key in ("train_size", "val_size", "test_size"):
        check_value(data[key], f"data.{key}", minimum=1, integer=True)
    for key in ("val_fraction", "test_fraction"):
        check_value(data[key], f"data.{key}", above=0, maximum=0.49)
    for key in ("steps", "batch_size", "subnets_per_step", "log_every", "eval_every", "checkpoint_every",
                "eval_batch_size", "eval_sentences"):
        check_value(train[key], f"train.{key}", minimum=1, integer=True)
    check_value(train["warmup_steps"], "train.warmup_steps", minimum=0, integer=True)
    check_value(train["threads"], "train.threads", minimum=0, integer=True)
    check_value(train["optimizer"], "train.optimizer", choices=OPTIMIZERS)
    check_value(train["lr"], "train.lr", above=0)
    check_value(train["momentum"], "train.momentum", minimum=0, maximum=0.999)
    check_value(train["weight_decay"], "train.weight_decay", minimum=0, maximum=1)
    check_value(train["schedule"], "train.schedule", choices=sorted(SCHEDULES))
    check_value(train["min_lr_factor"], "train.min_lr_factor", minimum=0, maximum=1)
    check_value(train["sampling"], "train.sampling", choices=SAMPLINGS)
    if train["sampling"] == "sandwich" and train["subnets_per_step"] < 2:
        raise ConfigError("train.sampling = 'sandwich' needs train.subnets_per_step >= 2 (largest + smallest "
                          "+ random ones)")
    check_value(train["kd_ratio"], "train.kd_ratio", minimum=0)
    check_value(train["kd_temperature"], "train.kd_temperature", above=0)
    check_value(train["label_smoothing"], "train.label_smoothing", minimum=0, maximum=0.99)
    check_value(train["dropout"], "train.dropout", minimum=0, maximum=0.99)
    check_value(train["clip_grad_norm"], "train.clip_grad_norm", minimum=0)
    check_value(train["mask_prob"], "train.mask_prob", above=0, maximum=1)
    _check_exit_keys(config, space)
    return config, space


def _check_exit_keys(config: dict, space) -> None:
    """Validate ``exits`` and ``exit_phase`` in place; a config without them is the config it
    always was (resume compares configs), so absent keys are removed rather than stored as null."""
    from ..spaces.transformer_exits import DecoderExitConfig

    for key in ("exits", "exit_phase"):
        if config[key] is None:
            del config[key]
    if "exits" in config:
        config["exits"] = DecoderExitConfig.parse(space, config["exits"]).to_dict()
    if "exit_phase" in config:
        phase = config["exit_phase"]
        if "exits" not in config:
            raise ConfigError("exit_phase trains exits, but the config has none: add exits: {layers: [...]} "
                              f"(decoder layer indices 0..{space.max_decoder_layers - 2})")
        if not isinstance(phase, dict) or sorted(phase) != ["lr", "steps"]:
            raise ConfigError(f"exit_phase must be a mapping {{steps: n, lr: x}}, got {phase!r}")
        check_value(phase["steps"], "exit_phase.steps", minimum=1, integer=True)
        check_value(phase["lr"], "exit_phase.lr", above=0)
        config["exit_phase"] = {"steps": phase["steps"], "lr": float(phase["lr"])}


def build_data(config: dict):
    """The text data of a validated config (:func:`ofa.data.text.build_text_data`)."""
    from ..data.text import build_text_data

    data = config["data"]
    seed = config["seed"] if data.get("seed") is None else data["seed"]
    if data["source"] == "numbers":
        return build_text_data("numbers", train_size=data["train_size"], val_size=data["val_size"],
                               test_size=data["test_size"], src_lang=data["src_lang"], tgt_lang=data["tgt_lang"],
                               level=data["level"], seed=seed, max_digits=data["max_digits"])
    return build_text_data(data["source"], level=data["level"], val_fraction=data["val_fraction"],
                           test_fraction=data["test_fraction"], seed=seed)


def fit_space_to_data(space, data):
    """The space, its vocabulary sizes enlarged where the data's vocabulary
    does not fit (a vocabulary that fits keeps the space - and its fingerprint
    - as named: unused embedding rows are harmless); refuses sentences longer
    than the space's ``max_positions``."""
    changes = {}
    if len(data.src_vocab) > space.src_vocab_size:
        changes["src_vocab_size"] = len(data.src_vocab)
    if space.has_decoder and len(data.tgt_vocab) > space.tgt_vocab_size:
        changes["tgt_vocab_size"] = len(data.tgt_vocab)
    space = space.replace(**changes) if changes else space
    longest = data.max_length()
    if longest > space.max_positions:
        raise ConfigError(f"the data has sequences of {longest} tokens (with BOS/EOS) but the space allows "
                          f"max_positions={space.max_positions}: set space_overrides: {{max_positions: {longest}}}")
    return space


# --- losses and metrics --------------------------------------------------------------------------------------
def seq2seq_loss(model, src: torch.Tensor, tgt: torch.Tensor, teacher_logits: torch.Tensor | None = None,
                 kd_ratio: float = 0.0, label_smoothing: float = 0.0, temperature: float = 1.0):
    """(loss, logits of the real target positions (N, vocab)). The model reads
    ``tgt[:, :-1]`` and predicts ``tgt[:, 1:]``; padding is not scored."""
    labels = tgt[:, 1:]
    keep = labels.ne(PAD)
    logits = model(src, tgt[:, :-1])[keep]
    loss = distillation_loss(logits, labels[keep], teacher_logits, kd_ratio, label_smoothing, temperature)
    return loss, logits


def seq2seq_exit_loss(model, src: torch.Tensor, tgt: torch.Tensor, teacher_logits: torch.Tensor | None = None,
                      kd_ratio: float = 0.0, label_smoothing: float = 0.0, temperature: float = 1.0):
    """:func:`seq2seq_loss` of a network with exits: CALM's weighted average of the per-layer losses
    (see the module docstring). The final output's loss is :func:`seq2seq_loss`'s; each exit's
    distils the final output (detached) with ``kd_ratio``. Returns (loss, final logits)."""
    from ..models.transformer_exits import exit_logits, exit_loss_weights

    labels = tgt[:, 1:]
    keep = labels.ne(PAD)
    *exits, final = (logits[keep] for logits in exit_logits(model, src, tgt[:, :-1]))
    weights = exit_loss_weights(model)
    loss = weights[-1] * distillation_loss(final, labels[keep], teacher_logits, kd_ratio, label_smoothing,
                                           temperature)
    for weight, logits in zip(weights, exits):
        loss = loss + weight * distillation_loss(logits, labels[keep], final.detach(), kd_ratio, label_smoothing,
                                                 temperature)
    return loss, final


def masked_lm_loss(model, inputs: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None = None,
                   kd_ratio: float = 0.0, label_smoothing: float = 0.0, temperature: float = 1.0):
    """(loss, logits of the masked positions (N, vocab))."""
    keep = labels.ne(-100)
    logits = model(inputs)[keep]
    loss = distillation_loss(logits, labels[keep], teacher_logits, kd_ratio, label_smoothing, temperature)
    return loss, logits


# --- subnet sampling ------------------------------------------------------------------------------------------
def sample_subnets(space, rng: np.random.Generator, n: int, sampling: str = "uniform") -> list:
    """``n`` architectures for one step: uniform draws, or the sandwich rule
    (largest, smallest, then ``n - 2`` uniform draws)."""
    if sampling == "sandwich":
        return [space.largest(), space.smallest()] + (space.sample(rng, n - 2) if n > 2 else [])
    if sampling != "uniform":
        raise ConfigError(f"sampling {sampling!r} unknown; allowed: {SAMPLINGS}")
    return space.sample(rng, n)


def _run_at(model, arch):
    """Point a supernet at ``arch``; a static network is its own architecture."""
    if hasattr(model, "set_active"):
        model.set_active(arch)
    return model


# --- the trainer ---------------------------------------------------------------------------------------------
class TransformerTrainer:
    """Trains an elastic Transformer supernet (or, with ``fixed_arch``, one
    static subnet from scratch with the same recipe).

    ``TransformerTrainer(config, out_dir, resume=False, dist=None).run()``;
    ``config`` is the YAML mapping (see ``configs/transformer-small.yaml``)."""

    name = "transformer"

    def __init__(self, config: dict, out_dir: str | Path, resume: bool = False, dist: DistInfo | None = None,
                 fixed_arch=None, data=None):
        self.config, named_space = check_config(config)
        self.out_dir = Path(out_dir)
        self.dist = dist
        self.data = build_data(self.config) if data is None else data
        self.space = fit_space_to_data(named_space, self.data)
        self.fixed_arch = None if fixed_arch is None else self.space.parse(fixed_arch)
        self._resume_payload = resume_payload(self.out_dir, resume, self.space, self.name, self.config)

    # --- setup ------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Build the model, optimizer, schedule and log (run() calls it; so can step-by-step users)."""
        from ..models.transformer import Transformer

        cfg, train = self.config, self.config["train"]
        self.dist = setup_process(cfg["device"], train["threads"], train["batch_size"], self.dist)
        self.device = self.dist.device
        self.sources, self.targets = self.data.encode("train")
        if len(self.sources) < train["batch_size"]:
            raise ConfigError(f"train.batch_size = {train['batch_size']} is larger than the training set "
                              f"({len(self.sources)} sentences)")
        self.batches_per_epoch = len(self.sources) // train["batch_size"]
        self.total_steps = train["steps"] + cfg.get("exit_phase", {}).get("steps", 0)
        torch.manual_seed(cfg["seed"])  # the initial weights
        if self.fixed_arch is None:
            self.model = create_supernet(self.space, **self._model_kwargs()).to(self.device)
        else:
            self.model = Transformer(self.space, self.fixed_arch, **self._model_kwargs()).to(self.device)
        self.optimizer = build_optimizer(train["optimizer"], self.model, train["lr"], train["weight_decay"],
                                         train["momentum"])
        self.scheduler = build_scheduler(train["schedule"], self.optimizer, train["steps"], train["warmup_steps"],
                                         train["min_lr_factor"])
        self.clock = RunClock()  # wall and CPU time over all segments of a resumed run
        self.log = MetricsLog(self.out_dir / "metrics.jsonl", enabled=self.dist.is_main, clock=self.clock)
        self.history: list[dict] = []

    def _model_kwargs(self) -> dict:
        kwargs = {"dropout": self.config["train"]["dropout"]}
        if "exits" in self.config:  # without exits, the kwargs (and checkpoints) are what they always were
            kwargs["exits"] = self.config["exits"]
        return kwargs

    def _batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of the global batch of ``step``: the order of
        each epoch is a permutation seeded by (seed, epoch)."""
        from ..data.text import pad_batch

        size = self.config["train"]["batch_size"]
        epoch, index = divmod(step, self.batches_per_epoch)
        order = np.random.default_rng([self.config["seed"], epoch]).permutation(len(self.sources))
        rows = order[index * size:(index + 1) * size][self.dist.rank::self.dist.world_size]
        return (pad_batch([self.sources[i] for i in rows]).to(self.device),
                pad_batch([self.targets[i] for i in rows]).to(self.device))

    def _archs(self, step: int) -> list:
        if self.fixed_arch is not None:
            return [self.fixed_arch]
        train = self.config["train"]
        return sample_subnets(self.space, step_generator(self.config["seed"], step), train["subnets_per_step"],
                              train["sampling"])

    def _save(self, path: Path, step: int) -> None:
        if not self.dist.is_main:
            return
        extra = {"supernet_kwargs": self._model_kwargs(), "history": self.history,
                 "src_vocab": self.data.src_vocab.to_list(), "tgt_vocab": self.data.tgt_vocab.to_list(),
                 "fixed_arch": None if self.fixed_arch is None else self.fixed_arch.to_dict(),
                 "run_log": self.log.state()}
        save_checkpoint(path, trainer=self.name, space=self.space, config=self.config, model=self.model,
                        optimizer=self.optimizer, scheduler=self.scheduler, step=step, extra=extra)

    # --- one step -------------------------------------------------------------------------------------
    def train_step(self, step: int) -> float:
        """One optimizer step over the subnets of ``step``; returns the summed loss."""
        from ..data.text import mask_tokens

        train = self.config["train"]
        seed = self.config["seed"]
        torch.manual_seed(int(step_generator(seed, step, self.dist.rank, 1).integers(2**62)))  # dropout, masking
        src, tgt = self._batch(step)
        if self.space.has_decoder:
            batch = (src, tgt)
            loss_fn = seq2seq_exit_loss if "exits" in self.config else seq2seq_loss
        else:
            generator = torch.Generator().manual_seed(int(step_generator(seed, step, self.dist.rank, 2).integers(2**62)))
            inputs, labels = mask_tokens(src.cpu(), self.space.src_vocab_size, generator, train["mask_prob"])
            batch = (inputs.to(self.device), labels.to(self.device))
            loss_fn = masked_lm_loss
        archs = self._archs(step)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        teacher = None
        use_kd = train["kd_ratio"] > 0 and self.fixed_arch is None
        largest = self.space.largest()
        if use_kd and archs[0] != largest:  # in-place distillation needs the largest subnet's outputs
            with torch.no_grad():
                _, teacher = loss_fn(_run_at(self.model, largest), *batch)
        total = 0.0
        for arch in archs:
            is_teacher = arch == largest
            loss, logits = loss_fn(_run_at(self.model, arch), *batch, None if is_teacher else teacher,
                                   train["kd_ratio"], train["label_smoothing"], train["kd_temperature"])
            (loss / len(archs)).backward()
            total += loss.item()
            if is_teacher and use_kd:
                teacher = logits.detach()
        all_reduce_gradients(self.model)
        check_finite_step(total, self.model, self.optimizer, f"step {step}")
        if train["clip_grad_norm"] > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), train["clip_grad_norm"])
        if step >= train["steps"]:  # the exit phase: a constant rate, the schedule stays where it ended
            for group in self.optimizer.param_groups:
                group["lr"] = self.config["exit_phase"]["lr"]
            self.optimizer.step()
        else:
            self.optimizer.step()
            self.scheduler.step()
        return total

    # --- the loop ---------------------------------------------------------------------------------
    def run(self) -> dict:
        from tqdm import tqdm

        self.setup()
        train = self.config["train"]
        step = 0
        if self._resume_payload is not None:
            payload = self._resume_payload
            self.model.load_state_dict(payload["model"])
            self.optimizer.load_state_dict(payload["optimizer"])
            self.scheduler.load_state_dict(payload["scheduler"])
            self.history = list(payload["extra"].get("history", []))
            step = payload["step"]
            if payload["rng"] is not None:
                set_rng_state(payload["rng"])
            dropped = self.log.resume(payload["extra"].get("run_log"), step)  # no record twice; earlier time counts
            self.log.write("resume", step=step, segment=self.clock.segment, dropped_records=dropped)
            self._print(f"resuming at step {step}")
        else:
            self.log.start()
            self.log.write("start", config=self.config, space=self.space.to_dict(), world_size=self.dist.world_size,
                           train_sentences=len(self.sources), space_size=self.space.size())
        bar = tqdm(total=self.total_steps, initial=step, disable=not (self.dist.is_main and train["progress"]),
                   leave=False, file=sys.stderr, dynamic_ncols=True, desc="train")
        while step < self.total_steps:
            loss = self.train_step(step)
            step += 1
            bar.update(1)
            if step % train["log_every"] == 0:
                lr = self.optimizer.param_groups[0]["lr"]
                bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.5f}")
                self.log.write("step", step=step, loss=loss, lr=lr)
            if step % train["eval_every"] == 0 or step == self.total_steps:
                self._evaluate(step, decode=step == self.total_steps)
            if step % train["checkpoint_every"] == 0 and step < self.total_steps:
                self._save(self.out_dir / "last.pt", step)
        bar.close()
        self._save(self.out_dir / "last.pt", step)
        self._save(self.out_dir / "final.pt", step)
        barrier()
        totals = self.clock.totals()  # over all segments of a resumed run, and this process's share
        result = {"steps": step, "minutes": round(totals["wall_seconds"] / 60, 2),
                  "minutes_this_process": round(totals["seconds_this_process"] / 60, 2), **totals,
                  "history": self.history, "space": self.space.to_dict()}
        if self.dist.is_main:
            atomic_write_json(self.out_dir / "summary.json", result)
            self.log.write("done", steps=step)
            columns = ["step", "subnet", "val_loss", "token_accuracy", "exact_match", "bleu", "chrf"]
            self._print("\n" + format_table(self.history[-2:] if self.fixed_arch is None else self.history[-1:],
                                            [c for c in columns if c in self.history[-1]]))
            self._print(f"final checkpoint: {self.out_dir / 'final.pt'}")
        return result

    def _evaluate(self, step: int, decode: bool) -> None:
        """Validation metrics of the largest and smallest subnets (or the static model)."""
        if not self.dist.is_main:
            return
        train = self.config["train"]
        subnets = ([("fixed", self.fixed_arch)] if self.fixed_arch is not None
                   else [("largest", self.space.largest()), ("smallest", self.space.smallest())])
        for label, arch in subnets:
            metrics = evaluate_subnet(_run_at(self.model, arch), self.data, "val", train["eval_sentences"],
                                      train["eval_batch_size"], decode=decode, seed=self.config["seed"],
                                      mask_prob=train["mask_prob"])
            row = {"step": step, "subnet": label, **{k: round(v, 4) for k, v in metrics.items()}}
            self.history.append(row)
            self.log.write("eval", **row, arch=arch.to_dict())
            self._print(" ".join(f"{k}={v}" for k, v in row.items()))

    def _print(self, message: str) -> None:
        if self.dist.is_main:
            print(message, flush=True)


def load_trained(path, map_location: str = "cpu"):
    """(model, text data) of a ``final.pt``/``last.pt`` written by this trainer
    (the supernet, or the static subnet of a ``fixed_arch`` run);
    the data is rebuilt from the stored config and checked against the stored vocabularies."""
    from .checkpoint import load_supernet

    from ..models.transformer import Transformer
    from .checkpoint import checkpoint_space

    payload = load_checkpoint(path, map_location=map_location)
    if payload["trainer"] != TransformerTrainer.name:
        raise ConfigError(f"{path} was written by the {payload['trainer']!r} trainer, not the Transformer trainer")
    if payload["extra"].get("fixed_arch") is None:
        model = load_supernet(path, map_location=map_location)
    else:  # a static subnet trained from scratch
        space = checkpoint_space(payload)
        model = Transformer(space, payload["extra"]["fixed_arch"], **payload["extra"]["supernet_kwargs"])
        model.load_state_dict(payload["model"])
        model.eval()
    data = build_data(payload["config"])
    if (data.src_vocab.to_list() != payload["extra"]["src_vocab"]
            or data.tgt_vocab.to_list() != payload["extra"]["tgt_vocab"]):
        raise ConfigError(f"the data rebuilt from {path}'s config has other vocabularies than the ones it was "
                          f"trained with (did the data files change?)")
    return model, data


def seed_exit_phase(source, out_dir, exits: dict, phase: dict | None = None) -> Path:
    """Prepare ``out_dir`` to add per-token exits to a finished Transformer run and train them.

    Writes ``out_dir/config.yaml`` (the source run's config with ``exits`` and ``exit_phase``,
    default :data:`DEFAULT_EXIT_PHASE`) and ``out_dir/last.pt``: the source's weights, optimizer and
    schedule at its last step (exits add no weights), so that
    ``train_supernet --config out_dir/config.yaml --out out_dir --resume`` runs the exit phase only
    (and resumes after a kill like any run). Returns the config path."""
    import copy
    import types

    import yaml

    from ..io import atomic_write_text
    from .checkpoint import checkpoint_space

    if Path(out_dir).resolve() == Path(source).resolve().parent:
        raise ConfigError(f"out_dir {str(out_dir)!r} is the directory of {str(source)!r}: its last.pt and config.yaml "
                          f"would be overwritten; give another directory for the exit phase")
    payload = load_checkpoint(source)
    if payload["trainer"] != TransformerTrainer.name:
        raise ConfigError(f"{source} was written by the {payload['trainer']!r} trainer, not the Transformer trainer")
    raw = copy.deepcopy(payload["config"])
    if raw.get("exits") is not None:
        raise ConfigError(f"{source} already has exits ({raw['exits']}); train its exit phase with --resume")
    if payload["step"] < raw["train"]["steps"]:
        raise ConfigError(f"{source} stopped at step {payload['step']} of {raw['train']['steps']}: finish that run "
                          f"first (--resume), then add exits to its final checkpoint")
    raw["exits"], raw["exit_phase"] = exits, dict(phase or DEFAULT_EXIT_PHASE)
    config, _ = check_config(raw)
    out_dir = Path(out_dir)
    config_path = atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    extra = {**payload["extra"], "supernet_kwargs": {**payload["extra"]["supernet_kwargs"], "exits": config["exits"]}}
    state = {key: types.SimpleNamespace(state_dict=lambda value=payload[key]: value)
             for key in ("optimizer", "scheduler")}
    save_checkpoint(out_dir / "last.pt", trainer=payload["trainer"], space=checkpoint_space(payload), config=config,
                    model=payload["model"], optimizer=state["optimizer"], scheduler=state["scheduler"],
                    step=payload["step"], extra=extra)
    return config_path


register_trainer("transformer", TransformerTrainer)

__all__ = ["DEFAULT_CONFIG", "DEFAULT_EXIT_PHASE", "TransformerTrainer", "build_data", "check_config",
           "evaluate_subnet", "fit_space_to_data", "inverse_sqrt_factor", "load_trained", "masked_lm_loss",
           "sample_subnets", "seed_exit_phase", "seq2seq_exit_loss", "seq2seq_loss", "translation_scores"]
