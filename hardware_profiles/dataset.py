"""Versioned latency-profile datasets: the contract between profilers and predictors.

Format: JSON Lines, one JSON object per line.

* Line 1 is the header (``"kind": "header"``): schema version, device id,
  backend and its version, host, threads, batch size, precision, the search
  space (definition and fingerprint) and the measurement protocol.
* Every further line is one measured architecture (``"kind": "measurement"``):
  the architecture JSON, the input shapes, latency statistics in milliseconds
  (``latency_ms``: wall clock; ``cpu_time_ms``: thread CPU time where the
  backend records it), the load average during the run, and extra fields.

A *block profile* (header ``"level": "block"``, see :func:`make_block_header`)
has the same header and guarantees, and one line per measured block
(``"kind": "block"``): ``key`` (:attr:`ofa.spaces.BlockSpec.key`), ``block``
(``BlockSpec.to_dict()``), ``latency_ms`` and the same optional fields. A
profile without ``level`` is a network profile (``"level": "network"``).

A *feature-row profile* (``"level": "features"``, :func:`make_feature_header`) is a
table whose rows are described by the user's own columns (HAT's latency datasets):
the header lists the column names (``features``) and may name no space
(``"space": null``); each line (``"kind": "row"``) holds ``features`` (name ->
finite number) and ``latency_ms``. It is what a feature-column table imports to,
and fits a plain-feature predictor (``docs/imports.md``).

Records are appended with a single ``write`` + ``fsync`` per line, so a kill
loses at most the record being written; a trailing partial line is reported
(``ProfileWriter`` drops it on resume). Any other malformed line is a
:class:`~ofa.errors.ProfileError` naming the line.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ofa.errors import ConfigError, ProfileError
from ofa.io import append_jsonl, atomic_write_text
from ofa.spaces import BlockSpec, SearchSpace, block_from_dict, space_from_dict

from .labels import CORRECTED_PREFIX, LABEL_STATS, Label, add_corrected_metrics, clock_of, is_corrected

SCHEMA_VERSION = 1
STAT_KEYS = ("median", "mean", "p10", "p90", "std", "cv", "runs")
HEADER_KEYS = ("schema_version", "device", "backend", "backend_version", "host", "threads", "batch_size",
               "precision", "space", "space_fingerprint", "protocol")
# what the records of a profile are: whole networks, blocks, or rows of the user's own feature columns
LEVELS = ("network", "block", "features")


def latency_stats(samples_ms: Sequence[float]) -> dict:
    """Median, mean, p10, p90, std, coefficient of variation and count of timings (ms)."""
    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ProfileError("latency statistics need at least one finite timing")
    mean = float(values.mean())
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return {
        "median": float(np.median(values)), "mean": mean,
        "p10": float(np.percentile(values, 10)), "p90": float(np.percentile(values, 90)),
        "std": std, "cv": std / mean if mean > 0 else 0.0, "runs": int(values.size),
    }


def make_header(space: SearchSpace, device: str, backend: str, backend_version: str, *, threads: int,
                batch_size: int, precision: str, protocol: dict, host: dict | None = None, **extra) -> dict:
    header = {
        "kind": "header", "schema_version": SCHEMA_VERSION, "device": device, "backend": backend,
        "backend_version": backend_version, "host": host if host is not None else host_info(),
        "threads": threads, "batch_size": batch_size, "precision": precision, "space": space.to_dict(),
        "space_fingerprint": space.fingerprint, "protocol": protocol, "created": _now(),
    }
    header.update(extra)
    return header


def make_feature_header(space: SearchSpace | None, features: Sequence[str], device: str, backend: str,
                        backend_version: str, *, threads: int, batch_size: int, precision: str, protocol: dict,
                        host: dict | None = None, **extra) -> dict:
    """The header of a feature-row profile: :func:`make_header` plus ``"level": "features"`` and
    the feature column names; ``space`` (the space the features describe) may be None."""
    if space is not None:
        return make_header(space, device, backend, backend_version, threads=threads, batch_size=batch_size,
                           precision=precision, protocol=protocol, host=host, level="features",
                           features=list(features), **extra)
    header = {
        "kind": "header", "schema_version": SCHEMA_VERSION, "device": device, "backend": backend,
        "backend_version": backend_version, "host": host if host is not None else host_info(),
        "threads": threads, "batch_size": batch_size, "precision": precision, "space": None,
        "space_fingerprint": None, "protocol": protocol, "created": _now(), "level": "features",
        "features": list(features),
    }
    header.update(extra)
    return header


def make_block_header(space: SearchSpace, device: str, backend: str, backend_version: str, *, threads: int,
                      batch_size: int, precision: str, protocol: dict, host: dict | None = None, **extra) -> dict:
    """The header of a block profile: :func:`make_header` plus ``"level": "block"``.

    ``space`` is the search space whose blocks the profile covers (its
    fingerprint guards resuming; predictors match blocks by key, so a block
    profile serves every space whose networks run these blocks)."""
    return make_header(space, device, backend, backend_version, threads=threads, batch_size=batch_size,
                       precision=precision, protocol=protocol, host=host, level="block", **extra)


def block_record(block: BlockSpec, latency_ms: dict, **fields: Any) -> dict:
    """One line of a block profile (``latency_ms`` as :func:`latency_stats` gives it;
    ``fields``: ``cpu_time_ms``, ``input_shapes``, ``load_average``, anything else)."""
    if not isinstance(block, BlockSpec):
        raise ConfigError(f"a block record needs a BlockSpec, got {type(block).__name__}")
    return {"kind": "block", "key": block.key, "block": block.to_dict(), "latency_ms": latency_ms,
            "macs": block.macs, "params": block.params, "timestamp": _now(), **fields}


def host_info() -> dict:
    import platform

    info = {"machine": platform.machine(), "system": platform.system(), "cpu_count": os.cpu_count(),
            "python": platform.python_version()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        info["cpu"] = platform.processor()
    return info


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Profile:
    """A loaded profile: its header and its measurement records."""

    header: dict
    records: list[dict]
    path: Path | None = None
    # the reference network's session median per clock (hardware_profiles.labels); None: from the records.
    # A subset of a profile keeps its parent's, so its corrected labels are on the same scale
    reference_ms: dict | None = None
    space: SearchSpace = field(init=False)

    def __post_init__(self):
        if self.header.get("space") is None and self.header.get("level") == "features":
            self.space = None  # rows of free feature columns need not describe a space's architectures
        else:
            self.space = space_from_dict(self.header["space"])
        if self.space is not None and self.space.fingerprint != self.header["space_fingerprint"]:
            raise ProfileError(f"{self._where()}: header space_fingerprint {self.header['space_fingerprint']!r} "
                               f"does not match its space definition ({self.space.fingerprint!r})")
        # records get the derived corrected_* metrics; copies, so that the caller's dicts (and a
        # parent profile's, for a subset) keep their own scale
        self.records = [dict(r) for r in self.records]
        self.reference_ms = add_corrected_metrics(self.records, self.reference_ms)

    def label(self, metric: str, statistic: str) -> Label:
        """The :class:`~hardware_profiles.labels.Label` of ``metric.statistic`` on this profile's scale."""
        self.latencies(metric, statistic)  # refuses a metric or statistic the records do not have
        reference = self.reference_ms.get(clock_of(metric)) if is_corrected(metric) else None
        return Label(metric, statistic, reference)

    def drift_summary(self) -> dict | None:
        """How the host's speed moved while this profile was measured, from the
        reference network timed in every chunk (None for a profile without it):
        the reference's session median, its range over chunks (the corrections
        applied), the noise floor (the median gap between the reference's pass
        medians inside a chunk: its test-retest) and the chunks re-measured
        because their reference moved more than the protocol's tolerance."""
        drifts = [r["drift"] for r in self.records if isinstance(r.get("drift"), dict)]
        if not drifts:
            return None
        summary: dict = {"reference": self.header.get("protocol", {}).get("reference_network"),
                         "records": len(drifts)}
        for clock, session in self.reference_ms.items():
            values = np.array([d["reference_ms"][clock] for d in drifts if clock in d.get("reference_ms", {})])
            if values.size == 0:
                continue
            factors = session / values
            summary[clock] = {"session_median_ms": session, "min_ms": float(values.min()),
                              "max_ms": float(values.max()), "correction_min": float(factors.min()),
                              "correction_max": float(factors.max()),
                              "corrected_over_5pct": float(np.mean(np.abs(factors - 1) > 0.05))}
        gaps = [d.get("reference_gap", 0.0) for d in drifts]
        summary["noise_floor"] = float(np.median(gaps))
        summary["noise_floor_p90"] = float(np.percentile(gaps, 90))
        summary["drift_remeasured_records"] = int(sum(1 for d in drifts if d.get("remeasured", 0)))
        return summary

    def _where(self) -> str:
        return str(self.path) if self.path else "profile"

    def __len__(self) -> int:
        return len(self.records)

    @property
    def device(self) -> str:
        return self.header["device"]

    @property
    def level(self) -> str:
        """``"network"`` (records are architectures), ``"block"`` (blocks) or ``"features"`` (feature rows)."""
        return self.header.get("level", "network")

    @property
    def feature_names(self) -> list[str]:
        """The feature columns of a feature-row profile."""
        if self.level != "features":
            raise ProfileError(f"{self._where()} is a {self.level} profile: it holds no feature rows")
        return list(self.header["features"])

    def feature_matrix(self, names: Sequence[str] | None = None) -> np.ndarray:
        """The rows' features (one column per name of ``names``, default every feature column)."""
        names = self.feature_names if names is None else list(names)
        unknown = [name for name in names if name not in self.feature_names]
        if unknown:
            raise ProfileError(f"{self._where()}: no feature column(s) {unknown}; its feature columns are "
                               f"{self.feature_names}")
        return np.array([[float(r["features"][name]) for name in names] for r in self.records], dtype=np.float64)

    def archs(self) -> list:
        if self.level != "network":
            raise ProfileError(f"{self._where()} is a {self.level} profile: its records are "
                               f"{'blocks' if self.level == 'block' else 'feature rows'}, not architectures")
        return [self.space.parse(r["arch"]) for r in self.records]

    def blocks(self) -> list[BlockSpec]:
        """The measured blocks of a block profile, in file order."""
        if self.level != "block":
            raise ProfileError(f"{self._where()} is a {self.level} profile: it holds no block records")
        return [block_from_dict(r["block"]) for r in self.records]

    def block_latencies(self, metric: str = "latency_ms", statistic: str = "median") -> dict[str, float]:
        """``{block key: latency}`` of a block profile (the last record wins for a repeated key)."""
        values = self.latencies(metric, statistic)
        self.blocks()  # refuses a network profile
        return {r["key"]: float(v) for r, v in zip(self.records, values)}

    def latencies(self, metric: str = "latency_ms", statistic: str = "median") -> np.ndarray:
        """One number per record, e.g. ``latencies("cpu_time_ms", "median")``."""
        metrics = sorted(k for k in (self.records[0] if self.records else {}) if k.endswith("_ms"))
        if self.records and metric not in self.records[0]:
            raise ProfileError(f"{self._where()}: records have no metric {metric!r}; available metrics: {metrics}")
        statistics = sorted(k for k, v in self.records[0][metric].items()
                            if isinstance(v, (int, float))) if self.records else list(STAT_KEYS)
        if self.records and statistic not in self.records[0][metric]:
            raise ProfileError(f"{self._where()}: {metric} has no statistic {statistic!r}; available statistics: "
                               f"{statistics}")
        try:
            return np.array([r[metric][statistic] for r in self.records], dtype=np.float64)
        except (KeyError, TypeError):
            raise ProfileError(f"{self._where()}: records have no {metric}.{statistic} "
                               f"(available: {sorted(k for k in self.records[0] if k.endswith('_ms'))})") from None


