"""Held-out accuracy of the latency predictors on every shipped profile, the
few-shot transfer between devices, and (given evaluation records) the accuracy
predictors.

    python benchmarks/predictor_accuracy.py [--profiles 'hardware_profiles/data/*.jsonl'] \\
        [--evaluations runs/digits/evaluations.jsonl --space mbv3-small]

Per profile and label (wall clock ``latency_ms``; thread CPU time
``cpu_time_ms`` where recorded; each as the median and as the p10 of the
architecture's timed runs): a seeded 80/20 split; ``model="auto"``
picks a recipe by 5-fold cross-validation on the 80%; every recipe is then
fitted on the 80% and scored on the 20% (within +-5/10%, RMSE, MAPE, Spearman,
Kendall), with the coverage of the 80%/90% intervals. Next to it, the
device's own repeatability, which no predictor can beat: the test-retest
agreement from ``benchmarks/results/measurement_noise_<space>.json`` (run
``benchmarks/measurement_noise.py`` first), and the profile's own two-pass
agreement (optimistic: passes close in time).

Transfer: for every pair of profiles of the same space on different devices,
a predictor fitted on the whole source profile is adapted with n = 10, 20,
30, 50 target measurements (drawn from the target's 80%, ``--repeats`` draws)
and scored on the target's 20%, against recipes trained on those n alone.
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path


import numpy as np

from _timing import environment, save

RESULTS = Path(__file__).resolve().parent / "results"


def test_retest(profile, metric: str) -> dict | None:
    """The device's own repeatability: the share of 30 architectures whose two
    independent measurements agree within 5% / 10%, from
    ``benchmarks/measurement_noise.py`` (its results for this space and backend)."""
    from ofa.spaces import resolve_space

    for path in sorted(glob.glob(str(RESULTS / "measurement_noise_*.json"))):
        noise = json.loads(Path(path).read_text())
        try:
            same_space = resolve_space(noise["space"]).fingerprint == profile.space.fingerprint
        except Exception:  # a space this checkout does not know
            continue
        entry = noise.get("test_retest", {}).get(profile.header.get("backend"), {}).get(metric)
        if same_space and entry:
            return {"within_5": 100 * entry["within_5pct"], "within_10": 100 * entry["within_10pct"],
                    "median_abs_diff_pct": entry.get("median_abs_diff_pct"), "source": path}
    return None


def pass_agreement(profile, metric: str) -> dict | None:
    """Agreement of the two measurement passes the ``cpu-ort`` protocol makes
    per architecture (``pass_gap``, on the protocol's agreement clock).
    Optimistic: the passes are minutes apart at most, and disagreeing
    architectures were re-measured before the gap was recorded."""
    if profile.header.get("protocol", {}).get("agreement_metric", "latency_ms") != metric:
        return None
    gaps = np.array([r["pass_gap"] for r in profile.records if isinstance(r.get("pass_gap"), (int, float))])
    if gaps.size == 0:
        return None
    return {"n": int(gaps.size), "within_5": float(100 * np.mean(gaps <= 0.05)),
            "within_10": float(100 * np.mean(gaps <= 0.10)), "median_relative_gap": float(np.median(gaps))}


def latency_section(profile, metric: str, statistic: str, args) -> dict:
    from predictors import core
    from predictors.estimators import LATENCY_MODELS, make_latency_model
    from predictors.metrics import format_table, interval_coverage

    _, genes, y = core.profile_targets(profile, metric, statistic)
    train, test = core.split_indices(len(y), 0.2, args.seed)
    predictor = core.fit_latency_predictor(core.subset_profile(profile, train), metric=metric, statistic=statistic,
                                           cv=5,
                                           random_state=args.seed)
    results = core.holdout_comparison({m: make_latency_model(m, profile.space, args.seed) for m in LATENCY_MODELS},
                                      (genes[train], y[train]), (genes[test], y[test]))
    coverage = {}
    for level in (0.8, 0.9):
        low, high = predictor.predict_interval_genes(genes[test], level)
        coverage[f"{level:.0%}"] = interval_coverage(y[test], low, high)
    test_metrics = {m: r["metrics"] for m, r in results.items()}
    print(f"\n{profile.device} [{metric}.{statistic}] {len(train)} fit / {len(test)} held out; "
          f"{predictor.metrics_['selection']['reason']}")
    print(format_table(test_metrics))
    print("interval coverage (held out): " + ", ".join(f"{k}: {v:.1f}%" for k, v in coverage.items()))
    retest, passes = test_retest(profile, metric), pass_agreement(profile, metric)
    if retest:
        print(f"device test-retest (measurement_noise benchmark): {retest['within_5']:.1f}% / "
              f"{retest['within_10']:.1f}% of architectures measured twice agree within 5% / 10%")
    if passes:
        print(f"profile pass agreement (optimistic): {passes['within_5']:.1f}% / {passes['within_10']:.1f}% "
              f"within 5% / 10%")
    return {"n_train": int(len(train)), "n_test": int(len(test)), "default_model": predictor.model_name,
            "selection_reason": predictor.metrics_["selection"]["reason"], "cv": predictor.metrics_["cv"],
            "test": test_metrics, "interval_coverage": coverage, "test_retest": retest, "pass_agreement": passes}


def transfer_section(source, target, metric: str, statistic: str, args) -> dict:
    from predictors import core
    from predictors.estimators import make_latency_model
    from predictors.metrics import within

    source_predictor = core.fit_latency_predictor(source, metric=metric, statistic=statistic, cv=3,
                                                  random_state=args.seed)
    _, genes, y = core.profile_targets(target, metric, statistic)
    train, test = core.split_indices(len(y), 0.2, args.seed)
    rng = np.random.default_rng(args.seed)
    rows = {}
    for n in args.transfer_sizes:
        if n > len(train):
            continue
        scores: dict[str, list] = {"transfer (auto)": [], "transfer log-linear": [], "transfer linear": [],
                                   "macs-linear alone": [], "hybrid alone": [], "lut alone": []}
        for _ in range(args.repeats):
            few = rng.choice(train, size=n, replace=False)
            for correction, key in (("auto", "transfer (auto)"), ("log-linear", "transfer log-linear"),
                                    ("linear", "transfer linear")):
                transferred = core.fit_transfer_predictor(source_predictor, (genes[few], y[few]), correction)
                scores[key].append(within(y[test], transferred.predict_genes(genes[test]), 0.10))
            for name in ("macs-linear", "hybrid", "lut"):
                model = make_latency_model(name, target.space, args.seed).fit(genes[few], y[few])
                scores[f"{name} alone"].append(within(y[test], model.predict(genes[test]), 0.10))
        rows[str(n)] = {k: float(np.mean(v)) for k, v in scores.items()}
    print(f"\ntransfer {source.device} -> {target.device} ({target.space.type_name}) [{metric}.{statistic}], "
          f"within +-10% on {len(test)} held out (mean of {args.repeats} draws)")
    print("  n   " + "".join(f"{k:>21s}" for k in next(iter(rows.values()), {})))
    for n, row in rows.items():
        print(f"  {n:<4s}" + "".join(f"{v:>21.1f}" for v in row.values()))
    return {"space": target.space.fingerprint, "source": source.device, "target": target.device,
            "label": f"{metric}.{statistic}", "n_test": int(len(test)), "within_10_by_n": rows}


def accuracy_section(path: str, space_name: str, args) -> dict:
    from ofa.spaces import resolve_space
    from predictors import core
    from predictors.estimators import ACCURACY_MODELS, make_accuracy_model
    from predictors.metrics import format_table, interval_coverage

    space = resolve_space(space_name)
    records = core.read_evaluations(path)
    out = {}
    for target in ("top1", "loss"):
        usable = [r for r in records if isinstance(r.get(target), (int, float))]
        if len(usable) < 10:
            continue
        genes = space.to_genes([r["arch"] for r in usable])
        y = np.array([r[target] for r in usable])
        train, test = core.split_indices(len(y), 0.2, args.seed)
        predictor = core.fit_accuracy_predictor([usable[i] for i in train], space, target=target,
                                                random_state=args.seed)
        results = core.holdout_comparison({m: make_accuracy_model(m, space, args.seed) for m in ACCURACY_MODELS},
                                          (genes[train], y[train]), (genes[test], y[test]), relative=False)
        low, high = predictor.predict_interval_genes(genes[test], 0.8)
        out[target] = {"n_train": int(len(train)), "n_test": int(len(test)),
                       "test": {m: r["metrics"] for m, r in results.items()},
                       "default_model": predictor.model_name,
                       "selection_reason": predictor.metrics_["selection"]["reason"],
                       "interval_coverage_80": interval_coverage(y[test], low, high),
                       "target_spread": {"min": float(y.min()), "max": float(y.max()), "std": float(y.std())}}
        print(f"\naccuracy predictor [{target}] {path}: {len(train)} fit / {len(test)} held out; "
              f"{predictor.metrics_['selection']['reason']}")
        print(format_table(out[target]["test"], columns=("rmse", "mae", "spearman", "kendall")))
        print(f"80% interval coverage (held out): {out[target]['interval_coverage_80']:.1f}%; target std "
              f"{y.std():.3g}")
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", default="hardware_profiles/data/*.jsonl")
    parser.add_argument("--evaluations", action="append", default=[], help="evaluation JSONL (repeatable)")
    parser.add_argument("--space", help="space of the evaluations")
    parser.add_argument("--transfer-sizes", default="10,20,30,50")
    parser.add_argument("--transfer-statistic", default="p10",
                        help="label statistic for transfer (p10: least disturbed by load; = median on simulators)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "predictor_accuracy.json"))
    args = parser.parse_args(argv)
    args.transfer_sizes = [int(n) for n in args.transfer_sizes.split(",")]

    from hardware_profiles.dataset import read_profile

    paths = sorted(glob.glob(args.profiles))
    profiles = [read_profile(p, allow_partial_last_line=True) for p in paths]
    profiles = [p for p in profiles if len(p) >= 20]
    result = {"benchmark": "predictor_accuracy", "seed": args.seed, "environment": environment(),
              "profiles": {}, "transfer": [], "accuracy": {}}
    for path, profile in zip(paths, profiles):
        metrics = ["latency_ms"] + (["cpu_time_ms"] if "cpu_time_ms" in profile.records[0] else [])
        # Timed backends: also p10, the fast end of each architecture's runs, which
        # load on a shared machine disturbs far less than the median.
        statistics = ["median"] + (["p10"] if profile.records[0]["latency_ms"]["runs"] > 1 else [])
        result["profiles"][str(path)] = {"device": profile.device, "backend": profile.header.get("backend"),
                                         "space": profile.space.type_name, "n": len(profile),
                                         **{f"{m}.{stat}": latency_section(profile, m, stat, args)
                                            for m in metrics for stat in statistics}}
    for source in profiles:
        for target in profiles:
            if source is not target and source.space.fingerprint == target.space.fingerprint \
                    and source.device != target.device:
                result["transfer"].append(transfer_section(source, target, "latency_ms", args.transfer_statistic,
                                                           args))
    for path in args.evaluations:
        if not args.space:
            parser.error("--evaluations needs --space")
        result["accuracy"][path] = accuracy_section(path, args.space, args)
    save(result, args.out)
    return result


if __name__ == "__main__":
    main()
