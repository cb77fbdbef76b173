#!/usr/bin/env python
"""Threads or processes: how to use every core for supernet training on a CPU machine.

Runs the same short progressive-shrinking run (the default config's data and
recipe with one epoch per phase on ``--images`` training images)
as one process with one thread, one process with ``--cores`` threads, and
``--cores`` data-parallel processes of one thread each (torchrun, gloo),
alternating the order over ``--repeats`` rounds so that a change of machine
speed hits all three alike. Reports the median wall time of the training
steps (from the run's own metrics, without process start-up and evaluation)
and of the whole command, and the speed-up over one thread.

    python benchmarks/train_parallel.py            # writes benchmarks/results/train_parallel.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from _timing import environment, save

from ofa.training import load_yaml


def run_config(base: str, images: int, threads: int) -> dict:
    config = load_yaml(base)
    config["data"] = {**config.get("data", {}), "max_train_images": images, "calib_images": 200}
    config["train"] = {**config.get("train", {}), "threads": threads, "progress": False}
    config["phases"] = [{**phase, "epochs": 1, "warmup_epochs": 0} for phase in config["phases"]]
    return config


def training_seconds(run_dir: Path) -> float:
    """Wall seconds spent in training epochs (the run's own records; no start-up, no evaluation)."""
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    total, last = 0.0, None
    for event in events:
        if event["event"] == "phase_start":
            last = event["elapsed_s"]
        elif event["event"] == "epoch":
            total += event["elapsed_s"] - last
            last = event["elapsed_s"]
    return total


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="mbv3-small-cluttered-digits")
    parser.add_argument("--images", type=int, default=3840)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/train_parallel.json")
    args = parser.parse_args(argv)
    variants = {"1 process x 1 thread": (1, 1), f"1 process x {args.cores} threads": (1, args.cores),
                f"{args.cores} processes x 1 thread (torchrun)": (args.cores, 1)}
    results = {name: {"train_s": [], "command_s": []} for name in variants}
    work = Path(tempfile.mkdtemp(prefix="train-parallel-"))
    try:
        for repeat in range(args.repeats):
            order = list(variants) if repeat % 2 == 0 else list(reversed(variants))
            for name in order:
                processes, threads = variants[name]
                config = work / f"{threads}.yaml"
                config.write_text(yaml.safe_dump(run_config(args.config, args.images, threads)))
                out = work / "run"
                shutil.rmtree(out, ignore_errors=True)
                launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             f"--nproc_per_node={processes}"] if processes > 1 else [sys.executable])
                command = launcher + ["-m", "ofa_pipeline.commands.train_supernet", "--config", str(config),
                                      "--out", str(out), "--no-progress"]
                start = time.perf_counter()
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
                results[name]["command_s"].append(time.perf_counter() - start)
                results[name]["train_s"].append(training_seconds(out))
                print(f"{name}: training {results[name]['train_s'][-1]:.1f} s, command "
                      f"{results[name]['command_s'][-1]:.1f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = statistics.median(results["1 process x 1 thread"]["train_s"])
    summary = {name: {"median_train_s": statistics.median(r["train_s"]),
                      "median_command_s": statistics.median(r["command_s"]),
                      "speedup_over_1_thread": base / statistics.median(r["train_s"]), **r}
               for name, r in results.items()}
    for name, r in summary.items():
        print(f"{name:40s} training {r['median_train_s']:6.1f} s  x{r['speedup_over_1_thread']:.2f}  "
              f"(command {r['median_command_s']:.1f} s)")
    save({"benchmark": "train_parallel", "config": args.config, "images": args.images, "cores": args.cores,
          "repeats": args.repeats, "results": summary, "environment": environment()}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
