"""MkDocs hook: render ``benchmarks/results/*.json`` into the benchmarks page at build time."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
MAX_ROWS = 60


def _leaves(value, prefix=""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value) and len(value) <= 12:
            yield prefix, ", ".join(_format(v) for v in value)
        else:
            for i, item in enumerate(value[:20]):
                yield from _leaves(item, f"{prefix}[{i}]")
    else:
        yield prefix, _format(value)


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def benchmark_tables() -> str:
    parts = []
    for path in sorted(RESULTS.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            parts.append(f"## {path.stem}\n\n`{path.name}` could not be read.\n")
            continue
        rows = list(_leaves(data))
        shown = rows[:MAX_ROWS]
        table = "\n".join(f"| `{key}` | {value} |" for key, value in shown)
        more = f"\n\n({len(rows) - MAX_ROWS} more values in `benchmarks/results/{path.name}`.)" \
            if len(rows) > MAX_ROWS else ""
        parts.append(f"## {path.stem}\n\nFrom `benchmarks/results/{path.name}`.\n\n| value | figure |\n| --- | --- |\n"
                     f"{table}{more}\n")
    return "\n".join(parts) if parts else "No benchmark results yet."


def on_page_markdown(markdown: str, page, config, files) -> str:
    if "{{ benchmark_tables }}" in markdown:
        return markdown.replace("{{ benchmark_tables }}", benchmark_tables())
    return markdown
