"""The elastic Once-for-All MobileNetV3 supernet.

One set of weights serves every architecture of a :class:`MobileNetV3Space`:
``set_active(arch)`` picks the subnet the next forward passes run, and
``extract(arch)`` returns it as a plain static :class:`~ofa.models.MobileNetV3`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..models.layers import ConvBNAct, InvertedResidual, activation
from ..models.mobilenetv3 import MobileNetV3, check_image_batch, exit_heads
from ..models.quantization import ElasticActivationQuantizer, fake_quantize_weight
from ..spaces.precision import FLOAT_BITS
from ..spaces.exits import ExitConfig
from ..spaces.mobilenetv3 import MobileNetV3Arch, MobileNetV3Space
from .elastic import ElasticBatchNorm2d, ElasticDepthwiseConv2d, sort_segments


class ElasticInvertedResidual(nn.Module):
    """Inverted-residual block with elastic depthwise kernel and expand ratio; in a space with
    precision, also elastic weight and activation bits: the expand, depthwise and project convs
    are fake-quantised (``ofa.models.quantization``) at the active precision, with one learned
    activation step size per layer and precision."""

    def __init__(self, space: MobileNetV3Space, stage: int, index: int):
        super().__init__()
        self.space = space
        self.in_channels = space.block_in_channels(stage, index)
        out_channels = space.stage_widths[stage]
        stride = space.stage_strides[stage] if index == 0 else 1
        max_mid = space.mid_channels(self.in_channels, max(space.expand_ratios))
        self.expand_conv = nn.Conv2d(self.in_channels, max_mid, 1, bias=False)
        self.expand_bn = ElasticBatchNorm2d(max_mid)
        self.depthwise = ElasticDepthwiseConv2d(max_mid, space.kernel_sizes, stride)
        self.depthwise_bn = ElasticBatchNorm2d(max_mid)
        if space.stage_use_se[stage]:
            max_se = space.se_channels(max_mid)
            self.se_reduce = nn.Conv2d(max_mid, max_se, 1, bias=True)
            self.se_expand = nn.Conv2d(max_se, max_mid, 1, bias=True)
        else:
            self.se_reduce = self.se_expand = None
        self.project_conv = nn.Conv2d(max_mid, out_channels, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(out_channels)
        self.act = activation(space.stage_activations[stage])
        self.use_shortcut = stride == 1 and self.in_channels == out_channels
        self.active_kernel = max(space.kernel_sizes)
        self.active_expand = max(space.expand_ratios)
        self.active_weight_bits = self.active_activation_bits = FLOAT_BITS
        if space.has_precision:  # created only then: a space without precision keeps its state dict
            unsigned_after_act = space.stage_activations[stage] == "relu"
            self.input_quantizers = nn.ModuleDict({
                "expand": ElasticActivationQuantizer(space.activation_bits, signed=True),
                "depthwise": ElasticActivationQuantizer(space.activation_bits, signed=not unsigned_after_act),
                "project": ElasticActivationQuantizer(space.activation_bits, signed=not unsigned_after_act)})
        else:
            self.input_quantizers = None

    def mid_channels(self, expand_ratio=None) -> int:
        return self.space.mid_channels(self.in_channels, self.active_expand if expand_ratio is None else expand_ratio)

    def _quantize_input(self, layer: str, x: torch.Tensor) -> torch.Tensor:
        if self.input_quantizers is None:
            return x
        return self.input_quantizers[layer](x, self.active_activation_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid = self.mid_channels()
        bits = self.active_weight_bits
        expand_weight = fake_quantize_weight(self.expand_conv.weight[:mid], bits)
        h = self.act(self.expand_bn(F.conv2d(self._quantize_input("expand", x), expand_weight)))
        h = self.act(self.depthwise_bn(self.depthwise(self._quantize_input("depthwise", h), self.active_kernel,
                                                      bits)))
        if self.se_reduce is not None:
            se = self.space.se_channels(mid)
            s = h.mean((2, 3), keepdim=True)
            s = torch.relu(F.conv2d(s, self.se_reduce.weight[:se, :mid], self.se_reduce.bias[:se]))
            s = F.conv2d(s, self.se_expand.weight[:mid, :se], self.se_expand.bias[:mid])
            h = h * F.hardsigmoid(s)
        project_weight = fake_quantize_weight(self.project_conv.weight[:, :mid], bits)
        h = self.project_bn(F.conv2d(self._quantize_input("project", h), project_weight))
        return h + x if self.use_shortcut else h

    # --- width re-ordering ------------------------------------------------------------------------
    @torch.no_grad()
    def sort_channels(self, keep_expand_ratios=()) -> None:
        """Re-order the middle (and SE hidden) channels by L1 importance of the
        weights that read them, preserving the function at every expand ratio in
        ``keep_expand_ratios`` (and at the largest)."""
        mid_bounds = [self.mid_channels(e) for e in keep_expand_ratios]
        importance = self.project_conv.weight.abs().sum(dim=(0, 2, 3))
        order = sort_segments(importance, mid_bounds)
        for param in (self.expand_conv.weight, self.depthwise.weight):
            param.copy_(param[order])
        for bn in (self.expand_bn, self.depthwise_bn):
            for tensor in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                tensor.copy_(tensor[order])
        self.project_conv.weight.copy_(self.project_conv.weight[:, order])
        if self.se_reduce is not None:
            self.se_reduce.weight.copy_(self.se_reduce.weight[:, order])
            self.se_expand.weight.copy_(self.se_expand.weight[order])
            self.se_expand.bias.copy_(self.se_expand.bias[order])
            se_bounds = [self.space.se_channels(m) for m in mid_bounds]
            se_order = sort_segments(self.se_expand.weight.abs().sum(dim=(0, 2, 3)), se_bounds)
            self.se_reduce.weight.copy_(self.se_reduce.weight[se_order])
            self.se_reduce.bias.copy_(self.se_reduce.bias[se_order])
            self.se_expand.weight.copy_(self.se_expand.weight[:, se_order])

    # --- extraction -----------------------------------------------------------------------------------
    @torch.no_grad()
    def extract(self, kernel: int, expand: float, block: InvertedResidual) -> None:
        """Copy this block's weights at (kernel, expand) into a static block."""
        mid = self.mid_channels(expand)
        block.expand[0].weight.copy_(self.expand_conv.weight[:mid])
        _copy_bn(self.expand_bn, block.expand[1], mid)
        block.depthwise[0].weight.copy_(self.depthwise.kernel(kernel, mid))
        _copy_bn(self.depthwise_bn, block.depthwise[1], mid)
        if block.se is not None:
            se = self.space.se_channels(mid)
            block.se.reduce.weight.copy_(self.se_reduce.weight[:se, :mid])
            block.se.reduce.bias.copy_(self.se_reduce.bias[:se])
            block.se.expand.weight.copy_(self.se_expand.weight[:mid, :se])
            block.se.expand.bias.copy_(self.se_expand.bias[:mid])
        block.project[0].weight.copy_(self.project_conv.weight[:, :mid])
        block.project[1].load_state_dict(self.project_bn.state_dict())
        if self.input_quantizers is not None:  # the learned step sizes of the block's precision
            for layer in ("expand", "depthwise", "project"):
                quantizer = getattr(getattr(block, layer)[0], "input_quantizer", None)
                if quantizer is not None:
                    quantizer.load_state_dict(self.input_quantizers[layer].by_bits[str(quantizer.bits)].state_dict())


