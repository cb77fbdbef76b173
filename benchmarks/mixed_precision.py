"""Mixed precision: accuracy against latency on the bit-serial and bit-fusion models.

On a supernet trained by ``ofa-quickstart --precision`` (``--run``: its ``--out``), for
``fpga-bitserial`` (BISMO on the Zynq-7020 PYNQ-Z1) and ``asic-bitfusion`` (Bit Fusion, 45 nm):

* uniform 8-bit and uniform 4-bit (the largest architecture);
* mixed precision with the architecture fixed (the largest): HAQ's agent and evolution with the
  same number of evaluations, at budgets of ``--fractions`` of the 8-bit latency;
* architecture and bits searched jointly by evolution at the same budgets, with HAQ's number of
  evaluations and with the quickstart's (``--joint-population`` x ``--joint-generations``);

each chosen subnet evaluated (top-1 on ``--split``, the test split by default, after BatchNorm
re-calibration).
HAQ (CVPR 2019) reports 1.4-1.95x lower latency than fixed 8-bit at similar accuracy on BISMO;
the ``speedup_at_similar_accuracy`` entries give ours: the fastest subnet within ``--tolerance``
points of uniform 8-bit, per strategy.

    python benchmarks/mixed_precision.py --run runs/quickstart-precision \\
        --out benchmarks/results/mixed_precision.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="the --out directory of ofa-quickstart --precision")
    p.add_argument("--out", default="benchmarks/results/mixed_precision.json")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8])
    p.add_argument("--episodes", type=int, default=60, help="HAQ episodes per budget")
    p.add_argument("--tolerance", type=float, default=1.0, help="top-1 points below uniform 8-bit that count "
                                                                "as similar accuracy")
    p.add_argument("--calib-images", type=int, default=500)
    p.add_argument("--split", default="test", choices=("val", "test"),
                   help="where each pick is measured (the accuracy predictor was fitted on the val split)")
    p.add_argument("--joint-population", type=int, default=100)
    p.add_argument("--joint-generations", type=int, default=100,
                   help="the joint architecture + bits search as the quickstart runs it (the predictor makes "
                        "evaluations cheap), besides the one with HAQ's number of evaluations")
    args = p.parse_args(argv)

    from hardware_profiles.bit_accelerators import latency_function
    from ofa.families import get_family
    from ofa.search import Constraint, HAQConfig, Objective, SearchProblem, evolution_search, fixed_architecture, \
        haq_search, with_architecture
    from ofa.training import load_supernet
    from ofa_pipeline.mixed_precision import BACKENDS
    from predictors import load_predictor

    run = Path(args.run)
    supernet = load_supernet(run / "supernet" / "final.pt")
    space = supernet.space
    family = get_family(space)
    data = family.checkpoint_data(run / "supernet" / "final.pt")
    evaluate = family.evaluator(supernet, data, args.split, args.calib_images)
    predictor = load_predictor(run / "top1.skops", space=space)
    measured: dict[str, float] = {}

    def top1(arch) -> float:
        key = arch.to_json()
        if key not in measured:
            measured[key] = evaluate(arch)["accuracy"]
        return measured[key]

    largest = space.largest()
    eight, four = space.uniform_precision(largest, 8, 8), space.uniform_precision(largest, 4, 4)
    objective = Objective("top1", predictor.predict_genes)
    haq_config = HAQConfig(episodes=args.episodes, warmup_episodes=max(1, args.episodes // 10))
    results = {"run": str(run), "space": space.fingerprint, "tolerance": args.tolerance, "episodes": args.episodes,
               "split": args.split, "command": "python " + " ".join(sys.argv), "backends": {}}
    for name, accelerator in BACKENDS.items():
        latency = latency_function(space, accelerator)
        base_ms = float(latency(space.to_genes(eight))[0])

        def row(strategy, arch, fraction=None, evaluations=None, seconds=None):
            ms = float(latency(space.to_genes(arch))[0])
            return {"strategy": strategy, "budget_fraction": fraction, "top1": top1(arch),
                    "predicted_top1": float(predictor.predict_genes(space.to_genes(arch))[0]), "latency_ms": ms,
                    "speedup_vs_8bit": base_ms / ms, "evaluations": evaluations, "seconds": seconds,
                    "arch": arch.to_dict()}

        rows = [row("uniform 8-bit", eight), row("uniform 4-bit", four)]
        for fraction in args.fractions:
            problem = SearchProblem(space, objective, [Constraint("latency", latency, fraction * base_ms, "ms")])
            started = time.perf_counter()
            haq = haq_search(problem, eight, haq_config, seed=0, on_infeasible="nearest")
            haq_seconds = time.perf_counter() - started
            rows.append(row("HAQ agent, fixed architecture", haq.arch, fraction, haq.num_evaluations,
                            round(haq_seconds, 1)))
            # evolution on the same task with (about) the same number of evaluations
            population = 20
            generations = max(1, haq.num_evaluations // (population * 2))
            started = time.perf_counter()
            fixed = evolution_search(fixed_architecture(problem, eight), population, generations, seed=0,
                                     on_infeasible="nearest")
            fixed_arch = space.from_genes(with_architecture(space, eight)(fixed.genes))[0]
            rows.append(row("evolution, fixed architecture", fixed_arch, fraction, fixed.num_evaluations,
                            round(time.perf_counter() - started, 1)))
            started = time.perf_counter()
            joint = evolution_search(problem, population, generations, seed=0, on_infeasible="nearest")
            rows.append(row("evolution, architecture + bits", joint.arch, fraction, joint.num_evaluations,
                            round(time.perf_counter() - started, 1)))
            started = time.perf_counter()
            joint = evolution_search(problem, args.joint_population, args.joint_generations, seed=0,
                                     on_infeasible="nearest")
            rows.append(row("evolution, architecture + bits, full search", joint.arch, fraction,
                            joint.num_evaluations, round(time.perf_counter() - started, 1)))
            print(f"{name} {fraction}: " + ", ".join(f"{r['strategy']} {r['top1']:.2f}% {r['latency_ms']:.3f} ms"
                                                    for r in rows[-4:]), flush=True)
        similar = {}
        for strategy in sorted({r["strategy"] for r in rows}):
            near = [r for r in rows if r["strategy"] == strategy and r["top1"] >= rows[0]["top1"] - args.tolerance]
            similar[strategy] = max((r["speedup_vs_8bit"] for r in near), default=None)
        results["backends"][name] = {"accelerator": accelerator, "uniform_8bit_ms": base_ms, "rows": rows,
                                     "speedup_at_similar_accuracy": similar}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    for name, result in results["backends"].items():
        print(f"{name}: speedup over uniform 8-bit within {args.tolerance} points: "
              f"{result['speedup_at_similar_accuracy']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
