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
``ofa.models.blocks.build_block(block)``) or a whole network. A manifest (YAML
or JSON) says which::

    device: zcu102-b4096            # device id of the profile
    space: ofa-mbv3-w1.0            # preset, space file or space dict
    precision: int8                 # optional (default int8), also backend_version, threads, batch_size, host
    entries:
      - {file: blk_stem.csv, block_key: "stem:resolution=224:in_channels=3:..."}
      - {file: blk_17.csv, block: {kind: mbconv, resolution: 28, ...}}
    # or, for a network profile:  - {file: net_a.csv, arch: {kernel_sizes: [...], ...}}

or, for blocks, the summaries are named after their blocks (a folder, no
manifest: :func:`summary_files`, :data:`~.common.NAME_PATTERNS`).

The latency of a summary is the sum over its DPU subgraphs of the Average Time
(:func:`summary_latency`: rows of one kernel on several cores are one subgraph,
a runs-weighted mean; rows of one kernel name on one core are pieces, summed).
Traced CPU functions are kept in the record (``cpu_functions``) but not added,
since vaitrace traces whichever functions the user asked for. ``min_ms`` /
``max_ms``, ``workload_gop`` and ``mem_io_mb`` (the measured DDR traffic) are
sums over the pieces; ``runs`` is the fewest runs of any subgraph; ``source``
keeps the file and every row with all its numbers. Several summaries of one
block or architecture are pooled as samples on request (``merge_duplicates``).
"""

from __future__ import annotations

from pathlib import Path

from ..dataset import Profile, block_record
from .common import (BlockOutsideSpaceError, ImportFormatError, Manifest, Problems, block_from_name,
                     check_distinct_files, check_repeats, load_space, network_record, outside_space, parse_number,
                     pooled_stats, profile_header, read_manifest, read_text, space_blocks, space_file, where,
                     write_profile)

SECTION = "DPU Summary"
REQUIRED = ("Kernel Name", "Number Of Runs", "CU Full Name", "Minimum Time (ms)", "Average Time (ms)",
            "Maximum Time (ms)")
OPTIONAL = ("Workload(GOP)", "DPU Performance(GOP/s)", "Mem IO(MB)", "Mem Bandwidth(MB/s)")
# The numeric columns of a DPU row, kept in the record (``rows``) under these keys; the
# per-inference totals of Workload and Mem IO (summed over the pieces) are usable as features.
ROW_NUMBERS = (("runs", "Number Of Runs", True), ("min_ms", "Minimum Time (ms)", False),
               ("avg_ms", "Average Time (ms)", False), ("max_ms", "Maximum Time (ms)", False),
               ("workload_gop", "Workload(GOP)", False), ("performance_gops", "DPU Performance(GOP/s)", False),
               ("mem_io_mb", "Mem IO(MB)", False), ("mem_bandwidth_mbs", "Mem Bandwidth(MB/s)", False))


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
    numbers = ROW_NUMBERS[:4]
    if cu.upper() != "CPU":  # traced CPU functions have only the first six columns
        numbers += tuple(item for item in ROW_NUMBERS[4:]
                         if item[1] in index and index[item[1]] < len(cells) and cells[index[item[1]]])
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
    """The latency of one summary and what it came from.

    vaitrace writes one row per (kernel, CU). Rows of one kernel name on *different* CUs are
    one DPU subgraph spread over cores: their Average Times are a runs-weighted mean. Rows
    of one kernel name on the *same* CU are different subgraphs that share a name (a block
    the compiler cut into pieces around CPU ops, each piece named after the xmodel): one
    inference runs every piece, so they are summed - the i-th row of a name on each CU is
    its i-th piece. The per-inference totals (latency, min, max, workload, memory traffic)
    add over pieces; every row is kept (``rows``) with all its numbers."""
    pieces: dict[tuple[str, int], list[dict]] = {}
    seen: dict[tuple[str, str], int] = {}
    for row in summary["dpu"]:
        index = seen.get((row["name"], row["cu"]), 0)
        seen[(row["name"], row["cu"])] = index + 1
        pieces.setdefault((row["name"], index), []).append(row)
    total = {"mean_ms": 0.0, "min_ms": 0.0, "max_ms": 0.0}
    sums = {"workload_gop": 0.0, "mem_io_mb": 0.0}
    present = {key: False for key in sums}
    runs = []
    for rows in pieces.values():
        count = sum(r["runs"] for r in rows)
        total["mean_ms"] += sum(r["runs"] * r["avg_ms"] for r in rows) / count
        total["min_ms"] += min(r["min_ms"] for r in rows)
        total["max_ms"] += max(r["max_ms"] for r in rows)
        for key in sums:  # a per-inference quantity: the same on every core, so the piece's first row
            if key in rows[0]:
                sums[key] += rows[0][key]
                present[key] = True
        runs.append(count)
    return {**total, "runs": int(min(runs)), "subgraphs": len(pieces),
            **{key: value for key, value in sums.items() if present[key]},
            "cpu_functions": {r["name"]: r["avg_ms"] for r in summary["cpu"]},
            "rows": [{k: v for k, v in r.items()} for r in summary["dpu"]],
            "lines": [r["line"] for r in summary["dpu"]]}


def summary_files(directory) -> list[tuple[Path, str]]:
    """Every ``*.csv`` under ``directory`` (sorted) with the name of the block it measured: the
    folder's name for a ``profile_summary.csv`` (vaitrace's own file name, one folder per
    block), else the file's stem."""
    directory = Path(directory)
    files = sorted(p for p in directory.rglob("*.csv") if p.is_file())
    if not files:
        raise ImportFormatError(f"{directory}: no .csv file in this folder or below; pass a folder of vaitrace "
                                f"profile_summary.csv files (one per block) or a manifest")
    return [(p, p.parent.name if p.stem == "profile_summary" else p.stem) for p in files]


