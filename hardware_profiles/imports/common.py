"""What every import shares: the named error, collecting every problem of an
input before raising once, the one checked number parser, reading files with
line numbers, one-number statistics, manifests, repeated measurements, the
plausibility of magnitudes, and writing a whole profile at once (never over a
file the import reads)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ofa.errors import ConfigError, OFAError, ProfileError
from ofa.io import atomic_write_text
from ofa.spaces import BlockSpec, MBConvBlock, NullBlock, SearchSpace, block_from_dict, block_from_key, resolve_space
from ofa.validation import PathError

from ..dataset import Profile, make_block_header, make_feature_header, make_header, parse_profile

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
# Effective throughput (MACs x batch size per second of latency) of every device this package
# prices: the shipped profiles span 6e8-2e11 MAC/s (simulated FPGAs to an FPGA DPU); a measurement
# outside 1e8-1e12 is far more likely a unit mistake (us or s read as ms) than a device.
PLAUSIBLE_MACS_PER_SECOND = (1e8, 1e12)
IMPLAUSIBLE = ("warn", "refuse", "ignore")


class ImportFormatError(ProfileError):
    """A file handed to an import is not what its format says: a missing
    section or column, a value that is not a number, a NaN latency, a block or
    architecture that does not exist. The message names the file and line;
    ``problems`` lists every problem found (an import reports them all at once)."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = list(problems) if problems else [message]


class BlockOutsideSpaceError(ImportFormatError):
    """A measured block that no architecture of the space runs. An import refuses the whole
    input for it (listing every such block at once) unless asked to skip them
    (``skip_outside_space``, ``--skip-outside-space``); ``block`` is the block, ``named`` where
    it is named (file:line and the name it had there)."""

    def __init__(self, message: str, block: BlockSpec, named: str):
        super().__init__(message)
        self.block, self.named = block, named


class ImplausibleLatencyWarning(UserWarning):
    """Imported latencies whose magnitude does not fit the networks' MACs (a unit mistake?)."""


class Problems:
    """Every problem of an input, raised once: ``with problems.collect(): ...`` around each
    row, entry or file records its :class:`ImportFormatError` and goes on; :meth:`raise_any`
    raises one error listing them all (file and line each)."""

    LIMIT = 40

    def __init__(self):
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        self.messages.append(message)

    @contextmanager
    def collect(self):
        try:
            yield
        except ImportFormatError as error:
            self.messages.extend(error.problems)

    def __bool__(self) -> bool:
        return bool(self.messages)

    def raise_any(self) -> None:
        messages = list(dict.fromkeys(self.messages))
        if len(messages) == 1:
            raise ImportFormatError(messages[0])
        if messages:
            shown = messages[:self.LIMIT]
            more = f"\n  ... and {len(messages) - len(shown)} more" if len(messages) > len(shown) else ""
            raise ImportFormatError(f"{len(messages)} problems:\n  " + "\n  ".join(shown) + more, messages)


def short(value) -> str:
    """A value in a message, bounded however large or nested (YAML aliases can make it huge)."""
    import reprlib

    return reprlib.repr(value)


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


