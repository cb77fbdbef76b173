"""A plain, static pre-norm Transformer: what ``HATTransformer.extract(arch)``
returns, and what a from-scratch baseline trains.

The layers here are also the base classes of the supernet's elastic layers:
each reads its weights through one method (``_weights``), which the elastic
subclasses override to return front slices of the shared weights. The forward
logic (attention, masks, the arbitrary encoder-decoder attention, the
key/value cache, greedy and beam search) is written once, in this file.

Token ids 0-3 are reserved: ``PAD``, ``BOS``, ``EOS``, ``UNK``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..spaces.transformer import TransformerArch, TransformerSpace

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")


# --- layers ---------------------------------------------------------------------------------------------
def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocked: Optional[torch.Tensor]) -> torch.Tensor:
    """Scaled dot-product attention over (batch, heads, time, head_size)
    tensors. ``blocked`` (broadcastable to (batch, heads, Tq, Tk)) is either a
    boolean mask (True = may not attend), filled with the most negative finite
    value so no row becomes NaN, or the same mask as an additive float bias
    (0 or that value; see :func:`additive_mask`), which gives the same scores
    and needs no select operator in exported graphs."""
    scores = torch.matmul(q * (1.0 / math.sqrt(q.shape[-1])), k.transpose(-1, -2))
    if blocked is not None and blocked.dtype == torch.bool:
        scores = scores.masked_fill(blocked, torch.finfo(scores.dtype).min)
    elif blocked is not None:
        scores = scores + blocked
    return torch.matmul(torch.softmax(scores, dim=-1), v)


def additive_mask(blocked: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A boolean mask as a float bias: 0 where allowed, the most negative
    finite value where blocked. Adding it to a score s of magnitude below
    ~1e31 rounds to that value, i.e. exactly what ``masked_fill`` writes."""
    return torch.zeros(blocked.shape, dtype=dtype, device=blocked.device).masked_fill(blocked, torch.finfo(dtype).min)


class MultiHeadAttention(nn.Module):
    """Attention with ``heads`` heads of ``head_size``; queries from a
    ``dim``-wide stream, keys/values from a ``kv_dim``-wide one."""

    def __init__(self, dim: int, kv_dim: int, heads: int, head_size: int):
        super().__init__()
        width = heads * head_size
        self.heads, self.head_size = heads, head_size
        self.q_proj = nn.Linear(dim, width)
        self.k_proj = nn.Linear(kv_dim, width)
        self.v_proj = nn.Linear(kv_dim, width)
        self.out_proj = nn.Linear(width, dim)

    def _weights(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        layer = getattr(self, name)
        return layer.weight, layer.bias

    def _shape(self) -> tuple[int, int]:
        return self.heads, self.head_size

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, self._shape()).transpose(1, 2)

    def project_kv(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (batch, heads, time, head_size) of ``source``."""
        return self._split(F.linear(source, *self._weights("k_proj"))), self._split(
            F.linear(source, *self._weights("v_proj")))

    def forward(self, x: torch.Tensor, keys_values: tuple[torch.Tensor, torch.Tensor],
                blocked: Optional[torch.Tensor]) -> torch.Tensor:
        q = self._split(F.linear(x, *self._weights("q_proj")))
        context = attend(q, *keys_values, blocked)
        context = context.transpose(1, 2).flatten(2)
        return F.linear(context, *self._weights("out_proj"))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def _weights(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        layer = getattr(self, name)
        return layer.weight, layer.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(torch.relu(F.linear(x, *self._weights("fc1"))), *self._weights("fc2"))


class EncoderLayer(nn.Module):
    """Pre-norm: x + SelfAttn(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, dim: int, ffn_dim: int, heads: int, head_size: int, dropout: float = 0.1):
        super().__init__()
        self.self_attn_norm = nn.LayerNorm(dim)
        self.self_attn = MultiHeadAttention(dim, dim, heads, head_size)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
        h = self.self_attn_norm(x)
        x = x + self.dropout(self.self_attn(h, self.self_attn.project_kv(h), blocked))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class DecoderLayer(nn.Module):
    """Pre-norm self-attention, encoder-decoder attention over the outputs of
    the last ``cross_layers`` encoder layers (concatenated along time), FFN."""

    def __init__(self, dim: int, encoder_dim: int, ffn_dim: int, self_heads: int, cross_heads: int,
                 head_size_self: int, head_size_cross: int, cross_layers: int, dropout: float = 0.1):
        super().__init__()
        self.cross_layers = cross_layers
        self.self_attn_norm = nn.LayerNorm(dim)
        self.self_attn = MultiHeadAttention(dim, dim, self_heads, head_size_self)
        self.cross_attn_norm = nn.LayerNorm(dim)
        self.cross_attn = MultiHeadAttention(dim, encoder_dim, cross_heads, head_size_cross)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, ffn_dim)
        self.dropout = nn.Dropout(dropout)

    def cross_keys_values(self, memory: "EncoderMemory") -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """Keys/values over the last ``cross_layers`` encoder outputs and the
        padding mask tiled to match: (batch, 1, 1, k * source_length)."""
        k = self.cross_layers
        source = torch.cat(memory.states[-k:], dim=1) if k > 1 else memory.states[-1]
        blocked = None if memory.padding is None else memory.padding.repeat(1, k)[:, None, None, :]
        return self.cross_attn.project_kv(source), blocked

    def forward(self, x, self_blocked, cross_kv, cross_blocked, past=None):
        """Returns the new stream and the self-attention keys/values (``past``,
        the cached ones of earlier positions, prepended)."""
        h = self.self_attn_norm(x)
        k, v = self.self_attn.project_kv(h)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        x = x + self.dropout(self.self_attn(h, (k, v), self_blocked))
        x = x + self.dropout(self.cross_attn(self.cross_attn_norm(x), cross_kv, cross_blocked))
        return x + self.dropout(self.ffn(self.ffn_norm(x))), (k, v)


