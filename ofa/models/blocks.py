"""One static torch module per block spec, for timing blocks on real runtimes.

``build_block(spec)`` returns a module with random weights built from the very
layers the networks use (:mod:`ofa.models.layers`, :mod:`ofa.models.transformer`),
so a block measured alone runs the same operators it runs inside a network.
Every module has ``block_spec``, ``input_names``, ``output_names`` and
``example_inputs(batch_size)`` (the interface the measurement backends and
:func:`ofa.export.export_model` expect of a static network).

Inputs are what the block consumes inside its network: a feature map for CNN
blocks; token ids for embeddings; the hidden states (and encoder states,
key/value caches) for Transformer layers. Transformer blocks run unpadded (no
padding mask, the causal mask as an additive bias), like the graphs that run
one sentence at a time on a device.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..spaces.blocks import (BlockSpec, ClassifierHeadBlock, CrossKVBlock, DecoderLayerBlock, DecoderStepBlock,
                             EmbeddingBlock, EncoderLayerBlock, MBConvBlock, NullBlock, OutputBlock, StemBlock)
from .layers import ConvBNAct, InvertedResidual
from .transformer import (SPECIAL_TOKENS, DecoderLayer, EncoderLayer, EncoderMemory, MultiHeadAttention, _positions,
                          additive_mask, init_transformer_weights)


class BlockModule(nn.Module):
    """Base of the block modules: ``block_spec`` and random ``example_inputs``."""

    input_names: tuple[str, ...] = ("input",)
    output_names: tuple[str, ...] = ("output",)

    def __init__(self, spec: BlockSpec):
        super().__init__()
        self.block_spec = spec

    def input_shapes(self, batch_size: int) -> list[tuple[int, ...]]:
        shape = self.block_spec.example_input_shape
        return [(shape[0] * batch_size, *shape[1:])]

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        param = next(self.parameters())
        return tuple(torch.randn(shape, device=param.device, dtype=param.dtype)
                     for shape in self.input_shapes(batch_size))


# --- CNN blocks ---------------------------------------------------------------------------------------------
class StemModule(BlockModule):
    def __init__(self, spec: StemBlock):
        super().__init__(spec)
        self.conv = ConvBNAct(spec.in_channels, spec.out_channels, spec.kernel, spec.stride, act=spec.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class MBConvModule(BlockModule):
    def __init__(self, spec: MBConvBlock):
        super().__init__(spec)
        self.block = InvertedResidual(spec.in_channels, spec.mid_channels, spec.out_channels, spec.kernel,
                                      spec.stride, spec.activation, spec.se_channels, expand=spec.expand)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class ClassifierHeadModule(BlockModule):
    """The tail of :class:`ofa.models.MobileNetV3` (same operators, dropout omitted: eval)."""

    output_names = ("logits",)

    def __init__(self, spec: ClassifierHeadBlock):
        super().__init__(spec)
        self.final_expand = ConvBNAct(spec.in_channels, spec.final_expand_channels, 1, act=spec.activation)
        self.feature_mix = nn.Conv2d(spec.final_expand_channels, spec.feature_mix_channels, 1, bias=False)
        self.classifier = nn.Linear(spec.feature_mix_channels, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand(x).mean((2, 3), keepdim=True)
        return self.classifier(F.hardswish(self.feature_mix(x)).flatten(1))


# --- Transformer blocks ----------------------------------------------------------------------------------------
class EmbeddingModule(BlockModule):
    """Token plus position embedding, as :meth:`TransformerBody._embed` computes it."""

    input_names = ("tokens",)

    def __init__(self, spec: EmbeddingBlock):
        super().__init__(spec)
        self.embed = nn.Embedding(spec.vocab_size, spec.dim)
        self.pos = nn.Embedding(spec.max_positions, spec.dim)

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        spec = self.block_spec
        low = len(SPECIAL_TOKENS) if spec.vocab_size > len(SPECIAL_TOKENS) else 0
        return (torch.randint(low, spec.vocab_size, (batch_size, spec.tokens), device=self.embed.weight.device),)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.embedding(tokens, self.embed.weight) + F.embedding(_positions(tokens), self.pos.weight)


class EncoderLayerModule(BlockModule):
    def __init__(self, spec: EncoderLayerBlock):
        super().__init__(spec)
        self.layer = EncoderLayer(spec.dim, spec.ffn_dim, spec.heads, spec.head_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x, None)


class DecoderLayerModule(BlockModule):
    """A teacher-forced decoder layer; ``encoder_states`` are the ``cross_layers``
    encoder outputs it reads, stacked: (cross_layers, batch, source_tokens, encoder_dim)."""

    input_names = ("input", "encoder_states")

    def __init__(self, spec: DecoderLayerBlock):
        super().__init__(spec)
        self.layer = DecoderLayer(spec.dim, spec.encoder_dim, spec.ffn_dim, spec.self_heads, spec.cross_heads,
                                  spec.self_head_size, spec.cross_head_size, spec.cross_layers)

    def input_shapes(self, batch_size: int) -> list[tuple[int, ...]]:
        spec = self.block_spec
        return [(batch_size, spec.tokens, spec.dim),
                (spec.cross_layers, batch_size, spec.source_tokens, spec.encoder_dim)]

    def forward(self, x: torch.Tensor, encoder_states: torch.Tensor) -> torch.Tensor:
        position = _positions(x[:1, :, 0].long())[0]
        causal = additive_mask(position[None, :] > position[:, None], x.dtype)
        memory = EncoderMemory(tuple(encoder_states.unbind(0)), None)
        x, _ = self.layer(x, causal, *self.layer.cross_keys_values(memory))
        return x


class CrossKVModule(BlockModule):
    """The key and value projections of an encoder-decoder attention over its encoder states."""

    input_names = ("encoder_states",)
    output_names = ("key", "value")

    def __init__(self, spec: CrossKVBlock):
        super().__init__(spec)
        self.attention = MultiHeadAttention(spec.encoder_dim, spec.encoder_dim, spec.heads, spec.head_size)
        self.attention.q_proj = self.attention.out_proj = None  # unused: only keys and values are computed

    def forward(self, encoder_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.attention.project_kv(encoder_states)


class DecoderStepModule(BlockModule):
    """One cached decoding step of a decoder layer: the new token's hidden state
    (beams, 1, dim), the self-attention cache (beams, heads, cache_length, head_size)
    unless the cache is empty, and the cached encoder-decoder keys/values; returns the
    new hidden state and the grown self-attention cache."""

    def __init__(self, spec: DecoderStepBlock):
        super().__init__(spec)
        self.layer = DecoderLayer(spec.dim, spec.encoder_dim, spec.ffn_dim, spec.self_heads, spec.cross_heads,
                                  spec.self_head_size, spec.cross_head_size, spec.cross_layers)
        past = ("past_key", "past_value") if spec.cache_length else ()
        self.input_names = ("input", *past, "cross_key", "cross_value")
        self.output_names = ("output", "present_key", "present_value")

    def input_shapes(self, batch_size: int) -> list[tuple[int, ...]]:
        spec = self.block_spec
        beams = spec.beams * batch_size
        past = [(beams, spec.self_heads, spec.cache_length, spec.self_head_size)] * (2 if spec.cache_length else 0)
        cross = [(beams, spec.cross_heads, spec.cross_layers * spec.source_tokens, spec.cross_head_size)] * 2
        return [(beams, 1, spec.dim), *past, *cross]

    def forward(self, x: torch.Tensor, *caches: torch.Tensor):
        past = (caches[0], caches[1]) if self.block_spec.cache_length else None
        cross = caches[-2:]
        x, (key, value) = self.layer(x, None, (cross[0], cross[1]), None, past)
        return x, key, value


class OutputModule(BlockModule):
    """[final LayerNorm] and the output projection (vocabulary logits or classifier)."""

    output_names = ("logits",)

    def __init__(self, spec: OutputBlock):
        super().__init__(spec)
        self.norm = nn.LayerNorm(spec.dim) if spec.norm else None
        self.projection = nn.Linear(spec.dim, spec.vocab_size, bias=spec.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.norm(x) if self.norm is not None else x)


class NullModule(BlockModule):
    """One element-wise scale by a parameter (1): a graph no runtime can skip, doing
    almost nothing, to time a runtime's per-inference overhead."""

    def __init__(self, spec: NullBlock):
        super().__init__(spec)
        self.scale = nn.Parameter(torch.ones(1))

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        shape = (self.block_spec.shape[0] * batch_size, *self.block_spec.shape[1:])
        if self.block_spec.dtype == "int64":
            return (torch.randint(4, 10, shape),)
        return (torch.randn(shape),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale if x.is_floating_point() else x * self.scale.long()


BLOCK_MODULES: dict[str, Callable[[BlockSpec], BlockModule]] = {
    "stem": StemModule, "mbconv": MBConvModule, "head": ClassifierHeadModule, "embedding": EmbeddingModule,
    "encoder_layer": EncoderLayerModule, "decoder_layer": DecoderLayerModule, "cross_kv": CrossKVModule,
    "decoder_step": DecoderStepModule, "output": OutputModule, "null": NullModule,
}


def register_block_module(kind: str, factory: Callable[[BlockSpec], BlockModule]) -> None:
    """Add the module of a new block kind (see :func:`ofa.spaces.blocks.register_block`)."""
    BLOCK_MODULES[kind] = factory


def build_block(spec: BlockSpec, seed: int = 0) -> BlockModule:
    """A static module (eval mode, random weights from ``seed``) that runs ``spec``."""
    if not isinstance(spec, BlockSpec):
        raise ConfigError(f"build_block needs a BlockSpec (see ofa.spaces.blocks), got {type(spec).__name__}")
    if spec.kind not in BLOCK_MODULES:
        raise ConfigError(f"no module for block kind {spec.kind!r}; known: {sorted(BLOCK_MODULES)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = BLOCK_MODULES[spec.kind](spec)
        if spec.kind in ("embedding", "encoder_layer", "decoder_layer", "cross_kv", "decoder_step"):
            init_transformer_weights(module)
    return module.eval()


__all__ = ["BLOCK_MODULES", "BlockModule", "build_block", "register_block_module"]
