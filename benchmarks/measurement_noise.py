"""Test-retest noise of every measurement backend, profiling throughput, the
SCALE-Sim cache hit rate, and how closely the analytical systolic model tracks
SCALE-Sim.

For each backend the same ``--num-archs`` architectures (stratified over MACs)
are measured twice, in two separate *sessions*: two fresh processes, started
``--gap`` seconds apart (fresh files; the second visits the architectures in
reverse order with other pass shuffles), as a profile and a later
verification are. We report, per clock (wall clock ``latency_ms`` and thread
CPU time ``cpu_time_ms``) raw and drift-corrected by the reference network
(``corrected_*``: each session on its own scale, and ``verification_scale``:
the second session read with the first session's reference time, as
specialisation reads a pick's measurement against the profile's), the share
of architectures whose two medians agree within 5 % and 10 %, and the median
|difference| (relative and in ms); ``labels`` gives the same for every
statistic of every clock (median, mean, p10, p90), from which the default
label of the predictors is chosen. That is the noise floor a latency
predictor is judged against. Throughput is architectures per
minute of the first run, export and conversion included. The simulators run
with a fresh cache each time (so their throughput is the cold-cache one).

Then ``--cache-archs`` architectures are simulated with SCALE-Sim from an
empty cache: the hit rate after them, and the analytical model's agreement
with SCALE-Sim on those architectures (Pearson, Spearman, mean absolute
percentage error).

    python benchmarks/measurement_noise.py --space mbv3-small-r20-32 --backends cpu-ort mobile-ncnn --gap 60
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr


from _timing import environment, save
from hardware_profiles import get_backend, profile_space, stratified_sample
from ofa.errors import BackendUnavailableError
from ofa.spaces import resolve_space

DEFAULT_BACKENDS = ("cpu-ort", "mobile-ncnn", "fpga-scalesim", "fpga-analytical")
STATISTICS = ("median", "mean", "p10", "p90")


def agreement(first: np.ndarray, second: np.ndarray) -> dict:
    relative = np.abs(first - second) / np.minimum(first, second)
    return {"within_5pct": float(np.mean(relative <= 0.05)), "within_10pct": float(np.mean(relative <= 0.10)),
            "median_abs_diff_pct": float(np.median(relative) * 100),
            "median_abs_diff_ms": float(np.median(np.abs(first - second))),
            "median_latency_ms": float(np.median(first)),
            # a label can repeat and still not tell networks apart (e.g. a scheduler quantum): ranks must agree too
            "spearman": float(spearmanr(first, second)[0]) if len(first) > 2 else float("nan")}


def backend_for(name: str, cache_dir: Path):
    return get_backend(name, cache_dir=cache_dir) if name == "fpga-scalesim" else get_backend(name)


def profile_session(space_name: str, name: str, archs_file: Path, out: Path, seed: int, cache_dir: Path) -> None:
    """One session: profile the architectures listed in ``archs_file`` (JSON) into ``out``."""
    space = resolve_space(space_name)
    archs = [space.parse(a) for a in json.loads(archs_file.read_text())]
    start = time.perf_counter()
    profile_space(space, backend_for(name, cache_dir), len(archs), out, seed=seed, archs=archs, progress=False)
    (out.with_suffix(".seconds")).write_text(str(time.perf_counter() - start))


def test_retest(space, space_name: str, name: str, archs: list, workdir: Path, gap: float) -> dict:
    from hardware_profiles import read_profile
    from hardware_profiles.labels import corrected_metric

    runs, profiles = [], []
    for attempt, order in enumerate((archs, archs[::-1])):
        if attempt and gap:
            time.sleep(gap)
        archs_file = workdir / f"{name}-{attempt}.archs.json"
        archs_file.write_text(json.dumps([a.to_dict() for a in order]))
        out = workdir / f"{name}-{attempt}.jsonl"
        subprocess.run([sys.executable, __file__, "--session", space_name, name, str(archs_file), str(out),
                        str(attempt), str(workdir / f"cache-{name}-{attempt}")], check=True)
        profile = read_profile(out)
        by_arch = {space.parse(r["arch"]).to_json(): r for r in profile.records}
        runs.append((by_arch, float(out.with_suffix(".seconds").read_text())))
        profiles.append(profile)
    keys = [a.to_json() for a in archs]
    result = {"archs": len(keys), "archs_per_minute": len(keys) / runs[0][1] * 60,
              "seconds_first_run": runs[0][1], "seconds_second_run": runs[1][1], "gap_seconds": gap,
              "sessions": "separate processes"}
    for metric in ("latency_ms", "cpu_time_ms", "corrected_latency_ms", "corrected_cpu_time_ms"):
        if metric in runs[0][0][keys[0]]:
            first = np.array([runs[0][0][k][metric]["median"] for k in keys])
            second = np.array([runs[1][0][k][metric]["median"] for k in keys])
            result[metric] = agreement(first, second)
            # every statistic of every clock: which label repeats best (the default label of predictors)
            for statistic in STATISTICS:
                first = np.array([runs[0][0][k][metric][statistic] for k in keys])
                second = np.array([runs[1][0][k][metric][statistic] for k in keys])
                result.setdefault("labels", {})[f"{metric}.{statistic}"] = agreement(first, second)
    for clock in ("latency_ms", "cpu_time_ms"):
        if clock in profiles[0].reference_ms:
            # the second session read on the first session's scale: what verifying a pick against a profile sees
            label = profiles[0].label(corrected_metric(clock), "median")
            first = np.array([label.value(runs[0][0][k]) for k in keys])
            second = np.array([label.value(runs[1][0][k]) for k in keys])
            result[f"verification_scale_{clock}"] = agreement(first, second)
            result.setdefault("drift", {})[clock] = {
                "reference_session_medians_ms": [p.reference_ms[clock] for p in profiles],
                "summaries": [p.drift_summary() for p in profiles]}
    loads = [r.get("load_average") for r in runs[0][0].values() if r.get("load_average") is not None]
    if loads:
        result["load_average_median"] = float(np.median(loads))
    return result


def cache_and_tracking(space, num_archs: int, workdir: Path, seed: int) -> dict:
    from scipy.stats import pearsonr, spearmanr

    archs = stratified_sample(space, num_archs, rng=seed + 1)
    scalesim = get_backend("fpga-scalesim", cache_dir=workdir / "cache-hit-rate")
    start = time.perf_counter()
    simulated = profile_space(space, scalesim, num_archs, workdir / "scalesim-cache.jsonl", archs=archs,
                              progress=False)
    elapsed = time.perf_counter() - start
    stats = scalesim.cache_stats()
    analytical = get_backend("fpga-analytical")
    reference = simulated.latencies()
    predicted = np.array([analytical.measure_arch(space, a)["latency_ms"]["median"] for a in simulated.archs()])
    return {
        "archs": num_archs, "seconds": elapsed, "archs_per_minute": num_archs / elapsed * 60,
        "cache_lookups": stats["hits"] + stats["misses"], "cache_hits": stats["hits"],
        "simulated_layers": stats["misses"], "cache_hit_rate": stats["hit_rate"],
        "analytical_vs_scalesim": {
            "pearson": float(pearsonr(reference, predicted)[0]),
            "spearman": float(spearmanr(reference, predicted)[0]),
            "mape_pct": float(np.mean(np.abs(predicted - reference) / reference) * 100),
            "median_ratio": float(np.median(predicted / reference)),
        },
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="mbv3-small")
    parser.add_argument("--backends", nargs="+", default=list(DEFAULT_BACKENDS))
    parser.add_argument("--num-archs", type=int, default=30)
    parser.add_argument("--cache-archs", type=int, default=300, help="0 skips the cache / tracking part")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--gap", type=float, default=0.0, help="seconds between the two sessions")
    parser.add_argument("--session", nargs=6, metavar=("SPACE", "BACKEND", "ARCHS", "OUT", "SEED", "CACHE"),
                        help=argparse.SUPPRESS)  # internal: one session in a fresh process
    args = parser.parse_args(argv)
    if args.session:
        space_name, name, archs_file, out, seed, cache = args.session
        profile_session(space_name, name, Path(archs_file), Path(out), int(seed), Path(cache))
        return 0
    space = resolve_space(args.space)
    out = args.out or Path(__file__).resolve().parent / "results" / f"measurement_noise_{args.space}.json"
    archs = stratified_sample(space, args.num_archs, rng=args.seed)
    result = {"space": args.space, "environment": environment(), "test_retest": {},
              "command": "python benchmarks/measurement_noise.py " + " ".join(argv if argv is not None
                                                                             else sys.argv[1:])}
    with tempfile.TemporaryDirectory(prefix="ofa-hw-noise-") as tmp:
        workdir = Path(tmp)
        for name in args.backends:
            backend = get_backend(name)
            if not backend.available():
                result["test_retest"][name] = {"skipped": f"{name} is not available here"}
                continue
            try:
                result["test_retest"][name] = test_retest(space, args.space, name, archs, workdir, args.gap)
            except BackendUnavailableError as error:  # e.g. a network with operators ncnn lacks
                result["test_retest"][name] = {"skipped": str(error)}
            print(name, result["test_retest"][name], flush=True)
        if args.cache_archs and get_backend("fpga-scalesim").available():
            result["scalesim_cache"] = cache_and_tracking(space, args.cache_archs, workdir, args.seed)
    result["environment_after"] = environment()
    save(result, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