def init_transformer_weights(module: nn.Module) -> None:
    """Xavier-uniform projections with zero biases, N(0, 1/dim) embeddings
    (the usual Transformer initialisation); LayerNorms stay at identity."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            nn.init.xavier_uniform_(sub.weight)
            nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.Embedding):
            nn.init.normal_(sub.weight, std=sub.embedding_dim ** -0.5)


@dataclass
class EncoderMemory:
    """What the decoder reads: the normalised outputs of the last encoder
    layers (oldest first, each (batch, source_length, dim)) and the source
    padding mask (batch, source_length), True at padding; None when the
    source is known to hold no padding (see :class:`UnpaddedGraph`)."""

    states: tuple[torch.Tensor, ...]
    padding: Optional[torch.Tensor]

    def index_select(self, index: torch.Tensor) -> "EncoderMemory":
        padding = None if self.padding is None else self.padding.index_select(0, index)
        return EncoderMemory(tuple(s.index_select(0, index) for s in self.states), padding)


def _positions(tokens: torch.Tensor) -> torch.Tensor:
    """0, 1, 2, ... along the time axis of ``tokens``, built from the tensor
    itself so that exported graphs keep the sequence length dynamic."""
    return torch.cumsum(torch.ones_like(tokens), dim=1) - 1


# --- the shared network logic ------------------------------------------------------------------------------
class TransformerBody(nn.Module):
    """Encoding, teacher-forced decoding and incremental decoding, shared by
    the static :class:`Transformer` and the elastic supernet.

    Subclasses provide the modules ``src_embed``, ``src_pos``,
    ``encoder_layers``, ``encoder_norm`` (and ``tgt_embed``, ``tgt_pos``,
    ``decoder_layers``, ``decoder_norm`` for encoder-decoder; ``classifier`` for
    a classifier head), ``space``, and the hooks below."""

    space: TransformerSpace
    exits = None  # per-token early exits (ofa.spaces.transformer_exits.DecoderExitConfig), an option of the network

    # hooks ---------------------------------------------------------------------------------------------
    def _embedding_weights(self, side: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(token table, position table) of ``side`` ("src" or "tgt")."""
        return getattr(self, f"{side}_embed").weight, getattr(self, f"{side}_pos").weight

    def _classifier_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.classifier.weight, self.classifier.bias

    def active_encoder_layers(self) -> list[EncoderLayer]:
        return list(self.encoder_layers)

    def active_decoder_layers(self) -> list[DecoderLayer]:
        return list(self.decoder_layers)

    def active_exit_layers(self) -> list[int]:
        """The decoder layers after which the running network has an exit (none without exits)."""
        if self.exits is None:
            return []
        return self.exits.active_layers(len(self.active_decoder_layers()))

    # pieces ----------------------------------------------------------------------------------------------
    def _embed(self, tokens: torch.Tensor, side: str, offset: "int | torch.Tensor" = 0) -> torch.Tensor:
        """Token plus learned position embedding; positions start at ``offset``
        (an int, or a 0-d tensor in exported decoder-step graphs)."""
        if isinstance(offset, int) and offset + tokens.shape[1] > self.space.max_positions:
            raise ConfigError(f"a sequence of {offset + tokens.shape[1]} tokens is longer than max_positions="
                              f"{self.space.max_positions} of this space")
        table, positions = self._embedding_weights(side)
        return self.dropout(F.embedding(tokens, table) + F.embedding(_positions(tokens) + offset, positions))

    def encode(self, src_tokens: torch.Tensor, mask_padding: bool = True) -> EncoderMemory:
        """Run the encoder; keep the normalised outputs the decoder reads.
        ``mask_padding=False`` skips the padding mask, for sources known to
        hold no PAD token (the result is then the same)."""
        padding = src_tokens.eq(PAD) if mask_padding else None
        blocked = None if padding is None else padding[:, None, None, :]
        x = self._embed(src_tokens, "src")
        layers = self.active_encoder_layers()
        keep = max([layer.cross_layers for layer in self.active_decoder_layers()], default=1) \
            if self.space.has_decoder else 1
        states = []
        for i, layer in enumerate(layers):
            x = layer(x, blocked)
            if i >= len(layers) - keep:
                states.append(self.encoder_norm(x))
        return EncoderMemory(tuple(states), padding)

    def output_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Target-vocabulary logits, tied to the target token embedding."""
        return F.linear(self.decoder_norm(x), self._embedding_weights("tgt")[0])

    def decode(self, tgt_tokens: torch.Tensor, memory: EncoderMemory) -> torch.Tensor:
        """Teacher-forced decoding: logits (batch, target_length, vocab).
        Without a padding mask (``memory.padding is None``) the causal mask is
        an additive bias, so the graph has no boolean operators."""
        position = _positions(tgt_tokens[:1])[0]
        causal = position[None, :] > position[:, None]  # (T, T): no attending to later positions
        if memory.padding is None:
            causal = additive_mask(causal)
        x = self._embed(tgt_tokens, "tgt")
        for layer in self.active_decoder_layers():
            x, _ = layer(x, causal, *layer.cross_keys_values(memory))
        return self.output_logits(x)

    def decode_step(self, tokens: torch.Tensor, memory: EncoderMemory, cache: Optional[list] = None,
                    position: "int | torch.Tensor | None" = None):
        """One incremental decoding step.

        ``tokens`` (batch, 1) is the latest token; ``cache`` (None at the first
        step) holds, per layer, the self-attention keys/values of all earlier
        positions and the encoder-decoder keys/values (computed once).
        ``position`` of the token defaults to the cached length.
        Returns (logits (batch, vocab), new cache)."""
        if position is None:
            position = 0 if cache is None else cache[0]["self"][0].shape[2]
        x = self._embed(tokens, "tgt", position)
        new_cache = []
        for i, layer in enumerate(self.active_decoder_layers()):
            if cache is None:
                cross_kv, cross_blocked = layer.cross_keys_values(memory)
            else:
                cross_kv, cross_blocked = cache[i]["cross"], cache[i]["cross_blocked"]
            x, self_kv = layer(x, None, cross_kv, cross_blocked, None if cache is None else cache[i]["self"])
            new_cache.append({"self": self_kv, "cross": cross_kv, "cross_blocked": cross_blocked})
        return self.output_logits(x)[:, -1], new_cache

    def encoder_only_logits(self, src_tokens: torch.Tensor, mask_padding: bool = True) -> torch.Tensor:
        x = self.encode(src_tokens, mask_padding).states[-1]
        if self.space.encoder_head == "lm":  # tied to the token embedding
            return F.linear(x, self._embedding_weights("src")[0])
        return F.linear(x[:, 0], *self._classifier_weights())  # the first (BOS) token classifies

    def forward(self, src_tokens: torch.Tensor, tgt_tokens: Optional[torch.Tensor] = None,
                mask_padding: bool = True) -> torch.Tensor:
        """Encoder-decoder: logits (batch, target_length, vocab) for the
        teacher-forced target (its first token is BOS). Encoder-only: masked-LM
        logits (batch, source_length, vocab) or class logits (batch, classes).
        ``mask_padding=False``: the sources hold no PAD token, so no padding
        mask is built (same result, a graph without boolean operators)."""
        if not self.space.has_decoder:
            return self.encoder_only_logits(src_tokens, mask_padding)
        if tgt_tokens is None:
            raise ConfigError("an encoder-decoder Transformer needs target tokens (teacher forcing); "
                              "use greedy_decode/beam_search to generate")
        return self.decode(tgt_tokens, self.encode(src_tokens, mask_padding))


# --- the static network ---------------------------------------------------------------------------------
class Transformer(TransformerBody):
    """A static Transformer built for exactly one architecture; ``exits`` (``{"layers": [...]}``,
    :mod:`ofa.spaces.transformer_exits`) adds per-token early exits, which have no weights of their
    own (:mod:`ofa.models.transformer_exits` runs them)."""

    def __init__(self, space: TransformerSpace, arch: TransformerArch | dict, dropout: float = 0.1, exits=None):
        from ..spaces.transformer_exits import DecoderExitConfig

        super().__init__()
        self.exits = DecoderExitConfig.parse(space, exits)
        arch = space.parse(arch)
        self.space = space
        self.space_fingerprint = space.fingerprint
        self.arch = arch
        self.dropout = nn.Dropout(dropout)
        e = arch.encoder_embed_dim
        self.src_embed = nn.Embedding(space.src_vocab_size, e)
        self.src_pos = nn.Embedding(space.max_positions, e)
        self.encoder_layers = nn.ModuleList(
            EncoderLayer(e, ffn, heads, space.head_size(e, heads), dropout)
            for ffn, heads in zip(arch.encoder_ffn_dims, arch.encoder_heads))
        self.encoder_norm = nn.LayerNorm(e)
        if arch.has_decoder:
            d = arch.decoder_embed_dim
            self.tgt_embed = nn.Embedding(space.tgt_vocab_size, d)
            self.tgt_pos = nn.Embedding(space.max_positions, d)
            self.decoder_layers = nn.ModuleList(
                DecoderLayer(d, e, ffn, sh, ch, space.head_size(d, sh), space.head_size(d, ch), k, dropout)
                for ffn, sh, ch, k in zip(arch.decoder_ffn_dims, arch.decoder_self_heads, arch.decoder_cross_heads,
                                          arch.decoder_cross_layers))
            self.decoder_norm = nn.LayerNorm(d)
            self.input_names, self.output_names = ("src_tokens", "tgt_tokens"), ("logits",)
        else:
            self.decoder_layers = nn.ModuleList()
            if space.encoder_head == "classifier":
                self.classifier = nn.Linear(e, space.num_classes)
            self.input_names, self.output_names = ("src_tokens",), ("logits",)
        init_transformer_weights(self)

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        """Random token ids at the space's cost-model lengths (BOS first)."""
        device = self.src_embed.weight.device
        src = torch.randint(len(SPECIAL_TOKENS), self.space.src_vocab_size,
                            (batch_size, self.space.source_length), device=device)
        if not self.arch.has_decoder:
            src[:, 0] = BOS
            return (src,)
        tgt = torch.randint(len(SPECIAL_TOKENS), self.space.tgt_vocab_size,
                            (batch_size, self.space.target_length), device=device)
        tgt[:, 0] = BOS
        return src, tgt

    def unpadded(self) -> "UnpaddedGraph":
        """This network for unpadded inputs, as a graph without masks (see :class:`UnpaddedGraph`)."""
        return UnpaddedGraph(self)


