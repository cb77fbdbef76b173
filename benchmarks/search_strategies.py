#!/usr/bin/env python
"""Search strategies at the same latency budgets: evolution, NSGA-II and differentiable search.

For each device (a block-sum latency predictor fitted on the shipped block
profile of the device, on the supernet's space) and each budget (the smallest
subnet's predicted latency plus ``--fractions`` of the way to the largest's, as
in ``specialization_gain.py``), every strategy picks one subnet under the budget:

* ``evolution`` - :func:`ofa.search.evolution_search` on the accuracy predictor;
* ``nsga2`` - :func:`ofa.search.nsga2_search` (accuracy vs latency), the front's most
  accurate point under the budget;
* ``frozen`` - differentiable search on the trained supernet, weights frozen (not run by default:
  ``frozen-soft``, the same with the continuous mixture instead of straight-through samples, and
  ``frozen-sample``, with one resolution drawn per step instead of the loss's expectation over resolutions);
* ``darts-1``, ``darts-2`` - DARTS-style joint search (weights on the training split,
  architecture on the validation split; first order, and second order with the
  finite-difference Hessian-vector product);
* ``yoso`` - scale factors with L1, trained jointly with the weights, pruned to one choice.

Every pick is evaluated for real on ``--split`` (inherited weights, BN re-calibrated)
and its latency predicted by the device's predictor; the search time is the wall
time of the search alone. For the differentiable strategies the JSON also holds the
relaxed expected latency at the end of the search beside the discrete pick's
predicted latency.

    python benchmarks/search_strategies.py --supernet runs/qs/supernet/final.pt \\
        --accuracy-predictor runs/qs/predictors/top1.skops

(``runs/qs`` is ``python tools/quickstart.py --out runs/qs``.) Writes
``benchmarks/results/search_strategies.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from _timing import environment, save

ROOT = Path(__file__).resolve().parents[1]
DEVICES = ("mobile-ncnn", "fpga-scalesim")  # two of the three devices of specialization_gain.json
STRATEGIES = ("evolution", "nsga2", "frozen", "darts-1", "darts-2", "yoso")
# the frozen mode with the continuous mixture instead of straight-through samples, and with one resolution drawn per
# step (the loss of the drawn resolution) instead of the loss's expectation over resolutions
EXTRA = ("frozen-soft", "frozen-sample")


def mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--supernet", required=True)
    parser.add_argument("--accuracy-predictor", required=True)
    parser.add_argument("--device", action="append", default=None,
                        help=f"a device with a shipped block profile (default: {', '.join(DEVICES)})")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.15])
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES + EXTRA)
    parser.add_argument("--population", type=int, default=100)
    parser.add_argument("--generations", type=int, default=100)
    parser.add_argument("--steps", type=int, default=60, help="frozen steps")
    parser.add_argument("--yoso-steps", type=int, default=40, help="yoso steps")
    parser.add_argument("--yoso-l1", type=float, default=None, help="yoso L1 strength (default: the config's)")
    parser.add_argument("--darts-steps", type=int, default=24, help="darts first-order steps")
    parser.add_argument("--second-order-steps", type=int, default=10, help="darts second-order steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--split", default="test")
    parser.add_argument("--calib-images", type=int, default=None)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "search_strategies.json"))
    args = parser.parse_args(argv)
    import torch

    from hardware_profiles import read_profile
    from ofa.evaluation import SubnetEvaluator
    from ofa.families import get_family
    from ofa.search import Constraint, Objective, SearchProblem, evolution_search
    from ofa.search.costs import budgets_between
    from ofa.search.differentiable import DifferentiableConfig, differentiable_search
    from ofa.search.pareto import ParetoProblem
    from ofa.training.checkpoint import load_checkpoint, load_supernet
    from predictors import load_predictor
    from predictors.blocks import fit_block_predictor
    from predictors.relaxed import relaxed_latency

    torch.set_num_threads(1)
    started = time.perf_counter()
    supernet = load_supernet(args.supernet).eval()
    space = supernet.space
    accuracy = load_predictor(args.accuracy_predictor, space=space)
    config = load_checkpoint(args.supernet)["config"]
    calib = args.calib_images or config.get("data", {}).get("calib_images", 2000)
    data = get_family(space).checkpoint_data(args.supernet)
    evaluator = SubnetEvaluator(supernet, data, args.split, calib)
    task = get_family(space).relaxed_task(supernet, data, args.batch_size, 0)
    cache: dict[str, float] = {}

    def true_top1(arch) -> float:
        key = arch.to_json()
        if key not in cache:
            cache[key] = evaluator.evaluate(arch)["top1"]
        return cache[key]

    differentiable = {"frozen": {"mode": "frozen", "steps": args.steps},
                      "frozen-soft": {"mode": "frozen", "steps": args.steps, "hard": False},
                      "frozen-sample": {"mode": "frozen", "steps": args.steps, "resolution": "sample"},
                      "darts-1": {"mode": "darts", "order": 1, "steps": args.darts_steps},
                      "darts-2": {"mode": "darts", "order": 2, "steps": args.second_order_steps},
                      "yoso": {"mode": "yoso", "steps": args.yoso_steps,
                               **({} if args.yoso_l1 is None else {"l1": args.yoso_l1})}}
    rows, predictors = [], {}
    for device in args.device or DEVICES:
        profile = ROOT / "hardware_profiles" / "data" / "blocks" / f"mbv3-small_{device}.jsonl"
        latency = fit_block_predictor(read_profile(profile), space=space)
        relaxation = relaxed_latency(latency)
        name = f"latency_ms@{device}"
        predictors[device] = {"block_profile": str(profile.relative_to(ROOT)), "exact_relaxation": relaxation.exact,
                              "blocks": latency.metrics_["blocks"]["used"],
                              "blocks_measured": latency.metrics_["blocks"]["measured"]}
        for fraction, budget in zip(args.fractions, budgets_between(space, latency.predict_genes, args.fractions)):
            for seed in range(args.seeds):
                problem = SearchProblem(space, Objective("top1", accuracy.predict_genes),
                                        [Constraint(name, latency.predict_genes, budget, "ms")])
                for strategy in args.strategies:
                    clock = time.perf_counter()
                    trace = None
                    if strategy == "evolution":
                        genes = evolution_search(problem, args.population, args.generations, seed=seed).genes
                    elif strategy == "nsga2":
                        from ofa.search.nsga2 import nsga2_search

                        pareto = ParetoProblem(space, [Objective("top1", accuracy.predict_genes),
                                                       Objective(name, latency.predict_genes, maximize=False)],
                                               [Constraint(name, latency.predict_genes, budget, "ms")])
                        front = nsga2_search(pareto, args.population, args.generations, seed=seed,
                                             on_infeasible="nearest")
                        under = np.where(front.values[:, 1] <= budget)[0]
                        genes = front.genes[under[np.argmax(front.values[under, 0])]]
                    else:
                        options = {"batch_size": args.batch_size, **differentiable[strategy]}
                        result = differentiable_search(problem, task, {name: relaxation},
                                                       DifferentiableConfig.from_dict(options), seed=seed)
                        genes, trace = result.genes, result.trace
                    seconds = time.perf_counter() - clock
                    arch = space.from_genes(genes[None, :])[0]
                    predicted_ms = float(latency.predict_genes(genes[None, :])[0])
                    row = {"device": device, "fraction": fraction, "budget_ms": budget, "seed": seed,
                           "strategy": strategy, "search_seconds": round(seconds, 2),
                           "predicted_latency_ms": predicted_ms, "under_budget": predicted_ms <= budget,
                           "predicted_top1": float(accuracy.predict_genes(genes[None, :])[0]),
                           "measured_top1": true_top1(arch), "arch": arch.to_dict()}
                    if trace is not None:
                        relaxed = trace["relaxed"][name]
                        row["relaxed_expected_latency_ms"] = relaxed["expected"]
                        row["relaxed_vs_pick_percent"] = 100 * (relaxed["expected"] / predicted_ms - 1)
                        row["argmax_is_pick"] = trace["argmax_is_pick"]
                        row["multiplier"] = trace["multipliers"].get(name)
                        if "decisions_pruned_by_l1" in trace:
                            row["decisions_pruned_by_l1"] = trace["decisions_pruned_by_l1"]
                    rows.append(row)
                    print(f"{device} {fraction:g} seed {seed} {strategy:9s} {seconds:7.1f} s: top1 "
                          f"{row['measured_top1']:.2f} (predicted {row['predicted_top1']:.2f}), "
                          f"{predicted_ms:.4f} ms / budget {budget:.4f}"
                          + (f", relaxed {row['relaxed_expected_latency_ms']:.4f}" if trace else ""), flush=True)

    summary = {}
    for strategy in args.strategies:
        mine = [r for r in rows if r["strategy"] == strategy]
        paired = [r["measured_top1"] - e["measured_top1"] for r in mine for e in rows
                  if e["strategy"] == "evolution" and (e["device"], e["fraction"], e["seed"]) ==
                  (r["device"], r["fraction"], r["seed"])]
        summary[strategy] = {
            "picks": len(mine), "under_budget": sum(r["under_budget"] for r in mine),
            "mean_measured_top1": mean([r["measured_top1"] for r in mine]),
            "mean_predicted_top1": mean([r["predicted_top1"] for r in mine]),
            "mean_latency_over_budget": mean([r["predicted_latency_ms"] / r["budget_ms"] for r in mine]),
            "mean_search_seconds": mean([r["search_seconds"] for r in mine]),
            "mean_top1_minus_evolution": mean(paired) if "evolution" in args.strategies else None,
            "mean_abs_relaxed_vs_pick_percent": mean([abs(r["relaxed_vs_pick_percent"]) for r in mine
                                                      if "relaxed_vs_pick_percent" in r]),
        }
    command = "python benchmarks/search_strategies.py " + " ".join(argv if argv is not None else sys.argv[1:])
    save({"benchmark": "search_strategies", "command": command, "supernet": args.supernet,
          "accuracy_predictor": args.accuracy_predictor, "split": args.split, "fractions": args.fractions,
          "seeds": args.seeds, "devices": predictors,
          "settings": {"population": args.population, "generations": args.generations, "steps": args.steps,
                       "darts_steps": args.darts_steps, "yoso_steps": args.yoso_steps, "yoso_l1": args.yoso_l1,
                       "second_order_steps": args.second_order_steps,
                       "batch_size": args.batch_size},
          "summary": summary, "rows": rows, "wall_seconds": round(time.perf_counter() - started, 1),
          "environment": environment()}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
