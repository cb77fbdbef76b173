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
* ``feature_columns``: the user's own numeric columns (HAT's latency datasets,
  a spreadsheet) -> a feature-row profile (level ``features``), one record per
  row as it is; a space is optional.

:func:`table_profile` is the one reader of every kind: ``ofa-import-profile
--format table`` writes what it returns and ``ofa-fit-predictor --profile
table.csv`` fits on it, so whatever one accepts the other does.

Rows that measure the same architecture (block) are samples of it: one record
with their statistics (feature rows are kept row by row, as a fit uses them). Blank lines and lines starting with ``#`` are skipped.
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
from .common import (ImportFormatError, Problems, check_repeats, load_space, network_record, parse_arch,
                     parse_block, parse_number, pooled_stats, profile_header, read_text, space_blocks, space_file,
                     where, write_profile)

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
                combine: str = "sum", integer: bool = False) -> np.ndarray:
        """The numbers of a column, or of ``a+b`` (summed, or ``combine="rss"``: root sum of squares);
        every bad cell of every row is reported at once."""
        parts = [part.strip() for part in spec.split("+")]
        if not all(parts):
            raise ImportFormatError(f"{what} {spec!r}: give a column name or names joined by '+'")
        indices = [self.index(part, f"{what} column") for part in parts]
        out = np.empty(len(self.rows))
        problems = Problems()
        for r, (row, line) in enumerate(zip(self.rows, self.lines)):
            values = []
            for part, j in zip(parts, indices):
                cell = row[j].strip()
                if cell == "" or cell.lower() in ("nan", "na", "n/a", "null", "none"):
                    problems.add(f"{where(self.path, line)}: {what} column {part!r} is {cell or 'empty'}; every "
                                 f"row needs a finite number")
                    continue
                with problems.collect():
                    values.append(parse_number(cell, self.path, line, f"{what} column {part!r}", positive=positive,
                                               allow_zero=allow_zero, integer=integer))
            if len(values) == len(parts):
                total = sum(values) if combine == "sum" else math.sqrt(sum(v * v for v in values))
                if not math.isfinite(total):
                    problems.add(f"{where(self.path, line)}: {what} {spec!r} overflows "
                                 f"({' + '.join(map(str, values))})")
                out[r] = total
        problems.raise_any()
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
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in ('"', "\r", "\n"):
        raise ImportFormatError(f"{path}: delimiter {delimiter!r} must be one character (not a quote or newline)")
    problems = Problems()
    rows, lines = [], []
    for number, line in numbered:
        try:
            cells = next(csv.reader(io.StringIO(line), delimiter=delimiter, skipinitialspace=True), [])
        except csv.Error as error:
            problems.add(f"{where(path, number)}: not a valid CSV line ({error})")
            continue
        rows.append(cells)
        lines.append(number)
    problems.raise_any()
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
            problems.add(f"{where(path, number)}: {len(cells)} cells, but the header has {len(columns)} columns")
            continue
        body.append(cells)
        body_lines.append(number)
    problems.raise_any()
    if not body:
        raise ImportFormatError(f"{path}: the table has a header but no rows")
    return LatencyTable(path, columns, body, body_lines)


def _scale(unit: str) -> float:
    if unit not in UNITS:
        raise ImportFormatError(f"latency unit {unit!r} unknown; allowed: {list(UNITS)}")
    return UNITS[unit]


