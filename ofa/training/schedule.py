"""Learning-rate schedules, stepped once per optimizer step.

Each schedule is a plain function ``factor(step, total_steps, warmup_steps)``
giving the multiplier of the base learning rate; :class:`StepSchedule` turns
one into a ``torch.optim.lr_scheduler.LRScheduler`` whose state dict is plain
data (checkpoint-safe). Register new shapes in :data:`SCHEDULES`::

    SCHEDULES["my_shape"] = my_factor
    scheduler = build_scheduler("my_shape", optimizer, total_steps=..., warmup_steps=...)
"""

from __future__ import annotations

import math
from typing import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from ..errors import ConfigError


def cosine_factor(step: int, total_steps: int, warmup_steps: int = 0, min_factor: float = 0.0) -> float:
    """Linear warm-up from ``1 / (warmup_steps + 1)`` to 1, then cosine decay to
    ``min_factor`` at ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def constant_factor(step: int, total_steps: int, warmup_steps: int = 0, min_factor: float = 0.0) -> float:
    """Linear warm-up, then the base learning rate."""
    return (step + 1) / (warmup_steps + 1) if step < warmup_steps else 1.0


def inverse_sqrt_factor(step: int, total_steps: int, warmup_steps: int = 0, min_factor: float = 0.0) -> float:
    """The Transformer schedule: linear warm-up to 1 at ``warmup_steps``,
    then ``sqrt(warmup_steps / step)`` (never below ``min_factor``)."""
    step = step + 1
    if step <= warmup_steps:
        return step / max(1, warmup_steps)
    return max(min_factor, math.sqrt(max(1, warmup_steps) / step))


SCHEDULES: dict[str, Callable[..., float]] = {"cosine": cosine_factor, "constant": constant_factor,
                                              "inverse_sqrt": inverse_sqrt_factor}


class StepSchedule(LRScheduler):
    """Sets every group's lr to ``base_lr * factor(step, total_steps, warmup_steps)``."""

    def __init__(self, optimizer: Optimizer, name: str, total_steps: int, warmup_steps: int = 0,
                 min_factor: float = 0.0, last_epoch: int = -1):
        if name not in SCHEDULES:
            raise ConfigError(f"unknown learning-rate schedule {name!r}; known: {sorted(SCHEDULES)}")
        self.name, self.total_steps, self.warmup_steps, self.min_factor = name, total_steps, warmup_steps, min_factor
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        return SCHEDULES[self.name](step, self.total_steps, self.warmup_steps, self.min_factor)

    def get_lr(self) -> list[float]:
        factor = self.factor(max(0, self.last_epoch))
        return [base_lr * factor for base_lr in self.base_lrs]


def build_scheduler(name: str, optimizer: Optimizer, total_steps: int, warmup_steps: int = 0,
                    min_factor: float = 0.0) -> StepSchedule:
    """The schedule ``name`` over ``total_steps`` optimizer steps."""
    return StepSchedule(optimizer, name, total_steps, warmup_steps, min_factor)


__all__ = ["SCHEDULES", "StepSchedule", "build_scheduler", "constant_factor", "cosine_factor"]