def _parse_line(text: str, number: int, path: Path) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProfileError(f"{path}:{number}: not valid JSON ({error.msg} at column {error.colno}); "
                           f"the file is corrupt - fix or delete this line") from None
    if not isinstance(value, dict):
        raise ProfileError(f"{path}:{number}: expected a JSON object, got {type(value).__name__}")
    return value


def _check_header(header: dict, path: Path) -> None:
    if header.get("kind") != "header":
        raise ProfileError(f"{path}:1: the first line must be the profile header (\"kind\": \"header\")")
    missing = [k for k in HEADER_KEYS if k not in header]
    if missing:
        raise ProfileError(f"{path}:1: header lacks {missing}")
    if header.get("level", "network") not in LEVELS:
        raise ProfileError(f"{path}:1: header level {header.get('level')!r} unknown; allowed: {LEVELS}")
    if header.get("level") == "features":
        names = header.get("features")
        if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)
                and len(set(names)) == len(names)):
            raise ProfileError(f"{path}:1: a feature-row profile's header lists its feature columns as distinct "
                               f"non-empty names (\"features\"), got {names!r}")
    if header["schema_version"] != SCHEMA_VERSION:
        raise ProfileError(f"{path}:1: schema_version {header['schema_version']} is not supported "
                           f"(this package reads version {SCHEMA_VERSION})")