def parse_number(text, path, line: int | None, what: str, positive: bool = False, allow_zero: bool = True,
                 integer: bool = False) -> float | int:
    """A finite number from a cell, field or option of a file: the one checked parser of
    every import (named error with the file and line otherwise). ``positive``: >= 0
    (> 0 unless ``allow_zero``); ``integer``: a whole number, returned as an int."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise ImportFormatError(f"{where(path, line)}: {what} {short(text)} is not a number")
    shown = str(text).strip()[:40]
    try:
        value = float(text.strip() if isinstance(text, str) else text)
    except (ValueError, OverflowError):
        raise ImportFormatError(f"{where(path, line)}: {what} {shown!r} is not a number") from None
    if not math.isfinite(value):
        raise ImportFormatError(f"{where(path, line)}: {what} is {shown!r}; a finite number is needed")
    if positive and (value < 0 or (value == 0 and not allow_zero)):
        raise ImportFormatError(f"{where(path, line)}: {what} = {value:g}; it must be "
                                + ("> 0" if not allow_zero else ">= 0"))
    if integer:
        if value != round(value):
            raise ImportFormatError(f"{where(path, line)}: {what} = {shown!r}; a whole number is needed")
        return int(value)
    return value


def load_yaml(text: str, path, what: str = "file"):
    """``(value, node)`` of a YAML/JSON text: every error of the parser (a bad tag, a
    date that does not exist, nesting too deep) named with the line; a key repeated in
    any mapping is refused (YAML would keep the last one silently)."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(error, "problem", None) or error
        raise ImportFormatError(f"{where(path, line)}: not valid YAML/JSON ({reason})") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as error:
        raise ImportFormatError(f"{path}: the {what} is not valid YAML/JSON ({type(error).__name__}: "
                                f"{str(error)[:120]})") from None
    problems = Problems()
    stack = [node] if node is not None else []
    visited: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) in visited:  # an alias (*name): one value in several places, or exponentially many
            raise ImportFormatError(f"{where(path, current.start_mark.line + 1)}: the {what} uses YAML anchors and "
                                    f"aliases (&name, *name); write each value out")
        visited.add(id(current))
        if isinstance(current, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value_node in current.value:
                if isinstance(key, yaml.ScalarNode):
                    line = key.start_mark.line + 1
                    if key.value in seen:
                        problems.add(f"{where(path, line)}: key {key.value!r} repeats line {seen[key.value]}")
                    seen.setdefault(key.value, line)
                stack.append(value_node)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    problems.raise_any()
    return value, node


def file_identity(path: Path) -> tuple:
    """What tells two input files apart: the resolved path, and the content's digest."""
    try:
        return os.path.realpath(path), hashlib.sha256(path.read_bytes()).hexdigest()
    except (OSError, ValueError):
        return os.path.realpath(path), None


def check_distinct_files(files: list[tuple[Path, str]], problems: Problems, what: str) -> None:
    """Each input file once: the same file (or a copy of its bytes) given twice is one
    measurement counted twice, refused even with ``--merge-duplicates``. ``files``:
    ``(path, where it is named)``."""
    paths: dict[str, str] = {}
    digests: dict[str, tuple[Path, str]] = {}
    for path, named in files:
        real, digest = file_identity(path)
        if real in paths:
            problems.add(f"{named}: {path.name} is given again ({paths[real]}): the same {what} counted twice; "
                         f"list each file once")
            continue
        paths[real] = named
        if digest is not None and digest in digests:
            first, first_named = digests[digest]
            problems.add(f"{named}: {path.name} holds the same bytes as {first.name} ({first_named}): the same "
                         f"{what} given twice; list each measurement once")
            continue
        if digest is not None:
            digests[digest] = (path, named)


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
    except OFAError as error:
        raise ImportFormatError(f"{where(path, line) if path else 'space'}: {error}") from None
    except Exception as error:  # a space file that is not UTF-8, JSON or YAML; a list where a name belongs
        raise ImportFormatError(f"{where(path, line) if path else 'space'}: {short(spec)} is not a space "
                                f"preset, space file or checkpoint ({type(error).__name__}: {str(error)[:120]})"
                                ) from None


def space_file(spec) -> Path | None:
    """The file a space specification names, if it names one (a space file or checkpoint)."""
    try:
        path = Path(spec)
        return path if isinstance(spec, (str, os.PathLike)) and path.is_file() else None
    except (TypeError, ValueError, OSError):
        return None


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
    except (ConfigError, TypeError, ValueError) as error:
        raise ImportFormatError(f"{where(path, line)}: not a valid block: {error}") from None
    check_in_space(block, known, space, where(path, line))
    return block


def check_in_space(block: BlockSpec, known: dict[str, BlockSpec] | None, space: SearchSpace | None,
                   named: str) -> None:
    """:class:`BlockOutsideSpaceError` where ``block`` (named at ``named``) is not one of the
    ``known`` blocks of the space (:func:`belongs_to_space`)."""
    if not belongs_to_space(block, known):
        raise BlockOutsideSpaceError(f"{named}: block {block.key} does not exist in the "
                                     f"{space.type_name if space else ''} space {space.fingerprint if space else ''}: "
                                     f"no architecture runs it (check the space, its resolutions and channel widths; "
                                     f"space.distinct_blocks() lists every block)", block, named)


def outside_space(errors: list[BlockOutsideSpaceError], skip: bool, problems: Problems) -> list[dict]:
    """The measured blocks outside the space, acted on: skipped and returned as
    ``[{named, key}]`` (for the profile's header and the report) when the user asks
    (``skip``), else one problem listing every one of them (never cut short: the user
    fixes the space or the names from this list)."""
    listed = [{"named": error.named, "key": error.block.key} for error in errors]
    if skip or not errors:
        return listed
    if len(errors) == 1:
        problems.add(f"{errors[0]}; pass --skip-outside-space (skip_outside_space=True) to import the others "
                     f"without it")
        return []
    problems.add(f"{len(errors)} measured block(s) do not exist in the space (no architecture runs them); pass "
                 f"--skip-outside-space (skip_outside_space=True) to import the others without them, or check the "
                 f"space, its resolutions and channel widths:\n    "
                 + "\n    ".join(f"{item['named']}: {item['key']}" for item in listed))
    return []


# --- block names ---------------------------------------------------------------------------------------------
# The naming conventions a measured block's name may follow, so that files named after their
# blocks need no manifest. ``ofa-latency``: the convention of public OFA latency datasets,
# ``in_{C}x{H}x{W}-out_{C}-k{k}-e{e}-s{s}-{act}-se{0|1}`` (an MBConv block; the letters before the
# kernel, expand ratio, stride and SE flag may be left out, a prefix such as ``blk07_`` before
# ``in_`` is ignored); ``block-key``: this package's own ``BlockSpec.key`` (any block kind).
NAME_PATTERNS = {
    "ofa-latency": "in_{C}x{H}x{W}-out_{C}-k{kernel}-e{expand}-s{stride}-{relu|hswish}-se{0|1}",
    "block-key": "kind:field=value:... (BlockSpec.key)",
}
_OFA_LATENCY_NAME = re.compile(
    r"^(?:.*?[_-])?in_(?P<cin>\d+)x(?P<h>\d+)x(?P<w>\d+)-out_(?P<cout>\d+)(?:x\d+x\d+)?"
    r"-k?(?P<k>\d+)-e?(?P<e>\d+(?:\.\d+)?)-s?(?P<s>\d+)-(?P<act>relu|h_?swish|hs)-(?P<se>se[01]?|nose|[01])$",
    re.IGNORECASE)


def block_from_name(name: str, space: SearchSpace, known: dict[str, BlockSpec] | None, named: str) -> BlockSpec:
    """The block of the space a measured block's name stands for (:data:`NAME_PATTERNS`;
    ``named``: where the name is, for messages). An ``ofa-latency`` name is matched against
    the space's blocks (the space decides the middle and SE channels the name leaves out);
    a name outside the space raises :class:`BlockOutsideSpaceError`."""
    if ":" in name and "=" in name:
        try:
            block = block_from_key(name)
        except ConfigError as error:
            raise ImportFormatError(f"{named}: {name!r} is not a valid block key: {error}") from None
        check_in_space(block, known, space, named)
        return block
    match = _OFA_LATENCY_NAME.match(name)
    if match is None:
        raise ImportFormatError(f"{named}: block name {name!r} follows none of the naming patterns "
                                f"{list(NAME_PATTERNS.values())}; rename the file or list it in a manifest")
    if known is None:
        raise ImportFormatError(f"{named}: {name!r} names an MBConv block, but the {space.type_name} space does not "
                                f"list MBConv blocks; use a manifest")
    g = match.groupdict()
    if g["h"] != g["w"]:
        raise ImportFormatError(f"{named}: {name!r}: {g['h']}x{g['w']} input; the space's blocks are square")
    wanted = (int(g["h"]), int(g["cin"]), int(g["cout"]), int(g["k"]), int(g["s"]), float(g["e"]),
              "relu" if g["act"].lower() == "relu" else "h_swish", g["se"].lower() not in ("0", "se0", "nose"))
    for block in known.values():
        if block.kind == "mbconv" and (block.resolution, block.in_channels, block.out_channels, block.kernel,
                                       block.stride, float(block.expand_ratio), block.activation,
                                       block.se_channels > 0) == wanted:
            return block
    # not one of the space's blocks: the block it describes, for the out-of-space list
    h, cin, cout, kernel, stride, ratio, activation, se = wanted
    mid = space.mid_channels(cin, ratio) if hasattr(space, "mid_channels") else round(cin * ratio)
    try:
        block = MBConvBlock(h, cin, cout, mid, kernel, stride, space.se_channels(mid) if se else 0, activation,
                            expand=ratio != 1, expand_ratio=ratio)
    except (ConfigError, TypeError, ValueError) as error:
        raise ImportFormatError(f"{named}: {name!r} is not a valid MBConv block: {error}") from None
    check_in_space(block, known, space, named)
    return block


def parse_arch(space: SearchSpace, value, path, line: int | None):
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError) as error:
            raise ImportFormatError(f"{where(path, line)}: architecture is not valid JSON "
                                    f"({getattr(error, 'msg', type(error).__name__)})") from None
    if isinstance(value, dict) and isinstance(value.get("arch"), dict):
        value = value["arch"]  # {"arch": {...}} as arch.json files hold it
    try:
        return space.parse(value)
    except (ConfigError, TypeError, ValueError) as error:
        raise ImportFormatError(f"{where(path, line)}: architecture not valid in the space: {error}") from None


