"""Shared timing helpers for benchmarks: measure alternatives alternately in
one run, so machine noise hits them alike, and report medians and ratios."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch


def environment() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (None, None, None)
    return {"torch": torch.__version__, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "load_average_1m": load[0], "machine": platform.machine(), "python": platform.python_version()}


def time_alternately(candidates: dict[str, Callable[[], None]], repeats: int, warmup: int = 2) -> dict:
    """Run each candidate ``warmup`` times, then ``repeats`` rounds in which every
    candidate runs once (order rotated each round). Returns per-candidate median
    wall time and median process CPU time in milliseconds."""
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    wall = {name: [] for name in names}
    cpu = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            candidates[name]()
            cpu[name].append((time.process_time() - start_cpu) * 1e3)
            wall[name].append((time.perf_counter() - start_wall) * 1e3)
    return {name: {"wall_ms": statistics.median(wall[name]), "cpu_ms": statistics.median(cpu[name])}
            for name in names}


def save(result: dict, path: str | os.PathLike) -> None:
    from ofa.io import atomic_write_json

    atomic_write_json(Path(path), result)
    print(json.dumps(result, indent=2))
