"""The fast path of subnet evaluation: what :class:`ofa.evaluation.SubnetEvaluator`
runs by default (``fast=True``), equal to the reference path
(:func:`ofa.evaluation.recalibrate_bn` + :func:`ofa.evaluation.predict`)
up to float rounding (``benchmarks/evaluation_speed.py`` checks it).

What makes it fast, on the CPU where subnets are usually evaluated:

* the calibration and evaluation images of a resolution are built once,
  already cut into batches and in channels-last memory layout, and reused
  for every subnet at that resolution (:class:`PreparedImages`);
* the extracted subnet runs in channels-last layout (depthwise convolutions,
  most of a MobileNet's time, run about twice as fast on CPU:
  ``benchmarks/memory_format.py``);
* BN re-calibration reads each batch's per-channel mean and variance from
  the BatchNorm kernel itself (run with ``momentum=1`` for the calibration
  passes) and combines batches exactly (Chan et al.'s pairwise update, in
  float64), instead of float64 copies of every activation;
* prediction runs in large batches under ``torch.inference_mode``, with
  every BatchNorm folded into the convolution before it.

The maths is the reference's: the same calibration batches, each normalised
with its own statistics on the way through (as in training), the exact
pooled mean and unbiased variance of every BN input, and the same
evaluation images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

from .errors import DataError


@dataclass
class PreparedImages:
    """Model-ready image batches of one resolution, kept for every subnet."""

    calibration: list[torch.Tensor]  # BN re-calibration batches (the reference's batch size)
    evaluation: torch.Tensor  # the whole evaluation split, channels-last

    @classmethod
    def build(cls, calibration: torch.Tensor, evaluation: torch.Tensor, batch_size: int,
              device: torch.device | str = "cpu") -> "PreparedImages":
        layout = torch.channels_last
        batches = [calibration[i:i + batch_size].to(device).contiguous(memory_format=layout)
                   for i in range(0, len(calibration), batch_size)]
        return cls(batches, evaluation.to(device).contiguous(memory_format=layout))


class _PooledMoments:
    """Exact per-channel mean and variance over every value a BN layer sees.

    During calibration the layer runs with ``momentum=1``, so after each batch
    its running statistics are that batch's mean and unbiased variance,
    computed by the BatchNorm kernel itself in the same pass that normalises
    the batch; a forward hook reads them and combines batches pairwise
    (Chan et al.) in float64."""

    def __init__(self):
        self.count = 0
        self.mean = self.m2 = None

    def __call__(self, module, inputs, output):
        x = inputs[0]
        channels = x.shape[1]
        n = x.numel() // channels
        mean = module.running_mean[:channels].double()
        m2 = module.running_var[:channels].double() * (n - 1)  # unbiased batch variance -> sum of squares
        if self.mean is None:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        if channels != self.mean.numel():
            raise RuntimeError("a BatchNorm layer saw different channel counts during re-calibration")
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta * delta * (self.count * n / total)
        self.count = total

    def mean_var(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean, self.m2 / max(1, self.count - 1)  # unbiased, as nn.BatchNorm stores running_var


@torch.no_grad()
def recalibrate_bn_batches(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """What :func:`ofa.evaluation.recalibrate_bn` runs, on ready-made batches (any iterable): every
    BatchNorm's running statistics become the exact mean and unbiased variance
    of its inputs over ``batches`` (each normalised with its own statistics on
    the way through, as in training). Returns the number of images used."""
    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None]
    modes = {m: m.training for m in model.modules()}
    moments = {bn: _PooledMoments() for bn in norms}
    saved = {bn: (bn.running_mean.clone(), bn.running_var.clone(), bn.num_batches_tracked.clone(), bn.momentum)
             for bn in norms}
    hooks = [bn.register_forward_hook(moments[bn]) for bn in norms]
    used = 0
    try:
        model.eval()
        for bn in norms:
            bn.train()
            bn.momentum = 1.0
        for images in batches:
            model(images)
            used += len(images)
    finally:
        for hook in hooks:
            hook.remove()
        for module, mode in modes.items():
            module.train(mode)
        for bn in norms:
            mean_saved, var_saved, tracked, momentum = saved[bn]
            bn.running_mean.copy_(mean_saved)
            bn.running_var.copy_(var_saved)
            bn.num_batches_tracked.copy_(tracked)
            bn.momentum = momentum
    if used == 0:
        raise DataError("BN re-calibration got no images")
    for bn in norms:
        if moments[bn].mean is not None:
            mean, var = moments[bn].mean_var()
            channels = mean.numel()
            bn.running_mean[:channels] = mean.to(bn.running_mean.dtype)
            bn.running_var[:channels] = var.to(bn.running_var.dtype)
    return used


@torch.inference_mode()
def predict_fast(model: nn.Module, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits of ``model`` in eval mode for ``images`` (on the model's device),
    as float32 on the CPU."""
    was_training = model.training
    model.eval()
    outputs = [model(images[i:i + batch_size]).float().cpu() for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return torch.cat(outputs)


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every eval-mode BatchNorm that directly follows a convolution in
    an ``nn.Sequential`` into that convolution (scaled weight plus a bias), in
    place; the BN becomes ``nn.Identity``. The function is unchanged up to
    float rounding; for inference only."""
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names[:-1], names[1:]):
            conv, bn = module._modules[first], module._modules[second]
            if not (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
                    and bn.running_mean is not None and bn.affine):
                continue
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            conv.weight.mul_(scale.view(-1, 1, 1, 1))
            conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias, requires_grad=False)
            module._modules[second] = nn.Identity()
    return model


def prepare_subnet(static: nn.Module, images: PreparedImages) -> nn.Module:
    """``static`` (an extracted subnet) in channels-last layout with its BN
    statistics re-calibrated on ``images.calibration``, in eval mode."""
    static = static.to(memory_format=torch.channels_last)
    recalibrate_bn_batches(static, images.calibration)
    return static.eval()


__all__ = ["PreparedImages", "fold_batchnorm", "predict_fast", "prepare_subnet", "recalibrate_bn_batches"]