# --- manifests ----------------------------------------------------------------------------------------------
MANIFEST_KEYS = ("format", "device", "space", "backend", "backend_version", "precision", "threads", "batch_size",
                 "level", "host", "notes", "entries")
ENTRY_TARGETS = ("block", "block_key", "arch")
LEVELS = ("network", "block")


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
    skipped: list[dict] = field(default_factory=list)  # blocks outside the space, skipped on request

    @property
    def level(self) -> str:
        return "block" if self.entries and self.entries[0].target == "block" else "network"

    @property
    def reads(self) -> list[tuple[str, Path]]:
        """Every file the import reads: the manifest, the files it names, a space file."""
        named = [("the manifest", self.path)] + [(f"a file the manifest names ({where(self.path, e.line)})", e.file)
                                                 for e in self.entries]
        space = space_file(self.data.get("space"))
        return named + ([("the manifest's space file", space)] if space else [])


def _entry_lines(node) -> list[int]:
    """1-based line of each item of the top-level ``entries`` list (YAML or JSON)."""
    import yaml

    if not isinstance(node, yaml.MappingNode):
        return []
    for key, value in node.value:
        if getattr(key, "value", None) == "entries" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def check_settings(data: dict, path, problems: Problems) -> dict:
    """The profile settings a manifest (or the command line) gives, checked: ``device`` a
    non-empty name, ``precision`` one of :data:`PRECISIONS`, ``threads`` and ``batch_size``
    whole numbers >= 1, ``level`` one of :data:`LEVELS`, ``backend`` a non-empty name,
    ``host`` a mapping. Returns them normalised (numbers as ints, names as strings)."""
    out = dict(data)
    for key in ("device", "backend"):
        if key in data and (not isinstance(data[key], (str, int, float)) or isinstance(data[key], bool)
                            or not str(data[key]).strip()):
            problems.add(f"{path}: {key} {short(data[key])} must be a non-empty name")
    if "backend_version" in data and not isinstance(data["backend_version"], (str, int, float)):
        problems.add(f"{path}: backend_version {short(data['backend_version'])} must be a name or number")
    if "precision" in data and data["precision"] not in PRECISIONS:
        problems.add(f"{path}: precision {short(data['precision'])} unknown; allowed: {list(PRECISIONS)}")
    if "level" in data and data["level"] not in LEVELS:
        problems.add(f"{path}: level {short(data['level'])} unknown; allowed: {list(LEVELS)}")
    for key in ("threads", "batch_size"):
        if key in data:
            with problems.collect():
                out[key] = parse_number(data[key], path, None, key, positive=True, allow_zero=False, integer=True)
    if "host" in data and not isinstance(data["host"], dict):
        problems.add(f"{path}: host must be a mapping (e.g. {{phone: Pixel 7, soc: Tensor G2}}), got "
                     f"{type(data['host']).__name__}")
    return out


