"""Training one static image classifier (a from-scratch baseline, or
fine-tuning an extracted subnet), with the same optimizer, schedule, loss,
data order and augmentation as the supernet trainer."""

from __future__ import annotations

import torch
from torch import nn

from ..data import ImageDataset, epoch_batches
from .finite import check_finite_step, check_learning_rate
from .losses import distillation_loss
from .optim import build_optimizer
from .sampling import step_generator
from .schedule import build_scheduler


def train_classifier(model: nn.Module, train_set: ImageDataset, epochs: int, resolution: int, lr: float = 0.1,
                     batch_size: int = 64, weight_decay: float = 3e-5, label_smoothing: float = 0.1,
                     warmup_epochs: int = 1, seed: int = 0, optimizer: str = "sgd", momentum: float = 0.9,
                     channels_last: bool = True, teacher: nn.Module | None = None, kd_ratio: float = 0.0,
                     progress: bool = False) -> list[dict]:
    """Train ``model`` in place for ``epochs`` epochs at ``resolution``
    (cosine schedule with warm-up, label-smoothed CE, optional distillation
    from ``teacher``); returns per-epoch ``{"epoch", "train_loss"}``."""
    from tqdm import tqdm

    check_learning_rate(lr, "train_classifier")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory_format).train()
    steps_per_epoch = len(epoch_batches(len(train_set), batch_size))
    opt = build_optimizer(optimizer, model, lr, weight_decay, momentum)
    scheduler = build_scheduler("cosine", opt, epochs * steps_per_epoch, warmup_epochs * steps_per_epoch)
    if teacher is not None:
        teacher.eval()
    history = []
    for epoch in range(epochs):
        torch.manual_seed(int(step_generator(seed, epoch, 1).integers(2**62)))  # dropout
        total, count = 0.0, 0
        for b, positions in enumerate(tqdm(epoch_batches(len(train_set), batch_size, True, seed, epoch),
                                           disable=not progress, leave=False, desc=f"epoch {epoch + 1}")):
            generator = torch.Generator().manual_seed(int(step_generator(seed, epoch, b, 2).integers(2**62)))
            images, labels = train_set.get_batch(positions, resolution, generator)
            images = images.contiguous(memory_format=memory_format)
            teacher_logits = None
            if teacher is not None and kd_ratio > 0:
                with torch.no_grad():
                    teacher_logits = teacher(images)
            loss = distillation_loss(model(images), labels, teacher_logits, kd_ratio, label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            check_finite_step(loss.item(), model, opt, f"epoch {epoch + 1}, batch {b}")
            opt.step()
            scheduler.step()
            total, count = total + loss.item(), count + 1
        history.append({"epoch": epoch + 1, "train_loss": total / max(1, count)})
    model.eval()
    return history


__all__ = ["train_classifier"]
