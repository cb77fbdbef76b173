"""Measurements taken on a real phone with ncnn's ``benchncnn``.

Three steps (documented in the README and ``tools/phone_benchmark.sh``):

1. ``export_ncnn_bundle(space, dir, n)`` (``profile_device.py --export-ncnn``)
   writes ``dir/models/<id>.param`` - the pnnx-converted ncnn model of each
   sampled architecture (benchncnn needs only the ``.param``: it fills the
   weights itself) - ``dir/benchncnn.txt`` (``<id> <benchncnn shape>`` per
   line, read by the phone script) and ``dir/manifest.json`` (space, id ->
   architecture, input shapes).
2. ``tools/phone_benchmark.sh dir results.txt`` pushes benchncnn and the
   models with adb, runs every model ``REPEATS`` times on the phone and
   writes one line per run: ``<id> <repeat> <benchncnn output line>``.
3. ``import_phone_results(results, dir, out, device=...)``
   (``profile_device.py --import``) turns the runs into a profile: each run
   is one sample (the mean of benchncnn's ``LOOPS`` inferences, ``avg =``),
   statistics over the repeats.

The whole input (the bundle manifest and every line of the results) is checked
before anything is written, every problem reported at once with its file and
line (:class:`~hardware_profiles.imports.ImportFormatError`): a number that is
not one (``avg = 1..2``, ``# threads = four``, a repeat ``3x``), a zero or
inconsistent timing, a model the bundle does not hold, the same run listed
twice (pooled only with ``merge_duplicates``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ofa.errors import OFAError
from ofa.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from ofa.spaces import resolve_space, space_from_dict

from .dataset import Profile, ProfileWriter, latency_stats, make_header, read_profile
from .sampling import stratified_sample

BUNDLE_FORMAT = "ofa-hw-ncnn-bundle"
_BENCH_LINE = re.compile(r"min\s*=\s*(\S+)\s+max\s*=\s*(\S+)\s+avg\s*=\s*(\S+)")
META_NUMBERS = ("threads", "loops", "repeats", "powersave")
_META_LINE = re.compile(r"^#\s*([a-z_]+)\s*=\s*(.*)$")


def benchncnn_shape(shape) -> str:
    """benchncnn's ``shape=`` value: ncnn order (w, h, c), no batch axis."""
    dims = list(shape)[1:]
    return "[" + ",".join(str(d) for d in reversed(dims)) + "]"


def export_ncnn_bundle(space, directory, num_archs: int, seed: int = 0, strata: int = 10) -> Path:
    """Convert ``num_archs`` MAC-stratified architectures to ncnn for a phone run."""
    from ofa.supernets import create_supernet

    from .backends.base import TemporaryExport, example_inputs, numpy_inputs
    from ofa.export import convert_onnx_to_ncnn
    from ofa.families import get_family

    space = resolve_space(space)
    directory = Path(directory)
    (directory / "models").mkdir(parents=True, exist_ok=True)
    supernet = create_supernet(space).eval()
    entries, lines = [], []
    for index, arch in enumerate(stratified_sample(space, num_archs, rng=seed, strata=strata)):
        model_id = f"a{index:04d}"
        model = get_family(space).ncnn_graph(supernet.extract(arch).eval())
        inputs = numpy_inputs(example_inputs(model, 1))
        export = TemporaryExport(model)
        try:
            param, _ = convert_onnx_to_ncnn(export.path, inputs, export.directory)
            atomic_write_bytes(directory / "models" / f"{model_id}.param", Path(param).read_bytes())
        finally:
            export.cleanup()
        shapes = [list(x.shape) for x in inputs]
        entries.append({"id": model_id, "arch": arch.to_dict(), "input_shapes": shapes,
                        "param": f"models/{model_id}.param"})
        lines.append(f"{model_id} {','.join(benchncnn_shape(s) for s in shapes)}")
    atomic_write_text(directory / "benchncnn.txt", "\n".join(lines) + "\n")
    return atomic_write_json(directory / "manifest.json", {
        "format": BUNDLE_FORMAT, "version": 1, "space": space.to_dict(), "space_fingerprint": space.fingerprint,
        "seed": seed, "strata": strata, "models": entries})