def read_manifest(path, format_name: str, defaults: dict, skip_outside_space: bool = False) -> Manifest:
    """A manifest (YAML or JSON): ``device``, ``space`` and ``entries``, each entry a
    ``file`` (relative to the manifest) and one of ``block`` / ``block_key`` / ``arch``.
    Every problem (of the settings and of every entry) is reported at once; blocks outside
    the space are all listed in one problem, or skipped (``skip_outside_space``, listed in
    ``Manifest.skipped``)."""
    path = Path(path)
    text = read_text(path, "manifest")
    data, node = load_yaml(text, path, "manifest")
    if not isinstance(data, dict):
        raise ImportFormatError(f"{where(path, 1)}: a manifest is a mapping with device, space and entries; "
                                f"got {type(data).__name__}")
    problems = Problems()
    unknown = sorted(str(k) for k in set(data) - set(MANIFEST_KEYS))
    if unknown:
        problems.add(f"{path}: unknown manifest key(s) {unknown}; allowed: {list(MANIFEST_KEYS)}")
    if data.get("format") not in (None, format_name):
        problems.add(f"{path}: the manifest says format {short(data['format'])}, but it is being imported as "
                     f"{format_name!r}")
    data = {k: v for k, v in data.items() if v is not None}  # a key left empty is a key not given
    missing = [key for key in ("device", "space", "entries") if key not in data]
    if missing:
        problems.add(f"{path}: the manifest lacks {missing} (required: device, space, entries)")
    data = check_settings(data, path, problems)
    space = None
    if "space" in data:
        with problems.collect():
            space = load_space(data["space"], path)
    raw_entries = data.get("entries")
    if "entries" in data and (not isinstance(raw_entries, list) or not raw_entries):
        problems.add(f"{path}: 'entries' must be a non-empty list of {{file, block | block_key | arch}}")
        raw_entries = []
    lines = _entry_lines(node)
    known = space_blocks(space) if space is not None else None
    entries, files, outside = [], [], []
    for index, raw in enumerate(raw_entries or []):
        line = lines[index] if index < len(lines) else None
        with problems.collect():
            try:
                entry = _manifest_entry(raw, index, path, line, space, known)
            except BlockOutsideSpaceError as error:
                outside.append(error)
                continue
            if entry is not None:
                entries.append(entry)
                files.append((entry.file, f"{where(path, line)}: entry {index}"))
    check_distinct_files(files, problems, "measurement file")
    skipped = outside_space(outside, skip_outside_space, problems)
    if len({e.target for e in entries}) > 1:
        problems.add(f"{path}: entries mix blocks and architectures; a profile holds one level: write two "
                     f"manifests")
    problems.raise_any()
    merged = {**defaults, **data}
    return Manifest(path, merged, space, entries, skipped)


