#!/usr/bin/env python
"""Specialise a trained supernet for one or more devices and latency budgets.

    python tools/specialize.py --supernet runs/mbv3-small-digits/final.pt \\
        --accuracy-predictor runs/qs/predictors/top1.skops \\
        --latency-predictor runs/qs/predictors/cpu-ort.skops --latency-predictor runs/qs/predictors/fpga.skops \\
        --device cpu-ort --latency-ms 0.8 --device fpga-scalesim --latency-ms 0.05 --out deploy/digits

Each ``--device NAME --latency-ms X`` pair is one target (NAME is the backend
of a latency predictor's profile, e.g. ``cpu-ort``, or its device id); a
device may appear with several budgets. ``--joint`` instead finds one subnet
that meets every budget at once. ``--max-macs`` / ``--max-params`` add budgets
to every target.

For each target, ``--out/<device>-<budget>ms/`` receives ``arch.json``,
``model.pt`` (weights, BN re-calibrated), ``model.onnx`` (parity-checked),
``pareto_<device>.png`` (the chosen point marked), ``result.json`` and
``report.md``; ``--out/summary.md`` tabulates all targets. Latency is measured
on the real backend where it runs here (``--no-measure`` skips it) and
accuracy on the validation split of the training data set.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ofa.cli import run_command  # noqa: E402
from ofa.errors import ConfigError  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--supernet", required=True, help="supernet checkpoint (final.pt of train_supernet.py)")
    p.add_argument("--accuracy-predictor", required=True, help="accuracy (top1) or loss predictor (.skops)")
    p.add_argument("--latency-predictor", action="append", default=[], required=True,
                   help="latency predictor of a device (.skops); repeat for several devices")
    p.add_argument("--device", action="append", default=[], required=True, help="target device (repeatable)")
    p.add_argument("--latency-ms", action="append", type=float, default=[], required=True,
                   help="latency budget of the --device at the same position (repeatable)")
    p.add_argument("--joint", action="store_true", help="one subnet meeting every budget at once")
    p.add_argument("--max-macs", type=float, help="MACs budget for every target")
    p.add_argument("--max-params", type=float, help="parameter budget for every target")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--population", type=int, default=100)
    p.add_argument("--generations", type=int, default=500)
    p.add_argument("--pareto-generations", type=int, default=100, help="NSGA-II generations of the Pareto plot")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--nearest", action="store_true",
                   help="on an infeasible budget, deploy the closest subnet instead of failing")
    p.add_argument("--data", help="data set (default: the one the supernet was trained on)")
    p.add_argument("--calib-images", type=int, default=2000, help="BN re-calibration images")
    p.add_argument("--no-measure", action="store_true", help="do not measure latency on the real backends")
    p.add_argument("--ncnn", action="store_true", help="also convert each subnet to ncnn")
    p.add_argument("--int8", action="store_true", help="also quantise each subnet to INT8 and compare with FP32")
    return p.parse_args(argv)


def digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def run(args) -> list[dict]:
    from ofa.search.deploy import checkpoint_data
    from ofa.search.specialize import Target, specialize, summary_table
    from ofa.training import load_supernet
    from predictors import load_predictor

    if len(args.device) != len(args.latency_ms):
        raise ConfigError(f"give one --latency-ms per --device: got {len(args.device)} devices and "
                          f"{len(args.latency_ms)} budgets")
    pairs = list(zip(args.device, args.latency_ms))
    targets = [Target(tuple(pairs))] if args.joint else [Target((pair,)) for pair in pairs]
    supernet = load_supernet(args.supernet)
    accuracy = load_predictor(args.accuracy_predictor, space=supernet.space)
    latency = [load_predictor(path, space=supernet.space) for path in args.latency_predictor]
    data = checkpoint_data(args.supernet, args.data)
    provenance = {"supernet": digest(args.supernet), "accuracy_predictor": digest(args.accuracy_predictor),
                  "latency_predictors": [digest(p) for p in args.latency_predictor], "data": args.data,
                  "calib_images": args.calib_images}
    rows = specialize(supernet, accuracy, latency, targets, args.out, data=data, max_macs=args.max_macs,
                      max_params=args.max_params, population=args.population, generations=args.generations,
                      seed=args.seed, measure=not args.no_measure, ncnn=args.ncnn, int8=args.int8,
                      on_infeasible="nearest" if args.nearest else "raise",
                      pareto_generations=args.pareto_generations, calib_images=args.calib_images,
                      provenance=provenance)
    print(summary_table(rows))
    print(f"results: {Path(args.out) / 'summary.md'}")
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_command(run, args)


if __name__ == "__main__":
    sys.exit(main())
