"""Per-token early exits of a Transformer decoder: where they sit and what blocks they add.

Confident Adaptive Language Modeling (CALM; Schuster et al., NeurIPS 2022)
lets each generated token leave the decoder after an intermediate layer when
the prediction there is confident enough. An exit after decoder layer ``i``
(0-based) reads that layer's output through the decoder's final LayerNorm and
the shared output projection (tied to the target embedding), exactly as the
last layer does: CALM shares the LM head across exits, and so do we; no
per-exit LayerNorm is added. An exit therefore has no weights of its own, and
it costs one output projection (an :class:`~ofa.spaces.blocks.OutputBlock`)
each time a token is checked there.

Exits are an option of the supernet and of the networks extracted from it,
never of the space: architectures, genes, the space fingerprint, profiles and
predictors are the same with or without them (as for the image family,
:mod:`ofa.spaces.exits`). With elastic decoder depth, an exit after layer
``i`` exists in a subnet only if the subnet has more than ``i + 1`` decoder
layers: after its last layer the network's own output answers.

A token that leaves at layer ``i`` skips the layers above it, but later tokens
attend to its keys and values in every layer. CALM's state propagation copies
the exited hidden state to the skipped layers, whose self-attention keys and
values are then projected from it: per skipped layer, a key and a value
projection of one token, priced as a :class:`~ofa.spaces.blocks.CrossKVBlock`
over one source token (the same two projections; the layer's self-attention
LayerNorm, which the decoding runs before them, is left out of the price).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .blocks import CrossKVBlock, OutputBlock


@dataclass(frozen=True)
class DecoderExitConfig:
    """Exits after the decoder layers ``layers`` (0-based, each before the space's last decoder layer)."""

    layers: tuple[int, ...]

    @classmethod
    def parse(cls, space, value) -> "DecoderExitConfig | None":
        """None (no exits), a DecoderExitConfig, or ``{"layers": [...]}``, checked against ``space``."""
        if value is None:
            return None
        if not getattr(space, "has_decoder", False):
            raise ConfigError("exits apply to encoder-decoder Transformer spaces (per-token exits after decoder "
                              "layers); this space has no decoder")
        last = space.max_decoder_layers - 1
        if isinstance(value, DecoderExitConfig):
            config = value
        elif isinstance(value, dict):
            if sorted(value) != ["layers"]:
                raise ConfigError(f"Transformer exits must be a mapping with the one key 'layers' (decoder layer "
                                  f"indices 0..{last - 1}); got keys {sorted(value)}")
            layers = value["layers"]
            if not isinstance(layers, (list, tuple)):
                raise ConfigError(f"exits.layers must be a list of decoder layer indices, got {layers!r}")
            config = cls(tuple(layers))
        else:
            raise ConfigError(f"Transformer exits must be null or a mapping {{layers: [...]}}, got {value!r}")
        if (not config.layers or any(isinstance(i, bool) or not isinstance(i, int) for i in config.layers)
                or any(not 0 <= i < last for i in config.layers) or list(config.layers) != sorted(set(config.layers))):
            raise ConfigError(f"exits.layers = {list(config.layers)} is not allowed: give distinct increasing decoder "
                              f"layer indices from 0 to {last - 1} (the space has at most {last + 1} decoder layers; "
                              f"after the last one the network's own output is the final exit)")
        return config

    def to_dict(self) -> dict:
        return {"layers": list(self.layers)}

    def active_layers(self, decoder_layers: int) -> list[int]:
        """The exits a subnet with ``decoder_layers`` layers has: those before its last layer."""
        return [i for i in self.layers if i < decoder_layers - 1]


def decode_exit_blocks(space, exits: "DecoderExitConfig | dict", arch, source_length: int | None = None,
                       target_length: int | None = None, beam_size: int = 1) -> list[list[tuple[str, object]]]:
    """The blocks of decoding ``target_length`` tokens when every token leaves at the same place:
    entry ``k < E`` (``E`` = the subnet's number of exits) is leaving at exit ``k``, entry ``E`` is
    running every layer. Each holds the encoder and the encoder-decoder keys/values once, then per
    token the embedding, the decoder layers it runs, one output projection per exit it was checked
    at (exits ``0..k``; all ``E`` of them and the final projection when it runs to the end), and the
    state propagation to the layers it skipped (see the module docstring). ``exits`` is a
    DecoderExitConfig or its mapping ``{"layers": [...]}``."""
    exits = DecoderExitConfig.parse(space, exits)
    if exits is None:
        raise ConfigError("decode_exit_blocks prices decoding with exits: give exits={'layers': [...]} (decoder "
                          f"layer indices 0..{space.max_decoder_layers - 2}); without exits use space.blocks")
    arch = space.parse(arch)
    blocks = space.blocks(arch, mode="decode", source_length=source_length, target_length=target_length,
                          beam_size=beam_size)
    exit_layers = exits.active_layers(arch.decoder_layers)
    once = [(name, block) for name, block in blocks if not name.startswith(("step.", "decoder.layers.")) or
            name.endswith(".cross_kv")]
    steps: dict[int, dict] = {}
    for name, block in blocks:
        parts = name.split(".")
        if parts[0] == "step":
            steps.setdefault(int(parts[1]), {})[parts[2]] = block
        elif parts[0] == "decoder" and len(parts) == 5 and parts[3] == "step":
            steps.setdefault(int(parts[4]), {})[int(parts[2])] = block
    head = OutputBlock(arch.decoder_embed_dim, space.tgt_vocab_size, beam_size, bias=False, norm=True)
    out = []
    for k in range(len(exit_layers) + 1):
        ran = exit_layers[k] + 1 if k < len(exit_layers) else arch.decoder_layers
        checked = k + 1 if k < len(exit_layers) else len(exit_layers) + 1  # the final projection counts last
        segment = list(once)
        for t, step in sorted(steps.items()):
            segment.append((f"step.{t}.embedding", step["embedding"]))
            segment += [(f"decoder.layers.{i}.step.{t}", step[i]) for i in range(ran)]
            segment += [(f"step.{t}.exit_check.{j}", head) for j in range(checked)]
            for i in range(ran, arch.decoder_layers):
                d, heads = arch.decoder_embed_dim, arch.decoder_self_heads[i]
                segment.append((f"decoder.layers.{i}.step.{t}.propagated_kv",
                                CrossKVBlock(d, heads, space.head_size(d, heads), 1, beam_size)))
        out.append(segment)
    return out


__all__ = ["DecoderExitConfig", "decode_exit_blocks"]
