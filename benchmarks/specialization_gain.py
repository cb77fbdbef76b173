#!/usr/bin/env python
"""What specialisation buys: the searched subnet against simple ways of
meeting the same budget, all scored by real evaluation.

For budgets between the smallest and the largest subnet's cost (MACs and/or
each device's latency predictor), each method picks one subnet under the
budget, and every pick is evaluated on the ``--split`` (test by default: the
split neither the predictor nor the search saw) with inherited weights and
re-calibrated BN. The search and the random draws are repeated over
``--seeds``; the gains of the search over each baseline are reported as mean
and standard deviation over the seeds:

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
  for all blocks and stages) with the highest cost under the budget, over all
  uniform combinations;
* ``compound`` - all knobs shrunk together: for ``phi`` from 1 down to 0,
  every knob takes the choice at ``round(phi * (choices - 1))``; the first
  subnet under the budget (compound scaling, as EfficientNet).

Costs: MACs (exact, device independent) and one per ``--latency-predictor``.

    python benchmarks/specialization_gain.py --supernet runs/cluttered/final.pt \\
        --accuracy-predictor runs/cluttered/top1.skops \\
        --latency-predictor runs/gain/cpu-ort.skops --latency-predictor runs/gain/mobile-ncnn.skops \\
        --latency-predictor runs/gain/fpga-dpu.skops

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
from ofa.search.costs import budgets_between
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


METHODS = ["search", "best_of_random", "random_mean", "uniform_best", "compound"] + [f"uniform_{k}" for k in KNOBS]
BASELINES = ["best_of_random", "random_mean", "uniform_best", "compound"]


def mean_std(values) -> dict:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
            "n": len(values)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--supernet", required=True)
    parser.add_argument("--accuracy-predictor", required=True)
    parser.add_argument("--latency-predictor", action="append", default=[],
                        help="a latency predictor of one device; repeat for several (each is one cost)")
    parser.add_argument("--no-macs", action="store_true", help="leave out the MACs budgets")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.15, 0.3],
                        help="budgets: smallest subnet's cost + fraction x (largest - smallest)")
    parser.add_argument("--seeds", type=int, default=3, help="search seeds and random-subnet draws per budget")
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
    costs = [] if args.no_macs else [("macs", cost_function(space, "macs"))]
    for path in args.latency_predictor:
        latency = load_predictor(path, space=space)
        costs.append((f"{latency.target}@{latency.device}", latency.predict_genes))
    config = load_checkpoint(args.supernet)["config"]
    calib = args.calib_images or config.get("data", {}).get("calib_images", 2000)
    data = get_family(space).checkpoint_data(args.supernet)
    evaluator = SubnetEvaluator(supernet, data, args.split, calib)
    cache: dict[str, float] = {}

    def true_top1(arch) -> float:
        key = arch.to_json()
        if key not in cache:
            cache[key] = evaluator.evaluate(arch)["top1"]
        return cache[key]

    rows = []
    for cost_name, cost in costs:
        for fraction, budget in zip(args.fractions, budgets_between(space, cost, args.fractions)):
            # the deterministic baselines do not depend on the seed
            fixed = {f"uniform_{knob}": single_knob(space, cost, knob, budget) for knob in KNOBS}
            fixed["uniform_best"] = uniform_best(space, cost, budget)
            fixed["compound"] = compound(space, cost, budget)
            for seed in range(args.seeds):
                problem = SearchProblem(space, Objective("top1", accuracy.predict_genes),
                                        [Constraint(cost_name, cost, budget)])
                found = evolution_search(problem, population_size=args.population, generations=args.generations,
                                         seed=seed)
                genes = space.sample_genes(20000, np.random.default_rng([seed, int(round(fraction * 1000))]))
                random_archs = space.from_genes(genes[cost(genes) <= budget][:args.random])
                random_top1 = [true_top1(a) for a in random_archs]
                row = {"cost": cost_name, "fraction": fraction, "budget": budget, "seed": seed,
                       "random_n": len(random_archs),
                       "random_mean": float(np.mean(random_top1)) if random_top1 else None,
                       "best_of_random": float(np.max(random_top1)) if random_top1 else None}
                for name, arch in {"search": found.arch, **fixed}.items():
                    row[name] = None if arch is None else true_top1(arch)
                    row[f"{name}_cost"] = None if arch is None else float(cost(space.to_genes(arch))[0])
                row["search_predicted"] = float(found.objective)
                row["search_arch"] = found.arch.to_dict()
                for baseline in BASELINES:
                    row[f"gain_over_{baseline}"] = (None if row[baseline] is None
                                                    else row["search"] - row[baseline])
                rows.append(row)
                print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()
                       if k != "search_arch" and not k.endswith("_cost")}, flush=True)

    per_budget = []
    for cost_name, _ in costs:
        for fraction in args.fractions:
            group = [r for r in rows if r["cost"] == cost_name and r["fraction"] == fraction]
            per_budget.append({"cost": cost_name, "fraction": fraction, "budget": group[0]["budget"],
                               **{m: mean_std([r[m] for r in group]) for m in METHODS},
                               **{f"gain_over_{b}": mean_std([r[f"gain_over_{b}"] for r in group])
                                  for b in BASELINES}})
    positive = {b: sum(1 for p in per_budget if (p[f"gain_over_{b}"]["mean"] or 0) > 0) for b in BASELINES}
    result = {"benchmark": "specialization_gain", "supernet": str(args.supernet),
              "accuracy_predictor": str(args.accuracy_predictor), "split": args.split,
              "costs": [name for name, _ in costs], "fractions": args.fractions, "seeds": args.seeds,
              "budgets": len(per_budget), "budgets_with_positive_mean_gain": positive,
              "per_budget": per_budget, "rows": rows, "environment": environment()}
    save(result, args.out)
    print(f"{'cost':<28} {'frac':>5} " + " ".join(f"{m[:14]:>14}" for m in ["search"] + BASELINES))
    for p in per_budget:
        cells = [p["search"]] + [p[f"gain_over_{b}"] for b in BASELINES]
        print(f"{p['cost']:<28} {p['fraction']:>5} " + " ".join(
            "             -" if c["mean"] is None else f"{c['mean']:>8.2f}±{c['std']:<5.2f}" for c in cells))
    print(f"budgets where the search's mean gain is positive (of {len(per_budget)}): {positive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