def _check_record(record: dict, number: int, path: Path, level: str = "network",
                  features: Sequence[str] = ()) -> None:
    if level == "block":
        _check_block_record(record, number, path)
    elif level == "features":
        _check_feature_record(record, number, path, features)
    elif record.get("kind") != "measurement":
        raise ProfileError(f"{path}:{number}: expected a measurement record (\"kind\": \"measurement\")")
    for key in ("arch", "latency_ms") if level == "network" else ("latency_ms",):
        if key not in record:
            raise ProfileError(f"{path}:{number}: measurement record lacks {key!r}")
    stats = record["latency_ms"]
    if not isinstance(stats, dict) or any(k not in stats for k in STAT_KEYS):
        raise ProfileError(f"{path}:{number}: latency_ms must hold {list(STAT_KEYS)}")
    _check_labels(record, number, path, level)


def _check_labels(record: dict, number: int, path: Path, level: str) -> None:
    """Every number a label (:mod:`.labels`) can read from ``record`` is finite and every latency
    a fit can choose is > 0 (>= 0 for a block: a simulator may price an embedding lookup at
    nothing), whichever label is fitted later: a NaN or a -1 is refused here, with its line,
    rather than fitted silently or failing deep inside scikit-learn."""
    metrics = {name: stats for name, stats in record.items() if name.endswith("_ms") and isinstance(stats, dict)}
    drift = record.get("drift")
    if drift is not None:  # the corrected_<clock> labels: drift.relative.<clock> x the reference's time
        if not (isinstance(drift, dict) and isinstance(drift.get("relative", {}), dict)
                and isinstance(drift.get("reference_ms", {}), dict)):
            raise ProfileError(f"{path}:{number}: drift must hold relative {{clock: statistics}} and reference_ms "
                               f"{{clock: ms}}")
        metrics.update({f"drift.relative.{clock}": stats for clock, stats in drift.get("relative", {}).items()})
        metrics["drift.reference_ms"] = drift.get("reference_ms", {})
    for name, stats in metrics.items():
        if not isinstance(stats, dict):
            raise ProfileError(f"{path}:{number}: {name} must map statistics to numbers, got {stats!r}")
        for key, value in stats.items():
            reference = name == "drift.reference_ms"
            latency = reference or key in LABEL_STATS
            if not (latency or key in STAT_KEYS):
                continue  # not a statistic: no label reads it
            zero_allowed = level == "block" and not reference
            finite = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not finite or (latency and (value < 0 or (value == 0 and not zero_allowed))):
                raise ProfileError(f"{path}:{number}: {name}.{key} is {value!r}; "
                                   + (f"a latency a predictor can be fitted on ({', '.join(LABEL_STATS)} of every "
                                      f"metric, and the reference times of corrected metrics) must be a finite "
                                      f"number {'>= 0' if zero_allowed else '> 0'}" if latency
                                      else "statistics must be finite numbers"))


