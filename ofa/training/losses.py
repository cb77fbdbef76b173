"""Training losses: label-smoothed cross entropy plus knowledge distillation."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                     temperature: float = 1.0) -> torch.Tensor:
    """Cross entropy of the student against the teacher's softened
    distribution, ``-sum softmax(t/T) * log_softmax(s/T)``, averaged over the
    batch and scaled by ``T^2`` (so gradients keep their size across T).
    Equals KL(teacher || student) plus the teacher's entropy, which has no
    gradient; the teacher is detached."""
    teacher = F.softmax(teacher_logits.detach().float() / temperature, dim=-1)
    log_student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return -(teacher * log_student).sum(dim=-1).mean() * temperature**2


def distillation_loss(student_logits: torch.Tensor, targets: torch.Tensor, teacher_logits: torch.Tensor | None = None,
                      kd_ratio: float = 1.0, label_smoothing: float = 0.1, temperature: float = 1.0,
                      label_ratio: float = 1.0) -> torch.Tensor:
    """``label_ratio * CE(student, targets; label_smoothing) + kd_ratio * soft_target_loss``.

    Without ``teacher_logits`` (or with ``kd_ratio == 0``) it is the plain
    label-smoothed cross entropy, whatever ``label_ratio``. ``label_ratio=0``
    with a teacher is distillation alone (BigNAS's students see only the
    teacher). Works for (N, C) logits and, flattened, for sequence outputs
    (N*T, C) with ``targets`` of ignore-index -100."""
    distilled = teacher_logits is not None and kd_ratio > 0
    loss = F.cross_entropy(student_logits.float(), targets, label_smoothing=label_smoothing)
    if distilled and label_ratio != 1.0:
        loss = label_ratio * loss
    if distilled:
        if teacher_logits.shape != student_logits.shape:
            raise ValueError(f"teacher logits {tuple(teacher_logits.shape)} and student logits "
                             f"{tuple(student_logits.shape)} differ in shape")
        loss = loss + kd_ratio * soft_target_loss(student_logits, teacher_logits, temperature)
    return loss


__all__ = ["distillation_loss", "soft_target_loss"]
