"""How fast is specialisation search on the full Once-for-All space?

    python benchmarks/search_speed.py [--population 100] [--generations 500] [--out benchmarks/results/search_speed.json]

Measured on ``ofa-mbv3-w1.0`` (about 5e20 subnets), single-threaded
(BLAS/OpenMP pinned to one thread) so the figures hold on a shared 2-core box:

* evolutionary search (P x generations, two latency budgets at once) with
  (a) the analytic one-hot objectives of :mod:`ofa.search.synthetic` (the
  search engine's own cost) and (b) real predictor pipelines from
  :mod:`predictors` (an MLP accuracy predictor and two additive-LUT latency
  predictors, fitted here on analytic labels: what is timed is their query
  cost, not their accuracy);
* NSGA-II (pymoo) for the accuracy/latency front at the same budget of evaluations;
* predictor queries per second at batch 10,000.

Each figure is the median of ``--repeats`` runs (wall and thread CPU time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import numpy as np

from _timing import environment, save

from ofa.search import (Constraint, Objective, ParetoProblem, SearchProblem, SyntheticObjectives,
                        cost_function, evolution_search, nsga2_search)
from ofa.spaces import get_space


def timed(fn, repeats: int) -> dict:
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.thread_time()
        result = fn()
        cpus.append(time.thread_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return {"wall_s": statistics.median(walls), "thread_cpu_s": statistics.median(cpus),
            "wall_s_all": [round(w, 3) for w in walls]}, result


def real_predictors(space, synthetic: SyntheticObjectives):
    """Predictor pipelines of the predictors package, fitted on 3000 subnets."""
    from predictors import AccuracyPredictor, LatencyPredictor, make_accuracy_model, make_latency_model

    genes = space.sample_genes(3000, np.random.default_rng(0))
    macs = cost_function(space, "macs")(genes) / 1e6
    accuracy = make_accuracy_model("mlp", space, max_iter=30).fit(genes, synthetic.accuracy(genes))
    latency = [make_latency_model("lut", space).fit(genes, macs * (1 + 0.3 * d) + synthetic.latency(genes, d))
               for d in range(2)]
    return (AccuracyPredictor(accuracy, space, target="top1", model_name="mlp"),
            [LatencyPredictor(m, space, target="latency_ms", model_name="lut") for m in latency])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=100)
    parser.add_argument("--generations", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/search_speed.json")
    args = parser.parse_args()

    space = get_space("ofa-mbv3-w1.0")
    synthetic = SyntheticObjectives(space, num_devices=2)
    sample = space.sample_genes(5000, np.random.default_rng(1))
    result = {"space": "ofa-mbv3-w1.0", "space_size": space.size(), "population": args.population,
              "generations": args.generations, "environment": environment(), "threads": 1}

    def budgets(latency_fns):
        return [Constraint(f"latency_ms@device{d}", fn, float(np.quantile(fn(sample), q)), "ms")
                for d, (fn, q) in enumerate(zip(latency_fns, (0.5, 0.3)))]

    synthetic_latency = [lambda g, d=d: synthetic.latency(g, d) for d in range(2)]
    problem = SearchProblem(space, Objective("top1", synthetic.accuracy), budgets(synthetic_latency))
    timing, found = timed(lambda: evolution_search(problem, args.population, args.generations, seed=0), args.repeats)
    result["evolution_analytic_objectives"] = {**timing, "evaluations": found.num_evaluations,
                                               "best": found.objective, "feasible": found.feasible}

    accuracy, latencies = real_predictors(space, synthetic)
    problem = SearchProblem(space, Objective("top1", accuracy.predict_genes),
                            budgets([p.predict_genes for p in latencies]))
    timing, found = timed(lambda: evolution_search(problem, args.population, args.generations, seed=0), args.repeats)
    result["evolution_predictors"] = {**timing, "evaluations": found.num_evaluations, "feasible": found.feasible,
                                      "predictors": "mlp accuracy + 2 x additive-LUT latency"}

    pareto = ParetoProblem(space, [Objective("top1", accuracy.predict_genes),
                                   Objective("latency_ms@device0", latencies[0].predict_genes, maximize=False)])
    nsga_generations = args.generations
    timing, front = timed(lambda: nsga2_search(pareto, args.population, nsga_generations, seed=0), args.repeats)
    result["nsga2_predictors"] = {**timing, "generations": nsga_generations, "evaluations": front.num_evaluations,
                                  "front_size": len(front)}

    batch = space.sample_genes(10000, np.random.default_rng(2))
    queries = {}
    for name, fn in [("mlp_accuracy", accuracy.predict_genes), ("lut_latency", latencies[0].predict_genes),
                     ("analytic_one_hot", synthetic.accuracy), ("macs_table", cost_function(space, "macs"))]:
        timing, _ = timed(lambda fn=fn: fn(batch), 5)
        queries[name] = {"archs_per_s": len(batch) / timing["wall_s"],
                         "archs_per_thread_cpu_s": len(batch) / max(timing["thread_cpu_s"], 1e-9)}
    result["predictor_queries_batch_10000"] = queries
    save(result, args.out)


if __name__ == "__main__":
    main()
