"""What every import shares: the named error, reading files with line numbers,
one-number statistics, manifests, and writing a whole profile at once."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ofa.errors import ConfigError, ProfileError
from ofa.io import atomic_write_text
from ofa.spaces import BlockSpec, NullBlock, SearchSpace, block_from_dict, block_from_key, resolve_space

from ..dataset import Profile, make_block_header, make_header, parse_profile


class ImportFormatError(ProfileError):
    """A file handed to an import is not what its format says: a missing
    section or column, a value that is not a number, a NaN latency, a block or
    architecture that does not exist. The message names the file and line."""


def where(path, line: int | None = None) -> str:
    return f"{path}:{line}" if line else str(path)


def read_text(path, what: str = "file") -> str:
    path = Path(path)
    if not path.is_file():
        raise ImportFormatError(f"no {what} at {path}" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        return path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets often start CSVs with a BOM
    except UnicodeDecodeError as error:
        raise ImportFormatError(f"{path}: not a UTF-8 text file ({error.reason} at byte {error.start}); "
                                f"export it as UTF-8 text") from None
    except OSError as error:
        raise ImportFormatError(f"cannot read {what} {path}: {error.strerror}") from None


def parse_number(text: str, path, line: int, what: str, positive: bool = False, allow_zero: bool = True) -> float:
    """A finite float from a cell of a file (named error with the line otherwise)."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ImportFormatError(f"{where(path, line)}: {what} {str(text).strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise ImportFormatError(f"{where(path, line)}: {what} is {str(text).strip()!r}; a finite number is needed")
    if positive and (value < 0 or (value == 0 and not allow_zero)):
        raise ImportFormatError(f"{where(path, line)}: {what} = {value:g}; it must be "
                                + ("> 0" if not allow_zero else ">= 0"))
    return value


def single_stats(value_ms: float, std_ms: float | None = None, runs: int | None = None) -> dict:
    """Statistics of one reported number (see docs/profiles.md): median, mean, p10 and
    p90 are the number itself; ``std``/``cv`` come from a reported standard deviation
    (0 without one); ``runs`` is the reported number of runs (1 without one)."""
    std = float(std_ms) if std_ms is not None else 0.0
    return {"median": float(value_ms), "mean": float(value_ms), "p10": float(value_ms), "p90": float(value_ms),
            "std": std, "cv": std / value_ms if value_ms > 0 else 0.0, "runs": int(runs) if runs else 1}


def pooled_stats(values_ms: list[float], stds_ms: list[float | None], runs: list[int | None]) -> dict:
    """One block or architecture reported several times (rows, files): the numbers
    are samples; their spread is the std (or the reported std of a single one)."""
    from ..dataset import latency_stats

    if len(values_ms) == 1:
        return single_stats(values_ms[0], stds_ms[0], runs[0])
    stats = latency_stats(values_ms)
    stats["runs"] = int(sum(r or 1 for r in runs))
    return stats


# --- spaces and blocks ----------------------------------------------------------------------------------------
def load_space(spec, path=None, line: int | None = None) -> SearchSpace:
    try:
        return resolve_space(spec)
    except (ConfigError, ProfileError) as error:
        raise ImportFormatError(f"{where(path, line) if path else 'space'}: {error}") from None


def space_blocks(space: SearchSpace) -> dict[str, BlockSpec] | None:
    """Every block an architecture of ``space`` runs, by key, where the space can list
    them cheaply (MobileNetV3 family); None where it cannot (then any valid block is accepted)."""
    if space.type_name != "mobilenetv3":
        return None
    return {block.key: block for block in space.distinct_blocks()}


def belongs_to_space(block: BlockSpec, known: dict[str, BlockSpec] | None) -> bool:
    """Whether a block profile of the space whose blocks are ``known`` (:func:`space_blocks`) may
    hold ``block``: one an architecture runs, or the runtime's per-inference cost (a ``null``
    block), which every profile measured on a timed backend holds beside them."""
    return known is None or block.key in known or isinstance(block, NullBlock)


def parse_block(entry: dict, path, line: int | None, known: dict[str, BlockSpec] | None,
                space: SearchSpace | None = None) -> BlockSpec:
    """The block of a manifest entry or table row: ``block`` (a ``BlockSpec.to_dict()``)
    or ``block_key`` (a ``BlockSpec.key``); it must exist in the space where the space
    lists its blocks."""
    try:
        if "block_key" in entry:
            block = block_from_key(str(entry["block_key"]))
        else:
            block = block_from_dict(entry["block"])
    except ConfigError as error:
        raise ImportFormatError(f"{where(path, line)}: not a valid block: {error}") from None
    if not belongs_to_space(block, known):
        raise ImportFormatError(f"{where(path, line)}: block {block.key} does not exist in the "
                                f"{space.type_name if space else ''} space {space.fingerprint if space else ''}: "
                                f"no architecture runs it (check the space, its resolutions and channel widths; "
                                f"space.distinct_blocks() lists every block)")
    return block


def parse_arch(space: SearchSpace, value, path, line: int | None):
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise ImportFormatError(f"{where(path, line)}: architecture is not valid JSON ({error.msg})") from None
    if isinstance(value, dict) and isinstance(value.get("arch"), dict):
        value = value["arch"]  # {"arch": {...}} as arch.json files hold it
    try:
        return space.parse(value)
    except ConfigError as error:
        raise ImportFormatError(f"{where(path, line)}: architecture not valid in the space: {error}") from None


# --- manifests ----------------------------------------------------------------------------------------------
MANIFEST_KEYS = ("format", "device", "space", "backend", "backend_version", "precision", "threads", "batch_size",
                 "level", "host", "notes", "entries")
ENTRY_TARGETS = ("block", "block_key", "arch")


@dataclass
class ManifestEntry:
    file: Path
    line: int
    target: str  # "block" or "arch"
    value: Any  # BlockSpec or architecture
    extra: dict = field(default_factory=dict)


@dataclass
class Manifest:
    path: Path
    data: dict
    space: SearchSpace
    entries: list[ManifestEntry]

    @property
    def level(self) -> str:
        return "block" if self.entries and self.entries[0].target == "block" else "network"


def _yaml_entry_lines(text: str) -> list[int]:
    """1-based line of each item of the top-level ``entries`` list (YAML or JSON)."""
    import yaml

    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if getattr(key, "value", None) == "entries" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def read_manifest(path, format_name: str, defaults: dict) -> Manifest:
    """A manifest (YAML or JSON): ``device``, ``space`` and ``entries``, each entry a
    ``file`` (relative to the manifest) and one of ``block`` / ``block_key`` / ``arch``."""
    import yaml

    path = Path(path)
    text = read_text(path, "manifest")
    try:
        data = yaml.safe_load(text)
        lines = _yaml_entry_lines(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ImportFormatError(f"{where(path, line)}: not valid YAML/JSON ({getattr(error, 'problem', error)})") \
            from None
    if not isinstance(data, dict):
        raise ImportFormatError(f"{where(path, 1)}: a manifest is a mapping with device, space and entries; "
                                f"got {type(data).__name__}")
    unknown = sorted(set(data) - set(MANIFEST_KEYS))
    if unknown:
        raise ImportFormatError(f"{path}: unknown manifest key(s) {unknown}; allowed: {list(MANIFEST_KEYS)}")
    if data.get("format") not in (None, format_name):
        raise ImportFormatError(f"{path}: the manifest says format {data['format']!r}, but it is being imported "
                                f"as {format_name!r}")
    for key in ("device", "space", "entries"):
        if key not in data:
            raise ImportFormatError(f"{path}: the manifest lacks {key!r} (required: device, space, entries)")
    if not isinstance(data["entries"], list) or not data["entries"]:
        raise ImportFormatError(f"{path}: 'entries' must be a non-empty list of {{file, block | block_key | arch}}")
    space = load_space(data["space"], path)
    known = space_blocks(space)
    entries = []
    for index, raw in enumerate(data["entries"]):
        line = lines[index] if index < len(lines) else None
        if not isinstance(raw, dict) or "file" not in raw:
            raise ImportFormatError(f"{where(path, line)}: entry {index} must be a mapping with 'file' and one of "
                                    f"{list(ENTRY_TARGETS)}")
        given = [k for k in ENTRY_TARGETS if k in raw]
        if len(given) != 1:
            raise ImportFormatError(f"{where(path, line)}: entry {index} must give exactly one of "
                                    f"{list(ENTRY_TARGETS)}, got {given or 'none'}")
        file = Path(raw["file"])
        file = file if file.is_absolute() else path.parent / file
        if not file.is_file():
            raise ImportFormatError(f"{where(path, line)}: entry {index}: no file {file}")
        extra = {k: v for k, v in raw.items() if k not in ("file", *ENTRY_TARGETS)}
        if given[0] == "arch":
            entries.append(ManifestEntry(file, line, "arch", parse_arch(space, raw["arch"], path, line), extra))
        else:
            entries.append(ManifestEntry(file, line, "block", parse_block(raw, path, line, known, space), extra))
    if len({e.target for e in entries}) > 1:
        raise ImportFormatError(f"{path}: entries mix blocks and architectures; a profile holds one level: "
                                f"write two manifests")
    merged = {**defaults, **{k: v for k, v in data.items() if v is not None}}
    return Manifest(path, merged, space, entries)


# --- writing ------------------------------------------------------------------------------------------------
def profile_header(level: str, space: SearchSpace, *, device: str, backend: str, backend_version: str = "unknown",
                   threads: int = 1, batch_size: int = 1, precision: str = "fp32", protocol: dict | None = None,
                   host: dict | None = None, **extra) -> dict:
    """The header of an imported profile: ``host`` describes the measured device
    (``{"device": ...}`` unless given), not the machine that ran the import."""
    if not isinstance(device, str) or not device.strip():
        raise ConfigError("an import needs a device id (--device or the manifest's 'device')")
    make = make_block_header if level == "block" else make_header
    return make(space, device, backend, str(backend_version), threads=int(threads), batch_size=int(batch_size),
                precision=str(precision), protocol=protocol or {}, host=host or {"device": device},
                imported=True, **extra)


def network_record(arch, space: SearchSpace, latency_ms: dict, **fields) -> dict:
    cost = space.cost(arch)
    return {"kind": "measurement", "arch": arch.to_dict(), "latency_ms": latency_ms, "macs": cost.macs,
            "params": cost.params, **fields}


def write_profile(out, header: dict, records: Iterable[dict], overwrite: bool = False) -> Profile:
    """Write a whole profile at once: validated first, then written atomically,
    so a bad record, a kill or a full disk leaves no partial file.
    An existing ``out`` is refused unless ``overwrite``."""
    out = Path(out)
    records = list(records)
    if not records:
        raise ImportFormatError("nothing to import: no measurement was found")
    if out.exists() and not overwrite:
        raise ProfileError(f"{out} already exists; an import writes a whole profile: choose another --out "
                           f"or pass --overwrite to replace it")
    if out.is_dir():
        raise ProfileError(f"{out} is a directory; --out is the profile file to write")
    lines = [json.dumps(header, sort_keys=True, separators=(",", ":"))]
    lines += [json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False) for record in records]
    text = "\n".join(lines) + "\n"
    profile = parse_profile(text, out)  # the same validation every reader applies, before anything is written
    atomic_write_text(out, text)
    return profile
