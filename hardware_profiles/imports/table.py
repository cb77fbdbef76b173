"""Latency tables (CSV/TSV): one row per measured architecture or block.

The user names the latency column (``a+b`` sums columns, e.g. HAT's
``latency_mean_encoder+latency_mean_decoder``), optionally a standard-deviation
column (``a+b``: root sum of squares, independent parts) and a runs column,
and how each row names what it measured:

* ``arch_column``: a cell holding the architecture JSON (``{"kernel_sizes": ...}``
  or ``{"arch": {...}}``) -> a network profile;
* gene columns: one column per decision, named after the architecture's fields
  (``kernel_sizes.0`` ... ``resolution``; see
  :func:`predictors.tabular.gene_column_names` - the same names), holding the
  decision's value, empty for a block or layer that does not run -> a
  network profile (used when every gene column is present);
* ``block_column``: a cell holding a block key (``BlockSpec.key``) -> a block
  profile;
* free feature columns (:func:`table_features`): not a profile; fit a
  predictor on them directly (``tools/fit_predictor.py --profile table.csv
  --feature-columns ...``).

Rows that measure the same architecture (block) are samples of it: one record
with their statistics. Blank lines and lines starting with ``#`` are skipped.
Every problem is an :class:`ImportFormatError` naming the file and line.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ofa.errors import ConfigError
from ofa.spaces import SearchSpace
from ofa.spaces.columns import gene_column_names, genes_from_values

from ..dataset import Profile, block_record
from .common import (ImportFormatError, load_space, network_record, parse_arch, parse_block, parse_number,
                     pooled_stats, profile_header, read_text, space_blocks, where, write_profile)

TABLE_SUFFIXES = (".csv", ".tsv")
UNITS = {"ms": 1.0, "us": 1e-3, "s": 1e3}


@dataclass
class LatencyTable:
    """A parsed table: header names, rows of cells, and the line of each row."""

    path: Path
    columns: tuple[str, ...]
    rows: list[list[str]]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.rows)

    def index(self, name: str, what: str = "column") -> int:
        if name not in self.columns:
            import difflib

            close = difflib.get_close_matches(name, self.columns, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ImportFormatError(f"{where(self.path, 1)}: no {what} {name!r}{hint}; the header has "
                                    f"{list(self.columns)}")
        return self.columns.index(name)

    def cells(self, name: str, what: str = "column") -> list[str]:
        j = self.index(name, what)
        return [row[j] for row in self.rows]

    def numbers(self, spec: str, what: str, *, positive: bool = True, allow_zero: bool = False,
                combine: str = "sum") -> np.ndarray:
        """The numbers of a column, or of ``a+b`` (summed, or ``combine="rss"``: root sum of squares)."""
        parts = [part.strip() for part in spec.split("+")]
        if not all(parts):
            raise ImportFormatError(f"{what} {spec!r}: give a column name or names joined by '+'")
        indices = [self.index(part, f"{what} column") for part in parts]
        out = np.empty(len(self.rows))
        for r, (row, line) in enumerate(zip(self.rows, self.lines)):
            values = []
            for part, j in zip(parts, indices):
                cell = row[j].strip()
                if cell == "" or cell.lower() in ("nan", "na", "n/a", "null", "none"):
                    raise ImportFormatError(f"{where(self.path, line)}: {what} column {part!r} is "
                                            f"{cell or 'empty'}; every row needs a finite number")
                values.append(parse_number(cell, self.path, line, f"{what} column {part!r}", positive=positive,
                                           allow_zero=allow_zero))
            out[r] = sum(values) if combine == "sum" else math.sqrt(sum(v * v for v in values))
        return out


def is_table(path) -> bool:
    """Whether ``path`` looks like a latency table (.csv/.tsv, or text whose first line is not JSON)."""
    path = Path(path)
    if path.suffix.lower() in TABLE_SUFFIXES:
        return True
    if path.suffix.lower() in (".jsonl", ".json"):
        return False
    try:
        with open(path, encoding="utf-8-sig") as handle:
            first = handle.readline().strip()
    except (OSError, UnicodeDecodeError):
        return False
    return bool(first) and not first.startswith("{") and ("," in first or "\t" in first)


def read_table(path, delimiter: str | None = None) -> LatencyTable:
    """Parse a CSV (``,`` or ``;``) or TSV file; the first non-comment line is the header."""
    path = Path(path)
    text = read_text(path, "latency table")
    numbered = [(n, line) for n, line in enumerate(text.splitlines(), start=1)
                if line.strip() and not line.lstrip().startswith("#")]
    if not numbered:
        raise ImportFormatError(f"{path} holds no rows: a latency table starts with a header line")
    header_line = numbered[0][1]
    if delimiter is None:
        delimiter = "\t" if (path.suffix.lower() == ".tsv" or "\t" in header_line) else (
            ";" if header_line.count(";") > header_line.count(",") else ",")
    rows, lines = [], []
    for number, line in numbered:
        try:
            cells = next(csv.reader(io.StringIO(line), delimiter=delimiter, skipinitialspace=True))
        except csv.Error as error:
            raise ImportFormatError(f"{where(path, number)}: not a valid CSV line ({error})") from None
        rows.append(cells)
        lines.append(number)
    columns = tuple(c.strip() for c in rows[0])
    if any(not c for c in columns):
        raise ImportFormatError(f"{where(path, lines[0])}: the header has an empty column name: {list(columns)}")
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise ImportFormatError(f"{where(path, lines[0])}: the header repeats column(s) {duplicated}")
    body, body_lines = [], []
    for cells, number in zip(rows[1:], lines[1:]):
        if len(cells) == len(columns) + 1 and not cells[-1].strip():
            cells = cells[:-1]  # a trailing delimiter
        if len(cells) != len(columns):
            raise ImportFormatError(f"{where(path, number)}: {len(cells)} cells, but the header has "
                                    f"{len(columns)} columns")
        body.append(cells)
        body_lines.append(number)
    if not body:
        raise ImportFormatError(f"{path}: the table has a header but no rows")
    return LatencyTable(path, columns, body, body_lines)


def _scale(unit: str) -> float:
    if unit not in UNITS:
        raise ImportFormatError(f"latency unit {unit!r} unknown; allowed: {list(UNITS)}")
    return UNITS[unit]


def table_latencies(table: LatencyTable, latency: str, std: str | None = None, runs: str | None = None,
                    unit: str = "ms") -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(latency_ms, std_ms or None, runs or None)`` per row."""
    scale = _scale(unit)
    y = table.numbers(latency, "latency", allow_zero=False) * scale
    s = table.numbers(std, "std", allow_zero=True, combine="rss") * scale if std else None
    n = None
    if runs:
        n = table.numbers(runs, "runs", allow_zero=False)
        bad = [line for line, v in zip(table.lines, n) if v != round(v)]
        if bad:
            raise ImportFormatError(f"{where(table.path, bad[0])}: runs must be a whole number")
    return y, s, n


