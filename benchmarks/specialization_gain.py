#!/usr/bin/env python
"""What specialisation buys: the searched subnet against simple ways of
meeting the same budget, all scored by real evaluation.

For budgets at the 20/40/60% quantiles of a cost over random subnets, each
method picks one subnet under the budget, and every pick is evaluated on the
``--split`` (test by default: the split neither the predictor nor the search
saw) with inherited weights and re-calibrated BN:

* ``search`` - evolutionary search (``ofa.search.evolution_search``)
  maximising the accuracy predictor's top-1 under the budget;
* ``best_of_random`` - ``--random`` random subnets under the budget, each
  evaluated for real, the best kept (an oracle on the evaluation split, so
  a generous baseline);
* ``random_mean`` - the mean top-1 of those random subnets (what an arbitrary
  subnet under the budget gives);
* ``uniform_<knob>`` - start from the largest subnet and shrink one knob
  (kernel, expand, depth or resolution) uniformly over all blocks until the
  budget holds; the largest such subnet (None where shrinking that knob alone
  cannot meet the budget);
* ``uniform_best`` - the uniform subnet (one kernel, expand ratio and depth
  for all blocks and stages) with the most MACs under the budget, over all
  uniform combinations;
* ``compound`` - all knobs shrunk together: for ``phi`` from 1 down to 0,
  every knob takes the choice at ``round(phi * (choices - 1))``; the first
  subnet under the budget (compound scaling, as EfficientNet).

The cost is MACs by default (exact, device independent), or a latency
predictor with ``--latency-predictor``.

    python benchmarks/specialization_gain.py --supernet runs/cluttered/final.pt \\
        --accuracy-predictor runs/cluttered/top1.skops

Writes ``benchmarks/results/specialization_gain.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from _timing import environment, save

from ofa.evaluation import SubnetEvaluator
from ofa.families import get_family
from ofa.search import Constraint, Objective, SearchProblem, cost_function, evolution_search
from ofa.training.checkpoint import load_checkpoint, load_supernet

KNOBS = ("kernel_sizes", "expand_ratios", "depths", "resolution")


def uniform_arch(space, kernel, expand, depth, resolution):
    return space.parse({"kernel_sizes": [kernel] * space.num_blocks, "expand_ratios": [expand] * space.num_blocks,
                        "depths": [depth] * space.num_stages, "resolution": resolution})


def knob_choices(space) -> dict[str, list]:
    return {"kernel_sizes": sorted(space.kernel_sizes), "expand_ratios": sorted(space.expand_ratios),
            "depths": sorted(space.depths), "resolution": sorted(space.resolutions)}


def single_knob(space, cost, knob: str, budget: float):
    """The largest subnet under ``budget`` that differs from the largest subnet in one knob only."""
    choices = knob_choices(space)
    top = {k: v[-1] for k, v in choices.items()}
    for value in reversed(choices[knob]):
        arch = uniform_arch(space, *[value if k == knob else top[k] for k in KNOBS])
        if cost(space.to_genes(arch))[0] <= budget:
            return arch
    return None


def uniform_best(space, cost, budget: float):
    choices = knob_choices(space)
    best, best_cost = None, -1.0
    for kernel in choices["kernel_sizes"]:
        for expand in choices["expand_ratios"]:
            for depth in choices["depths"]:
                for resolution in choices["resolution"]:
                    arch = uniform_arch(space, kernel, expand, depth, resolution)
                    value = float(cost(space.to_genes(arch))[0])
                    if best_cost < value <= budget:
                        best, best_cost = arch, value
    return best


def compound(space, cost, budget: float, steps: int = 101):
    choices = knob_choices(space)
    for phi in np.linspace(1.0, 0.0, steps):
        arch = uniform_arch(space, *[choices[k][int(round(phi * (len(choices[k]) - 1)))] for k in KNOBS])
        if cost(space.to_genes(arch))[0] <= budget:
            return arch
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--supernet", required=True)
    parser.add_argument("--accuracy-predictor", required=True)
    parser.add_argument("--latency-predictor", default=None, help="budget on predicted latency instead of MACs")
    parser.add_argument("--quantiles", type=float, nargs="+", default=[0.2, 0.4, 0.6])
    parser.add_argument("--random", type=int, default=10, help="random subnets per budget for best_of_random")
    parser.add_argument("--split", default="test")
    parser.add_argument("--population", type=int, default=100)
    parser.add_argument("--generations", type=int, default=200)
    parser.add_argument("--calib-images", type=int, default=None)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "specialization_gain.json"))
    args = parser.parse_args(argv)
    import torch

    from predictors import load_predictor

    torch.set_num_threads(1)
    supernet = load_supernet(args.supernet)
    space = supernet.space
    accuracy = load_predictor(args.accuracy_predictor, space=space)
    if args.latency_predictor:
        latency = load_predictor(args.latency_predictor, space=space)
        cost, cost_name = latency.predict_genes, f"{latency.target}@{latency.device}"
    else:
        cost, cost_name = cost_function(space, "macs"), "macs"
    config = load_checkpoint(args.supernet)["config"]
    calib = args.calib_images or config.get("data", {}).get("calib_images", 2000)
    data = get_family(space).checkpoint_data(args.supernet)
    evaluator = SubnetEvaluator(supernet, data, args.split, calib)
    rng = np.random.default_rng(0)
    sample = cost(space.sample_genes(4000, rng))
    budgets = [float(np.quantile(sample, q)) for q in args.quantiles]
    cache: dict[str, float] = {}

    def true_top1(arch) -> float:
        key = arch.to_json()
        if key not in cache:
            cache[key] = evaluator.evaluate(arch)["top1"]
        return cache[key]

    rows = []
    for quantile, budget in zip(args.quantiles, budgets):
        problem = SearchProblem(space, Objective("top1", accuracy.predict_genes),
                                [Constraint(cost_name, cost, budget)])
        found = evolution_search(problem, population_size=args.population, generations=args.generations, seed=0)
        picks = {"search": found.arch}
        genes = space.sample_genes(20000, np.random.default_rng([1, int(quantile * 100)]))
        feasible = genes[cost(genes) <= budget][:args.random]
        random_archs = space.from_genes(feasible)
        random_top1 = [true_top1(a) for a in random_archs]
        for knob in KNOBS:
            picks[f"uniform_{knob}"] = single_knob(space, cost, knob, budget)
        picks["uniform_best"] = uniform_best(space, cost, budget)
        picks["compound"] = compound(space, cost, budget)
        row = {"quantile": quantile, "budget": budget, "cost": cost_name,
               "random_mean": float(np.mean(random_top1)), "best_of_random": float(np.max(random_top1)),
               "random_n": len(random_archs)}
        for name, arch in picks.items():
            row[name] = None if arch is None else true_top1(arch)
            row[f"{name}_cost"] = None if arch is None else float(cost(space.to_genes(arch))[0])
        row["search_predicted"] = float(found.objective)
        row["search_arch"] = found.arch.to_dict()
        rows.append(row)
        print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items() if k != "search_arch"},
              flush=True)
    methods = ["search", "best_of_random", "random_mean", "uniform_best", "compound"] + [f"uniform_{k}" for k in KNOBS]
    result = {"benchmark": "specialization_gain", "supernet": str(args.supernet),
              "accuracy_predictor": str(args.accuracy_predictor), "split": args.split, "cost": cost_name,
              "rows": rows,
              "mean_over_budgets": {m: (float(np.mean([r[m] for r in rows])) if all(r[m] is not None for r in rows)
                                        else None) for m in methods},
              "environment": environment()}
    save(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
