#!/usr/bin/env python
"""Depthwise-conv training on small maps: oneDNN's weight gradient versus the
package's tap-by-tap one (``ofa.models.layers.depthwise_conv2d``).

Two measurements, each alternating the two paths in one run (median process
CPU time, one thread):

1. one depthwise conv (forward + backward, channels last, batch 32) for the
   shapes a small MobileNetV3 meets (7x7 and 5x5 kernels on 2x2-16x16 maps);
2. one training step of the quickstart's supernet (``mbv3-small-cluttered-digits``:
   the largest subnet and one random subnet at a random resolution, batch 32 =
   one of two torchrun processes' share of 64).

The plain path is the same code with ``SMALL_MAP_PIXELS = 0`` (every map counts
as large, so the conv is ``F.conv2d`` with autograd's backward).

    python benchmarks/depthwise_backward.py [--repeats 15] [--out benchmarks/results/depthwise_backward.json]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
import torch.nn.functional as F

from _timing import environment, save, time_alternately

import ofa.models.layers as layers
from ofa.supernets import create_supernet
from ofa.training import load_yaml
from ofa.training.progressive_shrinking import check_config

SHAPES = ((384, 2, 7), (288, 3, 7), (192, 4, 7), (144, 6, 7), (192, 3, 5), (144, 8, 7), (96, 16, 7))
BATCH = 32


def with_pixels(limit: int, fn):
    def run():
        saved, layers.SMALL_MAP_PIXELS = layers.SMALL_MAP_PIXELS, limit
        try:
            fn()
        finally:
            layers.SMALL_MAP_PIXELS = saved
    return run


def conv_case(channels: int, size: int, kernel: int):
    x = torch.randn(BATCH, channels, size, size).to(memory_format=torch.channels_last).requires_grad_()
    weight = torch.randn(channels, 1, kernel, kernel, requires_grad=True)

    def step():
        layers.depthwise_conv2d(x, weight).sum().backward()
    return step


def training_step():
    config, space, _ = check_config(load_yaml("mbv3-small-cluttered-digits"))
    model = create_supernet(space, dropout=0.1).to(memory_format=torch.channels_last)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    labels = torch.randint(0, 10, (BATCH,))

    def step():
        resolution = int(rng.choice(space.resolutions))
        images = torch.randn(BATCH, space.in_channels, resolution, resolution).to(memory_format=torch.channels_last)
        optimizer.zero_grad(set_to_none=True)
        for arch in (space.parse({**space.largest().to_dict(), "resolution": resolution}),
                     space.sample(int(rng.integers(2**31)))):
            arch = space.parse({**arch.to_dict(), "resolution": resolution})
            model.set_active(arch)
            F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", default="benchmarks/results/depthwise_backward.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    convs = []
    for channels, size, kernel in SHAPES:
        step = conv_case(channels, size, kernel)
        timed = time_alternately({"onednn": with_pixels(0, step), "tap_by_tap": with_pixels(layers.SMALL_MAP_PIXELS,
                                                                                               step)}, args.repeats)
        row = {"channels": channels, "map": size, "kernel": kernel,
               **{f"{k}_cpu_ms": round(v["cpu_ms"], 3) for k, v in timed.items()},
               "speedup": round(timed["onednn"]["cpu_ms"] / timed["tap_by_tap"]["cpu_ms"], 2),
               "path": "tap by tap" if size * size <= layers.SMALL_MAP_PIXELS else "oneDNN (large map)"}
        convs.append(row)
        print(row, flush=True)
    step = training_step()
    timed = time_alternately({"onednn": with_pixels(0, step), "tap_by_tap": with_pixels(layers.SMALL_MAP_PIXELS,
                                                                                           step)}, args.repeats)
    training = {**{f"{k}_cpu_ms": round(v["cpu_ms"], 1) for k, v in timed.items()},
                "speedup": round(timed["onednn"]["cpu_ms"] / timed["tap_by_tap"]["cpu_ms"], 2)}
    print("training step:", training, flush=True)
    save({"benchmark": "depthwise_backward", "command": "python benchmarks/depthwise_backward.py",
          "batch": BATCH, "threads": 1, "small_map_pixels": layers.SMALL_MAP_PIXELS, "convs": convs,
          "training_step": training, "environment": environment()}, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
