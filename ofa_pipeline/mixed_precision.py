"""The mixed-precision pipeline on built-in data: ``ofa-quickstart --precision [--fast]``.

1. train a supernet whose blocks also choose their weight and activation bits
   (``PRECISION_BITS``): the progressive-shrinking recipe, then the precision phase
   (quantisation-aware training at every precision);
2. evaluate subnets (top-1 after BatchNorm re-calibration) and fit an accuracy predictor;
3. profile the evaluated subnets on the bit-serial and the bit-fusion accelerator models
   (``fpga-bitserial``, ``asic-bitfusion``);
4. search under a latency budget on each: a few rounds of search, measuring the picks and
   refitting the accuracy predictor on them; then evolution over architecture and bits jointly,
   and HAQ's agent over the bits of the largest architecture, beside uniform 8-bit and 4-bit;
5. export the jointly searched subnet to QDQ ONNX, checked against PyTorch.

Everything lands in ``--out``: ``supernet/``, ``evaluations.jsonl``, ``top1.skops``,
``profile_<backend>.jsonl``, ``subnet.onnx``, ``summary.json``. docs/mixed-precision.md.
"""

from __future__ import annotations

import json
import time
from pathlib import Path


# 4, 6 and 8 bits. With 2-bit choices too, every subnet holding one 2-bit block stayed at chance (about 10%
# top-1 on digits) after the fast recipe while uniform 4-bit matched 8-bit (22.2% vs 23.0%): the short
# training does not recover ternary weights and 2-bit activations (docs/mixed-precision.md).
PRECISION_BITS = {"weight_bits": [4, 6, 8], "activation_bits": [4, 6, 8]}
BACKENDS = {"fpga-bitserial": "bismo-pynq-z1", "asic-bitfusion": "bitfusion-45nm"}
BUDGET_FRACTION = 0.6  # of the uniform 8-bit largest subnet's latency on each backend
# The full run trains on the quickstart's default task with its recipe, then the precision phase
# (ofa/training/configs/mbv3-small-cluttered-digits-precision.yaml, PRECISION_BITS as above).
FULL_CONFIG = "mbv3-small-cluttered-digits-precision"

FAST = {"train_images": 512, "calib_images": 64, "batch_size": 32, "teacher_epochs": 2, "precision_epochs": 2,
        "subnets": 24, "population": 24, "generations": 8, "haq_episodes": 12, "haq_warmup": 4,
        "refine_rounds": 1, "refine_seeds": 2, "refine_population": 16, "refine_generations": 4}
FULL = {"calib_images": 500, "subnets": 150, "population": 100, "generations": 100, "haq_episodes": 300,
        "haq_warmup": 20, "refine_rounds": 3, "refine_seeds": 4, "refine_population": 50, "refine_generations": 40}


def training_config(settings: dict, fast: bool) -> dict | str:
    """With ``fast``, a mapping: the digits data set built into the package, a teacher phase and the
    precision phase; else the name of the full run's shipped config (``FULL_CONFIG``)."""
    if not fast:
        return FULL_CONFIG
    phases = [{"name": "teacher", "epochs": settings["teacher_epochs"], "lr": 0.05, "kernel_sizes": "max",
               "expand_ratios": "max", "depths": "max"},
              {"name": "precision", "epochs": settings["precision_epochs"], "lr": 0.02, "subnets_per_step": 2,
               "weight_bits": "all", "activation_bits": "all"}]
    return {"space": "mbv3-small", "space_overrides": dict(PRECISION_BITS),
            "data": {"dataset": "digits", "max_train_images": settings["train_images"],
                     "calib_images": settings["calib_images"]},
            "train": {"batch_size": settings["batch_size"], "threads": 0, "progress": False, "log_every": 50},
            "phases": phases}


def earlier_evaluations(path: Path, made_by: dict) -> dict:
    """{architecture JSON: record} of the validation records in ``path`` made by an earlier, possibly
    interrupted, run with the same space, supernet and calibration (``made_by``: the fingerprint, the
    checkpoint's digest, the BatchNorm calibration images); a torn last line is left out."""
    found = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and all(record.get(k) == v for k, v in made_by.items()) \
                    and record.get("split") == "val" and isinstance(record.get("top1"), (int, float)):
                found[json.dumps(record["arch"], sort_keys=True)] = record
    return found