def _copy_bn(source: nn.BatchNorm2d, target: nn.BatchNorm2d, channels: int) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(target, name).copy_(getattr(source, name)[:channels])
    target.num_batches_tracked.copy_(source.num_batches_tracked)
    target.momentum, target.eps = source.momentum, source.eps


class OFAMobileNetV3(nn.Module):
    """Elastic kernel (transformed), expand ratio (L1-sorted width), depth and
    resolution over one set of weights.

    ``exits`` (``{"stages": [...], "width": n}``, :class:`~ofa.spaces.exits.ExitConfig`):
    exit heads after those stages, shared by every subnet (a stage's output
    width is not elastic); :meth:`forward_exits` runs them, :meth:`extract`
    keeps them. Without exits the supernet, its weights and its checkpoints
    are exactly those of a supernet that never had the option."""

    def __init__(self, space: MobileNetV3Space, dropout: float = 0.1, exits=None):
        super().__init__()
        self.space = space
        self.dropout_rate = dropout
        self.exits = ExitConfig.parse(space, exits)
        self.stem = ConvBNAct(space.in_channels, space.stem_width, 3, space.stem_stride, act="h_swish")
        self.first_block = InvertedResidual(space.stem_width, space.stem_width, space.first_block_width, 3, 1,
                                            "relu", expand=False)
        self.stages = nn.ModuleList(
            nn.ModuleList(ElasticInvertedResidual(space, stage, i) for i in range(space.max_depth))
            for stage in range(space.num_stages)
        )
        self.final_expand = ConvBNAct(space.stage_widths[-1], space.final_expand_width, 1, act="h_swish")
        self.feature_mix = nn.Conv2d(space.final_expand_width, space.feature_mix_width, 1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(space.feature_mix_width, space.num_classes)
        if self.exits is not None:
            self.exit_heads = exit_heads(space, self.exits)
        self.active_arch: MobileNetV3Arch = space.largest()
        self.set_active(self.active_arch)

    # --- choosing the subnet ----------------------------------------------------------------------
    def set_active(self, arch: MobileNetV3Arch | dict) -> MobileNetV3Arch:
        """Make ``arch`` the subnet that the following forward passes run."""
        arch = self.space.parse(arch)
        for stage, blocks in enumerate(self.stages):
            for i, block in enumerate(blocks):
                b = stage * self.space.max_depth + i
                if i < arch.depths[stage]:
                    block.active_kernel, block.active_expand = arch.kernel_sizes[b], arch.expand_ratios[b]
                    block.active_weight_bits, block.active_activation_bits = arch.block_bits(b)
        self.active_arch = arch
        return arch

    def active_blocks(self):
        for stage, blocks in enumerate(self.stages):
            yield from blocks[:self.active_arch.depths[stage]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image_batch(x, self.space.in_channels)
        x = self.first_block(self.stem(x))
        for block in self.active_blocks():
            x = block(x)
        x = self.final_expand(x).mean((2, 3), keepdim=True)
        x = F.hardswish(self.feature_mix(x)).flatten(1)
        return self.classifier(self.dropout(x))

    def forward_exits(self, x: torch.Tensor, body_grad: bool = True) -> list[torch.Tensor]:
        """The active subnet's logits at every exit, then its final logits, in one pass.
        ``body_grad=False``: the main path runs without autograd (exits train on a frozen body)."""
        if self.exits is None:
            raise ConfigError("this supernet has no exit heads: build it with exits={'stages': [...]} "
                              "(training config key 'exits')")
        check_image_batch(x, self.space.in_channels)
        outputs = []
        with torch.set_grad_enabled(body_grad and torch.is_grad_enabled()):
            x = self.first_block(self.stem(x))
        stage_ends = {s: k for k, s in enumerate(self.exits.stages)}
        for stage, blocks in enumerate(self.stages):
            with torch.set_grad_enabled(body_grad and torch.is_grad_enabled()):
                for block in blocks[:self.active_arch.depths[stage]]:
                    x = block(x)
            if stage in stage_ends:
                outputs.append(self.exit_heads[stage_ends[stage]](x))
        with torch.set_grad_enabled(body_grad and torch.is_grad_enabled()):
            x = self.final_expand(x).mean((2, 3), keepdim=True)
            x = F.hardswish(self.feature_mix(x)).flatten(1)
            outputs.append(self.classifier(self.dropout(x)))
        return outputs

    def body_parameters(self):
        """Every parameter but the exit heads'."""
        heads = {id(p) for p in self.exit_heads.parameters()} if self.exits is not None else set()
        return [p for p in self.parameters() if id(p) not in heads]

    # --- width re-ordering ----------------------------------------------------------------------
    def sort_channels(self, keep_expand_ratios=()) -> None:
        """Re-order every block's middle channels by L1 importance.

        With ``keep_expand_ratios`` (e.g. ``(4, 6)`` when expand ratio 3 joins
        after training {4, 6}), channels are sorted only within the partitions
        those ratios define, so the subnets already trained keep their
        channels (and their function)."""
        for blocks in self.stages:
            for block in blocks:
                block.sort_channels(keep_expand_ratios)

    # --- extraction -------------------------------------------------------------------------------
    @torch.no_grad()
    def extract(self, arch: MobileNetV3Arch | dict | None = None) -> MobileNetV3:
        """A plain static network for ``arch`` (default: the active one) with
        this supernet's weights copied in (transformed kernels baked in)."""
        arch = self.active_arch if arch is None else self.space.parse(arch)
        param = next(self.parameters())
        static = MobileNetV3(self.space, arch, self.dropout_rate, self.exits).to(device=param.device,
                                                                                 dtype=param.dtype)
        names = ("stem", "first_block", "final_expand", "feature_mix", "classifier")
        for name in names + (("exit_heads",) if self.exits is not None else ()):
            getattr(static, name).load_state_dict(getattr(self, name).state_dict())
        static_blocks = iter(static.blocks)
        for stage, i, kernel, expand in arch.active_blocks():
            self.stages[stage][i].extract(kernel, expand, next(static_blocks))
        static.train(self.training)
        return static
