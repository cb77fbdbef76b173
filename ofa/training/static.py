"""Training one static image classifier (a from-scratch baseline, or
fine-tuning an extracted subnet), with the same optimizer, schedule, loss,
data order and augmentation as the supernet trainer.

With ``checkpoint=`` the run saves its state after every epoch (atomically)
and a later call with the same path continues from there: the data order,
augmentation and dropout of an epoch are functions of (seed, epoch), so a run
killed at any moment and resumed ends with the same weights as an
uninterrupted one."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..data import ImageDataset, epoch_batches
from ..errors import CheckpointError
from ..io import atomic_torch_save, load_plain_torch_file
from .finite import check_finite_step, check_learning_rate
from .losses import distillation_loss
from .optim import build_optimizer
from .sampling import step_generator
from .schedule import build_scheduler


def train_classifier(model: nn.Module, train_set: ImageDataset, epochs: int, resolution: int, lr: float = 0.1,
                     batch_size: int = 64, weight_decay: float = 3e-5, label_smoothing: float = 0.1,
                     warmup_epochs: int = 1, seed: int = 0, optimizer: str = "sgd", momentum: float = 0.9,
                     channels_last: bool = True, teacher: nn.Module | None = None, kd_ratio: float = 0.0,
                     kd_temperature: float = 1.0, progress: bool = False,
                     checkpoint: str | os.PathLike | None = None) -> list[dict]:
    """Train ``model`` in place for ``epochs`` epochs at ``resolution``
    (cosine schedule with warm-up, label-smoothed CE, optional distillation
    from ``teacher``, run in eval mode); returns per-epoch ``{"epoch", "train_loss"}``.
    ``checkpoint``: a file to save the state to after each epoch and to resume from."""
    from tqdm import tqdm

    check_learning_rate(lr, "train_classifier")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model.to(memory_format=memory_format).train()
    steps_per_epoch = len(epoch_batches(len(train_set), batch_size))
    opt = build_optimizer(optimizer, model, lr, weight_decay, momentum)
    scheduler = build_scheduler("cosine", opt, epochs * steps_per_epoch, warmup_epochs * steps_per_epoch)
    if teacher is not None:
        teacher.eval()
    settings = {"epochs": epochs, "resolution": resolution, "lr": lr, "batch_size": batch_size, "seed": seed,
                "weight_decay": weight_decay, "label_smoothing": label_smoothing, "warmup_epochs": warmup_epochs,
                "optimizer": optimizer, "kd_ratio": kd_ratio if teacher is not None else 0.0,
                "kd_temperature": kd_temperature}
    history, start = [], 0
    if checkpoint is not None and Path(checkpoint).is_file():
        state = load_plain_torch_file(checkpoint, CheckpointError, "fine-tuning checkpoint",
                                      "delete it to start the training afresh")
        if state.get("settings") != settings:
            raise CheckpointError(f"fine-tuning checkpoint {str(checkpoint)!r} was written with other settings "
                                  f"({state.get('settings')}, now {settings}); delete it to start afresh")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, start = list(state["history"]), len(state["history"])
    for epoch in range(start, epochs):
        model.train()
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
            loss = distillation_loss(model(images), labels, teacher_logits, kd_ratio, label_smoothing,
                                     kd_temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            check_finite_step(loss.item(), model, opt, f"epoch {epoch + 1}, batch {b}")
            opt.step()
            scheduler.step()
            total, count = total + loss.item(), count + 1
        history.append({"epoch": epoch + 1, "train_loss": total / max(1, count)})
        if checkpoint is not None:
            atomic_torch_save({"settings": settings, "model": model.state_dict(), "optimizer": opt.state_dict(),
                               "scheduler": scheduler.state_dict(), "history": history}, checkpoint)
    model.eval()
    return history




FINETUNE_LR = 0.01  # peak of the cosine schedule: a third of the elastic phases' rate, the weights are trained already


def finetune_subnet(supernet: nn.Module, arch, data, epochs: int, checkpoint: str | os.PathLike | None = None,
                    calib_images: int = 2000, lr: float = FINETUNE_LR, kd_ratio: float = 1.0, seed: int = 0,
                    train: dict | None = None) -> nn.Module:
    """The static subnet ``arch`` of ``supernet`` trained ``epochs`` more epochs
    on its own at its resolution, distilled from the supernet's largest subnet
    (BN re-calibrated at that resolution, run in eval mode) as in-place
    distillation does during progressive shrinking. ``train``: the supernet
    run's ``train`` config (batch size, optimizer, weight decay, label
    smoothing, temperature); ``checkpoint`` makes the run resumable."""
    from ..data import fixed_subset
    from ..evaluation import recalibrate_bn

    train = train or {}
    arch = supernet.space.parse(arch)
    calibration = fixed_subset(data.train, calib_images).tensors(resolution=arch.resolution)[0]
    teacher = supernet.extract(supernet.space.largest())
    recalibrate_bn(teacher, calibration)
    student = supernet.extract(arch)  # trains in train mode: its BN statistics are re-calibrated at deployment
    train_classifier(student, data.train, epochs, arch.resolution, lr=lr, batch_size=train.get("batch_size", 64),
                     weight_decay=train.get("weight_decay", 3e-5), label_smoothing=train.get("label_smoothing", 0.1),
                     warmup_epochs=0, seed=seed, optimizer=train.get("optimizer", "sgd"),
                     momentum=train.get("momentum", 0.9), teacher=teacher, kd_ratio=kd_ratio,
                     kd_temperature=train.get("kd_temperature", 1.0), checkpoint=checkpoint)
    return student


__all__ = ["FINETUNE_LR", "finetune_subnet", "train_classifier"]
