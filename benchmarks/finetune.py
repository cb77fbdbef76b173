#!/usr/bin/env python
"""Does fine-tuning a specialised subnet pay? Inherited against fine-tuned accuracy, and the extra time.

For the smallest subnet and one random subnet per resolution of a trained
supernet (``inherited_vs_scratch.benchmark_archs``, without the largest: it is
the teacher), score the inherited weights (BN re-calibrated) and the weights
after ``--epochs`` epochs of fine-tuning (what ``ofa-specialize
--finetune-epochs N`` runs: distilled from the largest subnet, cosine from
lr 0.01) on the validation and the test split, and time the fine-tuning (one
thread).

    python benchmarks/finetune.py --supernet runs/quickstart/supernet/final.pt --epochs 1 2
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from _timing import environment, save
from inherited_vs_scratch import SPLITS, benchmark_archs

from ofa.data import fixed_subset
from ofa.evaluation import recalibrate_bn
from ofa.families import get_family
from ofa.training.checkpoint import load_checkpoint, load_supernet
from ofa.training.progressive_shrinking import check_config
from ofa.training.static import FINETUNE_LR, finetune_subnet


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--supernet", required=True)
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--calib-images", type=int, default=1000)
    parser.add_argument("--out", default="benchmarks/results/finetune_cluttered_digits.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    supernet = load_supernet(args.supernet)
    config, _, _ = check_config(load_checkpoint(args.supernet)["config"])
    family = get_family(supernet.space)
    data = family.checkpoint_data(args.supernet)
    evaluators = {split: family.evaluator(supernet, data, split, args.calib_images) for split in SPLITS}
    rows = []
    for name, arch in benchmark_archs(supernet.space):
        if name == "largest":
            continue
        row = {"name": name, "arch": arch.to_dict(), "resolution": arch.resolution,
               **{f"inherited_{s}": evaluators[s](arch)["accuracy"] for s in SPLITS}}
        for epochs in args.epochs:
            start = time.process_time()
            static = finetune_subnet(supernet, arch, data, epochs, calib_images=args.calib_images,
                                     train=config["train"])
            row[f"finetune_{epochs}_seconds"] = round(time.process_time() - start, 1)
            # what deployment does before export: the same re-calibration as the inherited weights get
            recalibrate_bn(static, fixed_subset(data.train, args.calib_images).tensors(resolution=arch.resolution)[0])
            for s in SPLITS:
                row[f"finetuned_{epochs}_{s}"] = family.evaluate_static(static, arch, data, s)["accuracy"]
            print(f"{name}: inherited {row['inherited_test']:.2f}, fine-tuned {epochs} epoch(s) "
                  f"{row[f'finetuned_{epochs}_test']:.2f} (test), {row[f'finetune_{epochs}_seconds']:.0f} s",
                  flush=True)
        rows.append(row)
    means = {key: sum(r[key] for r in rows) / len(rows) for key in rows[0] if key.startswith(("inherited_",
                                                                                                "finetune"))}
    save({"benchmark": "finetune", "supernet": args.supernet, "lr": FINETUNE_LR, "epochs": args.epochs,
          "calib_images": args.calib_images, "rows": rows, "means": means, "environment": environment()}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
