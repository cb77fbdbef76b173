"""The per-token exit threshold of a Transformer, calibrated on whole sentences.

CALM (Schuster et al., "Confident Adaptive Language Modeling", NeurIPS 2022)
calibrates the threshold of its per-token exits at the level of sequences:
with ``n`` held-out source sentences drawn i.i.d. from the distribution the
model will serve, it returns a threshold ``lambda`` such that, with
probability at least ``1 - delta`` over that draw,

    E[ loss(Y_early(lambda), Y_full) ] <= tolerance

where ``Y_full`` is the full network's greedy output and ``Y_early`` the
output of greedy decoding with exits (:func:`ofa.models.transformer_exits.greedy_decode_exits`):
every token of a sentence may exit, and a token that exits early changes the
tokens after it, so the loss compares whole sentences. It is CALM's "textual
consistency" risk, with one of two dissimilarities
(:func:`ofa.models.transformer_exits.sequence_losses`):

* ``"sequence"`` (default): 1 when the two outputs differ anywhere, i.e.
  1 - exact match. Since exact match against the references can drop only
  where the outputs differ, the adaptive network's exact match is then at most
  ``100 x tolerance`` points below the full network's (and so is every
  sentence-level metric bounded in [0, 1] up to that probability);
* ``"token"``: the fraction of the full output's tokens the adaptive one gets
  wrong at the same position (a longer adaptive output counts one more error),
  capped at 1.

The procedure is Learn-then-Test with fixed-sequence testing, as in CALM
(:func:`ofa.search.exits.learn_then_test`, the same scan as the image
family's): the thresholds of :func:`ofa.search.exits.threshold_grid` from 1
downwards, each decoded on all calibration sentences; the exact binomial
p-value for the 0/1 ``"sequence"`` loss, the Hoeffding-Bentkus p-value for the
``"token"`` loss (bounded, not binary). One threshold is shared by every exit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ConfigError, DataError
from ..models.transformer import PAD, greedy_decode
from ..models.transformer_exits import (
    SEQUENCE_RISKS,
    ExitDecoding,
    check_max_length,
    check_token_batch,
    greedy_decode_exits,
    sequence_losses,
)
from .exits import ThresholdCalibration, check_calibration_args, check_grid, learn_then_test, threshold_grid


@dataclass
class DecoderCalibration(ThresholdCalibration):
    """The calibrated threshold and what it gave on the calibration sentences (``exit_distribution``:
    the fraction of generated tokens leaving at each exit, the final output last)."""

    mean_layers: float  # decoder layers per generated token at the threshold
    full_layers: int  # decoder layers of the subnet (every token without exits)
    tested: list[dict] = field(default_factory=list)  # (threshold, losses, p-value) up to the first failure

    def to_dict(self) -> dict:
        dissimilarity = ("1 - exact match" if self.risk == "sequence" else "token error rate")
        return {**self._reported(), "mean_layers": self.mean_layers, "full_layers": self.full_layers,
                "guarantee": (f"with probability >= {1 - self.delta:g} over the {self.n} calibration sentences, "
                              f"E[{dissimilarity} of the adaptive output against the full subnet's] <= "
                              f"{self.tolerance:g} (CALM's sequence-level consistency; Learn-then-Test, "
                              f"fixed-sequence, "
                              f"{'exact binomial' if self.risk == 'sequence' else 'Hoeffding-Bentkus'} p-values)")}


def decode_in_batches(model, src_tokens: torch.Tensor, threshold: float | None = None, measure: str = "maxprob",
                      batch_size: int = 250, max_length: int | None = None):
    """Greedy outputs of ``src_tokens`` (n, source_length), ``batch_size`` sentences at a time:
    plain :func:`~ofa.models.transformer.greedy_decode` with ``threshold=None``, else an
    :class:`~ofa.models.transformer_exits.ExitDecoding` of all of them. Outputs are padded with
    PAD to a common length."""
    parts = []
    for start in range(0, len(src_tokens), batch_size):
        src = src_tokens[start:start + batch_size]
        parts.append(greedy_decode(model, src, max_length) if threshold is None
                     else greedy_decode_exits(model, src, threshold, measure, max_length))
    if threshold is None:
        return _cat([p for p in parts], PAD)
    return ExitDecoding(_cat([p.tokens for p in parts], PAD), _cat([p.layers for p in parts], 0),
                        _cat([p.exit_index for p in parts], -1), parts[0].exits)


def _cat(tensors: list[torch.Tensor], fill: int) -> torch.Tensor:
    width = max(t.shape[1] for t in tensors)
    return torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[1]), value=fill) for t in tensors])


def calibrate_decoder_threshold(model, src_tokens: torch.Tensor, tolerance: float = 0.05, delta: float = 0.1,
                                risk: str = "sequence", measure: str = "maxprob", grid=None, batch_size: int = 250,
                                max_length: int | None = None, reference: torch.Tensor | None = None
                                ) -> DecoderCalibration:
    """The lowest threshold of ``grid`` (default :func:`~ofa.search.exits.threshold_grid`) that
    fixed-sequence Learn-then-Test certifies at ``(tolerance, delta)`` for the sequence-level
    ``risk``; 1 (never exit) when none is. ``model``: a network with exits in eval mode (a static
    subnet, or a supernet at its active subnet); ``src_tokens``: the calibration sources (n,
    source_length), padded with PAD; ``reference``: the full network's greedy outputs, when already
    decoded."""
    if risk not in SEQUENCE_RISKS:
        raise ConfigError(f"sequence risk {risk!r} unknown; allowed: {list(SEQUENCE_RISKS)}")
    check_calibration_args(tolerance, delta, "consistency", measure)
    if getattr(model, "exits", None) is None or not model.active_exit_layers():
        raise ConfigError("calibration needs a network with at least one exit before its last decoder layer "
                          "(exits={'layers': [...]} and a subnet deep enough)")
    if model.training:  # dropout would make even threshold 1 differ from the full output
        raise ConfigError("calibration needs the model in eval mode (call model.eval() first): with dropout active "
                          "the outputs are random and the guarantee does not hold")
    grid = threshold_grid() if grid is None else check_grid(grid)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a whole number >= 1 (sentences decoded at once), got {batch_size!r}")
    check_max_length(max_length)
    check_token_batch(src_tokens, model.space.src_vocab_size, "the calibration sources")
    if reference is not None:
        check_token_batch(reference, model.space.tgt_vocab_size, "the reference outputs")
        if len(reference) != len(src_tokens):
            raise DataError(f"{len(reference)} reference outputs for {len(src_tokens)} calibration sentences: give "
                            f"the full network's greedy output of each")
    full = decode_in_batches(model, src_tokens, None, measure, batch_size, max_length) if reference is None \
        else reference
    decoded: dict[float, ExitDecoding] = {}

    def losses_at(threshold: float) -> np.ndarray:
        decoded[threshold] = decode_in_batches(model, src_tokens, threshold, measure, batch_size, max_length)
        return sequence_losses(decoded[threshold].tokens, full, risk)

    chosen, tested = learn_then_test(grid, losses_at, tolerance, delta, binary=risk == "sequence")
    if chosen not in decoded:
        decoded[chosen] = decode_in_batches(model, src_tokens, chosen, measure, batch_size, max_length)
    outputs = decoded[chosen]
    return DecoderCalibration(chosen, float(tolerance), float(delta), risk, measure, len(src_tokens),
                              float(sequence_losses(outputs.tokens, full, risk).mean()), outputs.exit_distribution(),
                              outputs.mean_layers(), len(model.active_decoder_layers()), tested)


__all__ = ["DecoderCalibration", "SEQUENCE_RISKS", "calibrate_decoder_threshold", "decode_in_batches"]