def _named_measurements(directory: Path, space, skip_outside_space: bool, problems: Problems):
    """``(block, file, where)`` of every summary of a folder whose names follow a naming
    pattern (:data:`~.common.NAME_PATTERNS`), and the blocks outside the space skipped."""
    known = space_blocks(space)
    measurements, outside, files = [], [], []
    for path, name in summary_files(directory):
        named = f"{path.relative_to(directory)} (block name {name!r})"
        files.append((path, named))
        with problems.collect():
            try:
                measurements.append((block_from_name(name, space, known, named), path, named))
            except BlockOutsideSpaceError as error:
                outside.append(error)
    check_distinct_files(files, problems, "measurement file")  # one summary copied under two names
    return measurements, outside_space(outside, skip_outside_space, problems)


def vitis_ai_profile(source, merge_duplicates: bool = False, *, skip_outside_space: bool = False, space=None,
                     device: str | None = None, precision: str = "int8", backend_version: str = "unknown"
                     ) -> Profile:
    """The profile (in memory) of Vitis AI profiler summaries: ``source`` is a manifest (which
    names each file's block or architecture and the device, space and settings), or a folder
    of summaries named after their blocks (:func:`summary_files`, then ``space`` and ``device``
    are needed). Blocks outside the space are refused, all listed, unless
    ``skip_outside_space`` (then listed in the header's ``skipped``). The same block or
    architecture measured in several files is refused unless ``merge_duplicates`` (then
    pooled as samples, and listed in the header's ``merged``). Every record keeps where it
    came from: the file (relative to the manifest or folder) and every profiler row."""
    source = Path(source)
    problems = Problems()
    if source.is_dir():
        if space is None or device is None:
            raise ImportFormatError(f"{source} is a folder of summaries named after their blocks: the space and "
                                    f"the device id are needed (--space, --device), or pass a manifest")
        space = load_space(space)
        measurements, skipped = _named_measurements(source, space, skip_outside_space, problems)
        level, root, reads = "block", source, [("an input", source)]
        settings = {"device": device, "backend": "vitis-ai", "precision": precision,
                    "backend_version": backend_version}
        reads += [("the --space file", space_file(space))] if space_file(space) else []
    else:
        if space is not None or device is not None:
            raise ImportFormatError(f"{source} is a manifest: it names the space and device itself; leave out "
                                    f"--space and --device")
        manifest: Manifest = read_manifest(source, "vitis-ai", {"backend": "vitis-ai", "precision": "int8"},
                                           skip_outside_space)
        space, level, root, reads, skipped = manifest.space, manifest.level, source.parent, manifest.reads, \
            manifest.skipped
        measurements = [(e.value, e.file, f"{where(manifest.path, e.line)} ({e.file.name})")
                        for e in manifest.entries]
        settings = manifest.data
    groups: dict[str, dict] = {}
    for value, path, named in measurements:
        with problems.collect():
            latency = summary_latency(parse_profile_summary(path))
            key = value.key if level == "block" else value.to_json()
            group = groups.setdefault(key, {"value": value, "samples": [], "where": []})
            group["samples"].append((path, latency))
            group["where"].append(named)
    merged = check_repeats({key: group["where"] for key, group in groups.items()}, merge_duplicates,
                           "block" if level == "block" else "architecture", problems)
    problems.raise_any()
    records = [_record(group["value"], group["samples"], level, space, root) for group in groups.values()]
    header = profile_header(level, space, device=settings["device"], backend=settings["backend"],
                            backend_version=settings.get("backend_version", "unknown"),
                            threads=settings.get("threads", 1), batch_size=settings.get("batch_size", 1),
                            precision=settings["precision"], host=settings.get("host"),
                            protocol={"tool": "vaitrace profile_summary.csv",
                                      "latency": "sum over DPU subgraphs (pieces) of Average Time (ms); one "
                                                 "subgraph on several cores: runs-weighted mean",
                                      "statistics": "median, p10, p90 = the average; std over repeated files"},
                            source=source.name, merged=merged, **({"skipped": skipped} if skipped else {}))
    profile = Profile(header, records, None)
    profile.reads = reads
    return profile


