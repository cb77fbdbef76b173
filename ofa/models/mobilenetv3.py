"""A plain, static MobileNetV3: what ``supernet.extract(arch)`` returns, and
what a from-scratch baseline trains. No elastic machinery."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import DataError
from ..spaces.mobilenetv3 import MobileNetV3Arch, MobileNetV3Space


def check_image_batch(x, channels: int) -> None:
    """A DataError, not a convolution traceback, for a batch of the wrong shape."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise DataError(f"input of shape {shape} is not allowed: this network takes image batches of shape "
                        f"(batch, {channels}, height, width)")
from .layers import ConvBNAct, InvertedResidual


class MobileNetV3(nn.Module):
    input_names = ("input",)
    output_names = ("logits",)

    def __init__(self, space: MobileNetV3Space, arch: MobileNetV3Arch | dict, dropout: float = 0.1):
        super().__init__()
        arch = space.parse(arch)
        self.space_fingerprint = space.fingerprint
        self.arch = arch
        self.stem = ConvBNAct(space.in_channels, space.stem_width, 3, space.stem_stride, act="h_swish")
        self.first_block = InvertedResidual(space.stem_width, space.stem_width, space.first_block_width, 3, 1,
                                            "relu", expand=False)
        blocks = []
        for stage, i, kernel, expand in arch.active_blocks():
            cin = space.block_in_channels(stage, i)
            mid = space.mid_channels(cin, expand)
            blocks.append(InvertedResidual(
                cin, mid, space.stage_widths[stage], kernel, space.stage_strides[stage] if i == 0 else 1,
                space.stage_activations[stage], space.se_channels(mid) if space.stage_use_se[stage] else 0))
        self.blocks = nn.Sequential(*blocks)
        self.final_expand = ConvBNAct(space.stage_widths[-1], space.final_expand_width, 1, act="h_swish")
        self.feature_mix = nn.Conv2d(space.final_expand_width, space.feature_mix_width, 1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(space.feature_mix_width, space.num_classes)

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor]:
        """Random inputs of the shape this network was built for."""
        r = self.arch.resolution
        param = next(self.parameters())
        return (torch.randn(batch_size, self.stem[0].in_channels, r, r, device=param.device, dtype=param.dtype),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, self.stem[0].in_channels)
        x = self.blocks(self.first_block(self.stem(x)))
        x = self.final_expand(x).mean((2, 3), keepdim=True)
        x = nn.functional.hardswish(self.feature_mix(x)).flatten(1)
        return self.classifier(self.dropout(x))