def run_mixed_precision(out: str | Path, fast: bool = False, processes: int = 1) -> dict:
    """The whole mixed-precision pipeline into the directory ``out`` (``fast``: the smoke-test settings);
    the full run trains with ``processes`` data-parallel processes."""
    from hardware_profiles import get_backend
    from hardware_profiles.bit_accelerators import latency_function
    from ofa.evaluation import recalibrate_bn
    from ofa.export import export_checked
    from ofa.families import get_family
    from ofa.io import append_jsonl, atomic_write_json, file_digest
    from ofa.search import Constraint, HAQConfig, Objective, SearchProblem, evolution_search, haq_search
    from ofa.training import load_supernet
    from predictors import fit_accuracy_predictor

    from .train import train_supernet

    from ofa.validation import check_output_path

    check_output_path(out, kind="dir", name="--out")  # before any work
    settings = FAST if fast else FULL
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings, started = {}, time.perf_counter()

    def step(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - since, 1)
        print(f"[precision] {name}: {timings[name]} s", flush=True)
        return now

    # 1. train -----------------------------------------------------------------------------------------------
    checkpoint = out / "supernet" / "final.pt"
    if not checkpoint.is_file():
        train_supernet(training_config(settings, fast), out / "supernet", resume=True, progress=False,
                       processes=1 if fast else processes)
    clock = step("1. train", started)
    supernet = load_supernet(checkpoint)
    space = supernet.space
    family = get_family(space)
    data = family.checkpoint_data(checkpoint)

    # 2. evaluate subnets, fit the accuracy predictor --------------------------------------------------------
    # (a rerun reuses the records an earlier or interrupted run made with this supernet: it evaluates what is missing)
    largest = space.largest()
    eight, four = space.uniform_precision(largest, 8, 8), space.uniform_precision(largest, 4, 4)
    archs = [eight, four, space.smallest(), *space.sample(0, n=settings["subnets"])]
    evaluator = family.evaluator(supernet, data, "val", settings["calib_images"])
    evaluations = out / "evaluations.jsonl"
    made_by = {"space": space.fingerprint, "supernet": file_digest(checkpoint)[:16],
               "calib_images": settings["calib_images"]}
    measured = earlier_evaluations(evaluations, made_by)

    def evaluate(arch) -> dict:
        """The subnet's validation record, measured once, kept in ``evaluations.jsonl``."""
        key = json.dumps(arch.to_dict(), sort_keys=True)
        if key not in measured:
            measured[key] = {"arch": arch.to_dict(), "split": "val", **made_by, "top1": evaluator(arch)["accuracy"]}
            append_jsonl(evaluations, measured[key])
        return measured[key]

    records = [evaluate(arch) for arch in archs]
    predictor = fit_accuracy_predictor(records, space, cv=3)
    clock = step("2. evaluate and fit", clock)

    # 3. profile on the bit accelerators ---------------------------------------------------------------------
    latency = {name: latency_function(space, accelerator) for name, accelerator in BACKENDS.items()}
    for name in BACKENDS:
        backend = get_backend(name, accelerator=BACKENDS[name])
        path = out / f"profile_{name}.jsonl"
        path.unlink(missing_ok=True)
        for arch in archs:
            append_jsonl(path, {"arch": arch.to_dict(), **backend.measure_arch(space, arch)})
    clock = step("3. profile", clock)

    # 4. search ------------------------------------------------------------------------------------------------
    # The predictor is least sure where the search goes (near the budget, at the top of the accuracy
    # range, where few random subnets fall): each refinement round searches with a few seeds per
    # backend, measures the picks, adds them to the predictor's data and refits it (surrogate-assisted
    # search, as NSGANetV2 does: Lu et al., ECCV 2020). Then the final searches.
    current = {"predictor": predictor}
    objective = Objective("top1", lambda genes: current["predictor"].predict_genes(genes))
    problems = {}
    for name in BACKENDS:
        limit = BUDGET_FRACTION * float(latency[name](space.to_genes(eight))[0])
        problems[name] = SearchProblem(space, objective, [Constraint(f"latency_ms@{name}", latency[name], limit,
                                                                     "ms")])
    refinement = []
    for round_index in range(settings["refine_rounds"]):
        picks = []
        for name, problem in problems.items():
            for seed in range(settings["refine_seeds"]):
                pick = evolution_search(problem, settings["refine_population"], settings["refine_generations"],
                                        seed=seed, on_infeasible="nearest")
                record = evaluate(pick.arch)
                picks.append({"backend": name, "seed": seed, "predicted_top1": pick.objective,
                              "measured_top1": record["top1"]})
                if record not in records:
                    records.append(record)
        current["predictor"] = fit_accuracy_predictor(records, space, cv=3)
        refinement.append({"round": round_index, "picks": picks, "records": len(records)})
        error = sum(abs(p["predicted_top1"] - p["measured_top1"]) for p in picks) / len(picks)
        print(f"[precision] refinement round {round_index + 1}: picks predicted vs measured, mean |error| "
              f"{error:.2f} points; refitted on {len(records)} subnets", flush=True)
    predictor = current["predictor"]
    predictor.save(out / "top1.skops")
    results = {}
    for name, problem in problems.items():
        joint = evolution_search(problem, settings["population"], settings["generations"], seed=0,
                                 on_infeasible="nearest")
        haq = haq_search(problem, eight, HAQConfig(episodes=settings["haq_episodes"],
                                                   warmup_episodes=settings["haq_warmup"]), seed=0,
                         on_infeasible="nearest")
        rows = {}
        for label, arch in (("uniform 8-bit", eight), ("uniform 4-bit", four), ("HAQ, fixed architecture", haq.arch),
                            ("evolution, architecture + bits", joint.arch)):
            genes = space.to_genes(arch)
            rows[label] = {"arch": arch.to_dict(), "predicted_top1": float(predictor.predict_genes(genes)[0]),
                           "measured_top1": evaluate(arch)["top1"], "latency_ms": float(latency[name](genes)[0])}
        results[name] = {"budget_ms": problem.constraints[0].limit, "rows": rows,
                         "haq_evaluations": haq.num_evaluations, "evolution_evaluations": joint.num_evaluations}
    clock = step("4. search", clock)

    # 5. export the jointly searched subnet (fpga-bitserial) ------------------------------------------------
    chosen = space.parse(results["fpga-bitserial"]["rows"]["evolution, architecture + bits"]["arch"])
    static = supernet.extract(chosen)
    # exact BatchNorm statistics of the subnet (as its evaluation used); a precision no training step
    # ran starts its step sizes here, from real images
    recalibrate_bn(static, data.train, settings["calib_images"], resolution=chosen.resolution)
    export = export_checked(static.eval(), out / "subnet.onnx")
    clock = step("5. export", clock)

    summary = {"space": space.to_dict(), "fingerprint": space.fingerprint, "fast": bool(fast),
               "budget_fraction": BUDGET_FRACTION, "backends": BACKENDS, "results": results,
               "export": {k: export[k] for k in ("onnx", "opset", "parity_max_abs_diff", "output_max_abs",
                                                "tolerance")},
               "evaluated_subnets": len(records), "refinement": refinement, "seconds": timings,
               "total_seconds": round(time.perf_counter() - started, 1)}
    atomic_write_json(out / "summary.json", summary)
    for name, result in results.items():
        print(f"{name} (budget {result['budget_ms']:.3f} ms):")
        for label, row in result["rows"].items():
            print(f"  {label:32s} val top-1 {row['measured_top1']:6.2f} (predicted {row['predicted_top1']:6.2f})  "
                  f"{row['latency_ms']:.3f} ms")
    print(f"exported {export['onnx']} (QDQ, parity {export['parity_max_abs_diff']:.2g})")
    return summary


__all__ = ["BACKENDS", "PRECISION_BITS", "run_mixed_precision", "training_config"]