# --- generation -----------------------------------------------------------------------------------------
@torch.no_grad()
def greedy_decode(model: TransformerBody, src_tokens: torch.Tensor, max_length: int | None = None,
                  use_cache: bool = True) -> torch.Tensor:
    """Greedy decoding (eval mode); returns (batch, length) token ids after
    BOS, padded with PAD after each sequence's EOS. ``use_cache=False``
    recomputes the whole prefix each step (the reference the cache must match)."""
    max_length = _max_length(model, max_length)
    memory = model.encode(src_tokens)
    batch = src_tokens.shape[0]
    prefix = torch.full((batch, 1), BOS, dtype=torch.long, device=src_tokens.device)
    done = torch.zeros(batch, dtype=torch.bool, device=src_tokens.device)
    cache = None
    for _ in range(max_length):
        if use_cache:
            logits, cache = model.decode_step(prefix[:, -1:], memory, cache)
        else:
            logits = model.decode(prefix, memory)[:, -1]
        token = logits.argmax(-1).masked_fill(done, PAD)
        prefix = torch.cat([prefix, token[:, None]], dim=1)
        done |= token.eq(EOS)
        if bool(done.all()):
            break
    return prefix[:, 1:]


@torch.no_grad()
def beam_search(model: TransformerBody, src_tokens: torch.Tensor, beam_size: int = 4,
                max_length: int | None = None, length_penalty: float = 1.0) -> torch.Tensor:
    """Beam search with the key/value cache; the best hypothesis per source by
    log-probability / length**length_penalty. Returns (batch, length) like
    :func:`greedy_decode`."""
    if beam_size < 1:
        raise ConfigError(f"beam_size must be >= 1, got {beam_size}")
    max_length = _max_length(model, max_length)
    batch, device = src_tokens.shape[0], src_tokens.device
    memory = model.encode(src_tokens).index_select(torch.arange(batch, device=device).repeat_interleave(beam_size))
    # only the first beam of each source is live at the start, so beams do not duplicate
    scores = torch.full((batch, beam_size), float("-inf"), device=device)
    scores[:, 0] = 0.0
    scores = scores.view(-1)
    tokens = torch.full((batch * beam_size, 1), BOS, dtype=torch.long, device=device)
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    cache = None
    for step in range(max_length):
        logits, cache = model.decode_step(tokens[:, -1:], memory, cache)
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        vocab = log_probs.shape[-1]
        candidates = (scores[:, None] + log_probs).view(batch, beam_size * vocab)
        top_scores, top_index = candidates.topk(2 * beam_size, dim=1)
        beam_index, token_index = top_index // vocab, top_index % vocab
        next_rows, next_tokens, next_scores = [], [], []
        for b in range(batch):
            kept = 0
            for score, beam, token in zip(top_scores[b].tolist(), beam_index[b].tolist(), token_index[b].tolist()):
                row = b * beam_size + beam
                if score == float("-inf"):
                    break
                if token == EOS or step == max_length - 1:
                    hyp = tokens[row, 1:].tolist() + [token]
                    finished[b].append((score / len(hyp) ** length_penalty, hyp))
                    continue
                if kept < beam_size:
                    next_rows.append(row)
                    next_tokens.append(token)
                    next_scores.append(score)
                    kept += 1
            while kept < beam_size:  # keep the shape: pad with dead beams
                next_rows.append(b * beam_size)
                next_tokens.append(PAD)
                next_scores.append(float("-inf"))
                kept += 1
        # stop once every source has beam_size finished hypotheses, or no live beam is left
        if all(len(f) >= beam_size for f in finished) or all(s == float("-inf") for s in next_scores):
            break
        rows = torch.tensor(next_rows, device=device)
        tokens = torch.cat([tokens.index_select(0, rows), torch.tensor(next_tokens, device=device)[:, None]], dim=1)
        scores = torch.tensor(next_scores, device=device)
        cache = [{"self": (c["self"][0].index_select(0, rows), c["self"][1].index_select(0, rows)),
                  "cross": c["cross"], "cross_blocked": c["cross_blocked"]} for c in cache]
    out = []
    for b in range(batch):
        if not finished[b]:
            finished[b].append((0.0, tokens[b * beam_size, 1:].tolist()))
        out.append(max(finished[b], key=lambda item: item[0])[1])
    width = max(len(seq) for seq in out)
    return torch.tensor([seq + [PAD] * (width - len(seq)) for seq in out], dtype=torch.long, device=device)


