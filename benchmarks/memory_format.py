#!/usr/bin/env python
"""NCHW versus channels_last for one supernet training step on CPU.

Measures forward + backward + SGD step of the largest subnet, single-threaded,
for the small preset (32 px, batch 64) and the ImageNet preset (128 px, batch 32),
alternating the two memory formats so both see the same machine load. Reports the
median thread CPU time (steadier than wall time on a shared machine) and wall time.

    python benchmarks/memory_format.py [--repeats 7] [--out benchmarks/results/memory_format.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path


import torch

from ofa import create_supernet, get_space
from ofa.io import atomic_write_json
from ofa.training.losses import distillation_loss

CASES = (("mbv3-small", 32, 64), ("ofa-mbv3-w1.0", 128, 32))


def make_step(preset: str, resolution: int, batch: int, memory_format):
    torch.manual_seed(0)
    space = get_space(preset)
    model = create_supernet(space).train().to(memory_format=memory_format)
    model.set_active(space.largest())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(batch, 3, resolution, resolution).contiguous(memory_format=memory_format)
    labels = torch.randint(0, space.num_classes, (batch,))

    def step():
        optimizer.zero_grad(set_to_none=True)
        distillation_loss(model(images), labels).backward()
        optimizer.step()

    return step


def measure(step, repeats: int) -> tuple[list[float], list[float]]:
    step()  # warm-up (allocations, kernel selection)
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.thread_time_ns(), time.perf_counter()
        step()
        cpu.append((time.thread_time_ns() - c0) / 1e6)
        wall.append((time.perf_counter() - w0) * 1e3)
    return cpu, wall


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two formats")
    parser.add_argument("--out", default="benchmarks/results/memory_format.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    formats = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}
    results = []
    for preset, resolution, batch in CASES:
        steps = {name: make_step(preset, resolution, batch, fmt) for name, fmt in formats.items()}
        samples = {name: ([], []) for name in formats}
        for _ in range(args.rounds):
            for name, step in steps.items():
                cpu, wall = measure(step, args.repeats)
                samples[name][0].extend(cpu)
                samples[name][1].extend(wall)
        row = {"preset": preset, "resolution": resolution, "batch": batch}
        for name, (cpu, wall) in samples.items():
            row[f"{name}_cpu_ms"] = round(statistics.median(cpu), 2)
            row[f"{name}_wall_ms"] = round(statistics.median(wall), 2)
        row["channels_last_speedup"] = round(row["nchw_cpu_ms"] / row["channels_last_cpu_ms"], 3)
        results.append(row)
        print(f"{preset:14s} {resolution:3d}px batch {batch:3d}: NCHW {row['nchw_cpu_ms']:8.1f} ms, "
              f"channels_last {row['channels_last_cpu_ms']:8.1f} ms CPU per step "
              f"(speed-up x{row['channels_last_speedup']})")
    faster = "channels_last" if all(r["channels_last_speedup"] > 1.0 for r in results) else "nchw"
    out = {"benchmark": "memory_format", "threads": 1, "repeats": args.repeats, "rounds": args.rounds,
           "torch": torch.__version__, "results": results, "faster": faster}
    atomic_write_json(args.out, out)
    print(f"faster on this machine: {faster}; written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
