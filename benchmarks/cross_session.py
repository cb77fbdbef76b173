"""A latency predictor scored on architectures measured in another session.

A held-out split of one profiling run shares that run's machine state; what
a user meets is a predictor fitted on a profile measured one day and a network
timed another. This fits the default predictor on ``--profile`` and scores it
on ``--num-archs`` other architectures (a different seed) profiled now, in a
fresh process, with the same backend and protocol, read on the profile's scale
(:attr:`LatencyPredictor.label`, as specialisation verifies a pick). The raw
label (no drift correction) is scored beside it.

    python benchmarks/cross_session.py --profile hardware_profiles/data/mbv3-small-r20-32_cpu-ort.jsonl
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _timing import environment, save
from hardware_profiles import read_profile
from hardware_profiles.labels import Label, clock_of
from predictors import fit_latency_predictor
from predictors.metrics import regression_report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", required=True, help="the profile to fit on (network profile of a timed backend)")
    parser.add_argument("--other-session", type=Path, default=None,
                        help="profile of the other session (default: measured now into a temporary file)")
    parser.add_argument("--num-archs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    profile = read_profile(args.profile)
    backend = profile.header["backend"]
    other = args.other_session or Path(f"/tmp/cross-session-{backend}-{int(time.time())}.jsonl")
    if not other.is_file():
        # a fresh process: nothing of this one's state (warm caches, the session's speed) carries over
        space_file = other.with_suffix(".space.json")
        import json

        space_file.write_text(json.dumps(profile.space.to_dict()))
        protocol = profile.header.get("protocol", {})
        subprocess.run([sys.executable, "-m", "ofa_pipeline.commands.profile_device", "--space", str(space_file),
                        "--backend", backend, "--num-archs", str(args.num_archs), "--seed", str(args.seed),
                        "--warmup", str(protocol.get("warmup", 20)), "--runs", str(protocol.get("runs", 100)),
                        "--out", str(other), "--no-progress"], check=True)
    later = read_profile(other)
    seen = {a.to_json() for a in profile.archs()}
    records = [(a, r) for a, r in zip(later.archs(), later.records) if a.to_json() not in seen]
    genes = profile.space.to_genes([a for a, _ in records])
    predictor = fit_latency_predictor(profile)
    label = predictor.label
    result = {"profile": args.profile, "other_session": str(other), "environment": environment(),
              "n_fit": len(profile), "n_scored": len(records), "label": label.to_dict(), "model": predictor.model_name,
              "command": "python benchmarks/cross_session.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "drift_fit_session": profile.drift_summary(), "drift_other_session": later.drift_summary()}
    truth = np.array([label.value(r) for _, r in records])
    result["scores"] = {label.name: regression_report(truth, predictor.predict_genes(genes), relative=True)}
    raw = Label(clock_of(label.metric), label.statistic)
    if raw.metric != label.metric:
        raw_predictor = fit_latency_predictor(profile, metric=raw.metric, statistic=raw.statistic)
        truth = np.array([raw.value(r) for _, r in records])
        result["scores"][raw.name] = regression_report(truth, raw_predictor.predict_genes(genes), relative=True)
    for name, report in result["scores"].items():
        print(f"{name}: within +-10% {report['within_10']:.1f}%, within +-5% {report['within_5']:.1f}%, "
              f"MAPE {report['mape']:.2f}%, Spearman {report['spearman']:.3f} on {len(records)} architectures")
    out = args.out or Path(__file__).resolve().parent / "results" / f"cross_session_{Path(args.profile).stem}.json"
    save(result, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
