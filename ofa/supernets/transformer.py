"""The elastic HAT Transformer supernet.

One set of weights, sized for the largest architecture, serves every
architecture of a :class:`~ofa.spaces.TransformerSpace` by front slicing: an
embedding dimension ``d`` uses the first ``d`` features of every embedding,
LayerNorm and projection; ``h`` heads use the first ``h * head_dim`` rows of
the query/key/value projections; an FFN of hidden size ``f`` uses the first
``f`` units; ``n`` layers are the first ``n``. ``set_active(arch)`` picks the
subnet the next forward passes run; ``extract(arch)`` copies those slices into a
plain static :class:`~ofa.models.transformer.Transformer`.

The elastic layers subclass the static ones and only override how they read
their weights, so the supernet and the extracted network run the same code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.transformer import (
    DecoderLayer,
    EncoderLayer,
    FeedForward,
    MultiHeadAttention,
    Transformer,
    TransformerBody,
    init_transformer_weights,
)
from ..spaces.transformer import TransformerArch, TransformerSpace
from ..spaces.transformer_exits import DecoderExitConfig


class ElasticLayerNorm(nn.LayerNorm):
    """LayerNorm over the first ``d`` features, ``d`` the width of its input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dim = x.shape[-1]
        return F.layer_norm(x, (dim,), self.weight[:dim], self.bias[:dim], self.eps)