def _max_length(model: TransformerBody, max_length: int | None) -> int:
    limit = model.space.max_positions - 1
    if max_length is None:
        return limit
    if max_length < 1 or max_length > limit:
        raise ConfigError(f"max_length must be in 1..{limit} (max_positions - 1), got {max_length}")
    return max_length


# --- ONNX graphs ----------------------------------------------------------------------------------------
class UnpaddedGraph(nn.Module):
    """A static Transformer's forward for sources without PAD tokens (one
    sentence at a time, as on a phone): no padding mask, and the decoder's
    causal mask as an additive bias. It computes the same logits as the
    model on such inputs (its example inputs are such), and its exported graph
    has no boolean/select operators, which runtimes like ncnn lack."""

    def __init__(self, model: Transformer):
        super().__init__()
        self.model = model
        self.arch = model.arch
        self.input_names, self.output_names = model.input_names, model.output_names
        self.train(model.training)

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        return self.model.example_inputs(batch_size)

    def forward(self, src_tokens: torch.Tensor, tgt_tokens: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.model(src_tokens, tgt_tokens, mask_padding=False)


class EncoderGraph(nn.Module):
    """Encoder of a static encoder-decoder Transformer as one graph:
    ``src_tokens`` -> ``encoder_states`` (K, batch, source_length, dim), the
    normalised outputs of the last K encoder layers the decoder reads."""

    input_names = ("src_tokens",)
    output_names = ("encoder_states",)

    def __init__(self, model: Transformer):
        super().__init__()
        self.model = model
        self.arch = model.arch
        self.train(model.training)  # a new module starts in training mode; follow the wrapped model

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor]:
        return self.model.example_inputs(batch_size)[:1]

    def forward(self, src_tokens: torch.Tensor) -> torch.Tensor:
        return torch.stack(self.model.encode(src_tokens).states)


