"""Vitis AI profiler (``vaitrace``) summaries of DPU runs.

``vaitrace`` writes ``profile_summary.csv``: a ``Profile Summary`` section
(generation time, XRT version, target devices: ``key: value`` lines), a blank
line, then the ``DPU Summary`` section - a title line, the header
``Kernel Name,Number Of Runs,CU Full Name,Minimum Time (ms),Average Time (ms),
Maximum Time (ms),Workload(GOP),DPU Performance(GOP/s),Mem IO(MB),Mem Bandwidth(MB/s),``
and one row per (DPU subgraph, DPU core), every line ending with a comma. Traced
CPU functions follow in the same section with ``CPU`` as the CU name and only
the first six columns.

One summary measures one thing: a block (an xmodel compiled from
``ofa.models.blocks.build_block(block)``) or a whole network. The manifest
(YAML or JSON) says which::

    device: zcu102-b4096            # device id of the profile
    space: ofa-mbv3-w1.0            # preset, space file or space dict
    precision: int8                 # optional (default int8), also backend_version, threads, batch_size, host
    entries:
      - {file: blk_stem.csv, block_key: "stem:resolution=224:in_channels=3:..."}
      - {file: blk_17.csv, block: {kind: mbconv, resolution: 28, ...}}
    # or, for a network profile:  - {file: net_a.csv, arch: {kernel_sizes: [...], ...}}

The latency of a summary is the sum over its DPU subgraphs of the Average Time
(per subgraph, the runs-weighted mean over DPU cores); traced CPU functions are
kept in the record (``cpu_functions``) but not added, since vaitrace traces
whichever functions the user asked for. ``min_ms`` / ``max_ms`` are the sums of
the subgraphs' minima and maxima; ``runs`` is the fewest runs of any subgraph.
Several summaries of one block or architecture are pooled as samples.
"""

from __future__ import annotations

from pathlib import Path

from ..dataset import Profile, block_record
from .common import (ImportFormatError, Manifest, Problems, check_repeats, network_record, parse_number,
                     pooled_stats, profile_header, read_manifest, read_text, where, write_profile)

SECTION = "DPU Summary"
REQUIRED = ("Kernel Name", "Number Of Runs", "CU Full Name", "Minimum Time (ms)", "Average Time (ms)",
            "Maximum Time (ms)")
OPTIONAL = ("Workload(GOP)", "DPU Performance(GOP/s)", "Mem IO(MB)", "Mem Bandwidth(MB/s)")


def _cells(line: str) -> list[str]:
    cells = [c.strip() for c in line.split(",")]
    return cells[:-1] if cells and cells[-1] == "" else cells


def parse_profile_summary(path) -> dict:
    """The ``DPU Summary`` of a ``profile_summary.csv``: ``{"dpu": [rows], "cpu": [rows], "meta": {...}}``."""
    path = Path(path)
    lines = read_text(path, "Vitis AI profile summary").splitlines()
    titles = [(n, line.strip().rstrip(",").strip()) for n, line in enumerate(lines, start=1)
              if line.strip() and "," not in line.strip().rstrip(",") and ":" not in line]
    start = next((n for n, title in titles if title == SECTION), None)
    if start is None:
        found = [title for _, title in titles]
        raise ImportFormatError(f"{path}: no {SECTION!r} section (sections found: {found or 'none'}); pass the "
                                f"profile_summary.csv that vaitrace writes (not vitis_ai_profile.csv or "
                                f"vart_trace.csv)")
    meta = {}
    for line in lines[:start - 1]:
        key, sep, value = line.partition(":")
        if sep and "," not in key:
            meta[key.strip()] = value.strip()
    header_line = start + 1
    while header_line <= len(lines) and not lines[header_line - 1].strip():
        header_line += 1
    if header_line > len(lines):
        raise ImportFormatError(f"{where(path, start)}: the {SECTION} section has no header line")
    header = _cells(lines[header_line - 1])
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ImportFormatError(f"{where(path, header_line)}: the {SECTION} header lacks column(s) {missing}; "
                                f"expected {list(REQUIRED + OPTIONAL)}")
    index = {name: i for i, name in enumerate(header)}
    dpu, cpu = [], []
    problems = Problems()
    for number in range(header_line + 1, len(lines) + 1):
        line = lines[number - 1]
        if not line.strip():
            break  # the section ends at a blank line
        with problems.collect():
            row = _summary_row(_cells(line), index, path, number)
            (cpu if row["cu"].upper() == "CPU" else dpu).append(row)
    problems.raise_any()
    if not dpu:
        raise ImportFormatError(f"{where(path, header_line)}: the {SECTION} section has no DPU subgraph row "
                                f"(only CPU functions); was the DPU run traced?")
    return {"dpu": dpu, "cpu": cpu, "meta": meta}