def _record(value, samples: list[tuple[Path, dict]], level: str, space, root: Path) -> dict:
    """One record of the samples of one block or architecture: the pooled latency, the
    per-inference totals of every numeric profiler column, and every row it came from."""
    stats = pooled_stats([s["mean_ms"] for _, s in samples], [None] * len(samples), [s["runs"] for _, s in samples])
    first = samples[0][1]
    fields = {"min_ms": min(s["min_ms"] for _, s in samples), "max_ms": max(s["max_ms"] for _, s in samples),
              "dpu_subgraphs": first["subgraphs"], "cpu_functions": first["cpu_functions"],
              # the block's memory traffic and work per inference (the same block in every file)
              **{key: first[key] for key in ("workload_gop", "mem_io_mb") if key in first},
              "source": [{"file": _relative(path, root), "lines": s["lines"], "rows": s["rows"]}
                         for path, s in samples]}
    if level == "block":
        return block_record(value, stats, **fields)
    return network_record(value, space, stats, **fields)


def _relative(path: Path, root: Path) -> str:
    """``path`` as the user named it: relative to the manifest's or the folder's directory
    (every vaitrace summary is called profile_summary.csv: the name alone says nothing)."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def import_vitis_ai(source, out, *, overwrite: bool = False, merge_duplicates: bool = False,
                    on_implausible: str = "warn", skip_outside_space: bool = False, space=None,
                    device: str | None = None, precision: str = "int8", backend_version: str = "unknown") -> Profile:
    """Write the profile of Vitis AI profiler summaries (a manifest, or a folder of summaries
    named after their blocks: :func:`vitis_ai_profile`), atomic and validated; ``out`` may be
    none of the files the import reads (the manifest, the summaries, a space file)."""
    profile = vitis_ai_profile(source, merge_duplicates, skip_outside_space=skip_outside_space, space=space,
                               device=device, precision=precision, backend_version=backend_version)
    reads = profile.reads
    if Path(source).is_dir():
        reads = reads + [("a summary in the input folder", path) for path, _ in summary_files(source)]
    return write_profile(out, profile.header, profile.records, overwrite=overwrite, reads=reads,
                         on_implausible=on_implausible)
