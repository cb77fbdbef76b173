"""Inherited weights versus training from scratch on the Transformer default
task (``transformer-small-digits``: numbers as digits -> French words).

    ofa-train-supernet --config transformer-small-digits --out runs/transformer-digits
    python benchmarks/transformer_inherited_vs_scratch.py --supernet runs/transformer-digits/final.pt \
        --out benchmarks/results/transformer_inherited_vs_scratch_digits.json

For the smallest, the largest and ``--random`` random subnets: test-split exact
match, BLEU and chrF (greedy decoding), token loss, and label/probability
loyalty to the supernet's largest subnet of (a) the subnet extracted from the
trained supernet, no fine-tuning, and (b) the same architecture trained alone
from scratch with the supernet's recipe (same data, optimizer, schedule and
number of steps - default: as many as the supernet had - without
distillation), once per ``--seeds`` seed. Each scratch run is kept in
``--runs`` (``<runs>/<subnet>-seed<k>``) so an interrupted benchmark resumes
where it stopped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from _timing import environment, save

from ofa.training.transformer import TransformerTrainer, evaluate_subnet, load_trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supernet", required=True, help="final.pt of tools/train_supernet.py (transformer space)")
    parser.add_argument("--steps", type=int, default=0, help="from-scratch steps (default: the supernet's)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--runs", default="runs/inherited_vs_scratch", help="directory for the scratch runs")
    parser.add_argument("--random", type=int, default=4, help="random subnets besides the smallest and largest")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds of the scratch runs")
    parser.add_argument("--out", default="benchmarks/results/transformer_inherited_vs_scratch_digits.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    payload = torch.load(args.supernet, map_location="cpu", weights_only=True)
    supernet, data = load_trained(args.supernet)
    space = supernet.space
    config = payload["config"]
    steps = args.steps or config["train"]["steps"]
    subnets = {"smallest": space.smallest(), "largest": space.largest(),
               **{f"random{i}": space.sample(7 + i) for i in range(args.random)}}
    runs = Path(args.runs)
    teacher = supernet.extract(space.largest())  # loyalty: agreement with the full network's predictions
    rows = []
    for label, arch in subnets.items():
        inherited = evaluate_subnet(supernet.extract(arch), data, "test", teacher=teacher)
        seeds = {}
        for seed in args.seeds:
            run_dir = runs / f"{label}-seed{seed}"
            # another seed for the weights and the batch order, the supernet's data
            scratch_config = {**config, "seed": seed, "data": {**config["data"], "seed": config["data"].get("seed")
                                                               if config["data"].get("seed") is not None
                                                               else config["seed"]},
                              "train": {**config["train"], "steps": steps, "kd_ratio": 0.0, "eval_every": steps,
                                        "progress": False}}
            if not (run_dir / "final.pt").exists():
                TransformerTrainer(scratch_config, run_dir, resume=(run_dir / "last.pt").exists(), data=data,
                                   fixed_arch=arch.to_dict()).run()
            scratch_model, _ = load_trained(run_dir / "final.pt")
            seeds[seed] = {k: round(v, 3) for k, v in evaluate_subnet(scratch_model, data, "test",
                                                                      teacher=teacher).items()}
            seeds[seed]["train_minutes"] = json.loads((run_dir / "summary.json").read_text())["minutes_this_process"]
        row = {"subnet": label, "arch": arch.to_dict(), "macs": space.cost(arch).macs,
               "params": space.cost(arch).params, "scratch_steps": steps, "scratch_seeds": seeds,
               **{f"inherited_{k}": round(v, 3) for k, v in inherited.items()},
               **{f"scratch_{k}": round(float(np.mean([r[k] for r in seeds.values()])), 3) for k in inherited}}
        rows.append(row)
        print({k: v for k, v in row.items() if k not in ("arch", "scratch_seeds")}, flush=True)
    means = {f"{side}_{k}": round(float(np.mean([r[f"{side}_{k}"] for r in rows])), 3)
             for side in ("inherited", "scratch") for k in ("exact_match", "bleu", "token_accuracy")}
    delta = means["inherited_exact_match"] - means["scratch_exact_match"]
    print(f"mean exact match: inherited {means['inherited_exact_match']:.2f}, scratch "
          f"{means['scratch_exact_match']:.2f} ({delta:+.2f}); BLEU {means['inherited_bleu']:.2f} vs "
          f"{means['scratch_bleu']:.2f}", flush=True)
    save({"benchmark": "transformer_inherited_vs_scratch", "supernet": str(args.supernet),
          "command": "python benchmarks/transformer_inherited_vs_scratch.py --supernet " + str(args.supernet),
          "config": config.get("name", ""), "supernet_steps": config["train"]["steps"], "split": "test",
          "scratch_seeds": args.seeds, "means": means, "exact_match_delta": round(delta, 3),
          "target_met": bool(delta >= -1.0), "rows": rows, "environment": environment()}, args.out)

if __name__ == "__main__":
    main()
