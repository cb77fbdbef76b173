"""Does the search find the true optimum, and how good are its Pareto fronts?

    python benchmarks/search_quality.py [--seeds 20] [--out benchmarks/results/search_quality.json]

1. Optimum hit rate. On spaces small enough to enumerate - a reduced
   ``mbv3-small`` (kernel {3,5}, expand {4}, depth {1,2}: 3,888 subnets) and
   the Bort space (300) - the exhaustive optimum is known; we count over
   ``--seeds`` seeds how often evolutionary search returns it, next to random
   search given the same number of evaluations. Budgets mix analytic costs
   (MACs, parameters, from the cost model) and two devices' latency from the
   deterministic one-hot objectives of :mod:`ofa.search.synthetic`.
2. Hypervolume. NSGA-II's accuracy/latency front versus the front of random
   search at equal numbers of evaluations, over the same seeds; on the
   reduced space also relative to the true front (enumerated), on the full
   Once-for-All space (about 5e20 subnets) in absolute terms.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from _timing import environment, save

from ofa.search import (Constraint, Objective, ParetoProblem, SearchProblem, SyntheticObjectives,
                        cost_function, enumerate_genes, evolution_search, exhaustive_search, front_from,
                        hypervolume, nsga2_search, random_front, random_search)
from ofa.spaces import get_space


def reduced_space():
    return get_space("mbv3-small", kernel_sizes=(3, 5), expand_ratios=(4,), depths=(1, 2))


def problems():
    """(name, problem) pairs on enumerable spaces."""
    small = reduced_space()
    synthetic = SyntheticObjectives(small, num_devices=2, seed=0)
    genes = enumerate_genes(small)
    lat = [lambda g, d=d: synthetic.latency(g, d) for d in range(2)]
    macs = cost_function(small, "macs")
    yield "mbv3-small-reduced: top1 | latency dev0 <= q30, dev1 <= q50", SearchProblem(
        small, Objective("top1", synthetic.accuracy),
        [Constraint("latency_ms@dev0", lat[0], float(np.quantile(lat[0](genes), 0.3))),
         Constraint("latency_ms@dev1", lat[1], float(np.quantile(lat[1](genes), 0.5)))])
    yield "mbv3-small-reduced: top1 | MACs <= q40", SearchProblem(
        small, Objective("top1", synthetic.accuracy), [Constraint("macs", macs, float(np.quantile(macs(genes), 0.4)))])
    bort = get_space("bort")
    synthetic_b = SyntheticObjectives(bort, seed=1)
    params = cost_function(bort, "params")
    yield "bort: loss | params <= median", SearchProblem(
        bort, Objective("loss", lambda g: 3.0 - synthetic_b.accuracy(g), maximize=False),
        [Constraint("params", params, float(np.median(params(enumerate_genes(bort)))))])


def hit_rates(seeds: int) -> dict:
    settings = {"default P=100 x 500": (100, 500), "small P=20 x 20": (20, 20)}
    out = {}
    for name, problem in problems():
        truth = exhaustive_search(problem)
        entry = {"space_size": truth.num_evaluations, "optimum": truth.objective}
        for label, (population, generations) in settings.items():
            evo_hits, rnd_hits, evo_gaps, rnd_gaps, evals = 0, 0, [], [], []
            for seed in range(seeds):
                found = evolution_search(problem, population, generations, seed=seed)
                baseline = random_search(problem, found.num_evaluations, seed=seed)
                evo_hits += found.arch == truth.arch
                rnd_hits += baseline.arch == truth.arch
                evo_gaps.append(abs(truth.objective - found.objective))
                rnd_gaps.append(abs(truth.objective - baseline.objective))
                evals.append(found.num_evaluations)
            entry[label] = {"evolution_hits": f"{evo_hits}/{seeds}", "random_hits": f"{rnd_hits}/{seeds}",
                            "evolution_mean_gap": statistics.mean(evo_gaps), "random_mean_gap": statistics.mean(rnd_gaps),
                            "evaluations_per_run": statistics.mean(evals)}
        out[name] = entry
        print(name, entry, flush=True)
    return out


def front_quality(seeds: int, population: int = 100, generations: int = 50) -> dict:
    out = {}
    for label, space in (("mbv3-small-reduced", reduced_space()), ("ofa-mbv3-w1.0", get_space("ofa-mbv3-w1.0"))):
        synthetic = SyntheticObjectives(space, num_devices=1, seed=0)
        problem = ParetoProblem(space, [Objective("top1", synthetic.accuracy),
                                        Objective("latency_ms", synthetic.latency, maximize=False)])
        largest = float(synthetic.latency(space.to_genes(space.largest()))[0])
        reference = np.array([0.0, largest * 1.05])  # (-top1, latency): worse than any subnet
        nsga, rand = [], []
        for seed in range(seeds):
            front = nsga2_search(problem, population, generations, seed=seed)
            baseline = random_front(problem, front.num_evaluations, seed=seed)
            nsga.append(hypervolume(front.minimization_form(), reference))
            rand.append(hypervolume(baseline.minimization_form(), reference))
        entry = {"population": population, "generations": generations, "evaluations_per_run": front.num_evaluations,
                 "nsga2_hv_mean": statistics.mean(nsga), "nsga2_hv_std": statistics.stdev(nsga),
                 "random_hv_mean": statistics.mean(rand), "random_hv_std": statistics.stdev(rand),
                 "nsga2_better_in": f"{sum(a > b for a, b in zip(nsga, rand))}/{seeds}"}
        if space.size() < 10**6:
            true_front = front_from(problem, enumerate_genes(space), "exhaustive", space.size())
            best = hypervolume(true_front.minimization_form(), reference)
            entry.update(true_hv=best, nsga2_hv_ratio=statistics.mean(nsga) / best,
                         random_hv_ratio=statistics.mean(rand) / best, true_front_size=len(true_front))
        out[label] = entry
        print(label, entry, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", default="benchmarks/results/search_quality.json")
    args = parser.parse_args()
    result = {"seeds": args.seeds, "environment": environment(), "optimum_hit_rate": hit_rates(args.seeds),
              "hypervolume": front_quality(args.seeds)}
    save(result, args.out)


if __name__ == "__main__":
    main()