def _check_feature_record(record: dict, number: int, path: Path, features: Sequence[str]) -> None:
    if record.get("kind") != "row":
        raise ProfileError(f"{path}:{number}: a feature-row profile holds row records (\"kind\": \"row\")")
    values = record.get("features")
    if not isinstance(values, dict) or sorted(values) != sorted(features):
        raise ProfileError(f"{path}:{number}: a row's features must map exactly the header's feature columns "
                           f"{list(features)} to numbers")
    bad = [name for name, value in values.items()
           if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)]
    if bad:
        raise ProfileError(f"{path}:{number}: feature(s) {bad} are not finite numbers")


def _check_block_record(record: dict, number: int, path: Path) -> None:
    if record.get("kind") != "block":
        raise ProfileError(f"{path}:{number}: a block profile holds block records (\"kind\": \"block\")")
    for key in ("key", "block", "latency_ms"):
        if key not in record:
            raise ProfileError(f"{path}:{number}: block record lacks {key!r}")
    try:
        block = block_from_dict(record["block"])
    except ConfigError as error:
        raise ProfileError(f"{path}:{number}: not a valid block: {error}") from None
    if block.key != record["key"]:
        raise ProfileError(f"{path}:{number}: key {record['key']!r} does not match its block ({block.key!r})")


