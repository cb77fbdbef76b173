"""Adversarial robustness of image classifiers: FGSM and PGD accuracy.

Both attacks are untargeted, in the L-infinity norm, white-box (they use the
gradient of the cross entropy with respect to the input), and work in the
model's input space - the *normalised* images ``(x - mean) / std`` the
network actually reads. So ``epsilon`` is in units of the per-channel
standard deviation of the training images: on cluttered digits (pixel std
0.247) the default ``epsilon=0.1`` moves a pixel by at most 0.025 of its 0..1
range (about 6 of 255 grey levels); on digits (std 0.376), by 0.038. Where ``bounds`` are given (the normalised images of pixel values
0 and 1, :func:`pixel_bounds`), adversarial images are clipped to them, so
they stay images.

* FGSM (Goodfellow et al., ICLR 2015): ``x' = x + epsilon * sign(grad_x loss)``.
* PGD (Madry et al., ICLR 2018): ``steps`` steps of size ``step_size``
  (default ``2.5 * epsilon / steps``), each followed by projection onto the
  epsilon-ball around ``x``; it starts at ``x`` (no random start), so it is
  deterministic.

:func:`attack_accuracy` reports clean and adversarial top-1 and the attack
success rate: the share of inputs classified correctly before the attack and
wrongly after it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

ATTACKS = ("fgsm", "pgd")
DEFAULT_EPSILON = 0.1  # in normalised input units (see the module docstring)
DEFAULT_PGD_STEPS = 10


def pixel_bounds(mean: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(low, high)`` of normalised images whose pixels lie in [0, 1]
    (shaped ``(1, C, 1, 1)`` for broadcasting)."""
    mean, std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
    return ((0.0 - mean) / std).view(1, -1, 1, 1), ((1.0 - mean) / std).view(1, -1, 1, 1)


def check_attack_settings(epsilon: float, steps: int = 1, step_size: float | None = None) -> None:
    """ConfigError unless ``epsilon >= 0``, ``steps >= 1`` and ``step_size > 0`` (or None)."""
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not math.isfinite(epsilon) \
            or epsilon < 0:
        raise ConfigError(f"epsilon must be a finite number >= 0 (normalised input units), got {epsilon!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"PGD steps must be an integer >= 1, got {steps!r}")
    if step_size is not None and (not math.isfinite(step_size) or step_size <= 0):
        raise ConfigError(f"PGD step_size must be > 0, got {step_size!r}")


def _input_gradient(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        x = images.detach().clone().requires_grad_(True)
        loss = F.cross_entropy(model(x), labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def _clip(images: torch.Tensor, bounds) -> torch.Tensor:
    if bounds is None:
        return images
    low, high = (b.to(images.device, images.dtype) for b in bounds)
    return torch.maximum(torch.minimum(images, high), low)


def fgsm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float = DEFAULT_EPSILON,
         bounds=None) -> torch.Tensor:
    """FGSM adversarial images of ``images`` (model in eval mode, its parameters untouched)."""
    check_attack_settings(epsilon)
    if epsilon == 0:
        return images.detach().clone()
    grad = _input_gradient(model, images, labels)
    return _clip(images.detach() + epsilon * grad.sign(), bounds)


def pgd(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epsilon: float = DEFAULT_EPSILON,
        steps: int = DEFAULT_PGD_STEPS, step_size: float | None = None, bounds=None) -> torch.Tensor:
    """PGD (L-infinity) adversarial images of ``images``, starting at ``images``."""
    check_attack_settings(epsilon, steps, step_size)
    if epsilon == 0:
        return images.detach().clone()
    step_size = 2.5 * epsilon / steps if step_size is None else step_size
    original = images.detach()
    adversarial = original.clone()
    for _ in range(steps):
        grad = _input_gradient(model, adversarial, labels)
        adversarial = adversarial + step_size * grad.sign()
        adversarial = torch.maximum(torch.minimum(adversarial, original + epsilon), original - epsilon)
        adversarial = _clip(adversarial, bounds)
    return adversarial


def attack_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, attack: str = "fgsm",
                    epsilon: float = DEFAULT_EPSILON, steps: int = DEFAULT_PGD_STEPS,
                    step_size: float | None = None, bounds=None, batch_size: int = 256) -> dict:
    """Clean and adversarial top-1 (percent) of ``model`` on ``images``, and
    the attack success rate (percent of the clean-correct inputs the attack
    turns wrong; None when no input is correct). The model is put in eval
    mode for the attack and restored afterwards."""
    if attack not in ATTACKS:
        raise ConfigError(f"unknown attack {attack!r}; allowed: {list(ATTACKS)}")
    check_attack_settings(epsilon, steps, step_size)
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    clean_correct = adversarial_correct = flipped = 0
    try:
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].to(param.device)
            y = labels[start:start + batch_size].to(param.device)
            with torch.no_grad():
                clean = model(x).argmax(-1) == y
            if attack == "fgsm":
                x_adv = fgsm(model, x, y, epsilon, bounds)
            else:
                x_adv = pgd(model, x, y, epsilon, steps, step_size, bounds)
            with torch.no_grad():
                adversarial = model(x_adv).argmax(-1) == y
            clean_correct += int(clean.sum())
            adversarial_correct += int(adversarial.sum())
            flipped += int((clean & ~adversarial).sum())
    finally:
        model.train(was_training)
    n = len(images)
    result = {"attack": attack, "epsilon": float(epsilon), "images": n,
              "clean_top1": 100.0 * clean_correct / max(1, n),
              "adversarial_top1": 100.0 * adversarial_correct / max(1, n),
              "success_rate": 100.0 * flipped / clean_correct if clean_correct else None}
    if attack == "pgd":
        result.update(steps=int(steps), step_size=float(2.5 * epsilon / steps if step_size is None else step_size))
    return result


def parse_attacks(text: str) -> tuple[str, ...]:
    """``"fgsm,pgd"`` -> ``("fgsm", "pgd")``; ConfigError for an unknown name."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in ATTACKS]
    if not names or unknown:
        raise ConfigError(f"--robustness takes a comma-separated list of {list(ATTACKS)}, got {text!r}")
    return names


__all__ = ["ATTACKS", "DEFAULT_EPSILON", "DEFAULT_PGD_STEPS", "attack_accuracy", "check_attack_settings", "fgsm", "parse_attacks", "pgd",
           "pixel_bounds"]
