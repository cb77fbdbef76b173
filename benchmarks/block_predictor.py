"""Block-sum latency predictors against whole-network predictors, per shipped
backend: accuracy against the number of measurements each needs, and what a
measurement costs.

    python benchmarks/block_predictor.py [--space mbv3-small] [--backends cpu-ort mobile-ncnn fpga-scalesim]
        [--fresh-networks 30] [--timing 6] [--repeats 3]

Per backend, from the shipped block profile (every distinct block, ``hardware_profiles/data/blocks/``)
and the shipped network profile (300 architectures, ``hardware_profiles/data/``),
label = the default label (:func:`predictors.core.default_label`: ``cpu_time_ms.p10``
for timed backends, ``latency_ms.median`` for simulators):

* a fixed test set of 100 networks (seeded); the others are the pool to fit from;
* ``block-sum``: every block measured, no network (raw sum);
* ``block-sum + n networks``: the network-level correction fitted on n pool networks;
* ``block-sum, m blocks``: only m random blocks measured, the others predicted
  by the block model (no network);
* ``networks alone``: the usual predictor (``model="auto"``) and the MACs
  baseline fitted on n pool networks;

each scored on the test set (within +-5/10%, MAPE, Spearman), averaged over
``--repeats`` draws where a subset is drawn. Next to it, the profile's noise
floor (test-retest agreement, ``benchmarks/results/measurement_noise_*.json``)
and, for timed backends, how predictable each label of the network profile is
(``label_noise``: one model, same split, every label), which is how the default
label was chosen (``docs/profiles.md``).

The shipped network profiles were measured earlier than the block profiles (for
the timed backends, with another onnxruntime version on a machine shared with
other jobs), so the raw sum also carries that drift. ``--fresh-networks N``
measures N networks now, with the runtime the blocks were measured with, and
scores the raw and corrected block sums on them too.

Measurement cost: ``--timing`` blocks and as many networks are measured
(profiled like the tools do, default protocol; SCALE-Sim with an empty cache)
and the seconds per block and per network are reported, with the time to
measure the whole block set and n networks.
"""

from __future__ import annotations

import argparse
import glob
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from _timing import environment, save

RESULTS = Path(__file__).resolve().parent / "results"
N_NETWORKS = (5, 10, 20, 40, 100)
M_BLOCKS = (20, 40, 80, 120)


def report(y, prediction) -> dict:
    from predictors.metrics import regression_report

    r = regression_report(y, prediction)
    return {k: round(float(r[k]), 4) for k in ("within_5", "within_10", "mape", "spearman")}


def mean_reports(reports: list[dict]) -> dict:
    return {k: round(float(np.mean([r[k] for r in reports])), 4) for k in reports[0]}


def noise_floor(space_name: str, backend: str, metric: str, statistic: str) -> dict | None:
    for path in sorted(glob.glob(str(RESULTS / "measurement_noise*.json"))):
        data = json.loads(Path(path).read_text())
        if data.get("space") != space_name:
            continue
        entry = data.get("test_retest", {}).get(backend, {})
        label = entry.get("labels", {}).get(f"{metric}.{statistic}")
        if label is None and statistic == "median":
            label = entry.get(metric)
        if label:
            return {"within_5": 100 * label["within_5pct"], "within_10": 100 * label["within_10pct"],
                    "median_abs_diff_pct": label["median_abs_diff_pct"], "source": Path(path).name}
    return None


