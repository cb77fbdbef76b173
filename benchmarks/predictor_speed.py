"""Predictor throughput: architectures predicted per second on one core,
gene matrix in, predictions out (featurization included), for every latency
recipe and the two accuracy recipes.

    python benchmarks/predictor_speed.py [--spaces mbv3-small,ofa-mbv3-w1.0,transformer-small] [--n 100000]

Labels: a shipped profile of the space when one exists (``--profiles``),
otherwise the ``fpga-analytical`` backend's closed-form latency of 300
sampled architectures (prediction speed does not depend on where the labels
came from). Accuracy recipes are fitted on a synthetic MACs-driven target,
only to time them. Every candidate is timed alternately in the same run
(process CPU time, one thread), median of ``--repeats``, on a batch of ``--n``
architectures and as the cost of one call on 100 (search's population size);
``"default"`` marks the recipe ``model="auto"`` picks on those labels.
Target: >= 100,000/s.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # one core, before numpy loads its BLAS

import argparse
import glob
from pathlib import Path


import numpy as np

from _timing import environment, save, time_alternately

TARGET_PER_SECOND = 100_000


def analytical_labels(space, genes) -> np.ndarray:
    from hardware_profiles.backends import get_backend

    backend = get_backend("fpga-analytical")
    return np.array([backend.measure_arch(space, arch)["latency_ms"]["median"] for arch in space.from_genes(genes)])


def labels_for(space, profiles: list[str], n_fit: int, seed: int):
    from hardware_profiles.dataset import read_profile

    for path in profiles:
        profile = read_profile(path)
        if profile.space.fingerprint == space.fingerprint:
            return space.to_genes(profile.archs()), profile.latencies(), f"profile {path}"
    genes = space.sample_genes(n_fit, seed)
    return genes, analytical_labels(space, genes), "fpga-analytical backend (closed-form systolic model)"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spaces", default="mbv3-small,ofa-mbv3-w1.0,transformer-small")
    parser.add_argument("--profiles", default="hardware_profiles/data/*cpu-ort*.jsonl",
                        help="glob of profiles to take labels from")
    parser.add_argument("--n", type=int, default=100_000, help="architectures per prediction batch")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-fit", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "predictor_speed.json"))
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from ofa.spaces import get_space
    from predictors.core import AUTO_LATENCY_MODELS, cross_validate_models, select_model
    from predictors.estimators import ACCURACY_MODELS, LATENCY_MODELS, make_accuracy_model, make_latency_model
    from predictors.features import ArchFeaturizer

    profiles = sorted(glob.glob(args.profiles))
    result = {"benchmark": "predictor_speed", "n": args.n, "repeats": args.repeats,
              "target_per_second": TARGET_PER_SECOND, "environment": environment(), "spaces": {}}
    for name in args.spaces.split(","):
        space = get_space(name)
        genes, y, source = labels_for(space, profiles, args.n_fit, args.seed)
        models = {m: make_latency_model(m, space, args.seed).fit(genes, y) for m in LATENCY_MODELS}
        default, reason = select_model(cross_validate_models(
            {m: make_latency_model(m, space, args.seed) for m in AUTO_LATENCY_MODELS}, genes, y, cv=5))
        macs = models["macs-linear"].steps[0][1].transform(genes)[:, 0]
        top1 = 60 + 5 * np.log(macs / macs.min())
        for m in ACCURACY_MODELS:
            models[f"accuracy-{m}"] = make_accuracy_model(m, space, args.seed, max_iter=50).fit(genes, top1)
        batch = space.sample_genes(args.n, args.seed + 1)
        featurizer = ArchFeaturizer(space.to_dict()).fit()
        candidates = {f"{m}": (lambda model=model: model.predict(batch)) for m, model in models.items()}
        candidates["features-only"] = lambda: featurizer.transform(batch)
        candidates["one-hot-encoding-only"] = lambda: space.encode_genes(batch)
        timings = time_alternately(candidates, repeats=args.repeats, warmup=1)
        # Search scores small populations thousands of times: per-call cost at batch 100 too.
        small = space.sample_genes(100, args.seed + 2)
        calls = {m: (lambda model=model: [model.predict(small) for _ in range(20)]) for m, model in models.items()}
        small_timings = time_alternately(calls, repeats=args.repeats, warmup=1)
        rows = {}
        for m, t in timings.items():
            per_second = args.n / (t["cpu_ms"] / 1e3)
            rows[m] = {"cpu_ms": t["cpu_ms"], "wall_ms": t["wall_ms"], "archs_per_second": per_second,
                       "meets_target": per_second >= TARGET_PER_SECOND}
            if m in small_timings:
                rows[m]["ms_per_call_of_100"] = small_timings[m]["cpu_ms"] / 20
        result["spaces"][name] = {"labels": source, "n_fit": int(len(y)), "default_model": default,
                                  "default_reason": reason, "models": rows}
        print(f"{name}: labels from {source}; default model {default}")
        for m, row in rows.items():
            mark = " (default)" if m == default else ""
            small_call = f"  {row['ms_per_call_of_100']:6.2f} ms per call of 100" if "ms_per_call_of_100" in row else ""
            print(f"  {m:24s} {row['archs_per_second']:>12,.0f} archs/s  cpu {row['cpu_ms']:8.1f} ms / {args.n}"
                  f"{small_call}{mark}")
    save(result, args.out)
    return result


if __name__ == "__main__":
    main()
