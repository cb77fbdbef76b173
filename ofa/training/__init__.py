"""Training supernets: generic machinery plus one trainer per space type.

``ofa-train-supernet --config X.yaml --out runs/name [--resume]``
reads the config, resolves its ``space`` and runs ``TRAINERS[space.type_name]``.

API summary (everything a new trainer reuses):

* registry - ``TRAINERS: dict[space_type, trainer class]``, ``register_trainer(space_type, cls)``,
  ``get_trainer(space_type)``. A trainer class has
  ``cls(config: dict, out_dir, resume: bool = False, dist: DistInfo | None = None)``
  (``config`` is the raw YAML mapping; the constructor validates it and raises
  ``ConfigError`` before any work) and ``.run() -> dict`` (a summary).
* :mod:`.config` - ``load_yaml(path)``, ``merge_defaults(config, defaults, prefix="", open_keys=())``,
  ``check_value(value, key, minimum=, maximum=, above=, choices=, integer=)``, ``config_space(config)``.
* :mod:`.checkpoint` - ``save_checkpoint(path, trainer=, space=, config=, model=, optimizer=, scheduler=,
  phase=, epoch=, step=, extra=)`` (atomic), ``load_checkpoint(path, map_location="cpu", space=None)``
  (``weights_only=True``; ``CheckpointError`` / ``SpaceMismatchError``), ``load_supernet(path)``,
  ``checkpoint_space(payload)``, ``rng_state()`` / ``set_rng_state(state)``.
* :mod:`.schedule` - ``build_scheduler(name, optimizer, total_steps, warmup_steps=0, min_factor=0.0)``;
  ``SCHEDULES`` maps names ("cosine", "constant") to ``factor(step, total, warmup, min_factor)``.
* :mod:`.resume` - ``resume_payload(out_dir, resume, space, trainer, config)``: the checkpoint to continue from
  (checked: trainer, space, config) or None; refuses to overwrite a run without ``--resume``.
* :mod:`.distributed` - ``setup_process(device, threads, batch_size, dist_info=None) -> DistInfo`` (join the
  group, set threads, check the batch splits),
  ``init_distributed(device=None) -> DistInfo(rank, world_size, local_rank, device)``,
  ``is_main_process()``, ``all_reduce_gradients(model)``, ``average_buffers(model)``, ``all_reduce_mean``,
  ``barrier()``, ``cleanup()``.
* :mod:`.losses` - ``distillation_loss(student, targets, teacher=None, kd_ratio=, label_smoothing=,
  temperature=)``, ``soft_target_loss(student, teacher, temperature=1.0)``.
* :mod:`.sampling` - ``step_generator(seed, *keys)``, ``sample_restricted_genes(space, n, rng, allowed)``.
* :mod:`.optim` - ``param_groups(model, weight_decay)`` (no decay on norms and biases),
  ``build_optimizer(name, model, lr, weight_decay, momentum)``.
* :mod:`.runlog` - ``MetricsLog(path, enabled)``, ``format_table(rows, columns)``.
* :mod:`.static` - ``train_classifier(model, train_set, epochs, resolution, lr=, ...)``: one static image
  classifier (from-scratch baselines, fine-tuning an extracted subnet, optional distillation).
* :mod:`.progressive_shrinking` - ``ProgressiveShrinkingTrainer`` (space type "mobilenetv3"),
  ``build_phases(space, config)``, ``DEFAULT_CONFIG``.
"""

from __future__ import annotations

from ..errors import ConfigError
from .checkpoint import load_checkpoint, load_supernet, save_checkpoint
from .config import check_value, config_space, load_yaml, merge_defaults
from .distributed import DistInfo, init_distributed, is_main_process
from .losses import distillation_loss, soft_target_loss
from .schedule import SCHEDULES, build_scheduler

TRAINERS: dict[str, type] = {}


def register_trainer(space_type: str, trainer_cls: type) -> type:
    """Make ``trainer_cls`` the trainer of configs whose space has ``space_type``."""
    TRAINERS[space_type] = trainer_cls
    return trainer_cls


def get_trainer(space_type: str) -> type:
    if space_type not in TRAINERS:
        raise ConfigError(f"no trainer for search spaces of type {space_type!r}; known: {sorted(TRAINERS)}")
    return TRAINERS[space_type]


from .progressive_shrinking import ProgressiveShrinkingTrainer  # noqa: E402  (registers "mobilenetv3")
from .transformer import TransformerTrainer  # noqa: E402  (registers "transformer")

__all__ = [
    "TRAINERS", "DistInfo", "ProgressiveShrinkingTrainer", "SCHEDULES", "build_scheduler", "check_value",
    "config_space", "distillation_loss", "get_trainer", "init_distributed", "is_main_process", "load_checkpoint",
    "load_supernet", "load_yaml", "merge_defaults", "register_trainer", "save_checkpoint", "soft_target_loss",
]