def accuracy(space_name: str, backend: str, repeats: int, seed: int) -> dict:
    from hardware_profiles import read_profile, shipped_block_profile_path, shipped_profile_path
    from predictors.blocks import fit_block_predictor
    from predictors.core import default_label, fit_latency_predictor, subset_profile

    blocks = read_profile(shipped_block_profile_path(space_name, backend))
    networks = read_profile(shipped_profile_path(space_name, backend))
    metric, statistic = default_label(networks)
    space = networks.space
    genes = space.to_genes(networks.archs())
    y = networks.latencies(metric, statistic)
    order = np.random.default_rng(seed).permutation(len(y))
    test, pool = order[:100], order[100:]
    out = {"label": f"{metric}.{statistic}", "n_test": len(test), "blocks_in_profile": len(blocks),
           "noise_floor": noise_floor(space_name, backend, metric, statistic), "results": {}}
    results = out["results"]
    raw = fit_block_predictor(blocks, metric=metric, statistic=statistic)
    results["block-sum (all blocks, 0 networks)"] = {"blocks": len(blocks), "networks": 0,
                                                       **report(y[test], raw.predict_genes(genes[test]))}
    out["raw_sum_over_measured_median_ratio"] = round(float(np.median(raw.predict_genes(genes) / y)), 4)
    for n in N_NETWORKS[:-1]:
        runs = []
        for r in range(repeats):
            fit = np.random.default_rng(seed + 1 + r).choice(pool, n, replace=False)
            corrected = fit_block_predictor(blocks, (genes[fit], y[fit]), metric=metric, statistic=statistic)
            runs.append(report(y[test], corrected.predict_genes(genes[test])))
        results[f"block-sum + {n} networks"] = {"blocks": len(blocks), "networks": n, **mean_reports(runs)}
    keys = [r["key"] for r in blocks.records]
    table = blocks.block_latencies(metric, statistic)
    for m in M_BLOCKS:
        runs = []
        for r in range(repeats):
            chosen = np.random.default_rng(seed + 10 + r).choice(len(keys), m, replace=False)
            partial = fit_block_predictor({keys[i]: table[keys[i]] for i in chosen}, space=space, metric=metric,
                                          statistic=statistic)
            runs.append(report(y[test], partial.predict_genes(genes[test])))
        results[f"block-sum, {m} blocks (0 networks)"] = {"blocks": m, "networks": 0, **mean_reports(runs)}
        runs = []
        for r in range(repeats):
            chosen = np.random.default_rng(seed + 10 + r).choice(len(keys), m, replace=False)
            fit = np.random.default_rng(seed + 1 + r).choice(pool, 10, replace=False)
            partial = fit_block_predictor({keys[i]: table[keys[i]] for i in chosen}, (genes[fit], y[fit]),
                                          space=space, metric=metric, statistic=statistic)
            runs.append(report(y[test], partial.predict_genes(genes[test])))
        results[f"block-sum, {m} blocks + 10 networks"] = {"blocks": m, "networks": 10, **mean_reports(runs)}
    for n in N_NETWORKS + (len(pool),):
        for model in ("auto", "macs-linear"):
            runs = []
            for r in range(repeats if n < len(pool) else 1):
                fit = np.random.default_rng(seed + 1 + r).choice(pool, n, replace=False)
                predictor = fit_latency_predictor(subset_profile(networks, fit), model=model, metric=metric,
                                                  statistic=statistic, random_state=seed)
                runs.append(report(y[test], predictor.predict_genes(genes[test])))
            results[f"networks alone ({model}), {n} networks"] = {"blocks": 0, "networks": n, **mean_reports(runs)}
    return out


def label_noise(space_name: str, backend: str, seed: int) -> dict:
    """How predictable each label of the shipped network profile is (the same
    model, fitted on the same 200 networks, scored on the same 100): label noise
    is error no predictor removes, so the label that repeats best within a run
    scores best."""
    from hardware_profiles import read_profile, shipped_profile_path
    from predictors.core import fit_latency_predictor, subset_profile

    networks = read_profile(shipped_profile_path(space_name, backend))
    genes = networks.space.to_genes(networks.archs())
    order = np.random.default_rng(seed).permutation(len(networks))
    test, pool = order[:100], order[100:]
    out = {}
    for metric, statistic in (("cpu_time_ms", "p10"), ("cpu_time_ms", "median"), ("cpu_time_ms", "mean"),
                              ("cpu_time_ms", "p90"), ("latency_ms", "p10"), ("latency_ms", "median")):
        y = networks.latencies(metric, statistic)
        predictor = fit_latency_predictor(subset_profile(networks, pool), model="hybrid", metric=metric,
                                          statistic=statistic, random_state=seed)
        out[f"{metric}.{statistic}"] = report(y[test], predictor.predict_genes(genes[test]))
    return {"model": "hybrid fitted on 200 networks, scored on 100", "labels": out}


