"""Divergence checks of one optimisation step: a NaN or infinite loss,
gradient or learning rate stops training with a :class:`~ofa.errors.TrainingError`
naming the step, before the optimizer applies it."""

from __future__ import annotations

import math

import torch

from ..errors import TrainingError


def check_learning_rate(lr, where: str) -> None:
    """A learning rate must be a finite number > 0 (``where`` names the phase or key)."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise TrainingError(f"{where}: learning rate {lr!r} is not allowed: must be a finite number > 0")


def check_finite_step(loss: float, model: torch.nn.Module | None, optimizer, where: str) -> None:
    """Raise :class:`TrainingError` if ``loss``, a gradient of ``model`` or the
    optimizer's learning rate is not finite. ``where`` names the phase and step."""
    if not math.isfinite(loss):
        raise TrainingError(f"training diverged at {where}: the loss is {loss}; lower the learning rate "
                            f"(or check the data); the last checkpoint before this step is kept")
    if optimizer is not None:
        for group in optimizer.param_groups:
            lr = group["lr"]
            lr = lr.item() if isinstance(lr, torch.Tensor) else lr
            if not math.isfinite(lr):
                raise TrainingError(f"training diverged at {where}: the learning rate is {lr}; it must be finite")
    if model is not None:
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if grads and not bool(torch.isfinite(torch.stack([g.detach().float().sum() for g in grads])).all()):
            raise TrainingError(f"training diverged at {where}: a gradient is not finite (NaN or inf); "
                                f"lower the learning rate; the last checkpoint before this step is kept")


__all__ = ["check_finite_step", "check_learning_rate"]