def read_profile(path: str | os.PathLike, allow_partial_last_line: bool = False) -> Profile:
    """Load and validate a profile.

    A last line without its newline is an interrupted write: an error unless
    ``allow_partial_last_line`` (then it is skipped)."""
    path = Path(path)
    if path.is_dir():
        raise ProfileError(f"{path} is a directory; a profile is a JSONL file written by ofa-profile-device")
    if not path.is_file():
        raise ProfileError(f"no profile file at {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ProfileError(f"{path} is not a profile: byte {error.start} is not UTF-8 text; a profile is a JSONL "
                           f"file (header line, then one measurement per line)") from None
    return parse_profile(text, path, allow_partial_last_line)


def parse_profile(text: str, path: str | os.PathLike, allow_partial_last_line: bool = False) -> Profile:
    """The profile ``text`` holds, validated as :func:`read_profile` does (``path`` names it in errors)."""
    path = Path(path)
    if not text:
        raise ProfileError(f"{path} is empty: a profile starts with its header line")
    lines = text.split("\n")
    partial = lines.pop()  # "" when the file ends with a newline
    if partial and not allow_partial_last_line:
        raise ProfileError(f"{path}:{len(lines) + 1}: the last line is incomplete (interrupted write); "
                           f"rerun the profiling command to resume, or delete that line")
    if not lines:
        raise ProfileError(f"{path}:1: the header line is incomplete")
    header = _parse_line(lines[0], 1, path)
    _check_header(header, path)
    level = header.get("level", "network")
    records = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        record = _parse_line(line, number, path)
        _check_record(record, number, path, level, header.get("features") or ())
        records.append(record)
    profile = Profile(header, records, path)
    if level != "network":
        return profile
    for number, record in enumerate(records, start=2):
        try:
            profile.space.parse(record["arch"])
        except Exception as error:
            raise ProfileError(f"{path}:{number}: architecture not valid in the profile's space: {error}") from None
    return profile


