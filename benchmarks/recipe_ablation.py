#!/usr/bin/env python
"""Which progressive-shrinking recipe makes inherited subnets as good as from-scratch ones.

Every recipe is the default config (``mbv3-small-cluttered-digits``) as it
was before this ablation (frozen phase-0 teacher, averaged subnet gradients,
staged phases) with some keys changed and the same total number of epochs; each is trained
once (seed 0) and its smallest, largest and one random subnet per resolution
(``inherited_vs_scratch.benchmark_archs``) are scored with inherited weights
(BN re-calibrated on 1000 training images) on the validation split, which
picks the recipe, and on the test split. The from-scratch side comes from the
cache that ``benchmarks/inherited_vs_scratch.py --scratch-only`` fills (same
architectures, as many epochs as the recipes, two seeds).

    python benchmarks/recipe_ablation.py                       # all recipes, resumable
    python benchmarks/recipe_ablation.py --recipes inplace-bignas kd-off

Runs go to ``--runs`` (one directory per recipe; a finished one is reused),
results to ``--out`` as they finish.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from inherited_vs_scratch import SPLITS, benchmark_archs, read_scratch_cache, scratch_settings

from ofa.data import build_datasets
from ofa.evaluation import SubnetEvaluator
from ofa.io import atomic_write_json
from ofa.training import get_trainer, load_yaml
from ofa.training.checkpoint import load_supernet
from ofa.training.progressive_shrinking import check_config

BASE = "mbv3-small-cluttered-digits"
EPOCHS = 6  # every recipe, and the from-scratch side


def phases(*spec) -> list[dict]:
    """Phases from (name, epochs, lr, subnets_per_step, choices) tuples."""
    return [{"name": name, "epochs": epochs, "lr": lr, "subnets_per_step": n, **choices}
            for name, epochs, lr, n, choices in spec]


FULL = {"kernel_sizes": "max", "expand_ratios": "max", "depths": "max"}
PROGRESSIVE = phases(("teacher", 3, 0.1, 1, FULL),
                     ("kernel", 1, 0.03, 1, {"expand_ratios": "max", "depths": "max"}),
                     ("depth", 1, 0.03, 2, {"expand_ratios": "max"}),
                     ("expand", 1, 0.03, 2, {}))

# name -> (what it changes, config overrides); all 6 epochs in total
RECIPES = {
    "reference": ("the shipped recipe's phases shortened to 6 epochs: frozen phase-0 teacher, KD 1.0, "
                  "sandwich (smallest + 1 random)", {"phases": PROGRESSIVE}),
    "kd-off": ("no distillation", {"phases": PROGRESSIVE, "train": {"kd_ratio": 0.0}}),
    "inplace": ("in-place distillation from the current largest subnet",
                {"phases": PROGRESSIVE, "train": {"distillation": "inplace"}}),
    "inplace-one-phase": ("teacher 2 epochs, then one phase of every elastic choice at once (BigNAS-style), "
                          "in-place KD, sandwich",
                          {"phases": phases(("teacher", 2, 0.1, 1, FULL), ("elastic", 4, 0.03, 2, {})),
                           "train": {"distillation": "inplace"}}),
    "inplace-one-phase-lr0.1": ("as inplace-one-phase with peak lr 0.1 in the elastic phase",
                                {"phases": phases(("teacher", 2, 0.1, 1, FULL), ("elastic", 4, 0.1, 2, {})),
                                 "train": {"distillation": "inplace"}}),
    "inplace-teacher1": ("as inplace-one-phase with 1 teacher epoch and 5 elastic",
                         {"phases": phases(("teacher", 1, 0.1, 1, FULL), ("elastic", 5, 0.03, 2, {})),
                          "train": {"distillation": "inplace"}}),
    "inplace-teacher4": ("as inplace-one-phase with 4 teacher epochs and 2 elastic",
                         {"phases": phases(("teacher", 4, 0.1, 1, FULL), ("elastic", 2, 0.03, 2, {})),
                          "train": {"distillation": "inplace"}}),
    "frozen-one-phase": ("as inplace-one-phase with the frozen phase-0 teacher",
                         {"phases": phases(("teacher", 2, 0.1, 1, FULL), ("elastic", 4, 0.03, 2, {}))}),
    "inplace-3-subnets": ("as inplace-one-phase with smallest + 2 random subnets per step",
                          {"phases": phases(("teacher", 2, 0.1, 1, FULL), ("elastic", 4, 0.03, 3, {})),
                           "train": {"distillation": "inplace"}}),
    "inplace-no-sandwich": ("as inplace-one-phase with 2 random subnets per step (no smallest)",
                            {"phases": phases(("teacher", 2, 0.1, 1, FULL), ("elastic", 4, 0.03, 2, {})),
                             "train": {"distillation": "inplace", "sandwich": False}}),
    "inplace-T2": ("as inplace-one-phase with distillation temperature 2",
                   {"phases": phases(("teacher", 2, 0.1, 1, FULL), ("elastic", 4, 0.03, 2, {})),
                    "train": {"distillation": "inplace", "kd_temperature": 2.0}}),
    "inplace-depth-first": ("teacher 2, then depth and width (2 epochs) before kernel joins (2 epochs), "
                            "in-place KD: another order of the elastic dimensions",
                            {"phases": phases(("teacher", 2, 0.1, 1, FULL),
                                              ("depth+expand", 2, 0.03, 2, {"kernel_sizes": "max"}),
                                              ("elastic", 2, 0.03, 2, {})),
                             "train": {"distillation": "inplace"}}),
    "inplace-sum": ("as inplace-one-phase with the subnets' gradients summed, not averaged (the reference code "
                    "accumulates them: each subnet's gradient keeps its size)",
                    {"phases": phases(("teacher", 2, 0.1, 1, FULL), ("elastic", 4, 0.03, 2, {})),
                     "train": {"distillation": "inplace", "subnet_gradients": "sum"}}),
    "inplace-sum-lr0.1": ("as inplace-sum with peak lr 0.1 in the elastic phase",
                          {"phases": phases(("teacher", 2, 0.1, 1, FULL), ("elastic", 4, 0.1, 2, {})),
                           "train": {"distillation": "inplace", "subnet_gradients": "sum"}}),
    "elastic-only-sum": ("no teacher phase: one elastic phase of 6 epochs from the start (BigNAS), in-place KD, "
                         "sandwich, gradients summed, peak lr 0.1",
                         {"phases": phases(("elastic", 6, 0.1, 2, {})),
                          "train": {"distillation": "inplace", "subnet_gradients": "sum"}}),
    "elastic-only-1-subnet-sum": ("as elastic-only-sum with one more subnet per step besides the largest (the "
                                  "smallest and a random one in turn): two thirds of its cost",
                                  {"phases": phases(("elastic", 6, 0.1, 1, {})),
                                   "train": {"distillation": "inplace", "subnet_gradients": "sum"}}),
    "elastic-only-sum-lr0.05": ("as elastic-only-sum with peak lr 0.05",
                                {"phases": phases(("elastic", 6, 0.05, 2, {})),
                                 "train": {"distillation": "inplace", "subnet_gradients": "sum"}}),
    "reference-sum": ("the reference with the subnets' gradients summed",
                      {"phases": PROGRESSIVE, "train": {"subnet_gradients": "sum"}}),
    "frozen-one-phase-sum-lr0.1": ("teacher 3 epochs, then one phase of every elastic choice (3 epochs, peak lr 0.1), "
                                   "frozen teacher, gradients summed",
                                   {"phases": phases(("teacher", 3, 0.1, 1, FULL), ("elastic", 3, 0.1, 2, {})),
                                    "train": {"subnet_gradients": "sum"}}),
    "inplace-1-subnet-sum-lr0.1": ("teacher 2, elastic 4 at peak lr 0.1: the largest (in-place teacher) and one "
                                   "more subnet per step (the smallest and a random one in turn), gradients summed",
                                   {"phases": phases(("teacher", 2, 0.1, 1, FULL), ("elastic", 4, 0.1, 1, {})),
                                    "train": {"distillation": "inplace", "subnet_gradients": "sum"}}),
    "bignas-regularize-largest": ("as elastic-only-1-subnet-sum with dropout and label smoothing on the largest "
                                  "subnet only (BigNAS: the small subnets underfit)",
                                  {"phases": phases(("elastic", 6, 0.1, 1, {})),
                                   "train": {"distillation": "inplace", "subnet_gradients": "sum",
                                             "regularize": "largest"}}),
    "bignas-students-kd": ("as bignas-regularize-largest with the sampled subnets trained on the largest's soft "
                           "targets alone (BigNAS)",
                           {"phases": phases(("elastic", 6, 0.1, 1, {})),
                            "train": {"distillation": "inplace", "subnet_gradients": "sum", "regularize": "largest",
                                      "student_loss": "teacher"}}),
    "elastic-only-kd0.5": ("as elastic-only-1-subnet-sum with half the distillation weight (kd_ratio 0.5)",
                           {"phases": phases(("elastic", 6, 0.1, 1, {})),
                            "train": {"distillation": "inplace", "subnet_gradients": "sum", "kd_ratio": 0.5}}),
    "elastic-only-T2": ("as elastic-only-1-subnet-sum with distillation temperature 2",
                        {"phases": phases(("elastic", 6, 0.1, 1, {})),
                         "train": {"distillation": "inplace", "subnet_gradients": "sum", "kd_temperature": 2.0}}),
    "elastic-only-1-subnet-sum-seed1": ("elastic-only-1-subnet-sum (the shipped default) trained with seed 1: how "
                                        "much of a recipe's difference one supernet seed is",
                                        {"seed": 1, "phases": phases(("elastic", 6, 0.1, 1, {})),
                                         "train": {"distillation": "inplace", "subnet_gradients": "sum"}}),
    "elastic-only-zero-gamma": ("as elastic-only-1-subnet-sum with the last BatchNorm scale of every residual block "
                                "zeroed at the start (BigNAS: each block starts as the identity, so a deep subnet "
                                "starts as its shallow ones)",
                                {"phases": phases(("elastic", 6, 0.1, 1, {})),
                                 "train": {"distillation": "inplace", "subnet_gradients": "sum",
                                           "zero_init_residual": True}}),
}


# the recipe the shipped config had before this ablation; every recipe starts from it
REFERENCE_TRAIN = {"distillation": "frozen", "kd_ratio": 1.0, "sandwich": True, "subnet_gradients": "mean"}


def recipe_config(overrides: dict) -> dict:
    config = load_yaml(BASE)
    config.setdefault("train", {}).update(REFERENCE_TRAIN)
    for key, value in overrides.items():
        if isinstance(value, dict):
            config.setdefault(key, {}).update(copy.deepcopy(value))
        else:
            config[key] = copy.deepcopy(value)
    config.setdefault("train", {})["progress"] = False
    if sum(p["epochs"] for p in config["phases"]) != EPOCHS:
        raise SystemExit(f"a recipe has {sum(p['epochs'] for p in config['phases'])} epochs, not {EPOCHS}")
    return config


def calib_sweep(args) -> int:
    """BN re-calibration size: the same trained supernets, scored with 250..2000 calibration images."""
    out = Path(args.out)
    for name in args.recipes:
        supernet = load_supernet(Path(args.runs) / name / "final.pt")
        checked, space, _ = check_config(recipe_config(RECIPES[name][1]))
        d = checked["data"]
        data = build_datasets(d["dataset"], max(space.resolutions), space.in_channels, d["augmentation"],
                              d["val_fraction"], d["test_fraction"])
        sweep = {}
        for images in args.calib_sweep:
            evaluator = SubnetEvaluator(supernet, data, "val", images)
            sweep[str(images)] = float(np.mean([evaluator.evaluate(a)["top1"] for _, a in benchmark_archs(space)]))
            print(f"{name}: BN re-calibrated on {images} images: mean inherited val top-1 {sweep[str(images)]:.2f}",
                  flush=True)
        results = json.loads(out.read_text()) if out.is_file() else {}
        results.setdefault("calib_sweep", {})[name] = sweep
        atomic_write_json(out, results)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--runs", default="runs/recipe-ablation")
    parser.add_argument("--calib-images", type=int, default=1000)
    parser.add_argument("--scratch-cache", default="benchmarks/results/scratch_cluttered_digits.jsonl")
    parser.add_argument("--out", default="benchmarks/results/recipe_ablation_cluttered_digits.json")
    parser.add_argument("--calib-sweep", type=int, nargs="+", default=None, metavar="IMAGES",
                        help="instead: mean inherited validation top-1 of the --recipes' supernets with BN "
                             "re-calibrated on each number of training images")
    args = parser.parse_args(argv)
    if args.calib_sweep:
        return calib_sweep(args)
    torch.set_num_threads(1)
    out = Path(args.out)
    data = None
    for name in args.recipes:
        what, overrides = RECIPES[name]
        config = recipe_config(overrides)
        run_dir = Path(args.runs) / name
        if not (run_dir / "final.pt").is_file():
            print(f"== {name}: {what}", flush=True)
            start = time.time()
            get_trainer("mobilenetv3")(config, run_dir, resume=True).run()
            print(f"{name} trained in {time.time() - start:.0f} s", flush=True)
        supernet = load_supernet(run_dir / "final.pt")
        checked, space, _ = check_config(config)
        if data is None:
            d = checked["data"]
            data = build_datasets(d["dataset"], max(space.resolutions), space.in_channels, d["augmentation"],
                                  d["val_fraction"], d["test_fraction"])
        scratch = read_scratch_cache(Path(args.scratch_cache), scratch_settings(checked, EPOCHS, args.calib_images))
        evaluators = {split: SubnetEvaluator(supernet, data, split, args.calib_images) for split in SPLITS}
        rows = []
        for arch_name, arch in benchmark_archs(supernet.space):
            key = json.dumps(arch.to_dict(), sort_keys=True)
            row = {"name": arch_name, **{f"inherited_{s}": evaluators[s].evaluate(arch)["top1"] for s in SPLITS}}
            seeds = [r for (k, _), r in scratch.items() if k == key]
            for s in SPLITS:
                row[f"scratch_{s}"] = float(np.mean([r["top1"][s] for r in seeds])) if seeds else None
            row["scratch_seeds"] = len(seeds)
            rows.append(row)
        summary = json.loads((run_dir / "summary.json").read_text())
        result = {"what": what, "overrides": overrides, "rows": rows,
                  "train_wall_seconds": summary.get("wall_seconds"), "train_cpu_seconds": summary.get("cpu_seconds")}
        for s in SPLITS:
            result[f"mean_inherited_{s}"] = float(np.mean([r[f"inherited_{s}"] for r in rows]))
            paired = [r for r in rows if r[f"scratch_{s}"] is not None]
            result[f"mean_delta_{s}"] = (float(np.mean([r[f"inherited_{s}"] - r[f"scratch_{s}"] for r in paired]))
                                         if paired else None)
        # re-read before writing: another run of this script may have added recipes meanwhile
        stored = json.loads(out.read_text()) if out.is_file() else {}
        results = {**stored.get("recipes", {}), name: result}
        print(f"{name}: mean inherited val {result['mean_inherited_val']:.2f}, test "
              f"{result['mean_inherited_test']:.2f}; vs scratch (val) {result['mean_delta_val']}", flush=True)
        atomic_write_json(out, {**stored, "benchmark": "recipe_ablation", "base_config": BASE, "epochs": EPOCHS,
                                "command": "python benchmarks/recipe_ablation.py", "recipes": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