class ElasticMultiHeadAttention(MultiHeadAttention):
    """Attention whose query/key/value width follows the active head count
    (fixed head size), the active embedding dimension (``head_dim=None``), or
    stays at ``qkv_dim`` with the heads splitting it (HAT's convention)."""

    def __init__(self, space: TransformerSpace, max_dim: int, max_kv_dim: int):
        max_heads = max(space.head_counts)
        head_size = space.head_dim if space.head_dim is not None else max_dim // max_heads
        # the projections are allocated at the widest width any architecture uses
        super().__init__(max_dim, max_kv_dim, 1, space.attention_width(max_dim, max_heads))
        self.space = space
        self.heads, self.head_size = max_heads, head_size
        self.active_dim, self.active_kv_dim, self.active_heads = max_dim, max_kv_dim, max_heads

    def set_active(self, dim: int, kv_dim: int, heads: int) -> None:
        self.active_dim, self.active_kv_dim, self.active_heads = dim, kv_dim, heads

    def _shape(self) -> tuple[int, int]:
        return self.active_heads, self.space.head_size(self.active_dim, self.active_heads)

    def _weights(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        layer = getattr(self, name)
        width = self.space.attention_width(self.active_dim, self.active_heads)
        if name == "out_proj":
            return layer.weight[:self.active_dim, :width], layer.bias[:self.active_dim]
        in_dim = self.active_kv_dim if name in ("k_proj", "v_proj") else self.active_dim
        return layer.weight[:width, :in_dim], layer.bias[:width]


class ElasticFeedForward(FeedForward):
    def __init__(self, max_dim: int, max_hidden: int):
        super().__init__(max_dim, max_hidden)
        self.active_dim, self.active_hidden = max_dim, max_hidden

    def set_active(self, dim: int, hidden: int) -> None:
        self.active_dim, self.active_hidden = dim, hidden

    def _weights(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name == "fc1":
            return self.fc1.weight[:self.active_hidden, :self.active_dim], self.fc1.bias[:self.active_hidden]
        return self.fc2.weight[:self.active_dim, :self.active_hidden], self.fc2.bias[:self.active_dim]


class ElasticEncoderLayer(EncoderLayer):
    def __init__(self, space: TransformerSpace, dropout: float):
        nn.Module.__init__(self)
        dim = max(space.encoder_embed_dims)
        self.self_attn_norm = ElasticLayerNorm(dim)
        self.self_attn = ElasticMultiHeadAttention(space, dim, dim)
        self.ffn_norm = ElasticLayerNorm(dim)
        self.ffn = ElasticFeedForward(dim, max(space.ffn_dims))
        self.dropout = nn.Dropout(dropout)

    def set_active(self, dim: int, ffn_dim: int, heads: int) -> None:
        self.self_attn.set_active(dim, dim, heads)
        self.ffn.set_active(dim, ffn_dim)


class ElasticDecoderLayer(DecoderLayer):
    def __init__(self, space: TransformerSpace, dropout: float):
        nn.Module.__init__(self)
        dim, encoder_dim = max(space.decoder_embed_dims), max(space.encoder_embed_dims)
        self.cross_layers = max(space.cross_layer_counts)
        self.self_attn_norm = ElasticLayerNorm(dim)
        self.self_attn = ElasticMultiHeadAttention(space, dim, dim)
        self.cross_attn_norm = ElasticLayerNorm(dim)
        self.cross_attn = ElasticMultiHeadAttention(space, dim, encoder_dim)
        self.ffn_norm = ElasticLayerNorm(dim)
        self.ffn = ElasticFeedForward(dim, max(space.ffn_dims))
        self.dropout = nn.Dropout(dropout)

    def set_active(self, dim: int, encoder_dim: int, ffn_dim: int, self_heads: int, cross_heads: int,
                   cross_layers: int) -> None:
        self.self_attn.set_active(dim, dim, self_heads)
        self.cross_attn.set_active(dim, encoder_dim, cross_heads)
        self.ffn.set_active(dim, ffn_dim)
        self.cross_layers = cross_layers


class HATTransformer(TransformerBody):
    """Elastic encoder-decoder (or encoder-only) Transformer supernet.

    ``exits`` (``{"layers": [...]}``, :class:`~ofa.spaces.transformer_exits.DecoderExitConfig`):
    per-token early exits after those decoder layers (CALM), for every subnet deep enough to have
    them. They read the decoder's final LayerNorm and the shared output projection, so they add no
    weights: the state dict, and so every checkpoint, is the same with or without them.
    :meth:`extract` keeps them."""

    def __init__(self, space: TransformerSpace, dropout: float = 0.1, exits=None):
        super().__init__()
        self.exits = DecoderExitConfig.parse(space, exits)
        self.space = space
        self.dropout_rate = dropout
        self.dropout = nn.Dropout(dropout)
        e = max(space.encoder_embed_dims)
        self.src_embed = nn.Embedding(space.src_vocab_size, e)
        self.src_pos = nn.Embedding(space.max_positions, e)
        self.encoder_layers = nn.ModuleList(ElasticEncoderLayer(space, dropout)
                                            for _ in range(space.max_encoder_layers))
        self.encoder_norm = ElasticLayerNorm(e)
        if space.has_decoder:
            d = max(space.decoder_embed_dims)
            self.tgt_embed = nn.Embedding(space.tgt_vocab_size, d)
            self.tgt_pos = nn.Embedding(space.max_positions, d)
            self.decoder_layers = nn.ModuleList(ElasticDecoderLayer(space, dropout)
                                                for _ in range(space.max_decoder_layers))
            self.decoder_norm = ElasticLayerNorm(d)
        else:
            self.decoder_layers = nn.ModuleList()
            if space.encoder_head == "classifier":
                self.classifier = nn.Linear(e, space.num_classes)
        init_transformer_weights(self)
        self.active_arch: TransformerArch = space.largest()
        self.set_active(self.active_arch)

    # --- choosing the subnet ----------------------------------------------------------------------
    def set_active(self, arch: TransformerArch | dict) -> TransformerArch:
        """Make ``arch`` the subnet that the following forward passes run."""
        arch = self.space.parse(arch)
        e = arch.encoder_embed_dim
        for layer, ffn, heads in zip(self.encoder_layers, arch.encoder_ffn_dims, arch.encoder_heads):
            layer.set_active(e, ffn, heads)
        for layer, ffn, sh, ch, k in zip(self.decoder_layers, arch.decoder_ffn_dims, arch.decoder_self_heads,
                                         arch.decoder_cross_heads, arch.decoder_cross_layers):
            layer.set_active(arch.decoder_embed_dim, e, ffn, sh, ch, k)
        self.active_arch = arch
        return arch

    def active_encoder_layers(self) -> list:
        return list(self.encoder_layers[:self.active_arch.encoder_layers])

    def active_decoder_layers(self) -> list:
        return list(self.decoder_layers[:self.active_arch.decoder_layers])

    def _embedding_weights(self, side: str) -> tuple[torch.Tensor, torch.Tensor]:
        dim = self.active_arch.encoder_embed_dim if side == "src" else self.active_arch.decoder_embed_dim
        return getattr(self, f"{side}_embed").weight[:, :dim], getattr(self, f"{side}_pos").weight[:, :dim]

    def _classifier_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.classifier.weight[:, :self.active_arch.encoder_embed_dim], self.classifier.bias

    # --- extraction -------------------------------------------------------------------------------
    @torch.no_grad()
    def extract(self, arch: TransformerArch | dict | None = None) -> Transformer:
        """A plain static Transformer for ``arch`` (default: the active one).

        Every elastic dimension is a front slice and the static network names
        its parameters like the supernet, so each static tensor is the leading
        block of the supernet tensor of the same name."""
        arch = self.active_arch if arch is None else self.space.parse(arch)
        param = next(self.parameters())
        static = Transformer(self.space, arch, self.dropout_rate, self.exits).to(device=param.device, dtype=param.dtype)
        source = self.state_dict()
        for name, target in static.state_dict().items():
            target.copy_(source[name][tuple(slice(0, n) for n in target.shape)])
        static.train(self.training)
        return static
