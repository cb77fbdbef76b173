"""What a run tells its user: a JSONL metrics log and plain-text tables."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence

from ..io import append_jsonl


class MetricsLog:
    """Appends one JSON record per event to ``path`` (only where ``enabled``,
    i.e. on rank 0). Every record gets ``event`` and wall-clock ``time``."""

    def __init__(self, path: str | os.PathLike, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled

    def write(self, event: str, **fields: Any) -> None:
        if self.enabled:
            append_jsonl(self.path, {"event": event, "time": round(time.time(), 3), **fields})


def format_table(rows: Sequence[dict], columns: Sequence[str], floats: str = "{:.2f}") -> str:
    """A fixed-width text table of ``rows`` (dicts) over ``columns``."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return floats.format(value)
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10000:
            return f"{value:,}"
        return str(value)

    cells = [[cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


__all__ = ["MetricsLog", "format_table"]