def table_latencies(table: LatencyTable, latency: str, std: str | None = None, runs: str | None = None,
                    unit: str = "ms") -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(latency_ms, std_ms or None, runs or None)`` per row; every bad cell reported at once."""
    scale = _scale(unit)
    problems = Problems()
    y = s = n = None
    with problems.collect():
        y = table.numbers(latency, "latency", allow_zero=False) * scale
    if std:
        with problems.collect():
            s = table.numbers(std, "std", allow_zero=True, combine="rss") * scale
    if runs:
        with problems.collect():
            n = table.numbers(runs, "runs", allow_zero=False, integer=True)
    problems.raise_any()
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
    problems = Problems()
    for name in names:
        cell = table.rows[r][table.index(name)].strip()
        if cell == "" or cell.lower() in ("none", "null", "-"):
            values.append(float("nan"))
            continue
        with problems.collect():
            values.append(parse_number(cell, table.path, table.lines[r], f"gene column {name!r}"))
    problems.raise_any()
    try:
        return space.from_genes(genes_from_values(space, np.array([values])))[0]
    except (ConfigError, ValueError, OverflowError) as error:  # a value not a choice, a running block without one
        raise ImportFormatError(f"{where(table.path, table.lines[r])}: not an architecture of the space: "
                                f"{str(error).removeprefix('row 0: ')}") from None


def table_records(table: LatencyTable, space: SearchSpace, *, latency: str, std: str | None = None,
                  runs: str | None = None, arch_column: str | None = None, block_column: str | None = None,
                  unit: str = "ms", merge_duplicates: bool = False) -> tuple[str, list[dict]]:
    """``(level, records)`` of a table whose rows name architectures or blocks. Rows that
    measure the same architecture (block) are refused unless ``merge_duplicates``: then
    they are pooled as samples, and each record lists its rows (``source.lines``)."""
    if arch_column and block_column:
        raise ImportFormatError("give either an architecture column or a block column, not both")
    problems = Problems()
    y = s = n = None
    with problems.collect():
        y, s, n = table_latencies(table, latency, std, runs, unit)
    groups: dict[str, dict] = {}

    def each_row(parse):
        for r in range(len(table)):
            with problems.collect():
                value = parse(r)
                key = value.key if level == "block" else value.to_json()
                groups.setdefault(key, {"value": value, "rows": []})["rows"].append(r)

    if block_column:
        level = "block"
        known = space_blocks(space)
        keys = table.cells(block_column, "block column")
        each_row(lambda r: parse_block({"block_key": keys[r].strip()}, table.path, table.lines[r], known, space))
    else:
        level = "network"
        if arch_column:
            cells = table.cells(arch_column, "architecture column")
            each_row(lambda r: parse_arch(space, cells[r], table.path, table.lines[r]))
        else:
            names = gene_column_names(space)
            missing = [name for name in names if name not in table.columns]
            if missing:
                raise ImportFormatError(
                    f"{where(table.path, 1)}: say what each row measured: an architecture column (JSON), a block "
                    f"column (block keys), or one column per gene of the {space.type_name} space ({len(names)} "
                    f"columns: {list(names[:4])} ... {names[-1]!r}; missing {missing[:3]}...); for other "
                    f"columns fit on them as free features (fit_predictor.py --feature-columns)")
            each_row(lambda r: _arch_of_gene_row(space, table, names, r))
    what = "block" if level == "block" else "architecture"
    sources = {key: [where(table.path, table.lines[r]) for r in group["rows"]] for key, group in groups.items()}
    check_repeats(sources, merge_duplicates, what, problems)
    problems.raise_any()
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


def check_row_naming(space, arch_column: str | None = None, block_column: str | None = None,
                     feature_columns: Sequence[str] | None = None) -> str:
    """How a table's rows say what they measured (``"arch"``, ``"block"``, ``"genes"`` or
    ``"features"``), checked before the table is read: one way at most, and a space for
    every way but free feature columns."""
    given = [name for name, value in (("an architecture column", arch_column), ("a block column", block_column),
                                      ("feature columns", feature_columns)) if value]
    if len(given) > 1:
        raise ConfigError(f"a table's rows name what they measured in one way; got {' and '.join(given)}: give an "
                          f"architecture column (JSON), a block column (block keys), gene columns (the default) "
                          f"or free feature columns")
    naming = "arch" if arch_column else "block" if block_column else "features" if feature_columns else "genes"
    if naming != "features" and space is None:
        raise ConfigError("a table whose rows name architectures or blocks needs a space (--space: the space they "
                          "belong to); for free feature columns give --feature-columns")
    return naming


def feature_records(table: LatencyTable, features: Sequence[str], *, latency: str, std: str | None = None,
                    runs: str | None = None, unit: str = "ms") -> list[dict]:
    """One row record per table row: its named feature columns (any finite numbers) and its
    latency statistics; every bad cell of every row is reported at once."""
    if not features:
        raise ImportFormatError("name at least one feature column")
    problems = Problems()
    columns = {}
    for name in features:
        with problems.collect():
            columns[name] = table.numbers(name, "feature", positive=False)
    y = s = n = None
    with problems.collect():
        y, s, n = table_latencies(table, latency, std, runs, unit)
    problems.raise_any()
    records = []
    for r, line in enumerate(table.lines):
        stats = pooled_stats([float(y[r])], [float(s[r]) if s is not None else None],
                             [int(n[r]) if n is not None else None])
        records.append({"kind": "row", "features": {name: float(columns[name][r]) for name in features},
                        "latency_ms": stats, "source": {"file": table.path.name, "lines": [line]}})
    return records


def table_profile(path, space, device: str, *, latency: str, std: str | None = None, runs: str | None = None,
                  arch_column: str | None = None, block_column: str | None = None,
                  feature_columns: Sequence[str] | None = None, unit: str = "ms",
                  backend: str = "table", backend_version: str = "unknown", precision: str = "fp32",
                  threads: int = 1, batch_size: int = 1, delimiter: str | None = None,
                  merge_duplicates: bool = False) -> Profile:
    """The profile a table describes, in memory (nothing written): what ``ofa-import-profile
    --format table`` writes and ``ofa-fit-predictor --profile table.csv`` fits on. With
    ``feature_columns`` a feature-row profile (``space`` optional), else a network or block
    profile of ``space``."""
    naming = check_row_naming(space, arch_column, block_column, feature_columns)
    if naming == "features" and merge_duplicates:
        raise ConfigError("feature rows are kept row by row (a fit uses each as a sample); merging duplicates pools "
                          "repeated architectures or blocks: leave out --merge-duplicates with --feature-columns")
    table = read_table(path, delimiter)
    space = load_space(space) if space is not None else None
    protocol = {"tool": "table import", "latency_column": latency, "std_column": std, "runs_column": runs,
                "unit": unit}
    if naming == "features":
        records = feature_records(table, list(feature_columns), latency=latency, std=std, runs=runs, unit=unit)
        header = profile_header("features", space, device=device, backend=backend, backend_version=backend_version,
                                threads=threads, batch_size=batch_size, precision=precision, protocol=protocol,
                                source=str(Path(path).name), features=list(feature_columns))
        return Profile(header, records, None)
    level, records = table_records(table, space, latency=latency, std=std, runs=runs, arch_column=arch_column,
                                   block_column=block_column, unit=unit, merge_duplicates=merge_duplicates)
    merged = [{"key": str(r.get("key") or r["arch"]), "sources": [where(table.path, line)
                                                                     for line in r["source"]["lines"]]}
              for r in records if len(r["source"]["lines"]) > 1]
    header = profile_header(level, space, device=device, backend=backend, backend_version=backend_version,
                            threads=threads, batch_size=batch_size, precision=precision, protocol=protocol,
                            source=str(Path(path).name), merged=merged)
    return Profile(header, records, None)


def import_table(path, out, space, device: str, *, overwrite: bool = False, on_implausible: str = "warn",
                 **options) -> Profile:
    """Write the profile a table describes to ``out`` (see :func:`table_profile` for the options);
    ``out`` may not be the table (nor a space file), even with ``overwrite``."""
    from .common import check_not_an_input

    reads = [("the table", Path(path))] + ([("the --space file", space_file(space))]
                                           if space is not None and space_file(space) else [])
    check_not_an_input(out, reads)
    profile = table_profile(path, space, device, **options)
    return write_profile(out, profile.header, profile.records, overwrite=overwrite, reads=reads,
                         on_implausible=on_implausible)
