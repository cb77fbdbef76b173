"""Open loop vs closed loop: how many picks measure under their budget.

For each backend, a latency predictor is fitted on a profile of the space (the
default label: drift-corrected thread CPU time for timed backends, exact
latency for simulators). For each budget (``--fractions`` of the way from the
smallest subnet's searched latency to the largest's) and seed:

* **open loop**: one evolutionary search against the predictor's 90% upper
  bound (what the quickstart did before the loop), then the pick is measured;
* **closed loop**: :func:`ofa_pipeline.closed_loop.closed_loop_search` from
  the same start (measure the pick; if over budget, measure candidates near
  the budget, recalibrate, search again; at most ``--max-rounds``);
* **confirmation**: both final picks measured once more, together, in a new
  chunk: a measurement neither search saw.

Reported per backend and budget: the share of picks under budget (open loop;
closed loop by its own verification and by the confirmation), the predicted
accuracy given up by the closed loop against the open-loop pick, the
measurements spent and the wall time of each.

    python benchmarks/closed_loop.py --space mbv3-small-r20-32 \\
        --profile cpu-ort=hardware_profiles/data/mbv3-small-r20-32_cpu-ort.jsonl \\
        --accuracy-predictor runs/qs/predictors/top1.skops --supernet runs/qs/supernet/final.pt
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _timing import environment, save
from hardware_profiles import read_profile, shipped_profile_path
from ofa.search import evolution_search
from ofa.search.costs import budgets_between
from ofa.search.problem import Constraint, Objective, SearchProblem
from ofa.spaces import resolve_space
from ofa_pipeline.closed_loop import Verifier, closed_loop_search, positive_latency
from predictors import fit_latency_predictor, load_predictor

DEFAULT_BACKENDS = ("cpu-ort", "mobile-ncnn", "fpga-scalesim")


def objective_for(space, path: str | None) -> Objective:
    """The accuracy predictor's top-1, or (without one) MACs as a stand-in that also grows with size."""
    if path and Path(path).is_file():
        predictor = load_predictor(path, space=space)
        return Objective(predictor.target, predictor.predict_genes, maximize=predictor.target != "loss")
    return Objective("macs", lambda genes: np.array([space.cost(a).macs for a in space.from_genes(genes)],
                                                    dtype=float))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="mbv3-small-r20-32")
    parser.add_argument("--backends", nargs="+", default=list(DEFAULT_BACKENDS))
    parser.add_argument("--profile", action="append", default=[],
                        help="BACKEND=PATH (default: the shipped profile of the space on that backend)")
    parser.add_argument("--supernet", help="trained supernet checkpoint (default: a randomly initialised one; "
                                           "latency does not depend on the weights)")
    parser.add_argument("--accuracy-predictor", help="top-1 predictor (.skops); default: MACs as the objective")
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.05, 0.3, 0.6])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--confidence", type=float, default=0.9)
    parser.add_argument("--population", type=int, default=50)
    parser.add_argument("--generations", type=int, default=100)
    parser.add_argument("--max-rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("OFA_HW_CACHE", tempfile.mkdtemp(prefix="ofa-hw-loop-"))
    if args.supernet:
        from ofa.training import load_supernet

        supernet = load_supernet(args.supernet)
        space = supernet.space
    else:
        import torch

        from ofa.supernets import create_supernet

        space = resolve_space(args.space)
        torch.manual_seed(0)
        supernet = create_supernet(space)
    supernet.eval()
    objective = objective_for(space, args.accuracy_predictor)
    given = dict(item.split("=", 1) for item in args.profile)
    out = args.out or Path(__file__).resolve().parent / "results" / f"closed_loop_{args.space}.json"
    result = {"space": args.space, "environment": environment(), "objective": objective.name,
              "command": "python benchmarks/closed_loop.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "settings": {k: v for k, v in vars(args).items() if k != "out"}, "backends": {}}
    for backend in args.backends:
        path = given.get(backend) or str(shipped_profile_path(args.space, backend))
        profile = read_profile(path)
        space.check_fingerprint(profile.space.fingerprint, f"the {backend} profile")
        predictor = fit_latency_predictor(profile)
        verifier = Verifier(predictor, supernet)
        if not verifier.can_measure:
            result["backends"][backend] = {"skipped": verifier.reason}
            continue
        bound = positive_latency(predictor, args.confidence)
        budgets = [float(f"{b:.3g}") for b in budgets_between(space, bound, args.fractions)]
        rows = []
        for fraction, budget in zip(args.fractions, budgets):
            for seed in args.seeds:
                def search(functions, seed=seed, budget=budget):
                    problem = SearchProblem(space, objective, [Constraint("latency_ms@dev", functions["dev"], budget)])
                    return evolution_search(problem, args.population, args.generations, seed=seed)

                start = time.perf_counter()
                open_pick = search({"dev": bound})
                (open_measured,) = verifier.measure([open_pick.arch], rng=seed)
                open_seconds = time.perf_counter() - start
                start = time.perf_counter()
                loop = closed_loop_search(space, search, [("dev", budget, predictor)], {"dev": verifier},
                                          max_rounds=args.max_rounds, measurements_per_round=args.per_round,
                                          confidence=args.confidence, objective=objective, seed=seed,
                                          log=lambda *a: None)
                loop_seconds = time.perf_counter() - start
                confirm = verifier.measure([loop.arch, open_pick.arch], rng=seed + 1000)
                row = {"fraction": fraction, "budget_ms": budget, "seed": seed,
                       "open": {"predicted_ms": float(positive_latency(predictor)(space.to_genes(open_pick.arch))[0]),
                                "measured_ms": open_measured["measured_ms"],
                                "confirm_ms": confirm[1]["measured_ms"], "objective": open_pick.objective,
                                "seconds": open_seconds, "measurements": 1},
                       "closed": {"status": loop.status, "rounds": len(loop.rounds),
                                  "measured_ms": loop.checks["dev"]["measured_ms"],
                                  "confirm_ms": confirm[0]["measured_ms"], "objective": loop.result.objective,
                                  "seconds": loop_seconds, "measurements": loop.measurements}}
                row["objective_given_up"] = ((open_pick.objective - loop.result.objective) *
                                             (1 if objective.maximize else -1))
                rows.append(row)
                print(backend, f"budget {budget:g}", f"seed {seed}", f"open {row['open']['measured_ms']:.4g}",
                      f"closed {loop.status} {row['closed']['measured_ms']:.4g} (confirm "
                      f"{row['closed']['confirm_ms']:.4g}), {loop.measurements} measurements", flush=True)

        def share(rows, side, key):
            return float(np.mean([r[side][key] <= r["budget_ms"] for r in rows]))

        by_budget = {}
        for fraction, budget in zip(args.fractions, budgets):
            chosen = [r for r in rows if r["budget_ms"] == budget]
            by_budget[f"{fraction:g}"] = {
                "budget_ms": budget, "open_under": share(chosen, "open", "measured_ms"),
                "closed_under": share(chosen, "closed", "measured_ms"),
                "closed_under_confirmed": share(chosen, "closed", "confirm_ms"),
                "open_under_confirmed": share(chosen, "open", "confirm_ms"),
                "objective_given_up_mean": float(np.mean([r["objective_given_up"] for r in chosen])),
                "closed_measurements_mean": float(np.mean([r["closed"]["measurements"] for r in chosen])),
                "open_seconds_mean": float(np.mean([r["open"]["seconds"] for r in chosen])),
                "closed_seconds_mean": float(np.mean([r["closed"]["seconds"] for r in chosen]))}
        result["backends"][backend] = {
            "profile": path, "label": predictor.label.name, "model": predictor.model_name,
            "simulated": verifier.simulated, "rows": rows, "by_budget": by_budget,
            "open_under": share(rows, "open", "measured_ms"), "closed_under": share(rows, "closed", "measured_ms"),
            "closed_under_confirmed": share(rows, "closed", "confirm_ms"),
            "open_under_confirmed": share(rows, "open", "confirm_ms"),
            "closed_statuses": {s: sum(r["closed"]["status"] == s for r in rows)
                                for s in ("verified", "over-budget", "not-verified")}}
        print(backend, {k: v for k, v in result["backends"][backend].items() if k not in ("rows", "by_budget")},
              flush=True)
    result["environment_after"] = environment()
    save(result, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
