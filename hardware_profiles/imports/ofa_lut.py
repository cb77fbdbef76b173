"""Once-for-All latency lookup tables (``<resolution>_lookup_table.yaml``) in and out.

Once-for-All (mit-han-lab/once-for-all, ``ofa/nas/efficiency_predictor/
latency_lookup_table.py``, class ``MBv3LatencyTable``) prices a MobileNetV3
subnet as a sum of per-layer table entries, one YAML mapping per resolution::

    Conv-input:160x160x3-output:80x80x24:             {count: 498, mean: 0.4956, std: 0.0102}
    expanded_conv-input:80x80x24-output:80x80x24-expand:24-kernel:3-stride:1-idskip:1-se:0-hs:0: {...}
    expanded_conv-input:80x80x24-output:40x40x32-expand:72-kernel:3-stride:2-idskip:0-se:0-hs:0: {...}
    Conv_1-input:5x5x192-output:5x5x1152:              {...}
    AvgPool2D-input:5x5x1152-output:1x1x1152:          {...}
    Conv_2-input:1x1x1152-output:1x1x1536:             {...}
    Logits-input:1x1x1536-output:1000:                 {...}

(shapes are H x W x C; ``expand`` is the *middle channel count* of the block,
``idskip`` the residual connection, ``se`` squeeze-excitation, ``hs``
h-swish). The mapping to our block specs (:mod:`ofa.spaces.blocks`):

* ``Conv`` -> ``stem`` (3x3, the stride that gives the output size, h-swish:
  Once-for-All's first conv);
* ``expanded_conv`` -> ``mbconv``: ``mid_channels = expand``; no expand conv when
  ``expand`` equals the input channels (the first block), otherwise the expand
  ratio of the space whose ``mid_channels(in, ratio)`` is ``expand``;
  ``se_channels`` = the space's SE width of ``mid`` when ``se:1``; ``relu``/``h_swish``
  from ``hs``; ``idskip`` must agree with stride 1 and equal channels;
* ``Conv_1`` + ``AvgPool2D`` + ``Conv_2`` + ``Logits`` of the same final
  resolution -> one ``head`` block (their means add; their stds add in quadrature).

Every block must exist in the space (``space.distinct_blocks()``): a table
made for another width multiplier is refused, naming the first foreign key
and its line. Statistics: ``mean`` and ``std`` as recorded (``median``, ``p10``
and ``p90`` are the mean: the tables hold no more), ``runs`` is ``count``.

Export (:func:`export_ofa_lut`) writes a block profile back in this format;
a ``head`` block, measured as one, goes to ``Conv_1`` with its whole latency,
and ``AvgPool2D``, ``Conv_2`` and ``Logits`` get mean 0 and no count (their
sum is the head; heads of several resolutions share the ``Conv_2`` and
``Logits`` entries). The runtime's per-inference cost that a block profile of
a timed backend holds (a ``null`` block, :class:`~ofa.spaces.NullBlock`) is
written as ``null-input:1x3x24x24-output:1x3x24x24`` (its input shape as
measured): Once-for-All never queries that key, and an import reads it back,
so export and re-import of a block profile keep every record.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from ofa.errors import ConfigError
from ofa.io import atomic_write_text
from ofa.spaces import BlockSpec, ClassifierHeadBlock, MBConvBlock, NullBlock, SearchSpace, StemBlock
from ofa.spaces.blocks import conv_out_size

from ..dataset import Profile, block_record, read_profile
from .common import (ImportFormatError, Problems, belongs_to_space, check_distinct_files, check_not_an_input,
                     check_repeats, load_space, load_yaml, pooled_stats, profile_header, read_text, short,
                     space_blocks, space_file, where, write_profile)

_SHAPE = r"(\d+(?:x\d+)*)"
_KEY = re.compile(rf"^(?P<type>[A-Za-z_0-9]+)-input:{_SHAPE}-output:{_SHAPE}(?P<rest>(?:-[a-z_]+:-?\d+)*)$")
HEAD_PARTS = ("Conv_1", "AvgPool2D", "Conv_2", "Logits")
MBCONV_FIELDS = ("expand", "kernel", "stride", "idskip", "se", "hs")
NULL_LAYER = "null"  # not one of Once-for-All's layers: the runtime's per-inference cost (module docstring)


def _shape(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split("x"))


def _entries(path: Path) -> list[tuple[str, int, dict]]:
    """``(key, line, {count, mean, std})`` of every entry of a lookup-table YAML file
    (every bad entry reported at once)."""
    import yaml

    text = read_text(path, "lookup table")
    _, node = load_yaml(text, path, "lookup table")  # also refuses a key given twice
    if not isinstance(node, yaml.MappingNode) or not node.value:
        raise ImportFormatError(f"{where(path, 1)}: a lookup table is a YAML mapping of layer keys to "
                                f"{{count, mean, std}}")
    loader = yaml.SafeLoader("")
    out = []
    problems = Problems()
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else f"<{type(key_node).__name__}>"
        value = loader.construct_object(value_node, deep=True)  # load_yaml constructed it once already
        lines = ({str(getattr(k, "value", "")): k.start_mark.line + 1 for k, _ in value_node.value}
                 if isinstance(value_node, yaml.MappingNode) else {})
        if not isinstance(value, dict) or "mean" not in value:
            problems.add(f"{where(path, line)}: entry {key[:120]!r} must be a mapping with mean (and count, std)")
            continue
        stats = {}
        for name in ("mean", "std", "count"):
            if name in value:
                v = value[name]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                    problems.add(f"{where(path, lines.get(name, line))}: {key[:120]!r} {name} = {short(v)}; a "
                                 f"finite number >= 0 is needed")
                elif name == "count" and (v != round(v) or v < 1):
                    problems.add(f"{where(path, lines.get(name, line))}: {key[:120]!r} count = {v!r}; the number "
                                 f"of measurements is a whole number >= 1")
                else:
                    stats[name] = float(v)
        if "mean" in stats and stats["mean"] <= 0 and not key.startswith(HEAD_PARTS[1:]):  # may fold into Conv_1
            problems.add(f"{where(path, lines.get('mean', line))}: {key[:120]!r} mean = {stats['mean']:g}; a "
                         f"latency must be > 0")
        elif len(stats) == len([n for n in ("mean", "std", "count") if n in value]):
            out.append((key, line, stats))
    problems.raise_any()
    return out


def _parse_key(key: str, path, line: int) -> tuple[str, tuple, tuple, dict]:
    match = _KEY.match(key)
    if not match:
        raise ImportFormatError(f"{where(path, line)}: {key!r} is not a lookup-table key "
                                f"('<layer>-input:HxWxC-output:HxWxC[-expand:..-kernel:..-...]')")
    fields = {}
    for part in filter(None, match.group("rest").split("-")):
        name, _, value = part.partition(":")
        fields[name] = int(value)
    return match.group("type"), _shape(match.group(2)), _shape(match.group(3)), fields


def _stride(size_in: int, size_out: int, path, line: int) -> int:
    for stride in (1, 2, 3, 4):
        if conv_out_size(size_in, stride) == size_out:
            return stride
    raise ImportFormatError(f"{where(path, line)}: no stride takes {size_in} to {size_out}")


def _mbconv(space: SearchSpace, inp, out, fields: dict, path, line: int, key: str) -> MBConvBlock:
    missing = [f for f in MBCONV_FIELDS if f not in fields]
    if missing:
        hint = " (a ProxylessNAS table? only MobileNetV3 tables are supported)" if "se" in missing else ""
        raise ImportFormatError(f"{where(path, line)}: {key!r} lacks {missing}{hint}")
    (h, _, cin), (h_out, _, cout) = inp, out
    mid, stride = fields["expand"], fields["stride"]
    bad = [f"{name}:{fields[name]}" for name in ("expand", "kernel", "stride") if fields[name] < 1]
    bad += [f"{name}:{fields[name]}" for name in ("idskip", "se", "hs") if fields[name] not in (0, 1)]
    if bad:
        raise ImportFormatError(f"{where(path, line)}: {key!r}: {', '.join(bad)} is not allowed (expand, kernel, "
                                f"stride >= 1; idskip, se, hs 0 or 1)")
    if conv_out_size(h, stride) != h_out:
        raise ImportFormatError(f"{where(path, line)}: {key!r}: stride {stride} does not take {h} to {h_out}")
    if bool(fields["idskip"]) != (stride == 1 and cin == cout):
        raise ImportFormatError(f"{where(path, line)}: {key!r}: idskip:{fields['idskip']} contradicts stride "
                                f"{stride} with {cin} -> {cout} channels")
    if mid == cin:
        expand, ratio = False, 1.0
    else:
        ratios = [float(e) for e in getattr(space, "expand_ratios", ()) if space.mid_channels(cin, e) == mid]
        if not ratios:
            raise ImportFormatError(f"{where(path, line)}: {key!r}: {mid} middle channels from {cin} match no "
                                    f"expand ratio of the space {list(getattr(space, 'expand_ratios', ()))}")
        expand, ratio = True, ratios[0]
    se = space.se_channels(mid) if fields["se"] else 0
    try:
        return MBConvBlock(h, cin, cout, mid, fields["kernel"], stride, se,
                           "h_swish" if fields["hs"] else "relu", expand=expand, expand_ratio=ratio)
    except ConfigError as error:
        raise ImportFormatError(f"{where(path, line)}: {key!r}: {error}") from None


def _block(make, path, line: int, key: str):
    try:
        return make()
    except ConfigError as error:
        raise ImportFormatError(f"{where(path, line)}: {key!r}: {error}") from None


def lut_blocks(paths, space, merge_duplicates: bool = False) -> list[tuple[BlockSpec, dict, dict]]:
    """``(block, statistics, provenance)`` of every block the lookup table(s) price. Every
    problem of every file is reported at once; the same file given twice is refused, and
    a block priced by several tables only pools with ``merge_duplicates``."""
    space = load_space(space)
    if space.type_name != "mobilenetv3":
        raise ImportFormatError(f"Once-for-All lookup tables price MobileNetV3 networks; the space is "
                                f"{space.type_name}")
    known = space_blocks(space)
    found: dict[str, dict] = {}
    problems = Problems()
    paths = [Path(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
    check_distinct_files([(path, f"input {i + 1}") for i, path in enumerate(paths)], problems, "lookup table")
    problems.raise_any()

    def add(block, stats, source, path, line, key):
        if not belongs_to_space(block, known):
            raise ImportFormatError(
                f"{where(path, line)}: {key!r} is block {block.key}, which no architecture of the space runs "
                f"(a table for another width or resolution set? the space's stem is {space.stem_width} "
                f"channels, its stages {list(space.stage_widths)})")
        entry = found.setdefault(block.key, {"block": block, "values": [], "stds": [], "runs": [], "sources": [],
                                             "where": []})
        entry["values"].append(stats["mean"])
        entry["stds"].append(stats.get("std"))
        entry["runs"].append(int(stats["count"]) if "count" in stats else None)
        entry["sources"].append(source)
        entry["where"].append(where(path, line))

    for path in paths:
        with problems.collect():
            _table_blocks(path, space, add, problems)
    check_repeats({key: entry["where"] for key, entry in found.items()}, merge_duplicates, "block", problems)
    problems.raise_any()
    out = []
    for entry in found.values():
        stats = pooled_stats(entry["values"], entry["stds"], entry["runs"])
        out.append((entry["block"], stats, {"ofa_lut": entry["sources"]}))
    return out


def _table_blocks(path: Path, space, add, problems: Problems) -> None:
    """Every block of one lookup table, passed to ``add``; problems collected per entry."""
    heads: dict[str, list] = {part: [] for part in HEAD_PARTS}
    for key, line, stats in _entries(path):
        with problems.collect():
            kind, inp, out, fields = _parse_key(key, path, line)
            source = {"file": path.name, "line": line, "keys": [key]}
            unknown = sorted(set(fields) - set(MBCONV_FIELDS if kind == "expanded_conv" else ()))
            if unknown:
                raise ImportFormatError(f"{where(path, line)}: {key!r}: field(s) {unknown} unknown for a {kind} entry"
                                        + (f" (its fields: {list(MBCONV_FIELDS)})" if kind == "expanded_conv" else ""))
            if kind in ("Conv", "expanded_conv") and (len(inp) != 3 or len(out) != 3):
                raise ImportFormatError(f"{where(path, line)}: {key!r}: shapes must be HxWxC")
            if kind == "Conv":
                block = _block(lambda: StemBlock(inp[0], inp[2], out[2], 3, _stride(inp[0], out[0], path, line),
                                                 "h_swish"), path, line, key)
                add(block, stats, source, path, line, key)
            elif kind == "expanded_conv":
                add(_mbconv(space, inp, out, fields, path, line, key), stats, source, path, line, key)
            elif kind in HEAD_PARTS:
                heads[kind].append((key, line, stats, inp, out))
            elif kind == NULL_LAYER:
                if inp != out:
                    raise ImportFormatError(f"{where(path, line)}: {key!r}: a null block's output is its input")
                add(_block(lambda: NullBlock(inp), path, line, key), stats, source, path, line, key)
            else:
                raise ImportFormatError(f"{where(path, line)}: layer type {kind!r} unknown; a MobileNetV3 lookup "
                                        f"table has Conv, expanded_conv, {', '.join(HEAD_PARTS)} (and {NULL_LAYER})")
    used = set()
    for key, line, stats, inp, out in heads["Conv_1"]:
        with problems.collect():
            h, cin, final = inp[0], inp[-1], out[-1]
            pool = [e for e in heads["AvgPool2D"] if e[3][0] == h and e[3][-1] == final]
            mix = [e for e in heads["Conv_2"] if e[3][-1] == final]
            if len(pool) != 1 or len(mix) != 1:
                raise ImportFormatError(f"{where(path, line)}: the head of {key!r} needs one AvgPool2D-input:"
                                        f"{h}x{h}x{final}-... and one Conv_2-input:1x1x{final}-... entry; found "
                                        f"{len(pool)} and {len(mix)}")
            feature = mix[0][4][-1]
            logits = [e for e in heads["Logits"] if e[3][-1] == feature]
            if len(logits) != 1:
                raise ImportFormatError(f"{where(path, line)}: the head of {key!r} needs one Logits-input:1x1x"
                                        f"{feature}-... entry; found {len(logits)}")
            parts = [(key, line, stats), pool[0][:3], mix[0][:3], logits[0][:3]]
            used.update(p[0] for p in parts)
            mean = sum(p[2]["mean"] for p in parts)
            std = math.sqrt(sum(p[2].get("std", 0.0) ** 2 for p in parts))
            counts = [p[2]["count"] for p in parts if "count" in p[2]]
            block = _block(lambda: ClassifierHeadBlock(h, cin, final, feature, int(logits[0][4][-1]), "h_swish"),
                           path, line, key)
            add(block, {"mean": mean, "std": std, **({"count": min(counts)} if counts else {})},
                {"file": path.name, "line": line, "keys": [p[0] for p in parts]}, path, line, key)
    for part in HEAD_PARTS[1:]:
        for key, line, *_ in heads[part]:
            if key not in used:
                problems.add(f"{where(path, line)}: {key!r} belongs to no head (no Conv_1 entry leads to it)")


def import_ofa_lut(paths, out, space, device: str, *, overwrite: bool = False, backend: str = "ofa-lut",
                   backend_version: str = "unknown", precision: str = "fp32", threads: int = 1,
                   batch_size: int = 1, merge_duplicates: bool = False, on_implausible: str = "warn") -> Profile:
    """Write a block profile from Once-for-All lookup table(s) (one file per resolution); ``out``
    may be none of the tables (nor a space file), even with ``overwrite``."""
    paths = [Path(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
    reads = [("a lookup table given as input", p) for p in paths]
    reads += [("the --space file", space_file(space))] if space_file(space) else []
    check_not_an_input(out, reads)
    space = load_space(space)
    blocks = lut_blocks(paths, space, merge_duplicates)
    merged = [{"key": block.key, "sources": [where(s["file"], s["line"]) for s in provenance["ofa_lut"]]}
              for block, _, provenance in blocks if len(provenance["ofa_lut"]) > 1]
    header = profile_header("block", space, device=device, backend=backend, backend_version=backend_version,
                            threads=threads, batch_size=batch_size, precision=precision,
                            protocol={"tool": "Once-for-All latency lookup table",
                                      "statistics": "mean and std as recorded; median, p10, p90 = mean"},
                            source=[p.name for p in paths], merged=merged)
    records = [block_record(block, stats, **provenance) for block, stats, provenance in blocks]
    return write_profile(out, header, records, overwrite=overwrite, reads=reads, on_implausible=on_implausible)


def _hw(size: int, channels: int) -> str:
    return f"{size}x{size}x{channels}"


def ofa_lut_entries(profile, statistic: str = "mean") -> dict[str, dict]:
    """``{key: {count, mean, std}}`` of a block profile in Once-for-All's key format."""
    if not isinstance(profile, Profile):
        profile = read_profile(profile)
    blocks = profile.blocks()
    out: dict[str, dict] = {}

    def put(key, value, record_index, placeholder=False):
        if key in out and not (placeholder and out[key] == value):
            raise ImportFormatError(f"{profile.path or 'profile'}: two blocks map to the lookup-table key {key!r} "
                                    f"(record {record_index + 2})")
        out[key] = value

    for index, (record, block) in enumerate(zip(profile.records, blocks)):
        stats = record["latency_ms"]
        if statistic not in stats:
            raise ImportFormatError(f"statistic {statistic!r} unknown; records hold {sorted(stats)}")
        value = {"count": int(stats["runs"]), "mean": float(stats[statistic]), "std": float(stats["std"])}
        if isinstance(block, StemBlock):
            if block.kernel != 3 or block.activation != "h_swish":
                raise ImportFormatError(f"stem {block.key}: a lookup table's Conv entry is a 3x3 h-swish conv")
            put(f"Conv-input:{_hw(block.resolution, block.in_channels)}-output:"
                f"{_hw(block.out_resolution, block.out_channels)}", value, index)
        elif isinstance(block, MBConvBlock):
            put(f"expanded_conv-input:{_hw(block.resolution, block.in_channels)}-output:"
                f"{_hw(block.out_resolution, block.out_channels)}-expand:{block.mid_channels}-kernel:{block.kernel}"
                f"-stride:{block.stride}-idskip:{int(block.residual)}-se:{int(block.use_se)}"
                f"-hs:{int(block.activation == 'h_swish')}", value, index)
        elif isinstance(block, ClassifierHeadBlock):
            r, final, mix = block.resolution, block.final_expand_channels, block.feature_mix_channels
            put(f"Conv_1-input:{_hw(r, block.in_channels)}-output:{_hw(r, final)}", value, index)
            # no count: a placeholder is no measurement, and the count of the head read back is Conv_1's
            for key in (f"AvgPool2D-input:{_hw(r, final)}-output:1x1x{final}",
                        f"Conv_2-input:1x1x{final}-output:1x1x{mix}",
                        f"Logits-input:1x1x{mix}-output:{block.num_classes}"):
                put(key, {"mean": 0.0, "std": 0.0}, index, placeholder=True)
        elif isinstance(block, NullBlock) and block.dtype == "float32":
            shape = "x".join(map(str, block.shape))
            put(f"{NULL_LAYER}-input:{shape}-output:{shape}", value, index)
        else:
            raise ImportFormatError(f"block {block.key}: Once-for-All lookup tables hold MobileNetV3 layers only "
                                    f"(stem, mbconv, head) and the float32 null block of their runtime")
    return out


def export_ofa_lut(profile, out, *, statistic: str = "mean", overwrite: bool = False) -> Path:
    """Write a block profile as a Once-for-All lookup-table YAML (atomic write)."""
    import yaml

    out = Path(out)
    if not isinstance(profile, Profile):
        check_not_an_input(out, [("the block profile given as input", profile)])
    if out.exists() and not overwrite:
        raise ImportFormatError(f"{out} already exists; choose another --out or pass --overwrite")
    entries = ofa_lut_entries(profile, statistic)
    return atomic_write_text(out, yaml.safe_dump(entries, sort_keys=True, default_flow_style=False))