def _manifest_entry(raw, index: int, path: Path, line, space, known) -> ManifestEntry | None:
    if not isinstance(raw, dict) or "file" not in raw:
        raise ImportFormatError(f"{where(path, line)}: entry {index} must be a mapping with 'file' and one of "
                                f"{list(ENTRY_TARGETS)}")
    given = [k for k in ENTRY_TARGETS if k in raw]
    if len(given) != 1:
        raise ImportFormatError(f"{where(path, line)}: entry {index} must give exactly one of "
                                f"{list(ENTRY_TARGETS)}, got {given or 'none'}")
    if not isinstance(raw["file"], str) or not raw["file"].strip():
        raise ImportFormatError(f"{where(path, line)}: entry {index}: file must be a path, got {short(raw['file'])}")
    file = Path(raw["file"])
    file = file if file.is_absolute() else path.parent / file
    try:
        exists = file.is_file()
    except (OSError, ValueError):
        exists = False
    if not exists:
        raise ImportFormatError(f"{where(path, line)}: entry {index}: no file {str(file)[:200]}")
    if space is None:
        return None
    extra = {k: v for k, v in raw.items() if k not in ("file", *ENTRY_TARGETS)}
    if given[0] == "arch":
        return ManifestEntry(file, line, "arch", parse_arch(space, raw["arch"], path, line), extra)
    return ManifestEntry(file, line, "block", parse_block(raw, path, line, known, space), extra)