class ProfileWriter:
    """Append-only writer that resumes an existing profile.

    Opening an existing file checks that its header matches (same device,
    backend, space, batch size, precision, threads, level) and drops an
    interrupted last line; ``measured`` holds the JSON of architectures (block
    profiles: the keys of blocks) already in it so the caller can skip them.
    """

    MATCH_KEYS = ("device", "backend", "space_fingerprint", "batch_size", "precision", "threads", "level")

    def __init__(self, path: str | os.PathLike, header: dict):
        self.path = Path(path)
        self.header = header
        self.measured: set[str] = set()
        self._lock = _lock_profile(self.path)  # two writers would interleave their records
        if self.path.exists() and self.path.stat().st_size > 0:
            self._resume()
        else:
            atomic_write_text(self.path, json.dumps(header, sort_keys=True, separators=(",", ":")) + "\n")

    def _resume(self) -> None:
        text = self.path.read_text(encoding="utf-8")
        if not text.endswith("\n"):  # interrupted append: drop the partial record
            text = text[: text.rfind("\n") + 1]
            atomic_write_text(self.path, text)
        existing = read_profile(self.path)
        for key in self.MATCH_KEYS:
            if existing.header.get(key, "network" if key == "level" else None) != self.header.get(
                    key, "network" if key == "level" else None):
                raise ProfileError(f"{self.path} holds a profile with {key}={existing.header.get(key)!r}, "
                                   f"not {self.header.get(key)!r}; write to another file")
        self.header = existing.header
        if existing.level == "block":
            self.measured = {r["key"] for r in existing.records}
            return
        space = existing.space
        self.measured = {space.parse(r["arch"]).to_json() for r in existing.records}

    @property
    def level(self) -> str:
        return self.header.get("level", "network")

    def append(self, arch, latency_ms: dict, **fields: Any) -> dict:
        fields = _timed_only(fields)
        if self.level != "network":
            raise ProfileError(f"{self.path} is a {self.level} profile: append blocks with append_block()")
        record = {"kind": "measurement", "arch": arch.to_dict(), "latency_ms": latency_ms,
                  "timestamp": _now(), **fields}
        append_jsonl(self.path, record)
        self.measured.add(arch.to_json())
        return record

    def append_block(self, block: BlockSpec, latency_ms: dict, **fields: Any) -> dict:
        """Append one block record (a block profile only); see :func:`block_record`."""
        if self.level != "block":
            raise ProfileError(f"{self.path} is a {self.level} profile: append architectures with append()")
        if not isinstance(latency_ms, dict) or any(k not in latency_ms for k in STAT_KEYS):
            raise ProfileError(f"latency_ms must hold {list(STAT_KEYS)} (see latency_stats)")
        record = block_record(block, latency_ms, **_timed_only(fields))
        append_jsonl(self.path, record)
        self.measured.add(block.key)
        return record

    def update_header(self, **fields: Any) -> None:
        """Rewrite the header line with ``fields`` added (e.g. the drift summary
        once the measurements are in); atomic, under this writer's lock."""
        lines = self.path.read_text(encoding="utf-8").split("\n")
        self.header = {**self.header, **fields}
        lines[0] = json.dumps(self.header, sort_keys=True, separators=(",", ":"))
        atomic_write_text(self.path, "\n".join(lines))

    def extend(self, records: Iterable[dict]) -> None:
        for record in records:
            append_jsonl(self.path, _timed_only(record))

    def close(self) -> None:
        """Release the profile's write lock (also released when the writer is garbage-collected)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None


def _timed_only(record: dict) -> dict:
    """A record without the metrics a profile derives when it is read (``corrected_*``):
    a file keeps what was timed, and its own reader derives them on its own scale."""
    return {k: v for k, v in record.items() if not k.startswith(CORRECTED_PREFIX)}


def _lock_profile(path: Path):
    """An exclusive ``flock`` on the sidecar ``.<name>.lock`` next to ``path``; a
    :class:`ProfileError` if another process holds it."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.parent / f".{path.name}.lock"
    handle = open(lock_path, "a")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ProfileError(f"another process is writing {path} (it holds {lock_path}); wait for it to finish "
                           f"or write to another file") from None
    return handle


DATA_DIR = Path(__file__).resolve().parent / "data"


def _shipped_dir(level: str) -> Path:
    if level not in ("network", "block"):
        raise ConfigError(f"profile level {level!r} unknown; allowed: network, block")
    return DATA_DIR if level == "network" else DATA_DIR / "blocks"


def shipped_profiles(level: str = "network") -> list[str]:
    """Names of the profiles that ship with the package (``<space>_<backend>``, e.g.
    ``mbv3-small_cpu-ort``), measured whole networks or (``level="block"``) blocks."""
    return sorted(p.stem for p in _shipped_dir(level).glob("*.jsonl"))


def shipped_profile_path(space: str, backend: str, level: str = "network") -> Path:
    """Path of a shipped profile, e.g. ``shipped_profile_path("mbv3-small", "cpu-ort")``."""
    path = _shipped_dir(level) / f"{space}_{backend}.jsonl"
    if not path.is_file():
        what = "profile" if level == "network" else "block profile"
        raise ProfileError(f"no shipped {what} for space {space!r} on backend {backend!r}; "
                           f"shipped: {shipped_profiles(level)}")
    return path


def load_shipped_profile(space: str, backend: str) -> Profile:
    """A shipped profile, loaded and validated."""
    return read_profile(shipped_profile_path(space, backend))


BLOCK_DATA_DIR = DATA_DIR / "blocks"


def shipped_block_profiles() -> list[str]:
    """Names of the block profiles that ship with the package (``<space>_<backend>``)."""
    return shipped_profiles("block")


def shipped_block_profile_path(space: str, backend: str) -> Path:
    """Path of a shipped block profile, e.g. ``shipped_block_profile_path("mbv3-small", "cpu-ort")``."""
    return shipped_profile_path(space, backend, "block")
