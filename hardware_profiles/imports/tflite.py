"""TensorFlow Lite ``benchmark_model`` output, whole networks or per block.

Run on the phone (``adb shell``)::

    benchmark_model --graph=net_a.tflite --num_threads=1 --enable_op_profiling=true > net_a.txt

The output ends with ``Inference timings in us: Init: ..., First inference:
..., Warmup (avg): ..., Inference (avg): X`` (older versions: ``Average inference
timings in us: Warmup: ..., Init: ..., Inference: X``), preceded by the
``count=N first=.. curr=.. min=.. max=.. avg=.. std=..`` line of the regular
runs (microseconds). With ``--enable_op_profiling=true`` it also prints, under
``Operator-wise Profiling Info for Regular Benchmark Runs:`` (after an
initialization table in recent versions), the ``Run Order`` table: one
tab-separated row per op with ``[node type]``, ``[avg ms]`` and ``[Name]``
columns (older versions add ``[start]``).

The manifest (YAML or JSON) names the architecture of each file::

    device: pixel7-tflite-1t
    space: mbv3-small
    level: network          # or block
    backend_version: "2.16" # optional, also precision (default fp32), threads, batch_size, host
    entries:
      - {file: net_a.txt, arch: {kernel_sizes: [...], ...}}

``level: network``: one record per architecture, latency = ``Inference (avg)``
(std, min, max and runs from the ``count=`` line where present).

``level: block`` (MobileNetV3 spaces): each op of the ``Run Order`` table is
attributed to a block of the architecture by its name, as our export names
them (``ofa.export``; names survive conversion to TFLite in the op/tensor
names): a name containing ``stem`` -> the stem, ``first_block`` -> the first
block, ``blocks.K`` (or ``blocks/K``, ``blocks_K``) -> the K-th elastic block
that runs (``space.blocks(arch)`` order), ``final_expand``, ``feature_mix`` or
``classifier`` -> the head. An op whose name names no block (a reshape, a
pooling op without a module name) belongs to the block of the op before it.
A block's latency is the sum of its ops' ``avg ms``; the same block in several
files or networks is pooled as samples. If no op name names a block (a
delegate that fuses the graph into one node, e.g. XNNPACK), the import stops
with a named error: import at ``level: network`` or profile with
``--use_xnnpack=false``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..dataset import Profile, block_record
from .common import LEVELS  # noqa: F401 - re-exported: tflite.LEVELS as before
from .common import (ImportFormatError, Manifest, Problems, check_repeats, network_record, parse_number,
                     pooled_stats, profile_header, read_manifest, read_text, single_stats, where, write_profile)
_TIMINGS_NEW = re.compile(r"Inference timings in us:.*?Inference \(avg\):\s*([0-9.eE+]+)")
_TIMINGS_OLD = re.compile(r"Average inference timings in us:.*?Inference:\s*([0-9.eE+]+)")
_COUNT = re.compile(r"(?:^|\s)count=(\d+)\s+first=\S+\s+curr=\S+\s+min=([0-9.eE+]+)\s+max=([0-9.eE+]+)\s+"
                    r"avg=([0-9.eE+]+)\s+std=([0-9.eE+]+)")
_BLOCK = re.compile(r"(?<![A-Za-z0-9])blocks[./_:](\d+)(?![0-9])")
_HEAD = re.compile(r"final_expand|feature_mix|classifier")


def parse_timings(path) -> dict:
    """Whole-network numbers of a ``benchmark_model`` output (ms): mean and, where
    printed, std, min, max and runs of the regular runs."""
    path = Path(path)
    lines = read_text(path, "benchmark_model output").splitlines()
    timing_line = None
    for number, line in enumerate(lines, start=1):
        match = _TIMINGS_NEW.search(line) or _TIMINGS_OLD.search(line)
        if match:
            timing_line = number
            mean_us = parse_number(match.group(1), path, number, "Inference (avg)", positive=True, allow_zero=False)
    if timing_line is None:
        raise ImportFormatError(f"{path}: no 'Inference timings in us: ... Inference (avg): X' line; pass the "
                                f"complete output of benchmark_model")
    out = {"mean_ms": mean_us / 1000.0, "line": timing_line}
    for number in range(timing_line - 1, 0, -1):  # the regular runs' count= line comes last before the timings
        line = lines[number - 1]
        match = _COUNT.search(line)
        if match and "Timings (microseconds)" not in line:
            problems = Problems()
            values = {}
            for key, group, what in (("runs", 1, "count"), ("min_ms", 2, "min"), ("max_ms", 3, "max"),
                                     ("std_ms", 5, "std")):
                with problems.collect():
                    values[key] = parse_number(match.group(group), path, number, what, positive=True,
                                               allow_zero=key != "runs", integer=key == "runs")
            problems.raise_any()
            out.update(runs=values["runs"], min_ms=values["min_ms"] / 1000, max_ms=values["max_ms"] / 1000,
                       std_ms=values["std_ms"] / 1000)
            break
    return out


def parse_op_profile(path) -> list[dict]:
    """The ``Run Order`` table of the regular runs: ``[{type, avg_ms, name, line}]`` in run order."""
    path = Path(path)
    lines = read_text(path, "benchmark_model output").splitlines()
    tables = [n for n, line in enumerate(lines, start=1) if "Run Order" in line and "====" in line]
    marker = next((n for n, line in enumerate(lines, start=1)
                   if "Operator-wise Profiling Info for Regular Benchmark Runs" in line), None)
    if marker is not None:
        tables = [n for n in tables if n > marker]
    elif any("Profiling Info for Benchmark Initialization" in line for line in lines):
        tables = tables[1:]  # the first table is the initialization's
    if not tables:
        raise ImportFormatError(f"{path}: no 'Run Order' op profile of the regular runs; run benchmark_model with "
                                f"--enable_op_profiling=true (or import at level network)")
    start = tables[0]
    header_number = start + 1
    if header_number > len(lines):
        raise ImportFormatError(f"{where(path, start)}: the Run Order table has no header")
    header = [c.strip() for c in lines[header_number - 1].split("\t") if c.strip()]
    missing = [c for c in ("[node type]", "[avg ms]", "[Name]") if c not in header]
    if missing:
        raise ImportFormatError(f"{where(path, header_number)}: the Run Order header lacks {missing}; got {header}")
    index = {name: i for i, name in enumerate(header)}
    ops = []
    problems = Problems()
    for number in range(header_number + 1, len(lines) + 1):
        line = lines[number - 1]
        if not line.strip() or line.strip().startswith("="):
            break
        cells = [c.strip() for c in line.split("\t") if c.strip()]
        if len(cells) < len(header):
            problems.add(f"{where(path, number)}: {len(cells)} tab-separated cells, the header has {len(header)}")
            continue
        with problems.collect():
            ops.append({"type": cells[index["[node type]"]], "name": cells[index["[Name]"]], "line": number,
                        "avg_ms": parse_number(cells[index["[avg ms]"]], path, number, "[avg ms]", positive=True)})
    problems.raise_any()
    if not ops:
        raise ImportFormatError(f"{where(path, start)}: the Run Order table has no op rows")
    return ops


def _owner(name: str, elastic: int) -> int | None:
    """Index into ``space.blocks(arch)`` of the block an op name names, or None."""
    match = _BLOCK.search(name)
    if match:
        k = int(match.group(1))
        return 2 + k if k < elastic else -1  # -1: names a block the architecture does not have
    if "first_block" in name:
        return 1
    if _HEAD.search(name):
        return 2 + elastic
    if re.search(r"(?<![A-Za-z0-9])stem", name):
        return 0
    return None


def op_block_latencies(ops: list[dict], blocks: list, path) -> list[tuple[object, float, int]]:
    """``(block, latency_ms, ops)`` for each block of a network, from its op profile."""
    elastic = len(blocks) - 3  # stem, first block, ..., head
    totals = [0.0] * len(blocks)
    counts = [0] * len(blocks)
    owner, named = 0, 0
    for op in ops:
        found = _owner(op["name"], elastic)
        if found == -1:
            raise ImportFormatError(f"{where(path, op['line'])}: op {op['name']!r} names block "
                                    f"{_BLOCK.search(op['name']).group(1)}, but the architecture runs {elastic} "
                                    f"elastic blocks: is this the output of another architecture?")
        if found is not None:
            owner, named = found, named + 1
        totals[owner] += op["avg_ms"]
        counts[owner] += 1
    if not named:
        raise ImportFormatError(f"{path}: no op name names a block (stem, first_block, blocks.K, final_expand, ...): "
                                f"a delegate fused the graph, or the model was not converted from our export; "
                                f"import at level network, or profile with --use_xnnpack=false")
    empty = [name for (name, _), count in zip(blocks, counts) if count == 0]
    if empty:
        raise ImportFormatError(f"{path}: no op was attributed to block(s) {empty}; the op names do not follow "
                                f"the exported module names (see docs/imports.md)")
    free = [name for (name, _), total in zip(blocks, totals) if total <= 0]
    if free:
        raise ImportFormatError(f"{path}: the ops of block(s) {free} add up to 0 ms: an imported measurement "
                                f"must be > 0 (a profile printed with too few decimals, or a block whose ops a "
                                f"delegate ran elsewhere)")
    return [(block, total, count) for (_, block), total, count in zip(blocks, totals, counts)]


def tflite_profile(manifest_path, merge_duplicates: bool = False) -> Profile:
    """The profile a manifest of ``benchmark_model`` outputs describes (in memory). The same
    architecture in several entries is refused unless ``merge_duplicates``; at level block,
    a block that several networks run is always pooled (that is how blocks are measured)."""
    manifest: Manifest = read_manifest(manifest_path, "tflite-benchmark",
                                       {"backend": "tflite", "precision": "fp32", "level": "network"})
    data, space = manifest.data, manifest.space
    level = data["level"]
    bad = [e for e in manifest.entries if e.target != "arch"]
    if bad:
        raise ImportFormatError(f"{where(manifest_path, bad[0].line)}: a benchmark_model output measures a "
                                f"network: give its 'arch' (with level: block, ops are split into its blocks)")
    if level == "block" and space.type_name != "mobilenetv3":
        raise ImportFormatError(f"{manifest_path}: level block maps op names to MobileNetV3 blocks; the space is "
                                f"{space.type_name}: import at level network")
    groups: dict[str, dict] = {}
    problems = Problems()
    archs: dict[str, list[str]] = {}
    for entry in manifest.entries:
        archs.setdefault(entry.value.to_json(), []).append(f"{where(manifest.path, entry.line)} ({entry.file.name})")
        with problems.collect():
            if level == "network":
                timing = parse_timings(entry.file)
                stats = single_stats(timing["mean_ms"], timing.get("std_ms"), timing.get("runs"))
                group = groups.setdefault(entry.value.to_json(), {"value": entry.value, "samples": []})
                group["samples"].append((stats, {"file": entry.file.name, "line": timing["line"],
                                                 **{k: timing[k] for k in ("min_ms", "max_ms") if k in timing}}))
            else:
                ops = parse_op_profile(entry.file)
                for block, total, count in op_block_latencies(ops, space.blocks(entry.value), entry.file):
                    group = groups.setdefault(block.key, {"value": block, "samples": []})
                    group["samples"].append((single_stats(total), {"file": entry.file.name, "ops": count}))
    merged = check_repeats(archs, merge_duplicates, "architecture", problems)
    problems.raise_any()
    records = []
    for group in groups.values():
        samples = group["samples"]
        stats = pooled_stats([s["mean"] for s, _ in samples], [s["std"] if len(samples) == 1 else None
                                                               for s, _ in samples],
                             [s["runs"] for s, _ in samples])
        fields = {"source": [source for _, source in samples]}
        if level == "block":
            records.append(block_record(group["value"], stats, **fields))
        else:
            records.append(network_record(group["value"], space, stats, **fields))
    header = profile_header(level, space, device=data["device"], backend=data["backend"],
                            backend_version=data.get("backend_version", "unknown"), threads=data.get("threads", 1),
                            batch_size=data.get("batch_size", 1), precision=data["precision"], host=data.get("host"),
                            protocol={"tool": "TFLite benchmark_model",
                                      "latency": ("Inference (avg)" if level == "network"
                                                  else "sum of the block's ops' avg ms (Run Order table)")},
                            source=Path(manifest_path).name, merged=merged)
    profile = Profile(header, records, None)
    profile.reads = manifest.reads
    return profile


def import_tflite_benchmark(manifest_path, out, *, overwrite: bool = False, merge_duplicates: bool = False,
                            on_implausible: str = "warn") -> Profile:
    """Write the profile of a manifest of ``benchmark_model`` outputs (atomic, validated); ``out``
    may be none of the files the import reads."""
    profile = tflite_profile(manifest_path, merge_duplicates)
    return write_profile(out, profile.header, profile.records, overwrite=overwrite, reads=profile.reads,
                         on_implausible=on_implausible)
