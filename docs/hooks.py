"""MkDocs hook: render ``benchmarks/results/*.json`` into the benchmarks page at build time, as tables.

A list of records becomes one table (a row per record, a column per field); a mapping of
names to records (``{"cpu-ort": {"mape": ..., "rmse": ...}, ...}``) becomes one table with a row
per name; the plain figures left at each level become a two-column table. Nested parts get their
own heading, named by their path in the file.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
MAX_ROWS = 40  # rows of one table; the file holds the rest
MAX_COLUMNS = 12
MAX_TABLES = 12  # tables per file


def _is_scalar(value) -> bool:
    return value is None or isinstance(value, (str, int, float, bool)) or (
        isinstance(value, list) and len(value) <= 8 and all(isinstance(v, (str, int, float, bool)) for v in value))


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_format(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _is_record(value) -> bool:
    return isinstance(value, dict) and bool(value) and sum(_is_scalar(v) for v in value.values()) >= len(value) / 2


def _table(header: list[str], rows: list[list], total: int | None = None) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_format(cell) for cell in row) + " |" for row in rows[:MAX_ROWS]]
    total = len(rows) if total is None else total
    if total > MAX_ROWS:
        lines.append(f"\n({total - MAX_ROWS} more rows in the file.)")
    return "\n".join(lines)


def _columns(records: list[dict]) -> list[str]:
    columns: list[str] = []
    for record in records:
        for key, value in record.items():
            if _is_scalar(value) and key not in columns:
                columns.append(key)
    return columns[:MAX_COLUMNS]


def _tables(value, path: str = ""):
    """``(heading, markdown table)`` pairs for one JSON value."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        columns = _columns(value)
        if columns:
            yield path, _table(columns, [[record.get(c, "") for c in columns] for record in value])
        return
    if not isinstance(value, dict):
        if path:
            yield path, _table(["value"], [[value]])
        return
    scalars = {k: v for k, v in value.items() if _is_scalar(v)}
    records = {k: v for k, v in value.items() if _is_record(v)}
    if len(records) >= 2:  # names -> records: one row per name
        columns = _columns(list(records.values()))
        yield path, _table(["name"] + columns, [[f"`{k}`"] + [r.get(c, "") for c in columns]
                                                for k, r in records.items()])
        rest = {k: v for k, v in value.items() if k not in records and k not in scalars}
        for name, record in records.items():  # their nested parts
            for key, item in record.items():
                if not _is_scalar(item):
                    rest[f"{name}.{key}"] = item
    else:
        rest = {k: v for k, v in value.items() if k not in scalars}
    if scalars:
        yield path, _table(["figure", "value"], [[f"`{k}`", v] for k, v in scalars.items()])
    for key, item in rest.items():
        yield from _tables(item, f"{path}.{key}" if path else str(key))


def benchmark_tables() -> str:
    parts = []
    for path in sorted(RESULTS.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            parts.append(f"## {path.stem}\n\n`{path.name}` could not be read.\n")
            continue
        tables = list(_tables(data))
        sections = [f"## {path.stem}\n\nFrom `benchmarks/results/{path.name}`.\n"]
        for heading, table in tables[:MAX_TABLES]:
            sections.append((f"**{heading}**\n\n" if heading else "") + table + "\n")
        if len(tables) > MAX_TABLES:
            sections.append(f"({len(tables) - MAX_TABLES} more tables in the file.)\n")
        parts.append("\n".join(sections))
    return "\n".join(parts) if parts else "No benchmark results yet."


def on_page_markdown(markdown: str, page, config, files) -> str:
    if "{{ benchmark_tables }}" in markdown:
        return markdown.replace("{{ benchmark_tables }}", benchmark_tables())
    return markdown
