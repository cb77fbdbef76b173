"""Per-token early exits of a Transformer decoder (CALM: Schuster et al., "Confident Adaptive
Language Modeling", NeurIPS 2022).

Works on a static :class:`~ofa.models.transformer.Transformer` extracted with exits and on a
:class:`~ofa.supernets.HATTransformer` built with them (at its active subnet): both run the code of
:class:`~ofa.models.transformer.TransformerBody`.

* :func:`exit_logits` - teacher forcing: the logits of every exit of the running network, then the
  final ones (what training and teacher-forced evaluation read).
* :func:`greedy_decode_exits` - greedy decoding in which every token leaves at the first exit whose
  confidence is strictly above the threshold (the rule of :mod:`ofa.models.exits`: the largest
  softmax probability by default, CALM's "softmax response"). A token that leaves at layer ``i``
  does not run the layers above it; its hidden state is copied to them (CALM's state propagation),
  and their self-attention keys/values for that position are projected from the copy, so the
  key/value cache of every layer stays complete for later tokens. Threshold 1 never exits (the
  output is exactly :func:`~ofa.models.transformer.greedy_decode`'s); threshold 0 exits every token
  at the first exit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .exits import check_measure, check_thresholds, confidence
from .transformer import BOS, EOS, PAD, TransformerBody, _max_length

SEQUENCE_RISKS = ("sequence", "token")  # the dissimilarities of sequence_losses


def _require_exits(model: TransformerBody) -> None:
    if getattr(model, "exits", None) is None:
        raise ConfigError("this Transformer has no exits: build the supernet with exits={'layers': [...]} "
                          "(training config key 'exits') and extract from it")


def check_token_batch(tokens, vocab_size: int, what: str) -> None:
    """Refuse anything but a (sentences, length) integer tensor of ids below ``vocab_size``, with a
    DataError naming ``what``, before a model reads it (torch would fail deep in an embedding)."""
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.shape[0] == 0 or tokens.shape[1] == 0:
        shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise DataError(f"{what} must be a (sentences, length) tensor of token ids with at least one sentence and "
                        f"one token, got {shape}")
    if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
        raise DataError(f"{what} must hold integer token ids (torch.long), got dtype {tokens.dtype}")
    low, high = int(tokens.min()), int(tokens.max())
    if low < 0 or high >= vocab_size:
        raise DataError(f"{what} hold token ids from {low} to {high}; the vocabulary allows 0 to {vocab_size - 1}")


def check_max_length(max_length) -> None:
    """``max_length`` is None or an int (its range is checked against the space when decoding)."""
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)):
        raise ConfigError(f"max_length must be a whole number of tokens (or None: the space's max_positions - 1), "
                          f"got {max_length!r}")


def exit_logits(model: TransformerBody, src_tokens: torch.Tensor, tgt_tokens: torch.Tensor) -> list[torch.Tensor]:
    """Teacher-forced logits (batch, target_length, vocab) at every exit of the running network,
    then the final ones, in one pass (the final ones equal ``model(src_tokens, tgt_tokens)``)."""
    _require_exits(model)
    memory = model.encode(src_tokens)
    position = torch.arange(tgt_tokens.shape[1], device=tgt_tokens.device)
    causal = position[None, :] > position[:, None]
    x = model._embed(tgt_tokens, "tgt")
    exits = set(model.active_exit_layers())
    outputs = []
    for i, layer in enumerate(model.active_decoder_layers()):
        x, _ = layer(x, causal, *layer.cross_keys_values(memory))
        if i in exits:
            outputs.append(model.output_logits(x))
    outputs.append(model.output_logits(x))
    return outputs


def exit_loss_weights(model: TransformerBody) -> list[float]:
    """CALM's weights of the per-layer losses (exits, then the final output): proportional to the
    depth of the layer each reads (1-based), normalised to sum to 1."""
    depths = [i + 1 for i in model.active_exit_layers()] + [len(model.active_decoder_layers())]
    return [d / sum(depths) for d in depths]


@dataclass
class ExitDecoding:
    """What :func:`greedy_decode_exits` returns. ``tokens`` (batch, length) as
    :func:`~ofa.models.transformer.greedy_decode`; ``layers`` (batch, length) the decoder layers each
    token ran (0 at the padding after EOS); ``exit_index`` (batch, length) where each token left
    (``0..E-1`` an exit, ``E`` the final output; -1 at padding), ``E`` = ``exits``; ``cache`` the
    self-attention keys and values of every decoder layer at the end, (batch, heads, positions,
    head_size) each: every layer holds every position, the skipped ones included."""

    tokens: torch.Tensor
    layers: torch.Tensor
    exit_index: torch.Tensor
    exits: int
    cache: Optional[list] = None

    def mean_layers(self) -> float:
        """Mean decoder layers per generated token (EOS included, padding not)."""
        real = self.exit_index.ge(0)
        return float(self.layers[real].float().mean()) if bool(real.any()) else 0.0

    def exit_distribution(self) -> list[float]:
        """Fraction of the generated tokens leaving at each exit, the final output last."""
        index = self.exit_index[self.exit_index.ge(0)]
        counts = torch.bincount(index, minlength=self.exits + 1).double()
        return (counts / max(1, len(index))).tolist()


@torch.no_grad()
def greedy_decode_exits(model: TransformerBody, src_tokens: torch.Tensor, threshold: float,
                        measure: str = "maxprob", max_length: int | None = None) -> ExitDecoding:
    """Greedy decoding with per-token early exits at ``threshold`` (in [0, 1]; see the module docstring)."""
    _require_exits(model)
    check_measure(measure)
    (threshold,) = check_thresholds(threshold, 1)
    check_token_batch(src_tokens, model.space.src_vocab_size, "the sources")
    check_max_length(max_length)
    max_length = _max_length(model, max_length)
    memory = model.encode(src_tokens)
    layers = model.active_decoder_layers()
    exits = model.active_exit_layers()
    exit_number = {layer: k for k, layer in enumerate(exits)}
    batch, device = src_tokens.shape[0], src_tokens.device
    prefix = torch.full((batch, 1), BOS, dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    cross = [layer.cross_keys_values(memory) for layer in layers]  # computed once per sentence
    past: list = [None] * len(layers)
    ran, left = [], []
    for position in range(max_length):
        x = model._embed(prefix[:, -1:], "tgt", position)
        exited = torch.zeros(batch, dtype=torch.bool, device=device)
        logits = torch.empty(0)
        where = torch.full((batch,), len(exits), dtype=torch.long, device=device)
        depth = torch.full((batch,), len(layers), dtype=torch.long, device=device)
        for i, layer in enumerate(layers):
            if bool((exited | done).all()):
                # every live token has left: only the skipped layer's keys/values of the copied state
                k, v = layer.self_attn.project_kv(layer.self_attn_norm(x))
                past[i] = (torch.cat([past[i][0], k], dim=2), torch.cat([past[i][1], v], dim=2)) \
                    if past[i] is not None else (k, v)
                continue
            # the layer reads the copied state of tokens that left, so its keys/values for them are the
            # propagated ones; their layer output is discarded
            y, past[i] = layer(x, None, *cross[i], past[i])
            x = torch.where(exited[:, None, None], x, y)
            if i in exit_number:
                exit_logits_i = model.output_logits(x)[:, -1]
                confident = torch.from_numpy(confidence(exit_logits_i.float().cpu().numpy(), measure) > threshold)
                leaving = confident.to(device) & ~exited
                logits = exit_logits_i if not bool(exited.any()) else torch.where(
                    leaving[:, None], exit_logits_i, logits)
                where[leaving], depth[leaving] = exit_number[i], i + 1
                exited |= leaving
        if not bool((exited | done).all()):
            final = model.output_logits(x)[:, -1]
            logits = final if not bool(exited.any()) else torch.where(exited[:, None], logits, final)
        token = logits.argmax(-1).masked_fill(done, PAD)
        ran.append(depth.masked_fill(done, 0))
        left.append(where.masked_fill(done, -1))
        prefix = torch.cat([prefix, token[:, None]], dim=1)
        done |= token.eq(EOS)
        if bool(done.all()):
            break
    return ExitDecoding(prefix[:, 1:], torch.stack(ran, 1), torch.stack(left, 1), len(exits), past)


def sequence_losses(adaptive: torch.Tensor, full: torch.Tensor, risk: str = "sequence") -> np.ndarray:
    """Per-sentence loss in [0, 1] of an adaptive output against the full network's (both
    (batch, length) as :func:`~ofa.models.transformer.greedy_decode` returns, cut at EOS):
    ``"sequence"`` 1 when they differ anywhere (1 - exact match, CALM's textual consistency with
    the exact-match metric), ``"token"`` the fraction of the full output's tokens (EOS included) the
    adaptive one gets wrong at the same position."""
    if risk not in SEQUENCE_RISKS:
        raise ConfigError(f"sequence risk {risk!r} unknown; allowed: {list(SEQUENCE_RISKS)}")
    for name, outputs in (("adaptive", adaptive), ("full", full)):
        if not isinstance(outputs, torch.Tensor) or outputs.dim() != 2:
            raise DataError(f"the {name} outputs must be a (sentences, length) tensor of token ids as greedy "
                            f"decoding returns, got {type(outputs).__name__}")
    if len(adaptive) != len(full):
        raise DataError(f"{len(adaptive)} adaptive outputs for {len(full)} full-network outputs: give one of each "
                        f"per sentence")
    # on the CPU: the losses are returned as numpy, and a given reference may live on another device
    adaptive, full = adaptive.cpu(), full.cpu()
    length = max(adaptive.shape[1], full.shape[1])
    a = torch.nn.functional.pad(adaptive, (0, length - adaptive.shape[1]), value=PAD)
    f = torch.nn.functional.pad(full, (0, length - full.shape[1]), value=PAD)
    differ = a.ne(f)
    if risk == "sequence":
        return differ.any(1).double().numpy()
    real = f.ne(PAD)  # the token risk
    wrong = (differ & real).sum(1).double() + (differ & ~real).any(1).double()  # a longer output is wrong too
    return torch.clamp(wrong / real.sum(1).clamp(min=1).double(), max=1.0).numpy()


__all__ = ["ExitDecoding", "SEQUENCE_RISKS", "check_max_length", "check_token_batch", "exit_logits",
           "exit_loss_weights", "greedy_decode_exits", "sequence_losses"]
