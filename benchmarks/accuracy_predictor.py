#!/usr/bin/env python
"""Accuracy predictors on a real task: held-out quality against the number of
evaluated subnets (a learning curve), and whether the held-out metrics
recorded at fit time tell the truth.

Input: evaluation records of one trained supernet (``tools/evaluate.py``
JSONL, random subnets, one split). A fixed set of ``--test`` records is held
out; for each training size ``n`` and each of ``--repeats`` random draws of
``n`` other records, :func:`predictors.fit_accuracy_predictor` (``model=auto``:
cross-validated choice between the MLP and gradient boosting) is fitted and
scored on the held-out records: Spearman and Kendall rank correlation, RMSE,
and RMSE relative to the standard deviation of the held-out top-1. Next to
it the fit-time estimate (``metrics_["held_out"]``: out-of-fold, from the
training records alone) and whether :func:`predictors.check_trustworthy`
accepts the predictor.

The evaluation noise sets a ceiling: top-1 on ``m`` validation images has a
binomial standard error of ``sqrt(p (1 - p) / m)``, reported as
``top1_standard_error``; a predictor cannot rank subnets whose true top-1
differ by much less.

    python tools/evaluate.py --supernet runs/cluttered/final.pt --archs random:250 --out runs/cluttered/eval250.jsonl
    python benchmarks/accuracy_predictor.py --evaluations runs/cluttered/eval250.jsonl --supernet runs/cluttered/final.pt

Writes ``benchmarks/results/accuracy_predictor.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from _timing import environment, save

from ofa.spaces import resolve_space
from predictors import check_trustworthy, fit_accuracy_predictor, read_evaluations
from predictors.metrics import kendall, rmse, spearman

SIZES = (16, 24, 32, 48, 64, 96, 128, 160)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--evaluations", required=True, help="JSONL of evaluated random subnets")
    parser.add_argument("--supernet", required=True, help="the checkpoint (its space)")
    parser.add_argument("--split", default="val")
    parser.add_argument("--test", type=int, default=80, help="records held out for scoring")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--target", default="top1")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "accuracy_predictor.json"))
    args = parser.parse_args(argv)
    space = resolve_space(args.supernet)
    records = [r for r in read_evaluations(args.evaluations)
               if r.get("split") == args.split and r.get("name", "random").startswith("random")]
    unique = {}
    for r in records:
        unique[space.parse(r["arch"]).to_json()] = r
    records = list(unique.values())
    order = np.random.default_rng(0).permutation(len(records))
    test = [records[i] for i in order[:args.test]]
    pool = [records[i] for i in order[args.test:]]
    sizes = [n for n in args.sizes if n <= len(pool)]
    if not sizes:
        raise SystemExit(f"only {len(pool)} records besides the {args.test} held out; evaluate more subnets")
    y_test = np.array([r[args.target] for r in test])
    test_archs = [r["arch"] for r in test]
    all_y = np.array([r[args.target] for r in records])
    from ofa.families import get_family

    images = len(getattr(get_family(space).checkpoint_data(args.supernet), args.split))
    rows = []
    for n in sizes:
        for repeat in range(args.repeats):
            chosen = np.random.default_rng([n, repeat]).choice(len(pool), size=n, replace=False)
            train = [pool[i] for i in chosen]
            start = time.process_time()
            predictor = fit_accuracy_predictor(train, space, model="auto", target=args.target, cv=5,
                                               random_state=repeat)
            fit_cpu = time.process_time() - start
            prediction = predictor.predict_archs(test_archs)
            held = predictor.metrics_["held_out"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trusted = check_trustworthy(predictor, accept_untrusted=True)["trusted"]
            row = {"n": n, "repeat": repeat, "model": predictor.model_name, "fit_cpu_s": round(fit_cpu, 2),
                   "test_spearman": spearman(y_test, prediction), "test_kendall": kendall(y_test, prediction),
                   "test_rmse": rmse(y_test, prediction),
                   "test_rmse_over_std": rmse(y_test, prediction) / float(np.std(y_test)),
                   "fit_time_held_out_spearman": held["spearman"], "fit_time_held_out_rmse": held["rmse"],
                   "check_trustworthy": trusted}
            rows.append(row)
            print(f"n={n:4d} rep {repeat} {row['model']:>4}: test Spearman {row['test_spearman']:.3f} RMSE "
                  f"{row['test_rmse']:.3f} ({row['test_rmse_over_std']:.2f} std); fit-time estimate Spearman "
                  f"{held['spearman']:.3f} RMSE {held['rmse']:.3f}; trusted {trusted}", flush=True)
    curve = []
    for n in sizes:
        mine = [r for r in rows if r["n"] == n]
        curve.append({"n": n, **{f"{key}_median": float(np.median([r[key] for r in mine]))
                                 for key in ("test_spearman", "test_kendall", "test_rmse", "test_rmse_over_std",
                                             "fit_time_held_out_spearman", "fit_time_held_out_rmse")},
                      "test_spearman_min": float(np.min([r["test_spearman"] for r in mine])),
                      "trusted_share": float(np.mean([r["check_trustworthy"] for r in mine]))})
    enough = next((c["n"] for c in curve if c["test_spearman_min"] >= 0.8 and c["test_rmse_over_std_median"] <= 0.6),
                  None)
    p = float(np.mean(all_y)) / 100.0
    result = {
        "benchmark": "accuracy_predictor", "evaluations": str(args.evaluations), "supernet": str(args.supernet),
        "split": args.split, "target": args.target, "records": len(records), "test_records": len(test),
        "repeats": args.repeats,
        "target_spread": {"min": float(all_y.min()), "max": float(all_y.max()), "std": float(all_y.std()),
                          "test_std": float(np.std(y_test))},
        "top1_standard_error": 100.0 * float(np.sqrt(p * (1 - p) / images)),
        "eval_images": images,
        "subnets_needed": enough,
        "subnets_needed_rule": "smallest n whose worst repeat reaches test Spearman >= 0.8 and whose median test RMSE "
                               "is <= 0.6 x the standard deviation of the held-out top-1",
        "curve": curve, "rows": rows, "environment": environment(),
    }
    save(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