def fresh_networks(space_name: str, backend_name: str, count: int, seed: int) -> dict:
    """Measure ``count`` networks now and score the shipped block profile's sums on them."""
    from hardware_profiles import get_backend, profile_space, read_profile, shipped_block_profile_path
    from hardware_profiles.sampling import stratified_sample
    from predictors.blocks import fit_block_predictor
    from predictors.core import default_label

    blocks = read_profile(shipped_block_profile_path(space_name, backend_name))
    space = blocks.space
    archs = stratified_sample(space, count, rng=seed + 7)
    with tempfile.TemporaryDirectory(prefix="ofa-hw-bench-") as tmp:
        start = time.perf_counter()
        networks = profile_space(space, get_backend(backend_name), count, Path(tmp) / "fresh.jsonl", archs=archs,
                                 progress=False)
        seconds = time.perf_counter() - start
    metric, statistic = default_label(networks)
    genes, y = space.to_genes(networks.archs()), networks.latencies(metric, statistic)
    raw = fit_block_predictor(blocks, metric=metric, statistic=statistic).predict_genes(genes)
    half = count // 3
    corrected = fit_block_predictor(blocks, (genes[:half], y[:half]), metric=metric,
                                    statistic=statistic).predict_genes(genes[half:])
    return {"networks": count, "seconds": round(seconds, 1), "label": f"{metric}.{statistic}",
            "block-sum raw": report(y, raw), "raw_sum_over_measured_median_ratio": round(float(np.median(raw / y)), 4),
            f"block-sum + {half} networks (scored on the other {count - half})": report(y[half:], corrected)}


def measurement_cost(space_name: str, backend_name: str, count: int, seed: int) -> dict:
    """Seconds per block and per network, profiled the way the tools do."""
    from hardware_profiles import get_backend, profile_blocks, profile_space
    from hardware_profiles.sampling import stratified_sample
    from ofa.spaces import get_space

    space = get_space(space_name)
    rng = np.random.default_rng(seed)
    distinct = space.distinct_blocks()
    blocks = [distinct[i] for i in rng.choice(len(distinct), count, replace=False)]
    archs = stratified_sample(space, count, rng=seed + 3)
    with tempfile.TemporaryDirectory(prefix="ofa-hw-bench-") as tmp:
        options = {"cache_dir": Path(tmp) / "cache"} if backend_name == "fpga-scalesim" else {}
        start = time.perf_counter()
        profile_blocks(space, get_backend(backend_name, **options), Path(tmp) / "b.jsonl", blocks=blocks,
                       progress=False)
        block_seconds = (time.perf_counter() - start) / count
        options = {"cache_dir": Path(tmp) / "cache2"} if backend_name == "fpga-scalesim" else {}
        start = time.perf_counter()
        profile_space(space, get_backend(backend_name, **options), count, Path(tmp) / "n.jsonl", archs=archs,
                      progress=False)
        network_seconds = (time.perf_counter() - start) / count
    return {"measured_each": count, "seconds_per_block": round(block_seconds, 3),
            "seconds_per_network": round(network_seconds, 3),
            "all_blocks_seconds": round(block_seconds * len(distinct), 1), "distinct_blocks": len(distinct),
            **{f"{n}_networks_seconds": round(network_seconds * n, 1) for n in N_NETWORKS + (200,)},
            "note": "cold: a simulator cache is empty; blocks and networks share no simulated layers here"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="mbv3-small")
    parser.add_argument("--backends", nargs="+", default=["cpu-ort", "mobile-ncnn", "fpga-scalesim"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fresh-networks", type=int, default=30, help="0 skips the same-session check")
    parser.add_argument("--timing", type=int, default=6, help="blocks and networks timed per backend (0 skips)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "block_predictor.json")
    args = parser.parse_args(argv)
    result = {"benchmark": "block_predictor", "space": args.space, "environment": environment(), "backends": {}}
    for backend in args.backends:
        entry = accuracy(args.space, backend, args.repeats, args.seed)
        from hardware_profiles import get_backend

        timed = not get_backend(backend).simulated
        if timed:
            entry["label_noise"] = label_noise(args.space, backend, args.seed)
        if args.fresh_networks and timed:
            entry["fresh_networks"] = fresh_networks(args.space, backend, args.fresh_networks, args.seed)
        if args.timing:
            entry["measurement_cost"] = measurement_cost(args.space, backend, args.timing, args.seed)
        result["backends"][backend] = entry
        print(backend, json.dumps({k: v for k, v in entry.items() if k != "results"}), flush=True)
        for name, row in entry["results"].items():
            print(f"  {name:45s} {row}", flush=True)
    result["environment_after"] = environment()
    save(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