def read_manifest(directory) -> dict:
    """The bundle's ``manifest.json``, checked: its format, space and every model entry
    (``id``, ``arch`` of the space, ``input_shapes``); every problem reported at once."""
    from .imports.common import ImportFormatError, Problems, read_text, short

    path = Path(directory) / "manifest.json"
    if not path.is_file():
        raise ImportFormatError(f"no bundle manifest at {path}: pass the directory written by --export-ncnn")
    text = read_text(path, "bundle manifest")
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as error:
        raise ImportFormatError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    except (ValueError, RecursionError) as error:
        raise ImportFormatError(f"{path}: not valid JSON ({type(error).__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ImportFormatError(f"{path} is not an ncnn bundle manifest (format {short(found)}; expected "
                                f"{BUNDLE_FORMAT!r})")
    problems = Problems()
    missing = [key for key in ("space", "models") if key not in manifest]
    if missing:
        raise ImportFormatError(f"{path}: the bundle manifest lacks {missing}: it was not written by "
                                f"profile_device.py --export-ncnn (or was edited); export the bundle again")
    try:
        space = space_from_dict(manifest["space"])
    except (OFAError, TypeError, ValueError, AttributeError) as error:
        raise ImportFormatError(f"{path}: 'space' is not a space definition ({error})") from None
    models = manifest["models"]
    if not isinstance(models, list) or not models:
        raise ImportFormatError(f"{path}: 'models' must be a non-empty list of {{id, arch, input_shapes}}")
    checked, first = {}, {}
    for index, entry in enumerate(models):
        what = f"{path}: models[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"].strip():
            problems.add(f"{what} must be a mapping with an 'id' (a name), 'arch' and 'input_shapes'")
            continue
        model_id = entry["id"]
        if model_id in first:
            problems.add(f"{what}: id {model_id!r} repeats models[{first[model_id]}]")
            continue
        first[model_id] = index
        shapes = entry.get("input_shapes")
        if not (isinstance(shapes, list) and shapes and all(
                isinstance(shape, list) and shape and all(isinstance(d, int) and not isinstance(d, bool) and d > 0
                                                          for d in shape) for shape in shapes)):
            problems.add(f"{what} ({model_id}): input_shapes must be a list of shapes of positive integers")
            continue
        try:
            arch = space.parse(entry.get("arch"))
        except (OFAError, TypeError, ValueError) as error:
            problems.add(f"{what} ({model_id}): arch is not an architecture of the bundle's space: {error}")
            continue
        checked[model_id] = {**entry, "arch": arch}
    problems.raise_any()
    return {**manifest, "space_object": space, "models": list(checked.values()), "path": path}


def parse_phone_results(path) -> tuple[dict, dict[str, list[float]]]:
    """(metadata from ``# key = value`` lines, model id -> per-run ms); every line checked."""
    meta, runs = read_phone_results(path)
    samples: dict[str, list[float]] = {}
    for run in runs:
        samples.setdefault(run["id"], []).append(run["avg_ms"])
    return meta, samples


def read_phone_results(path) -> tuple[dict, list[dict]]:
    """(metadata, runs): each run ``{id, repeat, min_ms, max_ms, avg_ms, line}``. Numbers go
    through the imports' one checked parser; every problem of every line is reported at once."""
    from .imports.common import ImportFormatError, Problems, parse_number, read_text

    path = Path(path)
    text = read_text(path, "phone results")
    meta: dict = {}
    runs: list[dict] = []
    problems = Problems()
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            match = _META_LINE.match(stripped)
            if match:
                key, value = match.group(1), match.group(2).strip()
                if key in META_NUMBERS:
                    with problems.collect():
                        value = parse_number(value, path, number, f"# {key}", positive=True,
                                             allow_zero=key == "powersave", integer=True)
                meta[key] = value
            continue
        parts = stripped.split(None, 2)
        match = _BENCH_LINE.search(stripped)
        if len(parts) < 3 or match is None:
            problems.add(f"{path}:{number}: expected '<id> <repeat> <benchncnn line with min = .. max = .. "
                         f"avg = ..>', got {stripped[:120]!r}")
            continue
        row = Problems()
        run = {"id": parts[0], "line": number}
        with row.collect():
            run["repeat"] = parse_number(parts[1], path, number, "repeat", positive=True, allow_zero=False,
                                         integer=True)
        for key, group in (("min_ms", 1), ("max_ms", 2), ("avg_ms", 3)):
            with row.collect():
                run[key] = parse_number(match.group(group), path, number, f"{key[:3]} (ms)", positive=True,
                                        allow_zero=False)
        if not row and not run["min_ms"] <= run["avg_ms"] <= run["max_ms"]:
            row.add(f"{path}:{number}: min {run['min_ms']:g} <= avg {run['avg_ms']:g} <= max {run['max_ms']:g} "
                    f"(ms) does not hold: not a benchncnn line")
        problems.messages.extend(row.messages)
        if not row:
            runs.append(run)
    problems.raise_any()
    if not runs:
        raise ImportFormatError(f"{path} holds no benchncnn measurements")
    return meta, runs


