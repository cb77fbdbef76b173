"""Blocks as values: the unit that devices are measured at and lookup tables are keyed by.

A network of any space is a sequence of blocks (``space.blocks(arch)``), the
static stem and head included. A block spec is a frozen dataclass of plain
values: everything hardware needs to run the block on its own (input
resolution, channels, kernel, stride, ...), nothing about where it sits in
a supernet. Two architectures that share a block share its spec, its key
and its measurement.

* ``block.key``: a stable string (``mbconv:r=16:cin=24:cout=24:...``): fields in
  declaration order, so keys never change when unrelated code does;
* ``block.to_dict()`` / :func:`block_from_dict` / :func:`block_from_key`:
  a JSON round trip;
* ``block.layers(prefix)``: the compute layers as :class:`LayerShape` (the
  cost model of a network is the concatenation of its blocks' layers);
* ``block.example_input_shape``: the tensor the block consumes (batch 1).

New block kinds register with :func:`register_block`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import ConfigError
from .base import LayerShape
from .precision import ALLOWED_BITS, FLOAT_BITS

BLOCK_KINDS: dict[str, type["BlockSpec"]] = {}


def register_block(cls: type["BlockSpec"]) -> type["BlockSpec"]:
    BLOCK_KINDS[cls.kind] = cls
    return cls


def conv_out_size(size: int, stride: int) -> int:
    """Output size of a conv with odd kernel k, padding k // 2 and this stride."""
    return (size - 1) // stride + 1


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (tuple, list)):
        return "x".join(_format_value(v) for v in value)
    return str(value)


def precision_field():
    """A block's weight or activation bits (``ofa.spaces.precision``): 32, floating point, by default,
    and left out of the key and the dict there, so blocks of spaces without precision keep their keys."""
    return dataclasses.field(default=FLOAT_BITS, metadata={"omit_at_default": True})


def _described_fields(block) -> list:
    """The fields that describe ``block``: all but optional ones at their default."""
    return [f for f in dataclasses.fields(block)
            if not (f.metadata.get("omit_at_default") and getattr(block, f.name) == f.default)]


@dataclass(frozen=True)
class BlockSpec:
    """Base of every block kind (subclasses are frozen dataclasses of plain values)."""

    kind: ClassVar[str] = ""

    @property
    def key(self) -> str:
        parts = [f"{f.name}={_format_value(getattr(self, f.name))}" for f in _described_fields(self)]
        return ":".join([self.kind, *parts])

    def to_dict(self) -> dict:
        out = {"kind": self.kind}
        for f in _described_fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def layers(self, prefix: str = "") -> tuple[LayerShape, ...]:
        raise NotImplementedError

    def norm_params(self) -> int:
        """Parameters of the block's normalisation layers."""
        return sum(layer.norm_params for layer in self.layers())

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers())

    @property
    def params(self) -> int:
        return sum(layer.params + layer.norm_params for layer in self.layers())

    def __str__(self) -> str:
        return self.key


