"""Cost of elasticity: forward+backward of the supernet at an architecture
versus the extracted static subnet, measured alternately in one run.

    python benchmarks/supernet_overhead.py [--repeats 15] [--memory-format nchw] [--out benchmarks/results/supernet_overhead.json]

ImageNet preset (OFA-MobileNetV3 w1.0) with 10 classes, 128 px, batch 32; the
largest and 5 random subnets. Target: ratio (supernet / static) <= 1.05.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

from _timing import environment, save, time_alternately

from ofa import create_supernet, get_space


def train_step(model, x, y):
    def step():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--random-subnets", type=int, default=5)
    parser.add_argument("--memory-format", choices=("channels_last", "nchw"), default="channels_last",
                        help="channels_last is the faster layout for training on CPU (benchmarks/memory_format.py)")
    parser.add_argument("--out", default="benchmarks/results/supernet_overhead.json")
    args = parser.parse_args()

    torch.manual_seed(0)
    space = get_space("ofa-mbv3-w1.0", num_classes=10)
    supernet = create_supernet(space).train()
    archs = [space.largest()] + space.sample(rng=0, n=args.random_subnets)
    archs = [space.parse(dict(a.to_dict(), resolution=args.resolution)) for a in archs]
    layout = torch.channels_last if args.memory_format == "channels_last" else torch.contiguous_format
    supernet = supernet.to(memory_format=layout)
    x = torch.randn(args.batch_size, 3, args.resolution, args.resolution).to(memory_format=layout)
    y = torch.randint(0, 10, (args.batch_size,))

    rows = []
    for index, arch in enumerate(archs):
        supernet.set_active(arch)
        static = supernet.extract(arch).train().to(memory_format=layout)
        timings = time_alternately({"supernet": train_step(supernet, x, y), "static": train_step(static, x, y)},
                                   repeats=args.repeats)
        row = {"subnet": "largest" if index == 0 else f"random-{index}", "macs": space.cost(arch).macs,
               "supernet_ms": timings["supernet"]["wall_ms"], "static_ms": timings["static"]["wall_ms"],
               "ratio_wall": timings["supernet"]["wall_ms"] / timings["static"]["wall_ms"],
               "supernet_cpu_ms": timings["supernet"]["cpu_ms"], "static_cpu_ms": timings["static"]["cpu_ms"],
               "ratio_cpu": timings["supernet"]["cpu_ms"] / timings["static"]["cpu_ms"]}
        rows.append(row)
        print(f"{row['subnet']:>9}  {row['macs'] / 1e6:7.1f} MMACs  supernet {row['supernet_ms']:8.1f} ms  "
              f"static {row['static_ms']:8.1f} ms  ratio {row['ratio_wall']:.3f} (cpu-time ratio "
              f"{row['ratio_cpu']:.3f})", flush=True)
    save({"benchmark": "supernet_overhead", "space": "ofa-mbv3-w1.0", "num_classes": 10,
          "batch_size": args.batch_size, "memory_format": args.memory_format, "resolution": args.resolution, "repeats": args.repeats,
          "rows": rows, "median_ratio_wall": statistics.median(r["ratio_wall"] for r in rows),
          "median_ratio_cpu": statistics.median(r["ratio_cpu"] for r in rows), "target_ratio": 1.05,
          "environment": environment()}, args.out)


if __name__ == "__main__":
    main()
