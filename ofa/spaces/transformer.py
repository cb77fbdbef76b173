"""The elastic Transformer search space (Hardware-Aware Transformers) and its
architecture values.

Network layout (Wang et al., "HAT: Hardware-Aware Transformers for Efficient
Natural Language Processing", ACL 2020): a pre-norm encoder-decoder
Transformer whose encoder and decoder each choose an embedding dimension, a
number of layers and, per layer, an FFN hidden dimension and a number of
attention heads. Each decoder layer also chooses how many of the *last*
encoder layers it attends to (HAT's arbitrary encoder-decoder attention): the
outputs of those layers are concatenated along time to form its keys and
values.

``mode="encoder"`` keeps only the encoder, with a masked-LM or classifier
head; with ``heterogeneous_layers=False`` every layer shares one FFN dimension
and one head count, which expresses Bort's space (de Wynter and Perry, 2020):
``get_space("bort").size() == 300``.

Heads: with an integer ``head_dim`` the head dimension is fixed and the
query/key/value width is ``heads * head_dim``, so fewer heads really means
fewer parameters and MACs. With ``head_dim=None`` the width is the embedding
dimension and heads split it (BERT's convention), so heads must divide the
embedding dimension; sampling, mutation and crossover only produce
architectures that satisfy this. With ``head_dim=None`` and an integer
``qkv_dim`` the width is fixed at ``qkv_dim`` whatever the embedding dimension
and heads split it (HAT's convention: ``qkv_dim=512`` for every embedding
dimension, so heads change the head size, not the MACs of the projections).

Cost (:meth:`TransformerSpace.cost`) and blocks (:meth:`TransformerSpace.blocks`)
describe one of two workloads: ``mode="forward"``, one teacher-forced pass over
``target_length`` target tokens (what the exported ``model.onnx`` computes), or
``mode="decode"``, autoregressive decoding of ``target_length`` tokens with a
key/value cache (the encoder once, then per token one step of every decoder
layer and the output projection; ``beam_size`` hypotheses decoded as a batch),
which is what translating a sentence costs.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import numpy as np

from ..errors import ConfigError
from .blocks import (BlockSpec, CrossKVBlock, DecoderLayerBlock, DecoderStepBlock, EmbeddingBlock, EncoderLayerBlock,
                     OutputBlock)
from .tables import TableLayout
from .base import (
    SKIPPED,
    Architecture,
    CostReport,
    LayerShape,
    SearchSpace,
    as_rng,
    canonical_json,
    check_choice,
    check_keys,
    check_positive_ints,
)

MODES = ("encoder-decoder", "encoder")
WORKLOADS = ("forward", "decode")  # what cost() and blocks() describe: one teacher-forced pass, or decoding
ENCODER_HEADS = ("lm", "classifier")

ENCODER_KEYS = ("encoder_embed_dim", "encoder_layers", "encoder_ffn_dims", "encoder_heads")
DECODER_KEYS = ("decoder_embed_dim", "decoder_layers", "decoder_ffn_dims", "decoder_self_heads",
                "decoder_cross_heads", "decoder_cross_layers")


@dataclass(frozen=True)
class TransformerArch(Architecture):
    """One subnet. Per-layer tuples have one entry per layer that runs.

    ``decoder_cross_layers[i]`` is how many of the last encoder layers decoder
    layer ``i`` attends to. Encoder-only architectures have
    ``decoder_embed_dim=None``, ``decoder_layers=0`` and empty decoder tuples
    (and no decoder keys in ``to_dict()``)."""

    encoder_embed_dim: int
    encoder_layers: int
    encoder_ffn_dims: tuple[int, ...]
    encoder_heads: tuple[int, ...]
    decoder_embed_dim: Optional[int]
    decoder_layers: int
    decoder_ffn_dims: tuple[int, ...]
    decoder_self_heads: tuple[int, ...]
    decoder_cross_heads: tuple[int, ...]
    decoder_cross_layers: tuple[int, ...]
    space: str

    @property
    def has_decoder(self) -> bool:
        return self.decoder_embed_dim is not None

    def to_dict(self) -> dict:
        d = super().to_dict()
        if not self.has_decoder:
            for key in DECODER_KEYS:
                d.pop(key)
        return d

    @property
    def max_cross_layers(self) -> int:
        """How many of the last encoder layers' outputs the decoder reads."""
        return max(self.decoder_cross_layers, default=0)