def block_from_dict(config: dict) -> BlockSpec:
    """Rebuild a block from :meth:`BlockSpec.to_dict` (a named error for anything else)."""
    if not isinstance(config, dict) or config.get("kind") not in BLOCK_KINDS:
        kind = config.get("kind") if isinstance(config, dict) else type(config).__name__
        raise ConfigError(f"unknown block kind {kind!r}; known kinds: {sorted(BLOCK_KINDS)}")
    cls = BLOCK_KINDS[config["kind"]]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {k: v for k, v in config.items() if k != "kind"}
    unknown = sorted(set(values) - set(fields))
    missing = sorted(name for name, f in fields.items() if name not in values
                     and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    if unknown or missing:
        raise ConfigError(f"bad {cls.kind} block: unknown field(s) {unknown}, missing field(s) {missing}; "
                          f"fields: {list(fields)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"bad {cls.kind} block {config}: {error}") from None


def block_from_key(key: str) -> BlockSpec:
    """Parse :attr:`BlockSpec.key` back into the block."""
    if not isinstance(key, str) or ":" not in key:
        raise ConfigError(f"block key {key!r} is not of the form 'kind:field=value:...'")
    kind, *parts = key.split(":")
    if kind not in BLOCK_KINDS:
        raise ConfigError(f"block key {key!r}: unknown kind {kind!r}; known kinds: {sorted(BLOCK_KINDS)}")
    cls = BLOCK_KINDS[kind]
    types = {f.name: f.type for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {"kind": kind}
    for part in parts:
        name, sep, text = part.partition("=")
        if not sep or name not in types:
            raise ConfigError(f"block key {key!r}: bad field {part!r}; fields of {kind}: {list(types)}")
        values[name] = _parse_value(text, types[name], key)
    return block_from_dict(values)


def _parse_value(text: str, type_name: Any, key: str) -> Any:
    type_name = str(type_name)
    try:
        if type_name.startswith("tuple"):
            return tuple(int(v) for v in text.split("x")) if text else ()
        if type_name == "bool":
            return bool(int(text))
        if type_name == "int":
            return int(text)
        if type_name == "float":
            return float(text)
    except ValueError:
        raise ConfigError(f"block key {key!r}: {text!r} is not a valid {type_name}") from None
    return text


# --- the MobileNetV3 family -----------------------------------------------------------------------------
ACTIVATIONS = ("relu", "h_swish")


def _check_activation(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ConfigError(f"block activation {activation!r} unknown; allowed: {ACTIVATIONS}")


@register_block
@dataclass(frozen=True)
class StemBlock(BlockSpec):
    """The first conv (k x k, stride, BN, activation) on the network input."""

    kind: ClassVar[str] = "stem"

    resolution: int
    in_channels: int
    out_channels: int
    kernel: int = 3
    stride: int = 2
    activation: str = "h_swish"

    def __post_init__(self):
        _check_activation(self.activation)

    @property
    def example_input_shape(self) -> tuple[int, ...]:
        return (1, self.in_channels, self.resolution, self.resolution)

    @property
    def out_resolution(self) -> int:
        return conv_out_size(self.resolution, self.stride)

    def layers(self, prefix: str = "stem") -> tuple[LayerShape, ...]:
        r, o = self.resolution, self.out_resolution
        return (LayerShape(prefix or "stem", "conv", self.in_channels, self.out_channels, (r, r), (o, o),
                           self.kernel, self.stride, norm_params=2 * self.out_channels),)


@register_block
@dataclass(frozen=True)
class MBConvBlock(BlockSpec):
    """An inverted-residual block: [1x1 expand, BN, act] -> k x k depthwise, BN, act
    -> [squeeze-excitation] -> 1x1 project, BN [+ identity when stride 1 and
    in == out]. ``expand`` is false for the first block, which has no expand
    conv (``mid_channels == in_channels``); ``se_channels`` 0 means no SE.
    ``weight_bits`` / ``activation_bits``: the precision of the expand,
    depthwise and project convs (their weights and inputs); the SE layers stay
    in floating point (one pixel: a negligible share of the work)."""

    kind: ClassVar[str] = "mbconv"

    resolution: int
    in_channels: int
    out_channels: int
    mid_channels: int
    kernel: int
    stride: int
    se_channels: int = 0
    activation: str = "relu"
    expand: bool = True
    expand_ratio: float = 1.0
    weight_bits: int = precision_field()
    activation_bits: int = precision_field()

    def __post_init__(self):
        _check_activation(self.activation)
        for name in ("weight_bits", "activation_bits"):
            if getattr(self, name) not in ALLOWED_BITS:
                raise ConfigError(f"mbconv block {name} = {getattr(self, name)!r} is not allowed; allowed: "
                                  f"{list(ALLOWED_BITS)} ({FLOAT_BITS}: floating point)")
        if not self.expand and self.mid_channels != self.in_channels:
            raise ConfigError(f"an mbconv block without expand conv has mid_channels == in_channels "
                              f"({self.in_channels}), got {self.mid_channels}")

    @property
    def residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels

    @property
    def use_se(self) -> bool:
        return self.se_channels > 0

    @property
    def example_input_shape(self) -> tuple[int, ...]:
        return (1, self.in_channels, self.resolution, self.resolution)

    @property
    def out_resolution(self) -> int:
        return conv_out_size(self.resolution, self.stride)

    def layers(self, prefix: str = "block") -> tuple[LayerShape, ...]:
        r, o, mid = self.resolution, self.out_resolution, self.mid_channels
        name = (prefix + ".") if prefix else ""
        bits = {"weight_bits": self.weight_bits, "activation_bits": self.activation_bits}
        out = []
        if self.expand:
            out.append(LayerShape(f"{name}expand", "pointwise", self.in_channels, mid, (r, r), (r, r),
                                  norm_params=2 * mid, **bits))
        out.append(LayerShape(f"{name}depthwise", "depthwise", mid, mid, (r, r), (o, o), self.kernel, self.stride,
                              mid, norm_params=2 * mid, **bits))
        if self.use_se:
            out.append(LayerShape(f"{name}se_reduce", "pointwise", mid, self.se_channels, (1, 1), (1, 1),
                                  bias=True))
            out.append(LayerShape(f"{name}se_expand", "pointwise", self.se_channels, mid, (1, 1), (1, 1),
                                  bias=True))
        out.append(LayerShape(f"{name}project", "pointwise", mid, self.out_channels, (o, o), (o, o),
                              norm_params=2 * self.out_channels, **bits))
        return tuple(out)


@register_block
@dataclass(frozen=True)
class ClassifierHeadBlock(BlockSpec):
    """The static head: 1x1 final expand (BN, act) -> global average pool ->
    1x1 feature mix (act, no BN) -> linear classifier."""

    kind: ClassVar[str] = "head"

    resolution: int
    in_channels: int
    final_expand_channels: int
    feature_mix_channels: int
    num_classes: int
    activation: str = "h_swish"

    def __post_init__(self):
        _check_activation(self.activation)

    @property
    def example_input_shape(self) -> tuple[int, ...]:
        return (1, self.in_channels, self.resolution, self.resolution)

    def layers(self, prefix: str = "") -> tuple[LayerShape, ...]:
        r = self.resolution
        name = (prefix + ".") if prefix else ""
        return (
            LayerShape(f"{name}final_expand", "pointwise", self.in_channels, self.final_expand_channels, (r, r),
                       (r, r), norm_params=2 * self.final_expand_channels),
            LayerShape(f"{name}feature_mix", "pointwise", self.final_expand_channels, self.feature_mix_channels,
                       (1, 1), (1, 1)),
            LayerShape(f"{name}classifier", "linear", self.feature_mix_channels, self.num_classes, (1, 1), (1, 1),
                       bias=True),
        )


# --- the runtime's own cost ------------------------------------------------------------------------------
@register_block
@dataclass(frozen=True)
class NullBlock(BlockSpec):
    """Almost no work (one element-wise scale) on an input of ``shape``: what a runtime
    charges per inference whatever the model does (the call, binding inputs and
    outputs). A block measured alone pays it once, a network too, so a sum of
    ``n`` blocks holds it ``n - 1`` times too many (block-sum predictors subtract it)."""

    kind: ClassVar[str] = "null"

    shape: tuple[int, ...]
    dtype: str = "float32"

    def __post_init__(self):
        if not self.shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in self.shape):
            raise ConfigError(f"null block shape must be positive integers, got {self.shape!r}")
        if self.dtype not in ("float32", "int64"):
            raise ConfigError(f"null block dtype {self.dtype!r} unknown; allowed: float32, int64")

    @property
    def example_input_shape(self) -> tuple[int, ...]:
        return tuple(self.shape)

    def layers(self, prefix: str = "") -> tuple[LayerShape, ...]:
        return ()


# --- the Transformer family ------------------------------------------------------------------------------
# Sequences are (tokens, 1) maps; attention products are grouped 1x1 "convs" with one group per head
# (and per beam when decoding several hypotheses at once), as in LayerShape's docstring.
def _linear(name: str, cin: int, cout: int, tokens: int, bias: bool = True) -> LayerShape:
    return LayerShape(name, "linear", cin, cout, (tokens, 1), (tokens, 1), bias=bias)


def _attention_products(name: str, heads: int, head_size: int, q_tokens: int, kv_tokens: int,
                        beams: int = 1) -> list[LayerShape]:
    """Scores (q @ k^T) and context (p @ v) of ``heads`` heads for each of ``beams`` sequences."""
    groups = heads * beams
    return [LayerShape(f"{name}.scores", "matmul", groups * head_size, groups * kv_tokens, (q_tokens, 1),
                       (q_tokens, 1), groups=groups),
            LayerShape(f"{name}.context", "matmul", groups * kv_tokens, groups * head_size, (q_tokens, 1),
                       (q_tokens, 1), groups=groups)]


def _attention(name: str, dim: int, kv_dim: int, heads: int, head_size: int, q_tokens: int,
               kv_tokens: int) -> list[LayerShape]:
    width = heads * head_size
    return [_linear(f"{name}.q_proj", dim, width, q_tokens), _linear(f"{name}.k_proj", kv_dim, width, kv_tokens),
            _linear(f"{name}.v_proj", kv_dim, width, kv_tokens),
            *_attention_products(name, heads, head_size, q_tokens, kv_tokens),
            _linear(f"{name}.out_proj", width, dim, q_tokens)]


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _check_sizes(block: BlockSpec, may_be_zero: tuple[str, ...] = ()) -> None:
    """Integer fields are positive integers (``may_be_zero``: non-negative)."""
    for f in dataclasses.fields(block):
        value = getattr(block, f.name)
        if str(f.type) != "int":
            continue
        low = 0 if f.name in may_be_zero else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{block.kind} block field {f.name} must be an integer >= {low}, got {value!r}")


@register_block
@dataclass(frozen=True)
class EmbeddingBlock(BlockSpec):
    """Token plus learned position embedding of ``tokens`` tokens (a gather and an add:
    parameters, no MACs)."""

    kind: ClassVar[str] = "embedding"

    vocab_size: int
    dim: int
    tokens: int
    max_positions: int

    def __post_init__(self):
        _check_sizes(self)

    @property
    def example_input_shape(self) -> tuple[int, ...]:
        return (1, self.tokens)

    def layers(self, prefix: str = "") -> tuple[LayerShape, ...]:
        return ()

    def norm_params(self) -> int:
        # embedding tables are not compute layers; counted here so block params add up to the network's
        return (self.vocab_size + self.max_positions) * self.dim


@register_block
@dataclass(frozen=True)
class EncoderLayerBlock(BlockSpec):
    """One pre-norm encoder layer over ``tokens`` tokens: x + SelfAttn(LN(x)), x + FFN(LN(x))."""

    kind: ClassVar[str] = "encoder_layer"

    dim: int
    ffn_dim: int
    heads: int
    head_size: int
    tokens: int

    def __post_init__(self):
        _check_sizes(self)

    @property
    def example_input_shape(self) -> tuple[int, ...]:
        return (1, self.tokens, self.dim)

    def layers(self, prefix: str = "encoder_layer") -> tuple[LayerShape, ...]:
        t = self.tokens
        return (*_attention(_join(prefix, "self_attn"), self.dim, self.dim, self.heads, self.head_size, t, t),
                _linear(_join(prefix, "ffn.fc1"), self.dim, self.ffn_dim, t),
                _linear(_join(prefix, "ffn.fc2"), self.ffn_dim, self.dim, t))

    def norm_params(self) -> int:
        return 2 * 2 * self.dim


@register_block
@dataclass(frozen=True)
class DecoderLayerBlock(BlockSpec):
    """One pre-norm decoder layer, teacher-forced over ``tokens`` target tokens (one full
    pass): causal self-attention, attention over the outputs of the last ``cross_layers``
    encoder layers (``cross_layers x source_tokens`` states), FFN."""

    kind: ClassVar[str] = "decoder_layer"

    dim: int
    encoder_dim: int
    ffn_dim: int
    self_heads: int
    self_head_size: int
    cross_heads: int
    cross_head_size: int
    cross_layers: int
    tokens: int
    source_tokens: int

    def __post_init__(self):
        _check_sizes(self)

    @property
    def example_input_shape(self) -> tuple[int, ...]:
        return (1, self.tokens, self.dim)

    def layers(self, prefix: str = "decoder_layer") -> tuple[LayerShape, ...]:
        t, memory = self.tokens, self.cross_layers * self.source_tokens
        return (*_attention(_join(prefix, "self_attn"), self.dim, self.dim, self.self_heads, self.self_head_size,
                            t, t),
                *_attention(_join(prefix, "cross_attn"), self.dim, self.encoder_dim, self.cross_heads,
                            self.cross_head_size, t, memory),
                _linear(_join(prefix, "ffn.fc1"), self.dim, self.ffn_dim, t),
                _linear(_join(prefix, "ffn.fc2"), self.ffn_dim, self.dim, t))

    def norm_params(self) -> int:
        return 3 * 2 * self.dim


@register_block
@dataclass(frozen=True)
class CrossKVBlock(BlockSpec):
    """The encoder-decoder keys and values of one decoder layer: two projections of the
    ``source_tokens`` encoder states it reads (``cross_layers x source length``) for each
    of ``beams`` hypotheses. Decoding computes them once per sentence and caches them."""

    kind: ClassVar[str] = "cross_kv"

    encoder_dim: int
    heads: int
    head_size: int
    source_tokens: int
    beams: int = 1

    def __post_init__(self):
        _check_sizes(self)

    @property
    def example_input_shape(self) -> tuple[int, ...]:
        return (self.beams, self.source_tokens, self.encoder_dim)

    def layers(self, prefix: str = "cross_kv") -> tuple[LayerShape, ...]:
        width, tokens = self.heads * self.head_size, self.beams * self.source_tokens
        return (_linear(_join(prefix, "k_proj"), self.encoder_dim, width, tokens),
                _linear(_join(prefix, "v_proj"), self.encoder_dim, width, tokens))


@register_block
@dataclass(frozen=True)
class DecoderStepBlock(BlockSpec):
    """One incremental decoding step of one decoder layer with a key/value cache: one new
    token per beam; self-attention over the ``cache_length`` cached positions plus the new
    one; attention over the cached encoder keys/values (``cross_layers x source_tokens``);
    FFN. Autoregressive decoding of N tokens runs it at cache lengths 0 .. N-1."""

    kind: ClassVar[str] = "decoder_step"

    dim: int
    encoder_dim: int
    ffn_dim: int
    self_heads: int
    self_head_size: int
    cross_heads: int
    cross_head_size: int
    cross_layers: int
    source_tokens: int
    cache_length: int
    beams: int = 1

    def __post_init__(self):
        _check_sizes(self, ("cache_length",))

    @property
    def example_input_shape(self) -> tuple[int, ...]:
        return (self.beams, 1, self.dim)

    def layers(self, prefix: str = "decoder_step") -> tuple[LayerShape, ...]:
        b, d = self.beams, self.dim
        self_width, cross_width = self.self_heads * self.self_head_size, self.cross_heads * self.cross_head_size
        sa, ca = _join(prefix, "self_attn"), _join(prefix, "cross_attn")
        return (_linear(f"{sa}.q_proj", d, self_width, b), _linear(f"{sa}.k_proj", d, self_width, b),
                _linear(f"{sa}.v_proj", d, self_width, b),
                *_attention_products(sa, self.self_heads, self.self_head_size, 1, self.cache_length + 1, b),
                _linear(f"{sa}.out_proj", self_width, d, b),
                _linear(f"{ca}.q_proj", d, cross_width, b),
                *_attention_products(ca, self.cross_heads, self.cross_head_size, 1,
                                     self.cross_layers * self.source_tokens, b),
                _linear(f"{ca}.out_proj", cross_width, d, b),
                _linear(_join(prefix, "ffn.fc1"), d, self.ffn_dim, b),
                _linear(_join(prefix, "ffn.fc2"), self.ffn_dim, d, b))

    def norm_params(self) -> int:
        return 3 * 2 * self.dim


@register_block
@dataclass(frozen=True)
class OutputBlock(BlockSpec):
    """[final LayerNorm] then the output projection of ``tokens`` tokens: the vocabulary
    logits (weights tied to the token embedding, no bias) or a classifier (bias)."""

    kind: ClassVar[str] = "output"

    dim: int
    vocab_size: int
    tokens: int
    bias: bool = False
    norm: bool = True

    def __post_init__(self):
        _check_sizes(self)

    @property
    def example_input_shape(self) -> tuple[int, ...]:
        return (1, self.tokens, self.dim)

    def layers(self, prefix: str = "output_projection") -> tuple[LayerShape, ...]:
        return (_linear(prefix or "output_projection", self.dim, self.vocab_size, self.tokens, bias=self.bias),)

    def norm_params(self) -> int:
        return 2 * self.dim if self.norm else 0


__all__ = ["BLOCK_KINDS", "BlockSpec", "ClassifierHeadBlock", "CrossKVBlock", "DecoderLayerBlock",
           "DecoderStepBlock", "EmbeddingBlock", "EncoderLayerBlock", "MBConvBlock", "NullBlock", "OutputBlock",
           "StemBlock",
           "block_from_dict", "block_from_key", "conv_out_size", "register_block"]