def manifest_files(path) -> list[Path]:
    """The files a manifest names, read leniently (nothing raised): what an import of it will
    read, so that a command can refuse an ``--out`` among them before any work."""
    try:
        data, _ = load_yaml(read_text(path, "manifest"), path)
        entries = data.get("entries") if isinstance(data, dict) else None
        files = [Path(e["file"]) for e in entries or [] if isinstance(e, dict) and isinstance(e.get("file"), str)]
        space = space_file(data.get("space")) if isinstance(data, dict) else None
    except (OFAError, OSError, ValueError, TypeError):
        return []
    return [f if f.is_absolute() else Path(path).parent / f for f in files] + ([space] if space else [])


# --- repeated measurements ------------------------------------------------------------------------------------
def check_repeats(sources: dict[str, list[str]], merge: bool, what: str, problems: Problems) -> list[dict]:
    """The same architecture or block measured more than once (rows, entries, files,
    ``sources``: key -> where each measurement is): pooled as samples only when the user
    asks (``merge``, ``--merge-duplicates``), then returned as ``[{key, sources}]`` for the
    profile's header and the report; otherwise one problem per repeat."""
    repeated = {key: where_ for key, where_ in sources.items() if len(where_) > 1}
    if merge:
        return [{"key": key, "sources": where_} for key, where_ in repeated.items()]
    for key, where_ in repeated.items():
        problems.add(f"{where_[1]}: {what} {key[:160]} is measured again (first at {where_[0]}"
                     + (f"; {len(where_)} times in all" if len(where_) > 2 else "")
                     + "): pass --merge-duplicates (merge_duplicates=True) to pool repeats as samples")
    return []


