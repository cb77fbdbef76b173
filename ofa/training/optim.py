"""Optimizers with weight decay only where it belongs."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

OPTIMIZERS = ("sgd", "adamw")


def param_groups(model: nn.Module, weight_decay: float, no_decay_names: tuple[str, ...] = ("transforms",)) -> list:
    """Two groups: weights with ``weight_decay``; normalisation weights, biases
    (every tensor of one dimension) and parameters whose name contains one of
    ``no_decay_names`` (the identity-initialised kernel transforms) without."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or any(key in name for key in no_decay_names):
            no_decay.append(param)
        else:
            decay.append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float = 0.0,
                    momentum: float = 0.9) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum (Once-for-All's choice) or AdamW."""
    groups = param_groups(model, weight_decay)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise ConfigError(f"unknown optimizer {name!r}; allowed: {list(OPTIMIZERS)}")


__all__ = ["OPTIMIZERS", "build_optimizer", "param_groups"]
