#!/usr/bin/env python
"""Inherited subnet weights versus training the same architecture from scratch.

After progressive shrinking (the default config on digits), take the smallest
subnet and 5 random ones; score each with the supernet's weights (BN
re-calibrated, no fine-tuning) and after training the same static architecture
from scratch for as many epochs as the whole progressive-shrinking schedule
(same optimizer, schedule, loss without distillation, data order and
augmentation; BN re-calibrated the same way). Once-for-All claims inherited
subnets match or beat from-scratch training; the target here is
mean(inherited) >= mean(scratch) - 1 point.

    python tools/train_supernet.py --config configs/mbv3-small-digits.yaml --out runs/mbv3-small-digits
    python benchmarks/inherited_vs_scratch.py --supernet runs/mbv3-small-digits/final.pt

Prints a table and writes JSON (--out); rows are saved as they finish, and a
re-run reuses the from-scratch results trained with the same settings (they do
not depend on the supernet), so re-evaluating a new supernet is quick.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


import torch

from ofa.data import build_datasets, fixed_subset
from ofa.evaluation import SubnetEvaluator, predict, recalibrate_bn, top1_accuracy
from ofa.io import atomic_write_json
from ofa.models import MobileNetV3
from ofa.training.checkpoint import load_checkpoint, load_supernet
from ofa.training.progressive_shrinking import build_phases
from ofa.training.runlog import format_table
from ofa.training.static import train_classifier


def training_wall_time(run_dir: Path) -> float | None:
    """Seconds from the run's first to its last metrics record (None if resumed or unknown)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    events = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    if any(e["event"] == "resume" for e in events) or not events or events[-1]["event"] != "done":
        return None
    return round(events[-1]["time"] - events[0]["time"], 1)


def train_from_scratch(space, arch, data, epochs, first_phase, train_cfg, data_cfg, args) -> tuple[float, float]:
    """Top-1 (percent) of ``arch`` trained from scratch, and the training seconds."""
    torch.manual_seed(args.seed)
    model = MobileNetV3(space, arch, train_cfg["dropout"])
    start = time.time()
    train_classifier(model, data.train, epochs, arch.resolution, lr=first_phase["lr"],
                     batch_size=train_cfg["batch_size"], weight_decay=train_cfg["weight_decay"],
                     label_smoothing=train_cfg["label_smoothing"], warmup_epochs=first_phase["warmup_epochs"],
                     seed=args.seed, optimizer=train_cfg["optimizer"], momentum=train_cfg["momentum"],
                     channels_last=train_cfg["channels_last"])
    seconds = round(time.time() - start, 1)
    calibration = fixed_subset(data.train, data_cfg["calib_images"]).tensors(resolution=arch.resolution)[0]
    recalibrate_bn(model, calibration)  # the same re-calibration as the inherited subnets get
    images, labels = getattr(data, args.split).tensors(resolution=arch.resolution)
    return top1_accuracy(predict(model, images), labels), seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--supernet", default="runs/mbv3-small-digits/final.pt")
    parser.add_argument("--num-random", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random subnets")
    parser.add_argument("--epochs", type=int, default=None,
                        help="from-scratch epochs (default: all progressive-shrinking epochs of the run)")
    parser.add_argument("--split", default="test", choices=("val", "test"))
    parser.add_argument("--out", default="benchmarks/results/inherited_vs_scratch.json")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not Path(args.supernet).is_file():
        print(f"{args.supernet} not found: train it first with tools/train_supernet.py "
              f"--config configs/mbv3-small-digits.yaml --out {Path(args.supernet).parent}", file=sys.stderr)
        return 2

    payload = load_checkpoint(args.supernet)
    config = payload["config"]
    supernet = load_supernet(args.supernet)
    space = supernet.space
    phases = build_phases(space, config["phases"])
    epochs = args.epochs or sum(p["epochs"] for p in phases)
    train_cfg, data_cfg = config["train"], config["data"]
    data = build_datasets(data_cfg["dataset"], max(space.resolutions), space.in_channels, data_cfg["augmentation"],
                          data_cfg["val_fraction"], data_cfg["test_fraction"])
    evaluator = SubnetEvaluator(supernet, data, args.split, data_cfg["calib_images"])
    archs = [("smallest", space.smallest())] + [(f"random{i}", a) for i, a in
                                                 enumerate(space.sample(args.seed, n=args.num_random))]
    # From-scratch results depend only on the architecture and the training settings, not on the
    # supernet: they are kept in --out and reused by a re-run with the same settings.
    scratch_settings = {"epochs": epochs, "split": args.split, "seed": args.seed, "data": data_cfg,
                        "train": {k: train_cfg[k] for k in ("batch_size", "optimizer", "momentum", "weight_decay",
                                                            "label_smoothing", "dropout", "channels_last")},
                        "lr": phases[0]["lr"], "warmup_epochs": phases[0]["warmup_epochs"]}
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    done = {json.dumps(r["arch"], sort_keys=True): r for r in previous.get("rows", [])
            if previous.get("scratch_settings") == scratch_settings}
    rows = []
    for name, arch in archs:
        inherited = evaluator.evaluate(arch)
        key = json.dumps(arch.to_dict(), sort_keys=True)
        if key in done:
            scratch, seconds = done[key]["scratch_top1"], done[key]["scratch_train_seconds"]
        else:
            scratch, seconds = train_from_scratch(space, arch, data, epochs, phases[0], train_cfg, data_cfg, args)
        row = {"name": name, "arch": arch.to_dict(), "resolution": arch.resolution, "mmacs": inherited["macs"] / 1e6,
               "inherited_top1": inherited["top1"], "scratch_top1": scratch,
               "delta": inherited["top1"] - scratch, "scratch_train_seconds": seconds}
        rows.append(row)
        print(f"{name}: inherited {row['inherited_top1']:.2f}%, scratch {scratch:.2f}%", flush=True)
        atomic_write_json(out, {"benchmark": "inherited_vs_scratch", "scratch_settings": scratch_settings,
                                "rows": rows})
    mean_inherited = sum(r["inherited_top1"] for r in rows) / len(rows)
    mean_scratch = sum(r["scratch_top1"] for r in rows) / len(rows)
    table_rows = rows + [{"name": "mean", "inherited_top1": mean_inherited, "scratch_top1": mean_scratch,
                          "delta": mean_inherited - mean_scratch}]
    print(format_table(table_rows, ["name", "resolution", "mmacs", "inherited_top1", "scratch_top1", "delta"]))
    passed = mean_inherited >= mean_scratch - 1.0
    wall = training_wall_time(Path(args.supernet).parent)
    print(f"{args.split} split, scratch trained {epochs} epochs; target mean(inherited) >= mean(scratch) - 1: "
          f"{'met' if passed else 'NOT met'}")
    if wall is not None:
        print(f"progressive-shrinking training wall time: {wall} s ({wall / 60:.1f} min)")
    atomic_write_json(out, {"benchmark": "inherited_vs_scratch", "scratch_settings": scratch_settings,
                            "supernet": str(Path(args.supernet).resolve()), "rows": rows,
                            "mean_inherited_top1": mean_inherited, "mean_scratch_top1": mean_scratch,
                            "target_met": passed, "training_wall_seconds": wall, "torch": torch.__version__})
    return 0


if __name__ == "__main__":
    sys.exit(main())
