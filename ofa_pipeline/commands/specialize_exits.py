"""Specialise a subnet with early exits and its exit threshold for one device.

    ofa-specialize-exits --supernet runs/exits/final.pt --latency-predictor cpu-blocks.skops \\
        --expected-latency-ms 0.9 --worst-latency-ms 1.6 --tolerance 0.01 --delta 0.1 --out deploy-exits

The supernet is one trained with exits (a training config with ``exits:`` and
an ``exits: true`` phase; ``ofa.training.progressive_shrinking.seed_exit_phase``
adds them to a finished run). The latency predictor is a block-sum one
(``ofa-fit-predictor --blocks``): it prices the segments up to each exit.

The search picks the subnet and its threshold together: the most accurate
subnet whose expected latency (sum over exits of P(exit) x latency up to it,
the exit distribution measured on held-out data at the threshold calibrated
for it) is within ``--expected-latency-ms`` and whose worst case (every exit
head, then the full network) is within ``--worst-latency-ms``. The threshold is
calibrated with Learn-then-Test on held-out images the search did not use: with
probability at least 1 - delta, the adaptive network's answers differ from the
full subnet's on at most a fraction ``tolerance`` of inputs (so its top-1 is at
most ``100 x tolerance`` points lower). Writes ``--out/exits/`` (one ONNX graph
per segment, ``exits.json`` with the threshold, ``model.pt``),
``--out/same-static/model.onnx`` (the chosen subnet without exits),
``--out/static/model.onnx`` (the best static subnet under the expected-latency
budget) and ``--out/result.json``; ``--measure`` times them on onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ofa.cli import run_command
from ofa.validation import ArgumentParser, non_negative_float, non_negative_int, positive_float, positive_int


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--supernet", required=True, help="supernet checkpoint trained with exits (final.pt)")
    p.add_argument("--latency-predictor", required=True, help="block-sum latency predictor (.skops) of the device")
    p.add_argument("--expected-latency-ms", type=positive_float, required=True, help="expected-latency budget")
    p.add_argument("--worst-latency-ms", type=positive_float, default=None,
                   help="worst-case budget (default: none)")
    p.add_argument("--tolerance", type=float, default=0.01,
                   help="largest allowed disagreement with the full subnet (default %(default)s)")
    p.add_argument("--delta", type=float, default=0.1,
                   help="the guarantee holds with probability 1 - delta (default %(default)s)")
    p.add_argument("--measure", dest="confidence", choices=("maxprob", "entropy"), default="maxprob",
                   help="confidence measure at each exit (default %(default)s)")
    p.add_argument("--risk", choices=("consistency", "accuracy"), default="consistency",
                   help="what calibration bounds: disagreement with the full subnet (no labels needed) or "
                        "lost correct answers (default %(default)s)")
    p.add_argument("--call-overhead-ms", type=non_negative_float, default=0.0,
                   help="the runner's cost per segment after the first (a runtime call and the exit rule), added to "
                        "the block-sum latency (default 0)")
    p.add_argument("--candidates", type=positive_int, default=24, help="random subnets searched (default 24)")
    p.add_argument("--calib-images", type=positive_int, default=500, help="BN re-calibration images")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch threads (default 1: as fast for networks this small, and steady on a busy machine)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--time", action="store_true", help="time the exported graphs on onnxruntime (batch 1 and 32)")
    p.add_argument("--time-images", type=positive_int, default=None,
                   help="with --time: test images timed (default: the whole test split)")
    return p.parse_args(argv)


def run(args) -> dict:
    from ofa_pipeline.exits import ExitSearchOptions, specialize_exits_checkpoint

    options = ExitSearchOptions(tolerance=args.tolerance, delta=args.delta, confidence=args.confidence,
                                risk=args.risk, call_overhead_ms=args.call_overhead_ms, candidates=args.candidates,
                                calib_images=args.calib_images, seed=args.seed, threads=args.threads, time=args.time,
                                time_images=args.time_images)
    out = Path(args.out)
    report = specialize_exits_checkpoint(args.supernet, args.latency_predictor, out, args.expected_latency_ms,
                                         args.worst_latency_ms, options)
    chosen = report["chosen"]
    latency, test = chosen["predicted_latency_ms"], chosen["test"]
    print(f"subnet with exits {report['exits']['stages']}: threshold {chosen['threshold']:.4g} ({args.confidence}); "
          f"predicted latency expected {latency['expected']:.3f}, worst case {latency['worst_case']:.3f}, without "
          f"exits {latency['static']:.3f} ({report['latency_label']})")
    print(f"test: top-1 {test['top1_adaptive']:.2f}% adaptive vs {test['top1_full']:.2f}% full "
          f"(loss {test['accuracy_loss']:.2f} points, tolerance {100 * args.tolerance:g}); exits taken "
          + ", ".join(f"{100 * p:.1f}%" for p in test["exit_distribution"]))
    if not chosen["within_budgets"]:
        print(f"note: the threshold certified on the calibration half ({chosen['threshold']:.4g}) lets fewer "
              f"images leave early than on the selection half, which puts the expected latency at "
              f"{latency['expected']:.3f}, over the {args.expected_latency_ms:g} budget (raise --tolerance, the "
              f"budget, or the number of validation images)")
    if "static" in report:
        print(f"best static subnet under {args.expected_latency_ms:g}: top-1 {report['static']['test_top1']:.2f}% "
              f"at {report['static']['predicted_latency_ms']:.3f} predicted")
    print(f"wrote {out / 'result.json'} and {out / 'exits'}")
    print(json.dumps(report.get("measured", {}), indent=1) if args.time else "", end="")
    return report


def main(argv=None) -> int:
    return run_command(run, parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
