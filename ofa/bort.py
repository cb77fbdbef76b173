"""Bort-style optimal sub-architecture extraction.

de Wynter and Perry ("An Approximation Algorithm for Optimal Subarchitecture
Extraction", arXiv:2010.08512, and "Optimal Subarchitecture Extraction for
BERT", arXiv:2010.10499) choose the architectural parameters of a network
(for BERT: heads A, depth D, hidden size H, intermediate size I) that are
optimal under three surrogates at once:

* ``p(f)`` - parameter size: here the parameters of the layers the search
  changes (Bort's "effective" size: without the token/position embeddings,
  which do not depend on the architecture beyond H);
* ``i(f)`` - inference cost: per layer, the counted additions,
  multiplications and other operations (softmax, LayerNorm, activations,
  residual additions), summed (:func:`count_inference_ops`);
* ``e(f)`` - error: the inherited-weight validation loss of ``f`` taken
  from a trained supernet, or the validation loss after a short from-scratch
  training run of ``f`` alone.

:func:`extract_optimal` evaluates the three surrogates on every architecture
of the space (Bort's space has 300; any space small enough to enumerate, or
a sample of a larger one), returns the Pareto-optimal set (no other
architecture is at least as good on all three and better on one), and ranks
it by a scalar score, the *W-coefficient*: Bort compares each candidate with
the maximum point ``T`` of the space (the largest architecture) through the
ratios of its surrogates. We use the weighted geometric form

    W(f) = (p(T) / p(f))**alpha * (i(T) / i(f))**beta * (e(T) / e(f))**gamma

(higher is better: smaller and faster than ``T`` for as little extra error as
possible; ``alpha``, ``beta``, ``gamma`` are parameters, error-heavy by
default because error ratios vary far less than size ratios). The best
architecture is the Pareto-optimal one with the largest W.

Command line (runs on the small preset on 2 CPU cores)::

    python -m ofa.bort --supernet runs/bort-small/final.pt --out runs/bort-small/optimal.json
    python -m ofa.bort --space bort-small --scratch-steps 100 --samples 20 --out scratch.json
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .errors import ConfigError, OFAError
from .io import atomic_write_json
from .spaces.transformer import TransformerArch, TransformerSpace

# "Other" operations per element (documented approximations: one per elementwise
# arithmetic operation; exp counted as one).
OTHER_OPS = {
    "softmax": 4,      # max-compare, subtract-and-exp, sum, divide
    "layer_norm": 7,   # mean add, subtract, square, variance add, divide by std, scale, shift
    "relu": 1,
    "residual": 1,
    "scale": 1,        # queries scaled by 1/sqrt(head size)
    "embedding": 1,    # token + position
}


def count_inference_ops(space: TransformerSpace, arch, source_length: int | None = None,
                        target_length: int | None = None) -> dict:
    """Counted multiplications, additions and other operations of one forward
    pass at batch size 1 (teacher-forced target for encoder-decoder)."""
    arch = space.parse(arch)
    report = space.cost(arch, source_length, target_length)
    mults = adds = other = 0
    for layer in report.layers:
        outputs = layer.output_elements
        mults += layer.macs
        # a dot product of K terms needs K - 1 additions; a bias adds one more
        adds += layer.macs - (0 if layer.bias else outputs)
        if layer.name.endswith(".scores"):
            other += OTHER_OPS["softmax"] * outputs + OTHER_OPS["scale"] * layer.input_elements
    S = space.source_length if source_length is None else source_length
    T = space.target_length if target_length is None else target_length
    e = arch.encoder_embed_dim
    other += OTHER_OPS["embedding"] * S * e
    for ffn in arch.encoder_ffn_dims:
        other += (2 * OTHER_OPS["layer_norm"] + 2 * OTHER_OPS["residual"]) * S * e + OTHER_OPS["relu"] * S * ffn
    other += OTHER_OPS["layer_norm"] * S * e
    if arch.has_decoder:
        d = arch.decoder_embed_dim
        other += OTHER_OPS["embedding"] * T * d
        for ffn in arch.decoder_ffn_dims:
            other += (3 * OTHER_OPS["layer_norm"] + 3 * OTHER_OPS["residual"]) * T * d + OTHER_OPS["relu"] * T * ffn
        other += OTHER_OPS["layer_norm"] * T * d
    return {"multiplications": mults, "additions": adds, "other": other, "total": mults + adds + other}


def effective_parameters(space: TransformerSpace, arch) -> int:
    """Parameters without the token and position embeddings (Bort's "effective" size)."""
    arch = space.parse(arch)
    params = space.cost(arch).params
    params -= (space.src_vocab_size + space.max_positions) * arch.encoder_embed_dim
    if arch.has_decoder:
        params -= (space.tgt_vocab_size + space.max_positions) * arch.decoder_embed_dim
    return params


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``points`` (n, k), all minimised."""
    points = np.asarray(points, dtype=np.float64)
    keep = np.ones(len(points), dtype=bool)
    for i, point in enumerate(points):
        dominated_by = np.all(points <= point, axis=1) & np.any(points < point, axis=1)
        keep[i] = not dominated_by.any()
    return keep


def w_coefficient(parameters, ops, errors, reference: tuple[float, float, float], alpha: float = 0.5,
                  beta: float = 0.5, gamma: float = 8.0) -> np.ndarray:
    """``(p_T/p)**alpha * (i_T/i)**beta * (e_T/e)**gamma`` for each candidate
    against the reference (maximum) point ``T = (p_T, i_T, e_T)``."""
    p, i, e = (np.asarray(v, dtype=np.float64) for v in (parameters, ops, errors))
    p_t, i_t, e_t = reference
    return (p_t / p) ** alpha * (i_t / i) ** beta * (e_t / e) ** gamma


@dataclass
class ExtractionResult:
    records: list[dict]          # one per architecture: arch, parameters, inference_ops, error, pareto, w
    pareto: list[int]            # indices of the Pareto-optimal records
    best: int                    # index of the best record (largest W among the Pareto set)
    reference: dict              # the maximum point T

    def to_dict(self) -> dict:
        return {"records": self.records, "pareto": self.pareto, "best": self.best, "reference": self.reference,
                "best_arch": self.records[self.best]["arch"]}


def extract_optimal(space: TransformerSpace, error_fn: Callable[[TransformerArch], float],
                    archs: Sequence | None = None, alpha: float = 0.5, beta: float = 0.5, gamma: float = 8.0,
                    progress: Callable[[int, int], None] | None = None) -> ExtractionResult:
    """Surrogates of every architecture (default: the whole space, which must
    be small enough to enumerate), the Pareto set and the W-best architecture.
    The largest architecture is always evaluated: it is the reference point."""
    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
            raise ConfigError(f"{name} = {value!r} is not allowed: must be a finite number >= 0 (an exponent of W)")
    archs = space.enumerate() if archs is None else [space.parse(a) for a in archs]
    largest = space.largest()
    if largest not in archs:
        archs = [largest] + list(archs)
    records = []
    for n, arch in enumerate(archs):
        records.append({"arch": arch.to_dict(), "parameters": effective_parameters(space, arch),
                        "inference_ops": count_inference_ops(space, arch)["total"], "error": float(error_fn(arch))})
        if progress is not None:
            progress(n + 1, len(archs))
    table = np.array([[r["parameters"], r["inference_ops"], r["error"]] for r in records], dtype=np.float64)
    if not np.all(np.isfinite(table[:, 2])) or np.any(table[:, 2] <= 0):
        raise ConfigError("every error surrogate must be a positive finite number (a loss)")
    mask = pareto_mask(table)
    ref_index = archs.index(largest)
    reference = tuple(table[ref_index])
    w = w_coefficient(table[:, 0], table[:, 1], table[:, 2], reference, alpha, beta, gamma)
    for record, on_front, score in zip(records, mask, w):
        record["pareto"] = bool(on_front)
        record["w"] = float(score)
    pareto = [int(i) for i in np.flatnonzero(mask)]
    best = max(pareto, key=lambda i: w[i])
    return ExtractionResult(records, pareto, best, {"arch": largest.to_dict(), "parameters": reference[0],
                                                    "inference_ops": reference[1], "error": reference[2]})


# --- error surrogates ----------------------------------------------------------------------------------------
def inherited_error(supernet, data, split: str = "val", limit: int | None = None) -> Callable:
    """Validation loss of each architecture with the supernet's weights."""
    from .evaluation import evaluate_subnet

    def error(arch) -> float:
        supernet.set_active(arch)
        return evaluate_subnet(supernet, data, split, limit, decode=False)["val_loss"]

    return error


def scratch_error(config: dict, data, steps: int, split: str = "val", limit: int | None = None) -> Callable:
    """Validation loss after ``steps`` steps of training each architecture alone
    from scratch (the training recipe of ``config``, the Transformer trainer's)."""
    import tempfile

    from .evaluation import evaluate_subnet
    from .training.transformer import TransformerTrainer

    def error(arch) -> float:
        cfg = {**config, "train": {**config.get("train", {}), "steps": steps, "eval_every": steps + 1,
                                   "checkpoint_every": steps + 1, "progress": False}}
        with tempfile.TemporaryDirectory() as out:
            trainer = TransformerTrainer(cfg, out, fixed_arch=arch.to_dict(), data=data)
            trainer.setup()
            for step in range(steps):
                trainer.train_step(step)
            return evaluate_subnet(trainer.model, data, split, limit, decode=False)["val_loss"]

    return error


# --- command line --------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    from .validation import (ArgumentParser, check_input_file, check_output_path, non_negative_float,
                             non_negative_int, positive_int)

    parser = ArgumentParser(description="Bort-style optimal sub-architecture extraction")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--supernet", help="checkpoint of a trained Transformer supernet (inherited-weight error)")
    source.add_argument("--space", help="space preset for from-scratch mode (with --scratch-steps)")
    parser.add_argument("--config", help="training config (YAML) for from-scratch mode (default: trainer defaults)")
    parser.add_argument("--scratch-steps", type=positive_int, default=100,
                        help="training steps per architecture (scratch)")
    parser.add_argument("--samples", type=non_negative_int, default=0, help="evaluate this many sampled "
                        "architectures instead of enumerating the space (0: enumerate)")
    parser.add_argument("--limit", type=positive_int, default=None, help="validation sentences per evaluation")
    parser.add_argument("--alpha", type=non_negative_float, default=0.5, help="exponent of the parameter ratio")
    parser.add_argument("--beta", type=non_negative_float, default=0.5, help="exponent of the inference-ops ratio")
    parser.add_argument("--gamma", type=non_negative_float, default=8.0, help="exponent of the error ratio")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--out", required=True, help="JSON file for the result")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file of another kind")
    args = parser.parse_args(argv)
    try:  # paths before any work
        if args.supernet:
            check_input_file(args.supernet, "--supernet", kinds=("checkpoint",))
            if args.config:
                raise ConfigError("--config is for from-scratch mode (--space); with --supernet the supernet's "
                                  "own training config is used")
        elif args.config:
            from .training.config import resolve_config_path

            resolve_config_path(args.config)
        check_output_path(args.out, [("the --supernet", args.supernet), ("the --config", args.config)],
                          kind=("json",), overwrite=args.overwrite, name="--out")
    except OFAError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    try:
        if args.supernet:
            from .training.transformer import load_trained

            model, data = load_trained(args.supernet)
            space, error_fn = model.space, inherited_error(model, data, limit=args.limit)
        else:
            from .training.config import load_yaml
            from .training.transformer import build_data, check_config, fit_space_to_data

            raw = load_yaml(args.config) if args.config else {}
            raw = {**raw, "space": args.space}
            config, named = check_config(raw)
            data = build_data(config)
            space = fit_space_to_data(named, data)
            error_fn = scratch_error(raw, data, args.scratch_steps, limit=args.limit)
        archs = space.sample(args.seed, args.samples) if args.samples else None
        start = time.time()
        result = extract_optimal(space, error_fn, archs, args.alpha, args.beta, args.gamma,
                                 progress=lambda n, total: print(f"\r{n}/{total}", end="", file=sys.stderr))
        print(file=sys.stderr)
        out = result.to_dict()
        out["seconds"] = round(time.time() - start, 1)
        atomic_write_json(args.out, out)
        best = result.records[result.best]
        print(f"{len(result.records)} architectures, {len(result.pareto)} Pareto-optimal; best by W: "
              f"{best['arch']} (parameters {best['parameters']:,}, ops {best['inference_ops']:,}, "
              f"error {best['error']:.4f}, W {best['w']:.3f}) -> {args.out}")
    except OFAError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
