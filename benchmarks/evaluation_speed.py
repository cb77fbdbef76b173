#!/usr/bin/env python
"""Subnet evaluation: the reference path against the fast path, same subnets.

Evaluating subnets (extract, re-calibrate BN, predict the validation split) is
the slow step of fitting an accuracy predictor. Both paths of
:class:`ofa.evaluation.SubnetEvaluator` evaluate the same subnets of one
trained supernet; the script asserts that every result (top-1, loss, label
and probability loyalty) agrees to 1e-5 and reports the process CPU time of
each path (one thread, the two paths alternated subnet by subnet so machine
noise hits both alike) and their ratio.

* reference (``fast=False``): :func:`ofa.evaluation.recalibrate_bn` (float64
  copies of every BN input) and :func:`ofa.evaluation.predict` on the
  extracted subnet in the default memory layout;
* fast (``fast=True``, the default): :mod:`ofa.fast_evaluation` - images
  prepared once per resolution in channels-last layout, BN statistics read
  from the BatchNorm kernel (momentum 1) and pooled exactly, BN folded into
  the convolutions for prediction, large prediction batches.

    python benchmarks/evaluation_speed.py --supernet runs/cluttered/final.pt --subnets 12

Writes ``benchmarks/results/evaluation_speed.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from _timing import environment, save

from ofa.evaluation import SubnetEvaluator
from ofa.families import get_family
from ofa.training.checkpoint import load_checkpoint, load_supernet

KEYS = ("top1", "loss", "label_loyalty", "probability_loyalty")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--supernet", required=True)
    parser.add_argument("--subnets", type=int, default=12, help="random subnets (plus the smallest)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--calib-images", type=int, default=None, help="default: the checkpoint's config")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "evaluation_speed.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    supernet = load_supernet(args.supernet)
    space = supernet.space
    config = load_checkpoint(args.supernet)["config"]
    calib = args.calib_images or config.get("data", {}).get("calib_images", 2000)
    data = get_family(space).checkpoint_data(args.supernet, None)
    archs = [space.smallest(), *space.sample(args.seed, n=args.subnets)]

    evaluators, setup_cpu = {}, {}
    for name, fast in (("reference", False), ("fast", True)):
        start = time.process_time()  # includes the teacher (the largest subnet), evaluated once per evaluator
        evaluators[name] = SubnetEvaluator(supernet, data, args.split, calib, fast=fast)
        setup_cpu[name] = time.process_time() - start
    cpu = {"reference": [], "fast": []}
    rows = []
    for i, arch in enumerate(archs):
        order = ("reference", "fast") if i % 2 == 0 else ("fast", "reference")
        results = {}
        for name in order:
            start = time.process_time()
            results[name] = evaluators[name].evaluate(arch)
            cpu[name].append(time.process_time() - start)
        differences = {key: abs(results["fast"][key] - results["reference"][key]) for key in KEYS}
        worst = max(differences.values())
        assert worst <= 1e-5, f"fast and reference evaluation differ for subnet {i}: {differences}"
        rows.append({"subnet": i, "resolution": int(arch.resolution), "macs": results["fast"]["macs"],
                     "top1": results["fast"]["top1"], "max_abs_difference": worst,
                     "reference_cpu_s": round(cpu["reference"][-1], 3), "fast_cpu_s": round(cpu["fast"][-1], 3)})
        print(f"subnet {i:2d} res {arch.resolution} top-1 {results['fast']['top1']:.2f}% reference "
              f"{cpu['reference'][-1]:.2f} s fast {cpu['fast'][-1]:.2f} s (max |diff| {worst:.1e})", flush=True)
    total = {name: float(np.sum(values)) for name, values in cpu.items()}
    result = {
        "benchmark": "evaluation_speed",
        "supernet": str(args.supernet), "split": args.split, "calib_images": int(calib),
        "eval_images": len(evaluators["fast"].labels), "subnets": len(archs),
        "results_equal_to": 1e-5,
        "max_abs_difference": max(r["max_abs_difference"] for r in rows),
        "cpu_s_per_subnet": {name: total[name] / len(archs) for name in total},
        "setup_cpu_s_including_teacher": setup_cpu,
        "speedup_cpu": total["reference"] / total["fast"],
        "rows": rows, "environment": environment(),
        "note": "process CPU time, one thread; both paths evaluate the same subnets, alternated subnet by subnet",
    }
    save(result, args.out)
    print(f"\nfast path: {result['speedup_cpu']:.2f}x less CPU time per subnet "
          f"({result['cpu_s_per_subnet']['reference']:.2f} s -> {result['cpu_s_per_subnet']['fast']:.2f} s), "
          f"results equal to {result['max_abs_difference']:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
