#!/usr/bin/env python
"""Early exits on the default image task: accuracy against measured latency on cpu-ort.

Starting from a finished supernet run without exits (the quickstart's), the
benchmark

1. adds exit heads after stages 0, 1 and 2 and trains them
   (``seed_exit_phase``: the exit phase alone, main path frozen);
2. profiles cpu-ort block by block (every resolution) and fits a block-sum
   latency predictor;
3. for each expected-latency budget and each tolerance, searches the subnet,
   the subset of exits it keeps and its calibrated threshold
   (``ofa_pipeline.exits.specialize_exits``; the worst case may exceed the
   budget by half), exports one ONNX graph per segment, the chosen subnet
   without exits and the best static subnet under the budget;
4. times the three on onnxruntime (one thread) at batch 1 and batch 32, in turn
   batch by batch, on test images, and records the test accuracies and the exit
   distributions.

    nice -n 19 python benchmarks/early_exit.py --supernet runs/quickstart/supernet/final.pt

Steps 1-2 are skipped when their outputs exist in ``--work``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from _timing import environment, save

EXITS = {"stages": [0, 1, 2], "width": 64}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--supernet", default="runs/quickstart/supernet/final.pt",
                        help="a finished supernet run without exits")
    parser.add_argument("--work", default="runs/early-exit-bench")
    parser.add_argument("--exit-epochs", type=int, default=3)
    parser.add_argument("--tolerances", type=float, nargs="+", default=[0.01, 0.02, 0.05])
    parser.add_argument("--budget-fractions", type=float, nargs="+", default=[0.25, 0.5],
                        help="expected-latency budgets: the smallest static subnet's latency plus these fractions "
                             "of the way to the largest's")
    parser.add_argument("--delta", type=float, default=0.1)
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--time-images", type=int, default=600, help="test images timed at batch 1")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", default="benchmarks/results/early_exit.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    command = "nice -n 19 python benchmarks/early_exit.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    work = Path(args.work)
    started = time.perf_counter()

    from ofa.search.costs import budgets_between
    from ofa.training import load_supernet
    from ofa.training.config import load_yaml
    from ofa.training.progressive_shrinking import DEFAULT_EXIT_PHASE, ProgressiveShrinkingTrainer, seed_exit_phase
    from ofa_pipeline.deploy import checkpoint_data
    from ofa_pipeline.exits import ExitEvaluator, export_chosen, measure_latency, specialize_exits
    from predictors.blocks import fit_block_predictor

    timings = {}
    final = work / "final.pt"
    if not final.is_file():
        start = time.perf_counter()
        if not (work / "last.pt").is_file():
            seed_exit_phase(args.supernet, work, EXITS, dict(DEFAULT_EXIT_PHASE, epochs=args.exit_epochs))
        ProgressiveShrinkingTrainer(load_yaml(work / "config.yaml"), work, resume=True).run()
        timings["exit_phase_s"] = round(time.perf_counter() - start, 1)
    blocks = work / "cpu-ort.blocks.jsonl"
    if not blocks.is_file():
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ofa_pipeline.commands.profile_device", "--space", str(final),
                        "--backend", "cpu-ort", "--blocks", "--runs", "10", "--warmup", "2", "--out", str(blocks),
                        "--no-progress"], check=True)
        timings["block_profile_s"] = round(time.perf_counter() - start, 1)
    # the steps of an earlier run whose outputs are reused keep the time they took
    ledger = work / "timings.json"
    if timings:
        timings = {**(json.loads(ledger.read_text()) if ledger.is_file() else {}), **timings}
        ledger.write_text(json.dumps(timings))
    elif ledger.is_file():
        timings = {**json.loads(ledger.read_text()), "reused": True}
    predictor = fit_block_predictor(blocks)
    supernet = load_supernet(final)
    space = supernet.space
    data = checkpoint_data(final)
    evaluator = ExitEvaluator(supernet, data, 1000)
    test_labels = evaluator.labels("test")
    rows = []
    for fraction in args.budget_fractions:
        (budget,) = budgets_between(space, predictor.predict_genes, (fraction,))
        for tolerance in args.tolerances:
            start = time.perf_counter()
            report = specialize_exits(supernet, data, predictor, budget, 1.5 * budget, tolerance, args.delta,
                                      candidates=args.candidates, evaluator=evaluator)
            directory = work / f"deploy-{fraction:g}-{tolerance:g}"
            files = export_chosen(evaluator, report, directory)
            chosen = report["chosen"]
            arch = space.parse(chosen["arch"])
            images = evaluator.images("test", arch.resolution)[0].numpy()
            statics = {"same_static": files["same-static"]}
            if "static" in files:
                statics["best_static"] = files["static"]
                static_arch = space.parse(report["static"]["arch"])
                if static_arch.resolution != arch.resolution:  # each network times on its own input size
                    statics.pop("best_static")
            measured = {"1": measure_latency(files["exits"], statics, images[:args.time_images],
                                             batch_sizes=(1,))["1"],
                        str(args.batch): measure_latency(files["exits"], statics, images,
                                                         batch_sizes=(args.batch,))[str(args.batch)]}
            # the cost of running as segments: the same graphs with threshold 1 (nobody leaves early)
            never = measure_latency(files["exits"], {"same_static": files["same-static"]}, images[:args.time_images],
                                    thresholds=1.0, batch_sizes=(1,))["1"]
            measured["1"]["never_exit_ms_per_image"] = never["exits_ms_per_image"]
            measured["1"]["never_exit_same_static_ms_per_image"] = never["same_static_ms_per_image"]
            if "static" in report and "best_static" not in statics:
                static_images = evaluator.images("test", space.parse(report["static"]["arch"]).resolution)[0].numpy()
                for batch, subset in (("1", static_images[:args.time_images]), (str(args.batch), static_images)):
                    alone = measure_latency(files["exits"], {"best_static": files["static"]}, subset,
                                            batch_sizes=(int(batch),))[batch]
                    measured[batch]["best_static_ms_per_image"] = alone["best_static_ms_per_image"]
                    measured[batch]["best_static_timed_separately"] = True
            all_test = [evaluator.logits(arch, "test")[i] for i in chosen["exit_indices"] + [-1]]
            per_exit = [float(100 * np.mean(x.argmax(1) == test_labels)) for x in all_test]
            rows.append({"budget_fraction": fraction, "expected_budget_ms": budget, "worst_budget_ms": 1.5 * budget,
                         "tolerance": tolerance, "threshold": chosen["threshold"], "arch": chosen["arch"],
                         "exit_stages": report["exits"]["stages"],
                         "predicted_ms": chosen["predicted_latency_ms"], "within_budgets": chosen["within_budgets"],
                         "test": chosen["test"], "test_top1_per_exit": per_exit,
                         "calibration": chosen["calibration"],
                         "best_static": report.get("static"), "measured": measured,
                         "searched": report["searched"], "seconds": round(time.perf_counter() - start, 1)})
            t = chosen["test"]
            print(f"budget {budget:.3f} tolerance {tolerance:g}: exits {report['exits']['stages']}, threshold "
                  f"{chosen['threshold']:.3g}, top-1 "
                  f"{t['top1_adaptive']:.2f} (full {t['top1_full']:.2f}, best static "
                  f"{report.get('static', {}).get('test_top1', float('nan')):.2f}); batch 1 ms/image exits "
                  f"{measured['1']['exits_ms_per_image']:.3f} vs same static {measured['1']['same_static_ms_per_image']:.3f}"
                  f"; batch {args.batch} {measured[str(args.batch)]['exits_ms_per_image']:.3f} vs "
                  f"{measured[str(args.batch)]['same_static_ms_per_image']:.3f}", flush=True)
    result = {"command": command, "environment": environment(), "supernet": args.supernet, "exits": EXITS,
              "latency_label": predictor.label.name, "delta": args.delta, "timings": timings,
              "total_seconds": round(time.perf_counter() - started, 1), "rows": rows,
              "note": ("ms per image on onnxruntime CPU, one thread, each graph timed in turn batch by batch on "
                       "test images; 'exits' is the segment runner (Python between segments included)")}
    save(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
