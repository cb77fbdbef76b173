"""Elastic building blocks: layers whose active width or kernel is chosen per
forward pass by slicing (or transforming) one shared set of weights."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..models.layers import depthwise_conv2d
from ..models.quantization import fake_quantize_weight
from ..spaces.precision import FLOAT_BITS


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the first ``C`` channels of its ``num_features``, where
    ``C`` is the channel count of the input. Running statistics of the used
    channels are updated in place (exactly as ``nn.BatchNorm2d`` would,
    including ``momentum=None`` cumulative averaging for re-calibration)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        if channels == self.num_features:
            return super().forward(x)
        factor = 0.0
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch_stats = self.training or self.running_mean is None
        mean = self.running_mean[:channels] if self.running_mean is not None else None
        var = self.running_var[:channels] if self.running_var is not None else None
        return F.batch_norm(x, mean, var, self.weight[:channels], self.bias[:channels], use_batch_stats, factor,
                            self.eps)


class ElasticDepthwiseConv2d(nn.Module):
    """Depthwise conv storing only the largest kernel.

    Smaller kernels are the centre crop of the next larger (already
    transformed) kernel, multiplied by a learned ``s^2 x s^2`` matrix shared by
    all channels of the layer and initialised to identity (Once-for-All's
    kernel transformation): 7x7 -> 5x5 through a 25x25 matrix, 5x5 -> 3x3
    through a 9x9 matrix.
    """

    def __init__(self, channels: int, kernel_sizes, stride: int = 1):
        super().__init__()
        self.kernel_sizes = tuple(sorted(kernel_sizes, reverse=True))
        self.stride = stride
        largest = self.kernel_sizes[0]
        self.weight = nn.Parameter(torch.empty(channels, 1, largest, largest))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv2d's default init
        self.transforms = nn.ParameterDict({
            f"{big}to{small}": nn.Parameter(torch.eye(small * small))
            for big, small in zip(self.kernel_sizes[:-1], self.kernel_sizes[1:])
        })
        self._eval_cache: dict[int, tuple[tuple, torch.Tensor]] = {}

    def kernel(self, kernel_size: int, channels: int | None = None) -> torch.Tensor:
        """The (channels, 1, k, k) kernel of size ``kernel_size``."""
        weight = self.weight if channels is None else self.weight[:channels]
        for big, small in zip(self.kernel_sizes[:-1], self.kernel_sizes[1:]):
            if big == kernel_size:
                break
            start = (big - small) // 2
            crop = weight[:, :, start:start + small, start:start + small]
            flat = crop.reshape(-1, small * small)
            weight = F.linear(flat, self.transforms[f"{big}to{small}"]).reshape(crop.shape)
        return weight

    def _cached_kernel(self, kernel_size: int, channels: int) -> torch.Tensor:
        # At inference the transformed kernels only change when the weights do:
        # key the cache on the tensors' storage and version counters.
        key = (self.weight.data_ptr(), self.weight._version,
               tuple((p.data_ptr(), p._version) for p in self.transforms.values()))
        hit = self._eval_cache.get(kernel_size)
        if hit is None or hit[0] != key:
            hit = (key, self.kernel(kernel_size).detach())
            self._eval_cache[kernel_size] = hit
        return hit[1][:channels]

    def forward(self, x: torch.Tensor, kernel_size: int, weight_bits: int = FLOAT_BITS) -> torch.Tensor:
        channels = x.shape[1]
        if torch.is_grad_enabled():
            weight = self.kernel(kernel_size, channels)
        else:
            weight = self._cached_kernel(kernel_size, channels)
        return depthwise_conv2d(x, fake_quantize_weight(weight, weight_bits), self.stride)


def sort_segments(importance: torch.Tensor, boundaries) -> torch.Tensor:
    """Permutation sorting channels by descending importance within each segment
    ``[b_i, b_{i+1})`` of ``boundaries`` (so earlier prefixes keep their
    channels as a set); one segment means a plain global sort."""
    edges = sorted({0, importance.numel(), *boundaries})
    parts = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        order = torch.argsort(importance[lo:hi], descending=True, stable=True)
        parts.append(order + lo)
    return torch.cat(parts)
