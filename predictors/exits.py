"""Latency of a network with early exits, from a block-sum latency predictor.

The network runs as segments (:func:`ofa.spaces.exits.exit_segments`): segment
``k < E`` is the main-path blocks up to exit ``k`` plus that exit's head, the
last segment is the rest of the network with its own head. A sample that
leaves at exit ``k`` ran segments ``0..k``, so with ``T_j`` the latency of
segment ``j``

    L_k = T_0 + ... + T_k                       (latency of leaving at exit k)
    expected latency = sum_k P(exit k) * L_k    (k = 0..E, E = the final head)
    worst-case latency = L_E                    (every exit head ran, then the full network)

``T_j`` is the block-sum predictor's latency of the segment's blocks as one
network (:class:`~predictors.blocks.BlockSumRegressor`: block latencies with
the runtime's per-inference overhead counted once, then the device's network
correction): each segment is one runtime call (one ONNX graph per segment,
:func:`ofa.export.export_exit_segments`), so each pays the overhead once.
Exit heads are :class:`~ofa.spaces.ClassifierHeadBlock` blocks: measured where
the block profile has them, else priced by the predictor's block model.

``call_overhead_ms`` adds what a block profile does not see: the runner's own
cost for each segment after the first (one more runtime call from Python and
the exit rule on its output), so ``L_k`` gains ``k x call_overhead_ms``. It is
0 by default (the formula above); measure it on the device by timing the
segments with threshold 1 against the same subnet as one graph
(``benchmarks/early_exit.py`` records it at batch 1).

Transformers exit per token (:func:`decoder_exit_latencies`): ``L_k`` is the
latency of decoding a sentence when every token leaves at exit ``k``, from the
same block-sum predictor on the decode-workload blocks of
:func:`ofa.spaces.transformer_exits.decode_exit_blocks` (the encoder once, per
token the layers run, one output projection per exit checked, the state
propagation to the skipped layers); with ``P(exit k)`` the fraction of tokens
leaving at exit ``k`` the same ``sum_k P(exit k) * L_k`` is the expected
latency of a sentence (the exit distribution taken as the same at every
position), and the worst case is every token running every layer and every
exit check.
"""

from __future__ import annotations

import numpy as np

from ofa.errors import ConfigError, PredictorError
from ofa.spaces.exits import exit_segments
from ofa.spaces.transformer_exits import decode_exit_blocks


def expected_latency(exit_probabilities, cumulative_latencies) -> float:
    """``sum_k P(exit k) * L_k``; both sequences run over the exits then the final head."""
    p = np.asarray(exit_probabilities, dtype=np.float64)
    latency = np.asarray(cumulative_latencies, dtype=np.float64)
    if p.shape != latency.shape or p.ndim != 1:
        raise ConfigError(f"one exit probability per exit latency (the final head last), got {p.shape} and "
                          f"{latency.shape}")
    if np.any(p < 0) or abs(p.sum() - 1.0) > 1e-6:
        raise ConfigError(f"exit probabilities must be >= 0 and sum to 1, got {p.tolist()}")
    return float(p @ latency)


def block_sum_regressor(predictor):
    """The :class:`~predictors.blocks.BlockSumRegressor` inside a block-sum latency predictor."""
    from .blocks import BlockSumRegressor

    estimator = getattr(predictor, "estimator", predictor)
    model = getattr(estimator, "named_steps", {}).get("model", estimator)
    if not isinstance(model, BlockSumRegressor):
        raise PredictorError(f"expected latency of exits needs a block-sum latency predictor (tools/fit_predictor.py "
                             f"--blocks), got a {getattr(predictor, 'model_name', type(model).__name__)!r} one: "
                             f"it prices whole networks, not the segments up to each exit")
    return model


def segment_latencies(predictor, space, exits, arch) -> np.ndarray:
    """``T_j`` of every segment (exits in order, the final segment last), in the predictor's unit."""
    regressor = block_sum_regressor(predictor)
    return np.array([_blocks_latency(regressor, [block for _, block in segment])
                     for segment in exit_segments(space, exits, arch)])


def _blocks_latency(regressor, blocks) -> float:
    """Blocks run as one network: their latencies with the runtime overhead counted once, corrected."""
    latency = np.maximum(regressor.predict_blocks(blocks), 0.0)  # the block model may extrapolate below 0
    total = regressor.overhead_ + float(np.sum(latency - regressor.overhead_))
    return float(regressor._apply(regressor.coef_, np.array([[total, float(len(blocks))]]))[0])


def check_call_overhead(call_overhead_ms) -> float:
    """A finite latency >= 0 (ms), else a ConfigError."""
    if (isinstance(call_overhead_ms, bool) or not isinstance(call_overhead_ms, (int, float))
            or not 0 <= call_overhead_ms < float("inf")):
        raise ConfigError(f"call_overhead_ms must be a finite latency >= 0 (ms per segment after the first; "
                          f"0 leaves it out), got {call_overhead_ms!r}")
    return float(call_overhead_ms)


def exit_latencies(predictor, space, exits, arch, call_overhead_ms: float = 0.0) -> dict:
    """``{"segments": T, "cumulative": L, "worst_case": L_E, "static": latency of the network
    without exits}``, the last from the same predictor on the whole network; ``call_overhead_ms``
    per segment after the first (see the module docstring)."""
    check_call_overhead(call_overhead_ms)
    segments = segment_latencies(predictor, space, exits, arch)
    cumulative = np.cumsum(segments) + call_overhead_ms * np.arange(len(segments))
    if hasattr(predictor, "predict_archs"):
        static = float(predictor.predict_archs(space.parse(arch))[0])
    else:  # a bare block-sum regressor: the same sum over the network's own blocks
        blocks = [block for _, block in space.blocks(space.parse(arch))]
        static = _blocks_latency(block_sum_regressor(predictor), blocks)
    return {"segments": segments.tolist(), "cumulative": cumulative.tolist(), "worst_case": float(cumulative[-1]),
            "static": static}


def decoder_exit_latencies(predictor, space, exits, arch, source_length: int | None = None,
                           target_length: int | None = None, beam_size: int = 1) -> dict:
    """``{"cumulative": L (sentence latency when every token leaves at exit k, the full network
    last), "worst_case": L_E, "static": the same subnet decoded without exits}`` of a Transformer with
    per-token exits ``exits`` (:class:`~ofa.spaces.transformer_exits.DecoderExitConfig`), from a
    block-sum predictor of the space's decode workload; lengths default to the space's."""
    regressor = block_sum_regressor(predictor)
    per_exit = [_blocks_latency(regressor, [block for _, block in blocks])
                for blocks in decode_exit_blocks(space, exits, arch, source_length, target_length, beam_size)]
    static = _blocks_latency(regressor, [block for _, block in space.blocks(
        space.parse(arch), mode="decode", source_length=source_length, target_length=target_length,
        beam_size=beam_size)])
    return {"cumulative": per_exit, "worst_case": float(per_exit[-1]), "static": static}


__all__ = ["block_sum_regressor", "check_call_overhead", "decoder_exit_latencies", "expected_latency", "exit_latencies",
           "segment_latencies"]
