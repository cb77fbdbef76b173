#!/usr/bin/env python
"""Inherited subnet weights versus training the same architecture from scratch.

After progressive shrinking, take the smallest and the largest subnet and one
random subnet at each input resolution of the space; score each with the
supernet's weights (BN re-calibrated, no fine-tuning) and after training the
same static architecture from scratch for as many epochs as the whole
progressive-shrinking schedule (SGD with Nesterov momentum, cosine schedule,
label-smoothed cross entropy without distillation, the same data order, BN
re-calibrated the same way), once per ``--scratch-seeds`` seed. Once-for-All
claims inherited subnets match or beat from-scratch training; the target here
is mean(inherited) >= mean(scratch) - 1 point.

    python tools/train_supernet.py --config mbv3-small-cluttered-digits --out runs/cluttered
    python benchmarks/inherited_vs_scratch.py --supernet runs/cluttered/final.pt
    python benchmarks/inherited_vs_scratch.py --config mbv3-small-cluttered-digits --scratch-only

On a space with precision, ``--bits 8 4`` compares each subnet at uniform 8-bit and 4-bit weights
and activations; its from-scratch side is quantisation-aware training of the same quantised network
(the supernet's fake quantisers, LSQ steps started on the first batch) for the same epochs.

From-scratch results depend only on the architecture, the seed and the
training settings, not on the supernet: they are appended, as they finish, to
``--scratch-cache`` (JSONL, top-1 on the validation and the test split) and
reused by every later run with the same settings, so re-evaluating a new
supernet (an ablation) takes a minute. ``--scratch-only`` trains the missing
ones without a supernet.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ofa.data import build_datasets, fixed_subset
from ofa.evaluation import SubnetEvaluator, predict, recalibrate_bn, top1_accuracy
from ofa.io import append_jsonl, atomic_write_json
from ofa.models import MobileNetV3
from ofa.training import load_yaml
from ofa.training.checkpoint import load_checkpoint, load_supernet
from ofa.training.progressive_shrinking import build_phases, check_config
from ofa.training.runlog import format_table
from ofa.training.static import train_classifier

SCRATCH_LR = 0.1  # the teacher phase's peak learning rate in every shipped config
SPLITS = ("val", "test")


def benchmark_archs(space, seed: int = 0) -> list[tuple[str, object]]:
    """The smallest, the largest and one random subnet per input resolution."""
    rng = np.random.default_rng(seed)
    archs = [("smallest", space.smallest()), ("largest", space.largest())]
    for resolution in space.resolutions:
        while True:
            arch = space.sample(rng)
            if arch.resolution == resolution:
                break
        archs.append((f"random@{resolution}", arch))
    return archs


def at_uniform_bits(archs: list[tuple[str, object]], space, bits: list[int] | None) -> list[tuple[str, object]]:
    """Each subnet at each of ``bits`` (weights and activations alike; a space with precision), or as it is."""
    if not bits:
        return archs
    return [(f"{name} {b}/{b}-bit", space.uniform_precision(arch, b, b)) for name, arch in archs for b in bits]


def training_wall_time(run_dir: Path) -> float | None:
    """Wall seconds of the whole training run, over all resumed segments (None if unknown)."""
    path = run_dir / "summary.json"
    return json.loads(path.read_text()).get("wall_seconds") if path.is_file() else None


def train_from_scratch(space, arch, data, settings: dict, seed: int) -> dict:
    """Top-1 (percent) per split of ``arch`` trained from scratch, and the training seconds."""
    train = settings["train"]
    torch.manual_seed(seed)
    model = MobileNetV3(space, arch, train["dropout"])
    if settings.get("zero_init_residual"):  # as the supernet's blocks start with train.zero_init_residual
        for block in model.blocks:
            if block.use_shortcut:
                torch.nn.init.zeros_(block.project[1].weight)
    start = time.time()
    train_classifier(model, data.train, settings["epochs"], arch.resolution, lr=settings["lr"],
                     batch_size=train["batch_size"], weight_decay=train["weight_decay"],
                     label_smoothing=train["label_smoothing"], warmup_epochs=settings["warmup_epochs"],
                     seed=seed, optimizer=train["optimizer"], momentum=train["momentum"],
                     channels_last=train["channels_last"])
    seconds = round(time.time() - start, 1)
    calibration = fixed_subset(data.train, settings["calib_images"]).tensors(resolution=arch.resolution)[0]
    recalibrate_bn(model, calibration)  # the same re-calibration as the inherited subnets get
    top1 = {}
    for split in SPLITS:
        images, labels = getattr(data, split).tensors(resolution=arch.resolution)
        top1[split] = top1_accuracy(predict(model, images), labels)
    return {"top1": top1, "train_seconds": seconds}


def scratch_settings(config: dict, epochs: int, calib_images: int) -> dict:
    train = config["train"]
    return {"epochs": epochs, "lr": SCRATCH_LR, "warmup_epochs": 0, "calib_images": calib_images,
            "data": {k: config["data"][k] for k in ("dataset", "augmentation", "val_fraction", "test_fraction")},
            "train": {k: train[k] for k in ("batch_size", "optimizer", "momentum", "weight_decay",
                                            "label_smoothing", "dropout", "channels_last")}}


def read_scratch_cache(path: Path, settings: dict) -> dict:
    """{(arch json, seed): record} of the cache's records trained with ``settings``."""
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.endswith("}"):
                record = json.loads(line)
                if record["settings"] == settings:
                    done[(json.dumps(record["arch"], sort_keys=True), record["seed"])] = record
    return done


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--supernet", default=None, help="final.pt of a progressive-shrinking run")
    parser.add_argument("--config", default=None,
                        help="training config for --scratch-only (default: the supernet's own config)")
    parser.add_argument("--scratch-only", action="store_true", help="train the from-scratch side only")
    parser.add_argument("--no-scratch-training", action="store_true",
                        help="compare with the cached from-scratch results only (missing ones are left out)")
    parser.add_argument("--scratch-seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--seed", type=int, default=0, help="seed of the random subnets")
    parser.add_argument("--epochs", type=int, default=None,
                        help="from-scratch epochs (default: all progressive-shrinking epochs of the config)")
    parser.add_argument("--calib-images", type=int, default=1000, help="BN re-calibration images, both sides")
    parser.add_argument("--split", default="test", choices=SPLITS, help="split of the table and the target")
    parser.add_argument("--scratch-cache", default="benchmarks/results/scratch_cluttered_digits.jsonl")
    parser.add_argument("--out", default="benchmarks/results/inherited_vs_scratch_cluttered_digits.json")
    parser.add_argument("--label", default=None, help="name of the recipe in the output")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scratch-zero-init-residual", action="store_true",
                        help="start the from-scratch networks' shortcut blocks as the identity too (the supernet's "
                             "train.zero_init_residual), to see whether the initialisation alone explains a gain")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help="only these subnets of the benchmark (smallest, largest, random@<resolution>)")
    parser.add_argument("--bits", type=int, nargs="+", default=None, metavar="B",
                        help="a space with precision: compare each subnet at B-bit weights and activations, for "
                             "each B; the from-scratch side is quantisation-aware training at that precision")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.supernet is None and not args.scratch_only:
        parser.error("give --supernet, or --scratch-only with --config")
    if args.supernet is not None and not Path(args.supernet).is_file():
        print(f"{args.supernet} not found: train it first with tools/train_supernet.py", file=sys.stderr)
        return 2

    raw = load_yaml(args.config) if args.supernet is None else load_checkpoint(args.supernet)["config"]
    config, space, phases = check_config(raw)
    supernet = None
    if args.supernet is not None:
        supernet = load_supernet(args.supernet)
        space = supernet.space
    epochs = args.epochs or sum(p["epochs"] for p in phases)
    data_cfg = config["data"]
    data = build_datasets(data_cfg["dataset"], max(space.resolutions), space.in_channels, data_cfg["augmentation"],
                          data_cfg["val_fraction"], data_cfg["test_fraction"])
    if data.num_classes != space.num_classes:
        space = space.replace(num_classes=data.num_classes)
    settings = scratch_settings(config, epochs, args.calib_images)
    if args.scratch_zero_init_residual:
        settings["zero_init_residual"] = True
    cache = Path(args.scratch_cache)
    done = read_scratch_cache(cache, settings)
    evaluators = {split: SubnetEvaluator(supernet, data, split, args.calib_images)
                  for split in SPLITS} if supernet is not None else {}
    rows = []
    for name, arch in at_uniform_bits(benchmark_archs(space, args.seed), space, args.bits):
        if args.only and name.split(" ")[0] not in args.only:
            continue
        key = json.dumps(arch.to_dict(), sort_keys=True)
        scratch = []
        for seed in args.scratch_seeds:
            if (key, seed) not in done and args.no_scratch_training:
                continue
            if (key, seed) not in done:
                result = train_from_scratch(space, arch, data, settings, seed)
                done[(key, seed)] = {"arch": arch.to_dict(), "seed": seed, "settings": settings, **result}
                append_jsonl(cache, done[(key, seed)])
                print(f"{name} seed {seed}: scratch {result['top1']}", flush=True)
            scratch.append(done[(key, seed)])
        if supernet is None:
            continue
        if not scratch:
            print(f"{name}: no cached from-scratch result, left out", flush=True)
            continue
        inherited = {split: evaluators[split].evaluate(arch) for split in SPLITS}
        row = {"name": name, "arch": arch.to_dict(), "resolution": arch.resolution,
               "mmacs": inherited["test"]["macs"] / 1e6,
               **{f"inherited_{split}": inherited[split]["top1"] for split in SPLITS},
               **{f"scratch_{split}": float(np.mean([s["top1"][split] for s in scratch])) for split in SPLITS},
               "scratch_seeds": {str(s["seed"]): s["top1"] for s in scratch},
               "scratch_train_seconds": float(np.mean([s["train_seconds"] for s in scratch]))}
        row["delta"] = row[f"inherited_{args.split}"] - row[f"scratch_{args.split}"]
        rows.append(row)
        print(f"{name}: inherited {row[f'inherited_{args.split}']:.2f}%, scratch {row[f'scratch_{args.split}']:.2f}%",
              flush=True)
    if supernet is None:
        print(f"from-scratch results for {len(args.scratch_seeds)} seed(s) in {cache}")
        return 0
    means = {f"{side}_{split}": float(np.mean([r[f"{side}_{split}"] for r in rows]))
             for side in ("inherited", "scratch") for split in SPLITS}
    delta = means[f"inherited_{args.split}"] - means[f"scratch_{args.split}"]
    table = rows + [{"name": "mean", **means, "delta": delta}]
    print(format_table(table, ["name", "resolution", "mmacs", f"inherited_{args.split}", f"scratch_{args.split}",
                               "delta"]))
    passed = means[f"inherited_{args.split}"] >= means[f"scratch_{args.split}"] - 1.0
    wall = training_wall_time(Path(args.supernet).parent)
    print(f"{args.split} split, scratch trained {epochs} epochs x {len(args.scratch_seeds)} seeds; target "
          f"mean(inherited) >= mean(scratch) - 1: {'met' if passed else 'NOT met'}")
    if wall is not None:
        print(f"progressive-shrinking training wall time: {wall} s ({wall / 60:.1f} min)")
    atomic_write_json(args.out, {"benchmark": "inherited_vs_scratch", "recipe": args.label or raw.get("phases"),
                                 "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
                                 "supernet": str(args.supernet), "config": config, "scratch_settings": settings,
                                 "scratch_seeds": args.scratch_seeds, "split": args.split, "rows": rows, **means,
                                 "target_met": passed, "training_wall_seconds": wall, "torch": torch.__version__})
    return 0


if __name__ == "__main__":
    sys.exit(main())