def import_phone_results(results_path, bundle_dir, out_path, device: str, *, merge_duplicates: bool = False,
                         on_implausible: str = "warn") -> Profile:
    """Write (or extend) a profile from ``tools/phone_benchmark.sh`` output. Everything is
    checked before the first record is written; ``out_path`` may be neither the results nor
    the bundle's manifest; the same run (model and repeat) listed twice is refused unless
    ``merge_duplicates`` (then its runs are pooled as samples, and the header says so)."""
    from .imports.common import (ImportFormatError, Problems, check_not_an_input, check_plausible, check_repeats,
                                 where)

    results_path = Path(results_path)
    manifest = read_manifest(bundle_dir)
    check_not_an_input(out_path, [("the phone results", results_path), ("the bundle's manifest", manifest["path"])])
    if not isinstance(device, str) or not device.strip():
        raise ImportFormatError("an import needs a device id (--device)")
    space = manifest["space_object"]
    meta, runs = read_phone_results(results_path)
    models = {m["id"]: m for m in manifest["models"]}
    problems = Problems()
    unknown = sorted({run["id"] for run in runs} - set(models))
    if unknown:
        problems.add(f"{results_path}: model ids {unknown[:5]} are not in {manifest['path']}; were the results "
                     f"taken with another bundle?")
    repeats: dict[str, list[str]] = {}
    for run in runs:
        repeats.setdefault(f"{run['id']} repeat {run['repeat']}", []).append(where(results_path, run["line"]))
    merged = check_repeats(repeats, merge_duplicates, "run", problems)
    problems.raise_any()
    samples: dict[str, list[float]] = {}
    for run in runs:
        samples.setdefault(run["id"], []).append(run["avg_ms"])
    protocol = {"tool": "benchncnn", "repeats": meta.get("repeats") or None,
                "loops_per_sample": meta.get("loops", 1), "powersave": meta.get("powersave"),
                "cooling_down": 0, "sample": "benchncnn 'avg' of one call (mean of loops_per_sample inferences)",
                "sampling": {"method": "stratified-macs", "seed": manifest.get("seed"),
                             "strata": manifest.get("strata"), "num_archs": len(models)}}
    host = {"phone": meta.get("model", "unknown"), "soc": meta.get("soc", "unknown"),
            "android": meta.get("android", "unknown"), "abi": meta.get("abi", "unknown")}
    extra = {"merged": merged} if merged else {}
    header = make_header(space, device, "mobile-ncnn", f"benchncnn {meta.get('benchncnn', 'unknown')} (on device)",
                         threads=meta.get("threads", 1), batch_size=1, precision="fp32", protocol=protocol,
                         host=host, clocks=["latency_ms"], measured_on_device=True, **extra)
    records = []
    for model_id in sorted(samples):
        entry = models[model_id]
        cost = space.cost(entry["arch"])
        records.append((entry, latency_stats(samples[model_id]), cost))
    check_plausible([{"latency_ms": stats, "macs": cost.macs} for _, stats, cost in records], 1, results_path,
                    on_implausible)
    writer = ProfileWriter(out_path, header)
    for entry, stats, cost in records:
        if entry["arch"].to_json() in writer.measured:
            continue
        writer.append(entry["arch"], stats, input_shapes=entry["input_shapes"], load_average=None, macs=cost.macs,
                      params=cost.params, model_id=entry["id"])
    return read_profile(out_path)