def _summary_row(cells: list[str], index: dict, path, number: int) -> dict:
    """One row of the DPU Summary, every number checked (all its problems at once)."""
    if len(cells) < len(REQUIRED) or max(index[c] for c in REQUIRED) >= len(cells):
        raise ImportFormatError(f"{where(path, number)}: {len(cells)} cells; a {SECTION} row has at least "
                                f"{len(REQUIRED)} ({', '.join(REQUIRED)})")
    problems = Problems()
    cu = cells[index["CU Full Name"]]
    row = {"name": cells[index["Kernel Name"]], "cu": cu, "line": number}
    numbers = [("runs", "Number Of Runs", True), ("min_ms", "Minimum Time (ms)", False),
               ("avg_ms", "Average Time (ms)", False), ("max_ms", "Maximum Time (ms)", False)]
    if cu.upper() != "CPU":
        numbers += [(key, column, False) for key, column in (("workload_gop", "Workload(GOP)"),
                                                             ("mem_io_mb", "Mem IO(MB)"))
                    if column in index and index[column] < len(cells) and cells[index[column]]]
    for key, column, integer in numbers:
        with problems.collect():
            row[key] = parse_number(cells[index[column]], path, number, column, positive=True,
                                    allow_zero=key not in ("runs", "avg_ms"), integer=integer)
    if not problems and not row["min_ms"] <= row["avg_ms"] <= row["max_ms"]:
        problems.add(f"{where(path, number)}: Minimum {row['min_ms']:g} <= Average {row['avg_ms']:g} <= Maximum "
                     f"{row['max_ms']:g} (ms) does not hold: the columns are shifted or the row is corrupt")
    problems.raise_any()
    return row


def summary_latency(summary: dict) -> dict:
    """The latency of one summary (see the module docstring) and what it came from."""
    by_subgraph: dict[str, list[dict]] = {}
    for row in summary["dpu"]:
        by_subgraph.setdefault(row["name"], []).append(row)
    mean = low = high = 0.0
    runs = []
    for rows in by_subgraph.values():
        total = sum(r["runs"] for r in rows)
        mean += sum(r["runs"] * r["avg_ms"] for r in rows) / total
        low += min(r["min_ms"] for r in rows)
        high += max(r["max_ms"] for r in rows)
        runs.append(total)
    workload = sum(r.get("workload_gop", 0.0) for r in summary["dpu"] if r is by_subgraph[r["name"]][0])
    return {"mean_ms": mean, "min_ms": low, "max_ms": high, "runs": int(min(runs)), "subgraphs": len(by_subgraph),
            "workload_gop": workload,
            "cpu_functions": {r["name"]: r["avg_ms"] for r in summary["cpu"]},
            "lines": [r["line"] for r in summary["dpu"]]}


def vitis_ai_profile(manifest_path, merge_duplicates: bool = False) -> Profile:
    """The profile a manifest of ``profile_summary.csv`` files describes (in memory). The same
    block or architecture in several entries is refused unless ``merge_duplicates`` (then
    pooled as samples, and listed in the header's ``merged``)."""
    manifest: Manifest = read_manifest(manifest_path, "vitis-ai", {"backend": "vitis-ai", "precision": "int8"})
    groups: dict[str, dict] = {}
    problems = Problems()
    for entry in manifest.entries:
        with problems.collect():
            latency = summary_latency(parse_profile_summary(entry.file))
            key = entry.value.key if entry.target == "block" else entry.value.to_json()
            group = groups.setdefault(key, {"value": entry.value, "samples": [], "where": []})
            group["samples"].append((entry.file, latency))
            group["where"].append(f"{where(manifest.path, entry.line)} ({entry.file.name})")
    merged = check_repeats({key: group["where"] for key, group in groups.items()}, merge_duplicates,
                           "block" if manifest.level == "block" else "architecture", problems)
    problems.raise_any()
    records = []
    for group in groups.values():
        samples = group["samples"]
        stats = pooled_stats([s["mean_ms"] for _, s in samples], [None] * len(samples),
                             [s["runs"] for _, s in samples])
        fields = {"min_ms": min(s["min_ms"] for _, s in samples), "max_ms": max(s["max_ms"] for _, s in samples),
                  "dpu_subgraphs": samples[0][1]["subgraphs"], "workload_gop": samples[0][1]["workload_gop"],
                  "cpu_functions": samples[0][1]["cpu_functions"],
                  "source": [{"file": str(f.name), "lines": s["lines"]} for f, s in samples]}
        if manifest.level == "block":
            records.append(block_record(group["value"], stats, **fields))
        else:
            records.append(network_record(group["value"], manifest.space, stats, **fields))
    data = manifest.data
    header = profile_header(manifest.level, manifest.space, device=data["device"], backend=data["backend"],
                            backend_version=data.get("backend_version", "unknown"),
                            threads=data.get("threads", 1), batch_size=data.get("batch_size", 1),
                            precision=data["precision"], host=data.get("host"),
                            protocol={"tool": "vaitrace profile_summary.csv",
                                      "latency": "sum over DPU subgraphs of Average Time (ms)",
                                      "statistics": "median, p10, p90 = the average; std over repeated files"},
                            source=Path(manifest_path).name, merged=merged)
    profile = Profile(header, records, None)
    profile.reads = manifest.reads
    return profile


def import_vitis_ai(manifest_path, out, *, overwrite: bool = False, merge_duplicates: bool = False,
                    on_implausible: str = "warn") -> Profile:
    """Write the profile of a manifest of Vitis AI profiler summaries (atomic, validated); ``out``
    may be none of the files the import reads (the manifest, the summaries, a space file)."""
    profile = vitis_ai_profile(manifest_path, merge_duplicates)
    return write_profile(out, profile.header, profile.records, overwrite=overwrite, reads=profile.reads,
                         on_implausible=on_implausible)
