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
"""

from __future__ import annotations

import re
from pathlib import Path

from ofa.errors import ProfileError
from ofa.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from ofa.spaces import resolve_space, space_from_dict

from .dataset import Profile, ProfileWriter, latency_stats, make_header, read_profile
from .sampling import stratified_sample

BUNDLE_FORMAT = "ofa-hw-ncnn-bundle"
_BENCH_LINE = re.compile(r"min\s*=\s*([0-9.]+)\s+max\s*=\s*([0-9.]+)\s+avg\s*=\s*([0-9.]+)")
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
    path = Path(directory) / "manifest.json"
    import json

    try:
        manifest = json.loads(path.read_text())
    except OSError:
        raise ProfileError(f"no bundle manifest at {path}: pass the directory written by --export-ncnn") from None
    except json.JSONDecodeError as error:
        raise ProfileError(f"{path}:{error.lineno}: not valid JSON ({error.msg})") from None
    if manifest.get("format") != BUNDLE_FORMAT:
        raise ProfileError(f"{path} is not an ncnn bundle manifest (format {manifest.get('format')!r})")
    return manifest


def parse_phone_results(path) -> tuple[dict, dict[str, list[float]]]:
    """(metadata from ``# key = value`` lines, model id -> per-run ms)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ProfileError(f"cannot read phone results {path}: {error.strerror}") from None
    meta: dict[str, str] = {}
    samples: dict[str, list[float]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            match = _META_LINE.match(stripped)
            if match:
                meta[match.group(1)] = match.group(2).strip()
            continue
        parts = stripped.split(None, 2)
        match = _BENCH_LINE.search(stripped)
        if len(parts) < 3 or match is None or not parts[1].isdigit():
            raise ProfileError(f"{path}:{number}: expected '<id> <repeat> <benchncnn line with min = .. max = .. "
                               f"avg = ..>', got {stripped[:120]!r}")
        samples.setdefault(parts[0], []).append(float(match.group(3)))
    if not samples:
        raise ProfileError(f"{path} holds no benchncnn measurements")
    return meta, samples


def import_phone_results(results_path, bundle_dir, out_path, device: str) -> Profile:
    """Write (or extend) a profile from ``tools/phone_benchmark.sh`` output."""
    manifest = read_manifest(bundle_dir)
    space = space_from_dict(manifest["space"])
    meta, samples = parse_phone_results(results_path)
    models = {m["id"]: m for m in manifest["models"]}
    unknown = sorted(set(samples) - set(models))
    if unknown:
        raise ProfileError(f"{results_path}: model ids {unknown[:5]} are not in {bundle_dir}/manifest.json; "
                           f"were the results taken with another bundle?")
    threads = int(meta.get("threads", 1))
    protocol = {"tool": "benchncnn", "repeats": int(meta.get("repeats", 0)) or None,
                "loops_per_sample": int(meta.get("loops", 1)), "powersave": meta.get("powersave"),
                "cooling_down": 0, "sample": "benchncnn 'avg' of one call (mean of loops_per_sample inferences)",
                "sampling": {"method": "stratified-macs", "seed": manifest.get("seed"),
                             "strata": manifest.get("strata"), "num_archs": len(models)}}
    host = {"phone": meta.get("model", "unknown"), "soc": meta.get("soc", "unknown"),
            "android": meta.get("android", "unknown"), "abi": meta.get("abi", "unknown")}
    header = make_header(space, device, "mobile-ncnn", f"benchncnn {meta.get('benchncnn', 'unknown')} (on device)",
                         threads=threads, batch_size=1, precision="fp32", protocol=protocol, host=host,
                         clocks=["latency_ms"], measured_on_device=True)
    writer = ProfileWriter(out_path, header)
    for model_id in sorted(samples):
        entry = models[model_id]
        arch = space.parse(entry["arch"])
        if arch.to_json() in writer.measured:
            continue
        cost = space.cost(arch)
        writer.append(arch, latency_stats(samples[model_id]), input_shapes=entry["input_shapes"],
                      load_average=None, macs=cost.macs, params=cost.params, model_id=model_id)
    return read_profile(out_path)