@dataclass(frozen=True)
class TransformerSpace(SearchSpace):
    """Elastic embedding dims, depths, per-layer FFN dims and head counts, and
    arbitrary encoder-decoder attention over one pre-norm Transformer."""

    type_name: ClassVar[str] = "transformer"

    mode: str = "encoder-decoder"
    encoder_embed_dims: tuple[int, ...] = (512, 640)
    decoder_embed_dims: tuple[int, ...] = (512, 640)
    encoder_layer_counts: tuple[int, ...] = (6,)
    decoder_layer_counts: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
    ffn_dims: tuple[int, ...] = (1024, 2048, 3072)
    head_counts: tuple[int, ...] = (4, 8)
    head_dim: Optional[int] = 64
    cross_layer_counts: tuple[int, ...] = (1, 2, 3)
    heterogeneous_layers: bool = True
    src_vocab_size: int = 32000
    tgt_vocab_size: int = 32000
    max_positions: int = 256
    encoder_head: str = "lm"
    num_classes: int = 2
    # Default sequence lengths for the analytic cost model (cost() takes overrides).
    source_length: int = 30
    target_length: int = 30
    # HAT's convention (with head_dim=None): a fixed query/key/value width that heads split.
    qkv_dim: Optional[int] = None
    # What cost() and blocks() describe by default, so that every user of the cost model (features,
    # the MACs baseline, simulators, the search's cost) prices what the device is measured on.
    workload: str = "forward"  # "forward" (one teacher-forced pass) or "decode" (cached decoding)
    beam_size: int = 1  # hypotheses decoded together (workload "decode")

    def to_dict(self) -> dict:
        d = super().to_dict()
        # absent when unused, so existing spaces keep their definitions and fingerprints
        for key, default in (("qkv_dim", None), ("workload", "forward"), ("beam_size", 1)):
            if d[key] == default:
                d.pop(key)
        return d

    @functools.cached_property
    def fingerprint(self) -> str:
        """As :attr:`SearchSpace.fingerprint`, without the workload fields: the
        architectures, supernets and checkpoints of a space are the same whichever
        workload its cost model describes."""
        d = {k: v for k, v in self.to_dict().items() if k not in ("workload", "beam_size")}
        return hashlib.sha256(canonical_json(d).encode()).hexdigest()[:16]

    def _validate(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"space mode {self.mode!r} unknown; allowed: {MODES}")
        if self.encoder_head not in ENCODER_HEADS:
            raise ConfigError(f"space encoder_head {self.encoder_head!r} unknown; allowed: {ENCODER_HEADS}")
        for name in ("encoder_embed_dims", "decoder_embed_dims", "encoder_layer_counts", "decoder_layer_counts",
                     "ffn_dims", "head_counts", "cross_layer_counts"):
            check_positive_ints(name, getattr(self, name), distinct=True)
        for name in ("src_vocab_size", "tgt_vocab_size", "max_positions", "num_classes", "source_length", "target_length"):
            check_positive_ints(name, (getattr(self, name),))
        if self.head_dim is not None:
            check_positive_ints("head_dim", (self.head_dim,))
        if self.workload not in WORKLOADS:
            raise ConfigError(f"space workload {self.workload!r} unknown; allowed: {WORKLOADS}")
        if self.workload == "decode" and not self.has_decoder:
            raise ConfigError("space workload 'decode' needs mode 'encoder-decoder' (an encoder runs one pass)")
        check_positive_ints("beam_size", (self.beam_size,))
        if self.beam_size != 1 and self.workload != "decode":
            raise ConfigError(f"beam_size {self.beam_size} applies to workload 'decode' only")
        if self.qkv_dim is not None:
            check_positive_ints("qkv_dim", (self.qkv_dim,))
            if self.head_dim is not None:
                raise ConfigError(f"give either head_dim (fixed head size, width heads x head_dim) or qkv_dim "
                                  f"(fixed width that heads split), not both: head_dim={self.head_dim}, "
                                  f"qkv_dim={self.qkv_dim}; set head_dim to null for qkv_dim")
        if not isinstance(self.heterogeneous_layers, bool):
            raise ConfigError(f"space heterogeneous_layers must be true or false, got {self.heterogeneous_layers!r}")
        sides = [("encoder", self.encoder_embed_dims)]
        if self.has_decoder:
            sides.append(("decoder", self.decoder_embed_dims))
        for side, dims in sides:
            for dim in dims:
                if not self.valid_head_counts(dim):
                    raise ConfigError(f"no head count in {self.head_counts} divides the {side} attention width "
                                      f"{self.attention_width(dim, 1)}; with head_dim=None heads must divide "
                                      f"the width (qkv_dim, else the embedding dimension)")
        if self.has_decoder and min(self.cross_layer_counts) > min(self.encoder_layer_counts):
            raise ConfigError(f"cross_layer_counts {self.cross_layer_counts} has no value <= the smallest encoder "
                              f"depth {min(self.encoder_layer_counts)}: a decoder layer cannot attend to more "
                              f"encoder layers than run")

    # --- presets --------------------------------------------------------------------------------------
    @classmethod
    def small(cls) -> "TransformerSpace":
        """Encoder-decoder for the number-translation task: trains on 2 CPU cores
        in minutes. Its 64-token vocabularies hold the default task's (37
        English, 32 French word tokens), so this preset is exactly the space of
        the supernet ``configs/transformer-small.yaml`` trains."""
        return cls(encoder_embed_dims=(32, 48, 64), decoder_embed_dims=(32, 48, 64), encoder_layer_counts=(1, 2, 3),
                   decoder_layer_counts=(1, 2, 3), ffn_dims=(64, 128, 256), head_counts=(2, 4), head_dim=16,
                   cross_layer_counts=(1, 2, 3), src_vocab_size=64, tgt_vocab_size=64, max_positions=32,
                   source_length=16, target_length=20)

    @classmethod
    def bort(cls) -> "TransformerSpace":
        """Bort's space over BERT (de Wynter and Perry, 2020): heads A in
        {4, 8, 12, 16}, depth D in {2, 4, ..., 12}, hidden H in {512, 768, 1024}
        with A dividing H, intermediate I in {256, 512, 768, 1024, 3072}, the
        same for every layer: 300 architectures (RoBERTa's 50265-token vocabulary)."""
        return cls(mode="encoder", encoder_embed_dims=(512, 768, 1024), encoder_layer_counts=(2, 4, 6, 8, 10, 12),
                   ffn_dims=(256, 512, 768, 1024, 3072), head_counts=(4, 8, 12, 16), head_dim=None,
                   heterogeneous_layers=False, src_vocab_size=50265, tgt_vocab_size=50265, max_positions=512,
                   source_length=128, encoder_head="lm")

    @classmethod
    def bort_small(cls) -> "TransformerSpace":
        """Bort's space scaled down for 2 CPU cores, same shape and constraint
        (3 widths x 4 head counts with heads dividing the width, 6 depths, 5
        intermediate sizes): also exactly 300 architectures; vocabulary as in
        :meth:`small`."""
        return cls(mode="encoder", encoder_embed_dims=(32, 48, 64), encoder_layer_counts=(1, 2, 3, 4, 5, 6),
                   ffn_dims=(16, 32, 48, 64, 192), head_counts=(1, 2, 3, 4), head_dim=None,
                   heterogeneous_layers=False, src_vocab_size=64, tgt_vocab_size=64, max_positions=32,
                   source_length=16, encoder_head="lm")

    # --- layout -----------------------------------------------------------------------------------
    @property
    def has_decoder(self) -> bool:
        return self.mode == "encoder-decoder"

    @property
    def max_encoder_layers(self) -> int:
        return max(self.encoder_layer_counts)

    @property
    def max_decoder_layers(self) -> int:
        return max(self.decoder_layer_counts) if self.has_decoder else 0

    def valid_head_counts(self, embed_dim: int) -> tuple[int, ...]:
        """Head counts allowed at this embedding dimension."""
        if self.head_dim is not None:
            return self.head_counts
        width = self.attention_width(embed_dim, 1)
        return tuple(h for h in self.head_counts if width % h == 0)

    def attention_width(self, embed_dim: int, heads: int) -> int:
        """Width of the query/key/value projections."""
        if self.head_dim is not None:
            return heads * self.head_dim
        return self.qkv_dim if self.qkv_dim is not None else embed_dim

    def head_size(self, embed_dim: int, heads: int) -> int:
        return self.head_dim if self.head_dim is not None else self.attention_width(embed_dim, heads) // heads

    @property
    def max_attention_width(self) -> int:
        dims = self.encoder_embed_dims + (self.decoder_embed_dims if self.has_decoder else ())
        if self.head_dim is not None:
            return max(self.head_counts) * self.head_dim
        return self.qkv_dim if self.qkv_dim is not None else max(dims)

    # --- genes ---------------------------------------------------------------------------------
    # encoder: [embed] [layers] [ffn x G_enc] [heads x G_enc]
    # decoder: [embed] [layers] [ffn x G_dec] [self heads x G_dec] [cross heads x G_dec] [cross layers x G_dec]
    # G_* is the maximum depth with heterogeneous layers, else 1 (one value shared by all layers).
    @property
    def _encoder_slots(self) -> int:
        return self.max_encoder_layers if self.heterogeneous_layers else 1

    @property
    def _decoder_slots(self) -> int:
        return (self.max_decoder_layers if self.heterogeneous_layers else 1) if self.has_decoder else 0

    @functools.cached_property
    def gene_layout(self) -> dict[str, slice]:
        """Gene index ranges by name."""
        layout, start = {}, 0
        sizes = [("encoder_embed", 1), ("encoder_layers", 1), ("encoder_ffn", self._encoder_slots),
                 ("encoder_heads", self._encoder_slots)]
        if self.has_decoder:
            g = self._decoder_slots
            sizes += [("decoder_embed", 1), ("decoder_layers", 1), ("decoder_ffn", g), ("decoder_self_heads", g),
                      ("decoder_cross_heads", g), ("decoder_cross_layers", g)]
        for name, n in sizes:
            layout[name] = slice(start, start + n)
            start += n
        return layout

    @functools.cached_property
    def gene_choices(self) -> tuple[tuple, ...]:
        choices = {"encoder_embed": self.encoder_embed_dims, "encoder_layers": self.encoder_layer_counts,
                   "encoder_ffn": self.ffn_dims, "encoder_heads": self.head_counts,
                   "decoder_embed": self.decoder_embed_dims, "decoder_layers": self.decoder_layer_counts,
                   "decoder_ffn": self.ffn_dims, "decoder_self_heads": self.head_counts,
                   "decoder_cross_heads": self.head_counts, "decoder_cross_layers": self.cross_layer_counts}
        out: list[tuple] = []
        for name, where in self.gene_layout.items():
            out += [tuple(choices[name])] * (where.stop - where.start)
        return tuple(out)

    def _values(self, genes: np.ndarray, name: str, choices) -> np.ndarray:
        """Values of the genes ``name`` (skipped genes read as the first choice)."""
        return np.asarray(choices)[np.clip(genes[:, self.gene_layout[name]], 0, None)]

    def active_genes(self, genes: np.ndarray) -> np.ndarray:
        genes = np.atleast_2d(genes)
        active = np.ones(genes.shape, dtype=bool)
        if not self.heterogeneous_layers:
            return active
        sides = [("encoder", self.encoder_layer_counts, ("encoder_ffn", "encoder_heads"))]
        if self.has_decoder:
            sides.append(("decoder", self.decoder_layer_counts,
                          ("decoder_ffn", "decoder_self_heads", "decoder_cross_heads", "decoder_cross_layers")))
        for side, counts, names in sides:
            depth = self._values(genes, f"{side}_layers", counts)  # (n, 1)
            used = np.arange(max(counts))[None, :] < depth
            for name in names:
                active[:, self.gene_layout[name]] = used
        return active

    def normalize_genes(self, genes: np.ndarray, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Base normalisation, then repair the constraints between genes: head
        counts that do not divide the width (``head_dim=None``) and decoder
        layers attending to more encoder layers than run. With ``rng`` such
        genes are redrawn uniformly among the valid values; without, they are
        an error."""
        rng = as_rng(rng) if rng is not None else None
        genes = super().normalize_genes(genes, rng)
        checks = []  # (heads genes, embedding gene, embedding choices) that must divide
        if self.head_dim is None:
            checks.append(("encoder_heads", "encoder_embed", self.encoder_embed_dims))
            if self.has_decoder:
                checks += [("decoder_self_heads", "decoder_embed", self.decoder_embed_dims),
                           ("decoder_cross_heads", "decoder_embed", self.decoder_embed_dims)]
        heads = np.asarray(self.head_counts)
        for heads_name, embed_name, dims in checks:
            embed = self._values(genes, embed_name, dims)  # (n, 1)
            if self.qkv_dim is not None:  # heads split the fixed width, whatever the embedding dimension
                embed = np.full_like(embed, self.qkv_dim)
            block = genes[:, self.gene_layout[heads_name]]
            bad = (block >= 0) & (embed % heads[np.clip(block, 0, None)] != 0)
            for row, col in zip(*np.nonzero(bad)):
                allowed = [i for i, h in enumerate(self.head_counts) if embed[row, 0] % h == 0]
                block[row, col] = self._redraw(allowed, rng, f"{heads_name} (heads must divide the width)")
            genes[:, self.gene_layout[heads_name]] = block
        if self.has_decoder:
            depth = self._values(genes, "encoder_layers", self.encoder_layer_counts)
            block = genes[:, self.gene_layout["decoder_cross_layers"]]
            cross = np.asarray(self.cross_layer_counts)
            bad = (block >= 0) & (cross[np.clip(block, 0, None)] > depth)
            for row, col in zip(*np.nonzero(bad)):
                allowed = [i for i, c in enumerate(self.cross_layer_counts) if c <= depth[row, 0]]
                block[row, col] = self._redraw(allowed, rng, "decoder_cross_layers (more than the encoder depth)")
            genes[:, self.gene_layout["decoder_cross_layers"]] = block
        return genes

    @staticmethod
    def _redraw(allowed: list[int], rng, what: str) -> int:
        if rng is None:
            raise ConfigError(f"gene of {what} is invalid; pass an rng to redraw it")
        return int(allowed[int(rng.integers(len(allowed)))])

    def _per_layer(self, values: tuple, depth: int) -> list:
        """Expand the gene values of a per-layer decision to one per layer."""
        return list(values[:depth]) if self.heterogeneous_layers else [values[0]] * depth

    def _arch_to_genes(self, arch: TransformerArch) -> list[int]:
        genes = [SKIPPED] * self.num_genes
        lay = self.gene_layout

        def put(name, values, choices):
            start = lay[name].start
            for i, v in enumerate(values[:lay[name].stop - start]):
                genes[start + i] = choices.index(v)

        put("encoder_embed", [arch.encoder_embed_dim], self.encoder_embed_dims)
        put("encoder_layers", [arch.encoder_layers], self.encoder_layer_counts)
        put("encoder_ffn", arch.encoder_ffn_dims, self.ffn_dims)
        put("encoder_heads", arch.encoder_heads, self.head_counts)
        if self.has_decoder:
            put("decoder_embed", [arch.decoder_embed_dim], self.decoder_embed_dims)
            put("decoder_layers", [arch.decoder_layers], self.decoder_layer_counts)
            put("decoder_ffn", arch.decoder_ffn_dims, self.ffn_dims)
            put("decoder_self_heads", arch.decoder_self_heads, self.head_counts)
            put("decoder_cross_heads", arch.decoder_cross_heads, self.head_counts)
            put("decoder_cross_layers", arch.decoder_cross_layers, self.cross_layer_counts)
        return genes

    def _genes_to_arch(self, genes: np.ndarray) -> TransformerArch:
        lay = self.gene_layout

        def values(name, choices):
            return tuple(choices[g] for g in genes[lay[name]] if g >= 0)

        enc_depth = self.encoder_layer_counts[genes[lay["encoder_layers"].start]]
        config = {
            "encoder_embed_dim": self.encoder_embed_dims[genes[lay["encoder_embed"].start]],
            "encoder_layers": enc_depth,
            "encoder_ffn_dims": self._per_layer(values("encoder_ffn", self.ffn_dims), enc_depth),
            "encoder_heads": self._per_layer(values("encoder_heads", self.head_counts), enc_depth),
        }
        if self.has_decoder:
            dec_depth = self.decoder_layer_counts[genes[lay["decoder_layers"].start]]
            config.update({
                "decoder_embed_dim": self.decoder_embed_dims[genes[lay["decoder_embed"].start]],
                "decoder_layers": dec_depth,
                "decoder_ffn_dims": self._per_layer(values("decoder_ffn", self.ffn_dims), dec_depth),
                "decoder_self_heads": self._per_layer(values("decoder_self_heads", self.head_counts), dec_depth),
                "decoder_cross_heads": self._per_layer(values("decoder_cross_heads", self.head_counts), dec_depth),
                "decoder_cross_layers": self._per_layer(values("decoder_cross_layers", self.cross_layer_counts),
                                                        dec_depth),
            })
        return self.parse(config)

    # --- values -------------------------------------------------------------------------------------
    def parse(self, config: Any) -> TransformerArch:
        if isinstance(config, TransformerArch):
            self.check_fingerprint(config.space, "this architecture")
            return config
        if isinstance(config, Architecture):
            raise ConfigError(f"a {type(config).__name__} is not an architecture of a {self.type_name} space")
        keys = ENCODER_KEYS + (DECODER_KEYS if self.has_decoder else ())
        what = f"a Transformer architecture ({self.mode})"
        check_keys(config, keys + ("space",), keys, what)
        if "space" in config:
            self.check_fingerprint(config["space"], "this architecture")

        enc_dim = check_choice(config["encoder_embed_dim"], self.encoder_embed_dims, "encoder_embed_dim")
        enc_depth = check_choice(config["encoder_layers"], self.encoder_layer_counts, "encoder_layers")
        enc_ffn = self._layer_values(config, "encoder_ffn_dims", enc_depth, self.ffn_dims)
        enc_heads = self._layer_values(config, "encoder_heads", enc_depth, self.valid_head_counts(enc_dim),
                                       f"encoder_embed_dim {enc_dim}")
        dec: dict = {"decoder_embed_dim": None, "decoder_layers": 0, "decoder_ffn_dims": (),
                     "decoder_self_heads": (), "decoder_cross_heads": (), "decoder_cross_layers": ()}
        if self.has_decoder:
            dec_dim = check_choice(config["decoder_embed_dim"], self.decoder_embed_dims, "decoder_embed_dim")
            dec_depth = check_choice(config["decoder_layers"], self.decoder_layer_counts, "decoder_layers")
            heads = self.valid_head_counts(dec_dim)
            cross_allowed = tuple(c for c in self.cross_layer_counts if c <= enc_depth)
            dec = {
                "decoder_embed_dim": dec_dim,
                "decoder_layers": dec_depth,
                "decoder_ffn_dims": self._layer_values(config, "decoder_ffn_dims", dec_depth, self.ffn_dims),
                "decoder_self_heads": self._layer_values(config, "decoder_self_heads", dec_depth, heads,
                                                         f"decoder_embed_dim {dec_dim}"),
                "decoder_cross_heads": self._layer_values(config, "decoder_cross_heads", dec_depth, heads,
                                                          f"decoder_embed_dim {dec_dim}"),
                "decoder_cross_layers": self._layer_values(config, "decoder_cross_layers", dec_depth, cross_allowed,
                                                           f"encoder_layers {enc_depth}"),
            }
        return TransformerArch(enc_dim, enc_depth, enc_ffn, enc_heads, space=self.fingerprint, **dec)

    def _layer_values(self, config: dict, key: str, depth: int, allowed: tuple, given: str = "") -> tuple:
        """Validate a per-layer list: ``depth`` entries (or the space's maximum
        depth with the entries past ``depth`` null), each in ``allowed``; all
        equal unless the space has heterogeneous layers."""
        values = config[key]
        max_depth = self.max_encoder_layers if key.startswith("encoder") else self.max_decoder_layers
        if not isinstance(values, (list, tuple)):
            raise ConfigError(f"{key} must be a list with one value per layer, got {type(values).__name__}")
        if len(values) == max_depth and len(values) > depth:
            extra = values[depth:]
            if any(v is not None for v in extra):
                raise ConfigError(f"{key} has {len(values)} entries but only {depth} layers run: give {depth} "
                                  f"entries, or null for layers {depth}..{max_depth - 1}")
            values = values[:depth]
        if len(values) != depth:
            raise ConfigError(f"{key} has {len(values)} entries; the architecture has {depth} layers "
                              f"(give one value per layer)")
        suffix = f" at {given}" if given else ""
        out = []
        for i, v in enumerate(values):
            if isinstance(v, bool) or v not in allowed:
                raise ConfigError(f"{key}[{i}] = {v!r} is not allowed{suffix}; allowed values: {tuple(allowed)}")
            out.append(allowed[list(allowed).index(v)])
        if not self.heterogeneous_layers and len(set(out)) > 1:
            raise ConfigError(f"{key} = {out}: this space shares one value across all layers "
                              f"(heterogeneous_layers is false); give the same value for every layer")
        return tuple(out)

    def _extreme(self, pick) -> TransformerArch:
        """The architecture taking ``pick`` (min or max) of every decision."""
        enc_dim = pick(self.encoder_embed_dims)
        enc_depth = pick(self.encoder_layer_counts)
        config = {"encoder_embed_dim": enc_dim, "encoder_layers": enc_depth,
                  "encoder_ffn_dims": [pick(self.ffn_dims)] * enc_depth,
                  "encoder_heads": [pick(self.valid_head_counts(enc_dim))] * enc_depth}
        if self.has_decoder:
            dec_dim = pick(self.decoder_embed_dims)
            dec_depth = pick(self.decoder_layer_counts)
            heads = pick(self.valid_head_counts(dec_dim))
            cross = pick([c for c in self.cross_layer_counts if c <= enc_depth])
            config.update({"decoder_embed_dim": dec_dim, "decoder_layers": dec_depth,
                           "decoder_ffn_dims": [pick(self.ffn_dims)] * dec_depth,
                           "decoder_self_heads": [heads] * dec_depth, "decoder_cross_heads": [heads] * dec_depth,
                           "decoder_cross_layers": [cross] * dec_depth})
        return self.parse(config)

    def smallest(self) -> TransformerArch:
        return self._extreme(min)

    def largest(self) -> TransformerArch:
        return self._extreme(max)

    def size(self) -> int:
        """Exact count, respecting the head-divisibility and cross-attention constraints."""
        n_ffn = len(self.ffn_dims)
        total = 0
        for enc_dim in self.encoder_embed_dims:
            per_enc_layer = n_ffn * len(self.valid_head_counts(enc_dim))
            for enc_depth in self.encoder_layer_counts:
                enc = per_enc_layer ** (enc_depth if self.heterogeneous_layers else 1)
                if not self.has_decoder:
                    total += enc
                    continue
                n_cross = sum(1 for c in self.cross_layer_counts if c <= enc_depth)
                for dec_dim in self.decoder_embed_dims:
                    per_dec_layer = n_ffn * len(self.valid_head_counts(dec_dim)) ** 2 * n_cross
                    total += enc * sum(per_dec_layer ** (d if self.heterogeneous_layers else 1)
                                       for d in self.decoder_layer_counts)
        return total

    def enumerate(self) -> list[TransformerArch]:
        """Every architecture of the space (only for small spaces, such as Bort's)."""
        if self.size() > 100_000:
            raise ConfigError(f"this space has {self.size()} architectures; enumerate() is for spaces of at "
                              f"most 100000 (use sampling or search)")
        archs = []
        for genes in np.ndindex(*[len(c) for c in self.gene_choices]):
            row = np.asarray(genes, dtype=np.int64)[None]
            active = self.active_genes(row)[0]
            # count each architecture once: unused genes must sit at their first value
            if np.any(row[0][~active] != 0):
                continue
            try:
                archs.append(self.from_genes(row)[0])
            except ConfigError:  # violates a constraint between genes
                continue
        return archs

    # --- blocks ------------------------------------------------------------------------------------
    def _lengths(self, source_length, target_length) -> tuple[int, int]:
        S = self.source_length if source_length is None else source_length
        T = self.target_length if target_length is None else target_length
        for name, value in (("source_length", S), ("target_length", T)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        return S, T

    def _workload(self, mode: str | None, beam_size: int | None) -> tuple[str, int]:
        mode = self.workload if mode is None else mode
        if beam_size is None:
            beam_size = self.beam_size if mode == "decode" else 1
        return mode, beam_size

    def blocks(self, arch, mode: str | None = None, source_length: int | None = None,
               target_length: int | None = None, beam_size: int | None = None) -> list[tuple[str, BlockSpec]]:
        """``(name, block spec)`` of every block the network runs, in order.

        ``mode="forward"``: the source embedding, the encoder layers, then
        (encoder-decoder) the target embedding, the teacher-forced decoder
        layers over ``target_length`` tokens and the output projection; or
        (encoder-only) the LM head / classifier. ``mode="decode"``: the encoder
        once, each decoder layer's encoder-decoder keys/values once
        (``decoder.layers.<i>.cross_kv``), then for each of ``target_length``
        decoded tokens t the target embedding (``step.<t>.embedding``), one
        :class:`DecoderStepBlock` per decoder layer at cache length t
        (``decoder.layers.<i>.step.<t>``) and the output projection
        (``step.<t>.output_projection``), for ``beam_size`` hypotheses.
        Defaults: the space's ``workload``, ``beam_size``, ``source_length`` and
        ``target_length``."""
        arch = self.parse(arch)
        mode, beam_size = self._workload(mode, beam_size)
        if mode not in WORKLOADS:
            raise ConfigError(f"mode {mode!r} unknown; allowed: {WORKLOADS}")
        if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
            raise ConfigError(f"beam_size must be a positive integer, got {beam_size!r}")
        if mode == "decode" and not arch.has_decoder:
            raise ConfigError("mode='decode' needs an encoder-decoder space; an encoder-only network runs "
                              "one forward pass (mode='forward')")
        if beam_size != 1 and mode != "decode":
            raise ConfigError("beam_size applies to mode='decode' only")
        S, T = self._lengths(source_length, target_length)
        e = arch.encoder_embed_dim
        out: list[tuple[str, BlockSpec]] = [("encoder.embedding",
                                             EmbeddingBlock(self.src_vocab_size, e, S, self.max_positions))]
        for i in range(arch.encoder_layers):
            heads = arch.encoder_heads[i]
            out.append((f"encoder.layers.{i}", EncoderLayerBlock(e, arch.encoder_ffn_dims[i], heads,
                                                                 self.head_size(e, heads), S)))
        if not arch.has_decoder:
            if self.encoder_head == "lm":
                out.append(("lm_head", OutputBlock(e, self.src_vocab_size, S, bias=False, norm=True)))
            else:
                out.append(("classifier", OutputBlock(e, self.num_classes, 1, bias=True, norm=True)))
            return out
        d = arch.decoder_embed_dim
        layers = [self._decoder_fields(arch, i) for i in range(arch.decoder_layers)]
        if mode == "forward":
            out.append(("decoder.embedding", EmbeddingBlock(self.tgt_vocab_size, d, T, self.max_positions)))
            for i, fields in enumerate(layers):
                out.append((f"decoder.layers.{i}", DecoderLayerBlock(**fields, tokens=T, source_tokens=S)))
            out.append(("output_projection", OutputBlock(d, self.tgt_vocab_size, T, bias=False, norm=True)))
            return out
        B = beam_size
        for i, fields in enumerate(layers):
            out.append((f"decoder.layers.{i}.cross_kv", CrossKVBlock(
                e, fields["cross_heads"], fields["cross_head_size"], fields["cross_layers"] * S, B)))
        for t in range(T):
            out.append((f"step.{t}.embedding", EmbeddingBlock(self.tgt_vocab_size, d, B, self.max_positions)))
            for i, fields in enumerate(layers):
                # named after the layer first, so per-layer tables and features find the step's layer
                out.append((f"decoder.layers.{i}.step.{t}",
                            DecoderStepBlock(**fields, source_tokens=S, cache_length=t, beams=B)))
            out.append((f"step.{t}.output_projection", OutputBlock(d, self.tgt_vocab_size, B, bias=False,
                                                                   norm=True)))
        return out

    def _decoder_fields(self, arch: TransformerArch, i: int) -> dict:
        d, sh, ch = arch.decoder_embed_dim, arch.decoder_self_heads[i], arch.decoder_cross_heads[i]
        return {"dim": d, "encoder_dim": arch.encoder_embed_dim, "ffn_dim": arch.decoder_ffn_dims[i],
                "self_heads": sh, "self_head_size": self.head_size(d, sh), "cross_heads": ch,
                "cross_head_size": self.head_size(d, ch), "cross_layers": arch.decoder_cross_layers[i]}

    def distinct_blocks(self, mode: str | None = None, source_length: int | None = None,
                        target_length: int | None = None, beam_size: int | None = None,
                        cache_lengths: "tuple[int, ...] | None" = None) -> list[BlockSpec]:
        """Every distinct block the space's architectures run in ``mode`` (all of them:
        the enumeration is over per-layer choices, not architectures).

        Encoder layers: embedding dim x FFN dim x valid heads. Decoder layers
        (forward) or decoding steps (decode): embedding dim x encoder dim x FFN x
        self heads x cross heads x cross layers, and in decode mode x cache
        lengths (default all of 0 .. target_length - 1; pass ``cache_lengths``
        for a covering subset, e.g. ``(0, T // 2, T - 1)``, when a timed device
        cannot afford all: predictors interpolate between them). Plus the
        embeddings, output projections and (decode) encoder-decoder keys/values
        at every width. Defaults: the space's workload fields."""
        mode, beam_size = self._workload(mode, beam_size)
        if mode not in WORKLOADS:
            raise ConfigError(f"mode {mode!r} unknown; allowed: {WORKLOADS}")
        S, T = self._lengths(source_length, target_length)
        if mode == "decode" and not self.has_decoder:
            raise ConfigError("mode='decode' needs an encoder-decoder space")
        if cache_lengths is not None and mode != "decode":
            raise ConfigError("cache_lengths applies to mode='decode' only")
        if cache_lengths is None:
            cache_lengths = tuple(range(T))
        elif not cache_lengths or any(isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < T
                                      for c in cache_lengths):
            raise ConfigError(f"cache_lengths must be integers in 0..{T - 1} (target_length - 1), "
                              f"got {cache_lengths!r}")
        B = beam_size
        found: list[BlockSpec] = []
        for e in self.encoder_embed_dims:
            found.append(EmbeddingBlock(self.src_vocab_size, e, S, self.max_positions))
            found += [EncoderLayerBlock(e, f, h, self.head_size(e, h), S)
                      for f in self.ffn_dims for h in self.valid_head_counts(e)]
            if not self.has_decoder:
                found.append(OutputBlock(e, self.src_vocab_size, S, bias=False, norm=True)
                             if self.encoder_head == "lm" else OutputBlock(e, self.num_classes, 1, bias=True))
        if self.has_decoder:
            max_cross = [c for c in self.cross_layer_counts if c <= self.max_encoder_layers]
            for d in self.decoder_embed_dims:
                heads = self.valid_head_counts(d)
                tokens = T if mode == "forward" else B
                found.append(EmbeddingBlock(self.tgt_vocab_size, d, tokens, self.max_positions))
                found.append(OutputBlock(d, self.tgt_vocab_size, tokens, bias=False, norm=True))
                for e in self.encoder_embed_dims:
                    for f in self.ffn_dims:
                        for sh in heads:
                            for ch in heads:
                                for k in max_cross:
                                    fields = {"dim": d, "encoder_dim": e, "ffn_dim": f, "self_heads": sh,
                                              "self_head_size": self.head_size(d, sh), "cross_heads": ch,
                                              "cross_head_size": self.head_size(d, ch), "cross_layers": k}
                                    if mode == "forward":
                                        found.append(DecoderLayerBlock(**fields, tokens=T, source_tokens=S))
                                    else:
                                        found += [DecoderStepBlock(**fields, source_tokens=S, cache_length=c,
                                                                   beams=B) for c in cache_lengths]
                    if mode == "decode":
                        found += [CrossKVBlock(e, ch, self.head_size(d, ch), k * S, B)
                                  for ch in heads for k in max_cross]
        return list({block.key: block for block in found}.values())

    # --- analytic cost -------------------------------------------------------------------------------
    # --- additive tables (ofa.spaces.tables) ---------------------------------------------------------
    def additive_layout(self) -> TableLayout:
        """A Transformer layer's layers depend on its own genes and the embedding
        dimensions. With layers sharing one value (``heterogeneous_layers=False``)
        the one shared unit stands for all layers, so the depth joins the context."""
        lay = self.gene_layout
        sides = [("encoder", ("encoder_ffn", "encoder_heads"))]
        if self.has_decoder:
            sides.append(("decoder", ("decoder_ffn", "decoder_self_heads", "decoder_cross_heads",
                                      "decoder_cross_layers")))
        context = [lay[f"{side}_embed"].start for side, _ in sides]
        if not self.heterogeneous_layers:
            context += [lay[f"{side}_layers"].start for side, _ in sides]
        groups = []
        for side, names in sides:
            slots = lay[names[0]].stop - lay[names[0]].start
            groups.append([[lay[name].start + i for name in names] for i in range(slots)])
        template = np.zeros(self.num_genes, dtype=np.int64)
        template[lay["encoder_layers"].start] = len(self.encoder_layer_counts) - 1
        if self.has_decoder:
            template[lay["decoder_layers"].start] = len(self.decoder_layer_counts) - 1
        group_of_side = {side: g for g, (side, _) in enumerate(sides)}

        def unit_of_layer(name):
            match = re.match(r"^(encoder|decoder)\.layers\.(\d+)\.", name)
            if not match:
                return None
            return group_of_side[match.group(1)], int(match.group(2)) if self.heterogeneous_layers else 0

        return TableLayout(context_genes=context, groups=groups, unit_of_layer=unit_of_layer, template=template)

    def cost(self, arch, source_length: int | None = None, target_length: int | None = None,
             mode: str | None = None, beam_size: int | None = None) -> CostReport:
        """MACs and parameters of the extracted network at batch size 1: the sum of
        its blocks (:meth:`blocks`).

        ``mode="forward"``: a source of ``source_length`` tokens and (encoder-decoder)
        a teacher-forced target of ``target_length`` tokens (defaults: the space's
        fields). ``mode="decode"``: autoregressive decoding of ``target_length``
        tokens with the key/value cache and ``beam_size`` hypotheses: the encoder
        once, then per token one step of every decoder layer and the output
        projection (MACs and activations of every step; ``params`` stays the
        network's).

        Attention score and context products are ``op="matmul"`` layers (grouped
        1x1 "convs" with one group per head); embeddings and LayerNorms add
        parameters but no MACs. ``mode``/``beam_size`` default to the space's
        ``workload``/``beam_size`` fields."""
        arch = self.parse(arch)
        mode, beam_size = self._workload(mode, beam_size)
        blocks = self.blocks(arch, "forward", source_length, target_length)
        layers: list[LayerShape] = []
        extra = 0  # embeddings and LayerNorms
        for name, block in blocks:
            layers.extend(block.layers(name))
            extra += block.norm_params()
        if arch.has_decoder:
            extra += 2 * arch.encoder_embed_dim  # the final encoder LayerNorm (shared by the decoder layers)
            extra -= self.tgt_vocab_size * arch.decoder_embed_dim  # output projection tied to the target embedding
        elif self.encoder_head == "lm":
            extra -= self.src_vocab_size * arch.encoder_embed_dim  # LM head tied to the token embedding
        forward = CostReport.from_layers(layers, extra_params=extra)
        if mode == "forward":
            if beam_size != 1:
                raise ConfigError("beam_size applies to mode='decode' only")
            return forward
        decode_layers: list[LayerShape] = []
        for name, block in self.blocks(arch, mode, source_length, target_length, beam_size):
            decode_layers.extend(block.layers(name))
        report = CostReport.from_layers(decode_layers)
        return CostReport(report.macs, forward.params, report.activation_elements, report.peak_activation_elements,
                          report.layers)