def table_features(table: LatencyTable, features: Sequence[str], latency: str,
                   unit: str = "ms") -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)``: the named feature columns (any finite numbers) and the latencies (ms)."""
    if not features:
        raise ImportFormatError("name at least one feature column")
    X = np.column_stack([table.numbers(name, "feature", positive=False) for name in features])
    y, _, _ = table_latencies(table, latency, unit=unit)
    return X, y


def _arch_of_gene_row(space: SearchSpace, table: LatencyTable, names, r: int):
    """The architecture of row ``r`` from its gene columns (values; empty = does not run)."""
    values = []
    for name in names:
        cell = table.rows[r][table.index(name)].strip()
        values.append(float("nan") if cell == "" or cell.lower() in ("none", "null", "-") else
                      parse_number(cell, table.path, table.lines[r], f"gene column {name!r}"))
    try:
        return space.from_genes(genes_from_values(space, np.array([values])))[0]
    except ConfigError as error:  # which value is not a choice, or a running block without a value
        raise ImportFormatError(f"{where(table.path, table.lines[r])}: not an architecture of the space: "
                                f"{str(error).removeprefix('row 0: ')}") from None


def table_records(table: LatencyTable, space: SearchSpace, *, latency: str, std: str | None = None,
                  runs: str | None = None, arch_column: str | None = None, block_column: str | None = None,
                  unit: str = "ms") -> tuple[str, list[dict]]:
    """``(level, records)`` of a table whose rows name architectures or blocks."""
    y, s, n = table_latencies(table, latency, std, runs, unit)
    if arch_column and block_column:
        raise ImportFormatError("give either an architecture column or a block column, not both")
    groups: dict[str, dict] = {}
    if block_column:
        level = "block"
        known = space_blocks(space)
        keys = table.cells(block_column, "block column")
        for r, key in enumerate(keys):
            block = parse_block({"block_key": key.strip()}, table.path, table.lines[r], known, space)
            groups.setdefault(block.key, {"value": block, "rows": []})["rows"].append(r)
    else:
        level = "network"
        if arch_column:
            cells = table.cells(arch_column, "architecture column")
            archs = [parse_arch(space, cell, table.path, table.lines[r]) for r, cell in enumerate(cells)]
        else:
            names = gene_column_names(space)
            missing = [name for name in names if name not in table.columns]
            if missing:
                raise ImportFormatError(
                    f"{where(table.path, 1)}: say what each row measured: an architecture column (JSON), a block "
                    f"column (block keys), or one column per gene of the {space.type_name} space ({len(names)} "
                    f"columns: {list(names[:4])} ... {names[-1]!r}; missing {missing[:3]}...); for other "
                    f"columns fit on them as free features (fit_predictor.py --feature-columns)")
            archs = [_arch_of_gene_row(space, table, names, r) for r in range(len(table))]
        for r, arch in enumerate(archs):
            groups.setdefault(arch.to_json(), {"value": arch, "rows": []})["rows"].append(r)
    records = []
    for group in groups.values():
        rows = group["rows"]
        stats = pooled_stats([float(y[r]) for r in rows], [float(s[r]) if s is not None else None for r in rows],
                             [int(n[r]) if n is not None else None for r in rows])
        source = {"file": table.path.name, "lines": [table.lines[r] for r in rows]}
        if level == "block":
            records.append(block_record(group["value"], stats, source=source))
        else:
            records.append(network_record(group["value"], space, stats, source=source))
    return level, records


def table_profile(path, space, device: str, *, latency: str, std: str | None = None, runs: str | None = None,
                  arch_column: str | None = None, block_column: str | None = None, unit: str = "ms",
                  backend: str = "table", backend_version: str = "unknown", precision: str = "fp32",
                  threads: int = 1, batch_size: int = 1, delimiter: str | None = None) -> Profile:
    """The profile a table describes, in memory (nothing written): what
    ``fit_predictor.py --profile table.csv`` fits on."""
    table = read_table(path, delimiter)
    space = load_space(space)
    level, records = table_records(table, space, latency=latency, std=std, runs=runs, arch_column=arch_column,
                                   block_column=block_column, unit=unit)
    header = profile_header(level, space, device=device, backend=backend, backend_version=backend_version,
                            threads=threads, batch_size=batch_size, precision=precision,
                            protocol={"tool": "table import", "latency_column": latency, "std_column": std,
                                      "runs_column": runs, "unit": unit},
                            source=str(Path(path).name))
    return Profile(header, records, None)


def import_table(path, out, space, device: str, *, overwrite: bool = False, **options) -> Profile:
    """Write the profile a table describes to ``out`` (see :func:`table_profile` for the options)."""
    profile = table_profile(path, space, device, **options)
    return write_profile(out, profile.header, profile.records, overwrite=overwrite)