class DecoderStepGraph(nn.Module):
    """One incremental decoding step as a graph: inputs ``tokens`` (batch, 1),
    ``position`` (0-d int64: the token's index, i.e. the past length),
    ``src_tokens`` (for the padding mask), ``encoder_states`` and, per decoder
    layer i, ``past_key_i``/``past_value_i`` (batch, heads_i, past, head_size);
    outputs ``logits`` (batch, vocab) and ``present_key_i``/``present_value_i``.
    The encoder-decoder keys/values are recomputed from ``encoder_states``."""

    def __init__(self, model: Transformer, past_length: int = 3):
        super().__init__()
        self.model = model
        self.arch = model.arch
        self.past_length = past_length
        self.train(model.training)
        n = len(model.decoder_layers)
        self.input_names = ("tokens", "position", "src_tokens", "encoder_states") + tuple(
            f"past_{kind}_{i}" for i in range(n) for kind in ("key", "value"))
        self.output_names = ("logits",) + tuple(f"present_{kind}_{i}" for i in range(n) for kind in ("key", "value"))

    def example_inputs(self, batch_size: int = 1) -> tuple[torch.Tensor, ...]:
        src, tgt = self.model.example_inputs(batch_size)
        with torch.no_grad():
            states = EncoderGraph(self.model)(src)
        pasts = []
        for layer in self.model.decoder_layers:
            heads, size = layer.self_attn._shape()
            shape = (batch_size, heads, self.past_length, size)
            pasts += [torch.randn(shape, device=src.device), torch.randn(shape, device=src.device)]
        return (tgt[:, :1], torch.tensor(self.past_length), src, states, *pasts)

    def forward(self, tokens, position, src_tokens, encoder_states, *pasts):
        memory = EncoderMemory(tuple(encoder_states.unbind(0)), src_tokens.eq(PAD))
        cache = []
        for i, layer in enumerate(self.model.decoder_layers):
            cross_kv, cross_blocked = layer.cross_keys_values(memory)
            cache.append({"self": (pasts[2 * i], pasts[2 * i + 1]), "cross": cross_kv,
                          "cross_blocked": cross_blocked})
        logits, cache = self.model.decode_step(tokens, memory, cache, position)
        presents = [t for entry in cache for t in entry["self"]]
        return (logits, *presents)

    def dynamic_axes(self) -> dict:
        axes = {"tokens": {0: "batch"}, "src_tokens": {0: "batch", 1: "source_length"},
                "encoder_states": {1: "batch", 2: "source_length"}, "logits": {0: "batch"}}
        for name in self.input_names[4:]:
            axes[name] = {0: "batch", 2: "past_length"}
        for name in self.output_names[1:]:
            axes[name] = {0: "batch", 2: "length"}
        return axes