# --- plausibility -----------------------------------------------------------------------------------------------
def plausibility(records: list[dict], batch_size: int = 1) -> str | None:
    """Why the records' latencies look like a unit mistake, or None: the median effective
    throughput (MACs x batch size / latency) of the records with MACs outside
    :data:`PLAUSIBLE_MACS_PER_SECOND`, with the likely mistake."""
    rates = []
    for record in records:
        stats, macs = record.get("latency_ms") or {}, record.get("macs")
        median = stats.get("median") if isinstance(stats, dict) else None
        if isinstance(macs, (int, float)) and macs > 0 and isinstance(median, (int, float)) and median > 0:
            rates.append(macs * batch_size / (median * 1e-3))
    if not rates:
        return None
    rate = float(sorted(rates)[len(rates) // 2])
    low, high = PLAUSIBLE_MACS_PER_SECOND
    if low <= rate <= high:
        return None
    guesses = [(1e3, "microseconds given as milliseconds (table: --unit us)"),
               (1e6, "nanoseconds given as milliseconds"),
               (1e-3, "seconds given as milliseconds (table: --unit s)")]
    guess = next((text for factor, text in guesses if low <= rate * factor <= high), None)
    direction = "large" if rate < low else "small"
    return (f"the latencies look too {direction} for the networks' MACs: the median record runs at "
            f"{rate:.3g} MAC/s, outside the {low:.0e}-{high:.0e} MAC/s of any device this package prices"
            + (f"; likely {guess}" if guess else "") + ". Check the unit of the measurements")


def check_plausible(records: list[dict], batch_size, source, on_implausible: str = "warn") -> str | None:
    """:func:`plausibility`, acted on: ``warn`` (an :class:`ImplausibleLatencyWarning`),
    ``refuse`` (an :class:`ImportFormatError`) or ``ignore``. Returns the message, if any."""
    if on_implausible not in IMPLAUSIBLE:
        raise ConfigError(f"on_implausible {on_implausible!r} unknown; allowed: {list(IMPLAUSIBLE)}")
    message = plausibility(records, int(batch_size or 1))
    if message is None or on_implausible == "ignore":
        return None
    message = f"{source}: {message}"
    if on_implausible == "refuse":
        raise ImportFormatError(message + " (or leave out --refuse-implausible to import them with a warning)")
    warnings.warn(message + " (--refuse-implausible refuses such imports)", ImplausibleLatencyWarning,
                  stacklevel=3)
    return message


# --- writing ------------------------------------------------------------------------------------------------
def profile_header(level: str, space: SearchSpace, *, device: str, backend: str, backend_version: str = "unknown",
                   threads: int = 1, batch_size: int = 1, precision: str = "fp32", protocol: dict | None = None,
                   host: dict | None = None, merged: list | None = None, **extra) -> dict:
    """The header of an imported profile: ``host`` describes the measured device
    (``{"device": ...}`` unless given), not the machine that ran the import; ``merged``
    lists the repeated measurements pooled on request (:func:`check_repeats`)."""
    problems = Problems()
    settings = check_settings({"device": device, "backend": backend, "backend_version": backend_version,
                               "threads": threads, "batch_size": batch_size, "precision": precision,
                               **({"host": host} if host is not None else {})}, "profile settings", problems)
    if problems:
        raise ConfigError("; ".join(problems.messages))
    if merged:
        extra["merged"] = merged
    if level == "features":  # rows of the user's own columns: the space is optional
        return make_feature_header(space, extra.pop("features"), str(device), str(backend), str(backend_version),
                                   threads=settings["threads"], batch_size=settings["batch_size"],
                                   precision=str(precision), protocol=protocol or {},
                                   host=host or {"device": str(device)}, imported=True, **extra)
    make = make_block_header if level == "block" else make_header
    return make(space, str(device), str(backend), str(backend_version), threads=settings["threads"],
                batch_size=settings["batch_size"], precision=str(precision), protocol=protocol or {},
                host=host or {"device": str(device)}, imported=True, **extra)


def network_record(arch, space: SearchSpace, latency_ms: dict, **fields) -> dict:
    cost = space.cost(arch)
    return {"kind": "measurement", "arch": arch.to_dict(), "latency_ms": latency_ms, "macs": cost.macs,
            "params": cost.params, **fields}


def check_not_an_input(out, reads: Iterable, name: str = "--out") -> None:
    """``out`` is none of the files an import reads (``(label, path)`` or paths: its inputs,
    the files a manifest names, a space file), whatever ``overwrite`` says."""
    out = Path(out)
    for item in reads:
        label, path = item if isinstance(item, tuple) else ("an input", item)
        if path is None:
            continue
        path = Path(path)
        try:
            same = os.path.samefile(out, path) if out.exists() and path.exists() else \
                os.path.realpath(out) == os.path.realpath(path)
        except (OSError, ValueError):
            same = False
        if same:
            raise PathError(f"{name} {str(out)!r} is also {label}, which this import reads: writing it would "
                            f"destroy that input (with or without --overwrite); choose another output path")


def write_profile(out, header: dict, records: Iterable[dict], overwrite: bool = False, reads: Iterable = (),
                  on_implausible: str = "warn") -> Profile:
    """Write a whole profile at once: validated first, then written atomically,
    so a bad record, a kill or a full disk leaves no partial file.
    An existing ``out`` is refused unless ``overwrite``; one of the files the import
    ``reads`` always. Latencies implausible for the networks' MACs are warned about or
    refused (``on_implausible``, :func:`check_plausible`)."""
    out = Path(out)
    records = list(records)
    if not records:
        raise ImportFormatError("nothing to import: no measurement was found")
    check_not_an_input(out, reads)
    if out.exists() and not overwrite:
        raise ProfileError(f"{out} already exists; an import writes a whole profile: choose another --out "
                           f"or pass --overwrite to replace it")
    if out.is_dir():
        raise ProfileError(f"{out} is a directory; --out is the profile file to write")
    problems = Problems()
    for index, record in enumerate(records):
        stats = record.get("latency_ms")
        if not isinstance(stats, dict) or not all(isinstance(stats.get(k), (int, float)) and stats[k] > 0
                                                  for k in ("median", "mean", "p10", "p90")):
            problems.add(f"{out} (record {index + 1}, from {json.dumps(record.get('source'))[:120]}): latency "
                         f"{json.dumps(stats)[:120]}: an imported measurement must be finite and > 0")
    problems.raise_any()
    try:
        lines = [json.dumps(header, sort_keys=True, separators=(",", ":"), allow_nan=False)]
        lines += [json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False) for record in records]
    except ValueError:  # a statistic overflowed (numbers near 1e308 pooled)
        raise ImportFormatError(f"{out}: a statistic of the imported numbers is not finite (values too large to "
                                f"pool); check the file's numbers and unit") from None
    text = "\n".join(lines) + "\n"
    profile = parse_profile(text, out)  # the same validation every reader applies, before anything is written
    check_plausible(records, header.get("batch_size", 1), header.get("source") or out.name, on_implausible)
    atomic_write_text(out, text)
    return profile
