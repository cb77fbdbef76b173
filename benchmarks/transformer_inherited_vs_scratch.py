"""Inherited weights versus training from scratch, for 3 subnets of the
default task (English -> French numbers in words, held-out test ranges).

    python tools/train_supernet.py --config configs/transformer-small.yaml --out runs/transformer-small
    python benchmarks/transformer_inherited_vs_scratch.py --supernet runs/transformer-small/final.pt \
        [--steps N] [--out benchmarks/results/transformer_inherited_vs_scratch.json]

For the smallest, a random and the largest subnet: test-split exact match,
BLEU and chrF (greedy decoding), token loss, and label/probability loyalty
to the supernet's largest subnet of (a) the subnet
extracted from the trained supernet, no fine-tuning, and (b) the same
architecture trained alone from scratch with the supernet's recipe (same data,
optimizer, schedule, number of steps - default: as many as the supernet
had - without distillation). Each scratch run is kept in ``--runs``
(``runs/inherited_vs_scratch/<subnet>``) so an interrupted benchmark resumes
where it stopped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from _timing import environment, save

from ofa.training.transformer import TransformerTrainer, evaluate_subnet, load_trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supernet", required=True, help="final.pt of tools/train_supernet.py (transformer space)")
    parser.add_argument("--steps", type=int, default=0, help="from-scratch steps (default: the supernet's)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--runs", default="runs/inherited_vs_scratch", help="directory for the scratch runs")
    parser.add_argument("--out", default="benchmarks/results/transformer_inherited_vs_scratch.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    payload = torch.load(args.supernet, map_location="cpu", weights_only=True)
    supernet, data = load_trained(args.supernet)
    space = supernet.space
    config = payload["config"]
    steps = args.steps or config["train"]["steps"]
    subnets = {"smallest": space.smallest(), "random": space.sample(7), "largest": space.largest()}
    runs = Path(args.runs)
    teacher = supernet.extract(space.largest())  # loyalty: agreement with the full network's predictions
    rows = []
    for label, arch in subnets.items():
        inherited = evaluate_subnet(supernet.extract(arch), data, "test", teacher=teacher)
        run_dir = runs / label
        scratch_config = {**config, "train": {**config["train"], "steps": steps, "kd_ratio": 0.0,
                                              "eval_every": steps, "progress": False}}
        if not (run_dir / "final.pt").exists():
            TransformerTrainer(scratch_config, run_dir, resume=(run_dir / "last.pt").exists(), data=data,
                               fixed_arch=arch.to_dict()).run()
        scratch_model, _ = load_trained(run_dir / "final.pt")
        scratch = evaluate_subnet(scratch_model, data, "test", teacher=teacher)
        row = {"subnet": label, "arch": arch.to_dict(), "macs": space.cost(arch).macs,
               "params": space.cost(arch).params, "scratch_steps": steps,
               "scratch_train_minutes": json.loads((run_dir / "summary.json").read_text())["minutes_this_process"],
               **{f"inherited_{k}": round(v, 3) for k, v in inherited.items()},
               **{f"scratch_{k}": round(v, 3) for k, v in scratch.items()}}
        rows.append(row)
        print({k: v for k, v in row.items() if k != "arch"}, flush=True)
    save({"benchmark": "transformer_inherited_vs_scratch", "supernet": str(args.supernet),
          "supernet_steps": config["train"]["steps"], "split": "test", "rows": rows,
          "environment": environment()}, args.out)


if __name__ == "__main__":
    main()
