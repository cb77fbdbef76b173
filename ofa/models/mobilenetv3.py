"""A plain, static MobileNetV3: what ``supernet.extract(arch)`` returns, and
what a from-scratch baseline trains. No elastic machinery."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError, DataError
from ..spaces.mobilenetv3 import MobileNetV3Arch, MobileNetV3Space


def check_image_batch(x, channels: int) -> None:
    """A DataError, not a convolution traceback, for a batch of the wrong shape."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise DataError(f"input of shape {shape} is not allowed: this network takes image batches of shape "
                        f"(batch, {channels}, height, width)")
from .layers import ConvBNAct, InvertedResidual


class ExitHead(nn.Module):
    """An early-exit classifier: the operators of the network's own head
    (:class:`~ofa.models.blocks.ClassifierHeadModule`), ``width`` channels wide,
    so its latency is that of a :class:`~ofa.spaces.ClassifierHeadBlock`."""

    def __init__(self, in_channels: int, width: int, num_classes: int):
        super().__init__()
        self.final_expand = ConvBNAct(in_channels, width, 1, act="h_swish")
        self.feature_mix = nn.Conv2d(width, width, 1, bias=False)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand(x).mean((2, 3), keepdim=True)
        return self.classifier(nn.functional.hardswish(self.feature_mix(x)).flatten(1))


def exit_heads(space: MobileNetV3Space, exits) -> nn.ModuleList:
    return nn.ModuleList(ExitHead(space.stage_widths[s], exits.width, space.num_classes) for s in exits.stages)


class MobileNetV3(nn.Module):
    """A static subnet; with ``exits`` (:class:`~ofa.spaces.exits.ExitConfig`) it also
    carries exit heads: ``forward`` still returns the final logits only (the
    static network's), :meth:`forward_exits` every exit's, and :meth:`segments`
    the graphs a runtime that stops early runs one after another."""

    input_names = ("input",)
    output_names = ("logits",)

    def __init__(self, space: MobileNetV3Space, arch: MobileNetV3Arch | dict, dropout: float = 0.1, exits=None):
        super().__init__()
        from ..spaces.exits import ExitConfig

        arch = space.parse(arch)
        self.exits = ExitConfig.parse(space, exits)
        self.space_fingerprint = space.fingerprint
        self.arch = arch
        self.stem = ConvBNAct(space.in_channels, space.stem_width, 3, space.stem_stride, act="h_swish")
        self.first_block = InvertedResidual(space.stem_width, space.stem_width, space.first_block_width, 3, 1,
                                            "relu", expand=False)
        blocks = []
        for stage, i, kernel, expand in arch.active_blocks():
            cin = space.block_in_channels(stage, i)
            mid = space.mid_channels(cin, expand)
            weight_bits, activation_bits = arch.block_bits(stage * space.max_depth + i)
            blocks.append(InvertedResidual(
                cin, mid, space.stage_widths[stage], kernel, space.stage_strides[stage] if i == 0 else 1,
                space.stage_activations[stage], space.se_channels(mid) if space.stage_use_se[stage] else 0,
                weight_bits=weight_bits, activation_bits=activation_bits))
        self.blocks = nn.Sequential(*blocks)
        self.final_expand = ConvBNAct(space.stage_widths[-1], space.final_expand_width, 1, act="h_swish")
        self.feature_mix = nn.Conv2d(space.final_expand_width, space.feature_mix_width, 1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(space.feature_mix_width, space.num_classes)
        if self.exits is not None:
            self.exit_heads = exit_heads(space, self.exits)
            # exit k reads the output of the last block of stage exits.stages[k]
            self.exit_after = [sum(arch.depths[:s + 1]) for s in self.exits.stages]

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

    def head(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand(x).mean((2, 3), keepdim=True)
        x = nn.functional.hardswish(self.feature_mix(x)).flatten(1)
        return self.classifier(self.dropout(x))

    def forward_exits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The logits of every exit, then the final logits (one pass)."""
        if self.exits is None:
            raise ConfigError("this subnet has no exit heads: extract it from a supernet built with exits")
        check_image_batch(x, self.stem[0].in_channels)
        x = self.first_block(self.stem(x))
        out, start = [], 0
        for head, stop in zip(self.exit_heads, self.exit_after):
            x = self.blocks[start:stop](x)
            out.append(head(x))
            start = stop
        x = self.blocks[start:](x)
        return out + [self.head(x)]

    def keep_exits(self, indices) -> "MobileNetV3":
        """A copy with only the exit heads ``indices`` (in order; the network and the kept heads unchanged)."""
        import copy

        from ..spaces.exits import ExitConfig

        if self.exits is None or not indices or any(i not in range(len(self.exits.stages)) for i in indices):
            raise ConfigError(f"exit indices {list(indices)} are not allowed: give some of "
                              f"{list(range(len(self.exits.stages))) if self.exits else []}, in order")
        indices = sorted(set(indices))
        out = copy.deepcopy(self)
        out.exits = ExitConfig(tuple(self.exits.stages[i] for i in indices), self.exits.width)
        out.exit_heads = nn.ModuleList(out.exit_heads[i] for i in indices)
        out.exit_after = [self.exit_after[i] for i in indices]
        return out

    def segments(self) -> list[nn.Module]:
        """One module per segment: ``segments()[k]`` for ``k < len(exits)`` maps its input (the image for
        k = 0, else the previous segment's features) to ``(features, exit logits)``; the last maps
        features to the final logits."""
        if self.exits is None:
            raise ConfigError("this subnet has no exit heads: extract it from a supernet built with exits")
        out, start = [], 0
        for k, (head, stop) in enumerate(zip(self.exit_heads, self.exit_after)):
            prefix = [self.stem, self.first_block] if k == 0 else []
            out.append(_Segment(nn.Sequential(*prefix, *self.blocks[start:stop]), head))
            start = stop
        out.append(_FinalSegment(self.blocks[start:], self))
        for segment in out:  # a new module starts in training mode; its layers are this network's
            segment.train(self.training)
        return out


class _Segment(nn.Module):
    def __init__(self, body: nn.Module, head: nn.Module):
        super().__init__()
        self.body, self.exit_head = body, head

    def forward(self, x: torch.Tensor):
        x = self.body(x)
        return x, self.exit_head(x)


class _FinalSegment(nn.Module):
    def __init__(self, body: nn.Module, network: MobileNetV3):
        super().__init__()
        self.body = body
        self.final_expand, self.feature_mix, self.dropout, self.classifier = (
            network.final_expand, network.feature_mix, network.dropout, network.classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand(self.body(x)).mean((2, 3), keepdim=True)
        x = nn.functional.hardswish(self.feature_mix(x)).flatten(1)
        return self.classifier(self.dropout(x))
