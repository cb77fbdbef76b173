"""Small static building blocks shared by extracted networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..spaces.precision import FLOAT_BITS

# Below this many output pixels, the weight gradient of a depthwise conv is computed
# tap by tap: oneDNN's kernel for it costs 3-6x more there (7x7 kernels on 2x2-6x6 maps,
# one thread; benchmarks/depthwise_backward.py), and those maps are most of a small
# MobileNetV3's training time.
SMALL_MAP_PIXELS = 36


def _used_taps(kernel: int, size: int) -> tuple[int, int]:
    """The first and last kernel taps (stride 1, padding ``kernel // 2``) that ever
    meet the input rather than its zero padding, on a map ``size`` pixels wide."""
    pad = kernel // 2
    return max(0, pad - size + 1), min(kernel - 1, pad + size - 1)


class _SmallMapDepthwise(torch.autograd.Function):
    """A stride-1 depthwise conv whose weight gradient is a sum over kernel taps
    of input-times-output-gradient products (exact, the same sums in another order)."""

    @staticmethod
    def forward(ctx, x, weight, padding):
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return F.conv2d(x, weight, None, 1, padding, 1, x.shape[1])

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        (ph, pw), (kh, kw) = ctx.padding, weight.shape[2:]
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, [1, 1], [ph, pw], [1, 1], False, [0, 0], x.shape[1],
                [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            height, width = x.shape[2:]
            # channels last: each tap's sum runs over the outer dimensions, one contiguous channel row at a time
            padded = F.pad(x, (pw, pw, ph, ph)).permute(0, 2, 3, 1)
            grad_nhwc = grad_out.permute(0, 2, 3, 1)
            grad_w = weight.new_empty(kh, kw, x.shape[1])
            for i in range(kh):
                for j in range(kw):
                    grad_w[i, j] = (padded[:, i:i + height, j:j + width] * grad_nhwc).sum((0, 1, 2))
            grad_w = grad_w.permute(2, 0, 1).unsqueeze(1)  # (C, 1, kh, kw)
        return grad_x, grad_w, None


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """``F.conv2d(x, weight, stride=stride, padding=k // 2, groups=channels)``,
    faster to train on small maps, same values.

    With stride 1, kernel taps that only ever meet the zero padding (a 7x7
    kernel on a 2x2 map uses its central 3x3) are cropped away, and on maps of
    at most SMALL_MAP_PIXELS pixels the weight gradient is computed tap by tap;
    other cases (stride 2, large maps, no gradient) are the plain conv."""
    kernel = weight.shape[-1]
    if stride != 1 or not torch.is_grad_enabled() or x.shape[2] * x.shape[3] > SMALL_MAP_PIXELS:
        return F.conv2d(x, weight, None, stride, kernel // 2, 1, x.shape[1])
    (top, bottom), (left, right) = _used_taps(kernel, x.shape[2]), _used_taps(kernel, x.shape[3])
    cropped = weight[:, :, top:bottom + 1, left:right + 1]
    return _SmallMapDepthwise.apply(x, cropped, (kernel // 2 - top, kernel // 2 - left))


def activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "h_swish":
        return nn.Hardswish(inplace=True)
    raise ValueError(f"unknown activation {name!r}")


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d`` with ``groups == channels`` (same parameters, same state dict)
    that trains through :func:`depthwise_conv2d`; evaluation and export see the plain conv."""

    def __init__(self, channels: int, kernel_size: int, stride: int = 1):
        super().__init__(channels, channels, kernel_size, stride, kernel_size // 2, groups=channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return depthwise_conv2d(x, self.weight, self.stride[0])
        return super().forward(x)


class ConvBNAct(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> activation (``act=None`` for linear). With ``weight_bits`` or
    ``activation_bits`` below 32 the conv is a fake-quantised :class:`~ofa.models.quantization.QuantizedConv2d`
    (``signed_input``: whether its input can be negative)."""

    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1, groups=1, act: str | None = "relu",
                 weight_bits: int = FLOAT_BITS, activation_bits: int = FLOAT_BITS, signed_input: bool = True):
        if weight_bits != FLOAT_BITS or activation_bits != FLOAT_BITS:
            from .quantization import QuantizedConv2d

            conv = QuantizedConv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups,
                                   bias=False, weight_bits=weight_bits, activation_bits=activation_bits,
                                   signed_input=signed_input)
        elif groups > 1 and groups == in_channels == out_channels:
            conv = DepthwiseConv2d(in_channels, kernel_size, stride)
        else:
            conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups,
                             bias=False)
        layers = [conv, nn.BatchNorm2d(out_channels)]
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
    ``expand=False`` gives the expand-less first block. ``weight_bits`` /
    ``activation_bits`` below 32 fake-quantise the expand, depthwise and project
    convs (the SE layers stay in floating point); the inputs of the depthwise and
    project convs follow the activation, so they are unsigned after a ReLU."""

    def __init__(self, in_channels, mid_channels, out_channels, kernel_size, stride, act, se_channels=0,
                 expand=True, weight_bits: int = FLOAT_BITS, activation_bits: int = FLOAT_BITS):
        super().__init__()
        bits = {"weight_bits": weight_bits, "activation_bits": activation_bits}
        after_act = {**bits, "signed_input": act != "relu"}
        self.expand = ConvBNAct(in_channels, mid_channels, 1, act=act, **bits) if expand else None
        self.depthwise = ConvBNAct(mid_channels, mid_channels, kernel_size, stride, groups=mid_channels, act=act,
                                   **after_act)
        self.se = SqueezeExcite(mid_channels, se_channels) if se_channels else None
        self.project = ConvBNAct(mid_channels, out_channels, 1, act=None, **after_act)
        self.use_shortcut = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x) if self.expand is not None else x
        out = self.depthwise(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        return out + x if self.use_shortcut else out
