"""What a run tells its user: a JSONL metrics log and plain-text tables."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

from ..io import append_jsonl, atomic_write_text


class RunClock:
    """Wall-clock and CPU seconds of a run over all its segments.

    A run killed and resumed has several segments (processes). A checkpoint
    stores :meth:`state`; the resumed process continues from it, plus the time
    the killed segment spent after that checkpoint (its work is redone, but the
    time was spent), which its last log record tells (:meth:`MetricsLog.resume`).
    CPU seconds are this process's (one rank's) ``time.process_time``."""

    def __init__(self):
        self.wall_before = self.cpu_before = 0.0
        self.segment = 1
        self._wall_start, self._cpu_start = time.time(), time.process_time()

    def continue_from(self, wall_seconds: float, cpu_seconds: float, segments: int) -> None:
        """Count ``wall_seconds``/``cpu_seconds`` of ``segments`` earlier segments."""
        self.wall_before, self.cpu_before = float(wall_seconds), float(cpu_seconds)
        self.segment = int(segments) + 1

    def wall_this_process(self) -> float:
        return time.time() - self._wall_start

    def cpu_this_process(self) -> float:
        return time.process_time() - self._cpu_start

    def wall_seconds(self) -> float:
        return self.wall_before + self.wall_this_process()

    def cpu_seconds(self) -> float:
        return self.cpu_before + self.cpu_this_process()

    def totals(self) -> dict:
        """What a run summary records: totals over all segments, and this segment's share."""
        return {"wall_seconds": round(self.wall_seconds(), 1), "cpu_seconds": round(self.cpu_seconds(), 1),
                "segments": self.segment, "seconds_this_process": round(self.wall_this_process(), 1),
                "cpu_seconds_this_process": round(self.cpu_this_process(), 1)}


class MetricsLog:
    """Appends one JSON record per event to ``path`` (only where ``enabled``,
    i.e. on rank 0). Every record gets ``event`` and wall-clock ``time``; with a
    :class:`RunClock`, also the run's ``elapsed_s`` and ``cpu_s`` so far.

    A checkpoint stores :meth:`state` (how many records the log held when it was
    written); :meth:`resume` drops the records written after it, so a run killed
    and resumed has each step once, and :meth:`start` begins a fresh run with an
    empty log."""

    def __init__(self, path: str | os.PathLike, enabled: bool = True, clock: RunClock | None = None):
        self.path = Path(path)
        self.enabled = enabled
        self.clock = clock
        self.records = 0

    def write(self, event: str, **fields: Any) -> None:
        if self.enabled:
            timing = {} if self.clock is None else {"elapsed_s": round(self.clock.wall_seconds(), 3),
                                                    "cpu_s": round(self.clock.cpu_seconds(), 3)}
            append_jsonl(self.path, {"event": event, "time": round(time.time(), 3), **timing, **fields})
            self.records += 1

    def state(self) -> dict:
        """What a checkpoint stores to resume this log and the run's clock."""
        state = {"records": self.records}
        if self.clock is not None:
            state.update(wall_seconds=self.clock.wall_seconds(), cpu_seconds=self.clock.cpu_seconds(),
                         segments=self.clock.segment)
        return state

    def _read(self) -> list[dict]:
        """The complete records of the log (a final line cut by a kill is not one)."""
        if not self.path.exists():
            return []
        records = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").split("\n"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def _rewrite(self, records: list[dict]) -> None:
        text = "".join(json.dumps(r, sort_keys=True, separators=(",", ":")) + "\n" for r in records)
        atomic_write_text(self.path, text)
        self.records = len(records)

    def start(self) -> None:
        """A fresh run: records of an earlier attempt that left no checkpoint are removed."""
        if self.enabled and self.path.exists():
            self._rewrite([])

    def resume(self, state: dict | None, step: int) -> int:
        """Continue the log of a run resumed from a checkpoint at ``step`` whose
        :meth:`state` is ``state``: rewrite it (atomically) without the records
        written after that checkpoint, and continue the clock from the time all
        earlier segments spent (including the work after the checkpoint that the
        kill threw away). Returns the number of records dropped. A checkpoint
        without a record count (older runs) drops the records of later steps."""
        state = state or {}
        records = self._read() if self.enabled else []
        if "records" in state:
            kept = records[:int(state["records"])]
        else:
            kept = [r for r in records if not isinstance(r.get("step"), int) or r["step"] <= step]
        if self.clock is not None:
            seen_wall = max([r.get("elapsed_s", 0.0) for r in records] + [state.get("wall_seconds", 0.0)])
            seen_cpu = max([r.get("cpu_s", 0.0) for r in records] + [state.get("cpu_seconds", 0.0)])
            segments = max([r.get("segment", 1) for r in records if r.get("event") == "resume"]
                           + [state.get("segments", 1)])
            self.clock.continue_from(seen_wall, seen_cpu, segments)
        if self.enabled:
            self._rewrite(kept)
        return len(records) - len(kept)


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


__all__ = ["MetricsLog", "RunClock", "format_table"]
