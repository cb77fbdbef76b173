"""Small static building blocks shared by extracted networks."""

from __future__ import annotations

import torch
from torch import nn


def activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "h_swish":
        return nn.Hardswish(inplace=True)
    raise ValueError(f"unknown activation {name!r}")


class ConvBNAct(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> activation (``act=None`` for linear)."""

    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, groups=1, act: str | None = "relu"):
        layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups,
                            bias=False), nn.BatchNorm2d(out_channels)]
        if act is not None:
            layers.append(activation(act))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """MobileNetV3 squeeze-and-excitation: pool, 1x1 reduce, ReLU, 1x1 expand, h-sigmoid."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, hidden, 1, bias=True)
        self.expand = nn.Conv2d(hidden, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        scale = torch.relu(self.reduce(scale))
        return x * nn.functional.hardsigmoid(self.expand(scale))


class InvertedResidual(nn.Module):
    """MobileNetV2/V3 block: 1x1 expand, kxk depthwise, optional SE, 1x1 project,
    with an identity shortcut when shapes allow. ``mid == in`` with
    ``expand=False`` gives the expand-less first block."""

    def __init__(self, in_channels, mid_channels, out_channels, kernel_size, stride, act, se_channels=0,
                 expand=True):
        super().__init__()
        self.expand = ConvBNAct(in_channels, mid_channels, 1, act=act) if expand else None
        self.depthwise = ConvBNAct(mid_channels, mid_channels, kernel_size, stride, groups=mid_channels, act=act)
        self.se = SqueezeExcite(mid_channels, se_channels) if se_channels else None
        self.project = ConvBNAct(mid_channels, out_channels, 1, act=None)
        self.use_shortcut = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x) if self.expand is not None else x
        out = self.depthwise(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        return out + x if self.use_shortcut else out
