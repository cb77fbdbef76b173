"""Few-shot transfer to a new device, at block level and at network level,
against fitting on the same few target measurements alone.

    python benchmarks/transfer.py [--space mbv3-small] [--repeats 5]
    python benchmarks/transfer.py --blocks-components --repeats 10   # issue 22: component features

Pairs of devices available here (shipped block and network profiles):
``fpga-analytical -> fpga-scalesim`` (a closed-form model to a cycle-level
simulator of the same accelerator) and ``cpu-ort -> mobile-ncnn`` (one CPU
runtime to another, same machine). Labels: the default label of each
profile (``cpu_time_ms.p10`` for timed backends, ``latency_ms.median`` for
simulators).

For n in 5, 10, 20, 40 target measurements (``--repeats`` random draws each):

* block level: n measured target blocks; ``transfer`` predicts the other
  blocks from the source's latency of the same blocks (block model chosen by
  cross-validation: scale, log-linear or linear on source + block features),
  ``alone`` from block features only. Scored on the target's other blocks,
  and, summed, on the target's 300 networks (raw sums; and with the
  network-level correction fitted on 10 target networks);
* network level: n measured target networks; ``transfer`` is
  :func:`predictors.fit_transfer_predictor` from a source predictor (the
  source's block sums; the source's own network predictor; MACs), ``alone``
  is ``fit_latency_predictor(model="auto")`` on the n networks. Scored on
  100 held-out target networks.

Scores: share within +-10% and MAPE (and Spearman).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from _timing import environment, save

RESULTS = Path(__file__).resolve().parent / "results"
NS = (5, 10, 20, 40)
PAIRS = (("fpga-analytical", "fpga-scalesim"), ("cpu-ort", "mobile-ncnn"))


def report(y, prediction) -> dict:
    from predictors.metrics import regression_report

    r = regression_report(y, np.maximum(prediction, 1e-12))
    return {k: round(float(r[k]), 4) for k in ("within_10", "mape", "spearman")}


def average(runs: list[dict]) -> dict:
    return {k: round(float(np.nanmean([r[k] for r in runs])), 4) for k in runs[0]}


def source_tables(space_name: str, source: str, blocks):
    """The source's latency of every block and its label."""
    from hardware_profiles import get_backend, read_profile, shipped_block_profile_path
    from predictors.core import default_label

    backend = get_backend(source)
    if backend.simulated and source == "fpga-analytical":
        records = backend.measure_blocks(blocks)
        return {b.key: r["latency_ms"]["median"] for b, r in zip(blocks, records)}, "latency_ms.median (simulated now)"
    profile = read_profile(shipped_block_profile_path(space_name, source))
    metric, statistic = default_label(profile)
    return profile.block_latencies(metric, statistic), f"{metric}.{statistic} (shipped block profile)"


def pair(space_name: str, source: str, target: str, repeats: int, seed: int) -> dict:
    from hardware_profiles import read_profile, shipped_block_profile_path, shipped_profile_path
    from predictors import fit_latency_predictor, fit_transfer_predictor
    from predictors.blocks import fit_block_predictor
    from predictors.core import default_label, subset_profile

    target_blocks = read_profile(shipped_block_profile_path(space_name, target))
    target_networks = read_profile(shipped_profile_path(space_name, target))
    space = target_networks.space
    metric, statistic = default_label(target_blocks)
    blocks = target_blocks.blocks()
    keys = [b.key for b in blocks]
    table = target_blocks.block_latencies(metric, statistic)
    source_table, source_label = source_tables(space_name, source, blocks)
    net_metric, net_statistic = default_label(target_networks)
    genes = space.to_genes(target_networks.archs())
    y = target_networks.latencies(net_metric, net_statistic)
    order = np.random.default_rng(seed).permutation(len(y))
    test, pool = order[:100], order[100:]
    out = {"source": source, "target": target, "source_label": source_label,
           "target_block_label": f"{metric}.{statistic}", "target_network_label": f"{net_metric}.{net_statistic}",
           "blocks": len(keys), "networks": len(y), "n_test_networks": len(test), "block_level": {},
           "network_level": {}}

    # --- block level ---
    for n in NS:
        rows = {}
        for r in range(repeats):
            rng = np.random.default_rng(seed + 100 * n + r)
            chosen = set(rng.choice(len(keys), n, replace=False).tolist())
            measured = {keys[i]: table[keys[i]] for i in chosen}
            held = [keys[i] for i in range(len(keys)) if i not in chosen]
            fit = rng.choice(pool, 10, replace=False)
            for name, source_arg in (("transfer", source_table), ("alone", None)):
                predictor = fit_block_predictor(measured, space=space, source=source_arg, metric=metric,
                                                statistic=statistic)
                model = predictor.estimator.steps[-1][1]
                blocks_score = report([table[k] for k in held], model.predict_blocks(held))
                networks_raw = report(y, predictor.predict_genes(genes))
                corrected = fit_block_predictor(measured, (genes[fit], y[fit]), space=space, source=source_arg,
                                                metric=metric, statistic=statistic)
                networks_corrected = report(y[test], corrected.predict_genes(genes[test]))
                rows.setdefault(name, []).append({
                    **{f"held_out_blocks_{k}": v for k, v in blocks_score.items()},
                    **{f"networks_raw_{k}": v for k, v in networks_raw.items()},
                    **{f"networks_10_corrected_{k}": v for k, v in networks_corrected.items()}})
                if name == "transfer":
                    rows.setdefault("block_models", []).append(model.block_model_)
        out["block_level"][str(n)] = {"transfer": average(rows["transfer"]), "alone": average(rows["alone"]),
                                      "transfer_block_models": rows["block_models"]}
        print(source, "->", target, "blocks", n, json.dumps(out["block_level"][str(n)]), flush=True)

    # --- network level ---
    sources = {"source block sums": fit_block_predictor(source_table, space=space, metric="latency_ms",
                                                        statistic="median")}
    source_networks = read_profile(shipped_profile_path(space_name, source)) if source != "fpga-analytical" else None
    if source_networks is not None:
        sources["source network predictor"] = fit_latency_predictor(source_networks, random_state=seed)
    sources["macs"] = "macs"
    for n in NS:
        rows = {}
        for r in range(repeats):
            fit = np.random.default_rng(seed + 1000 * n + r).choice(pool, n, replace=False)
            target_subset = subset_profile(target_networks, fit)
            for name, source_predictor in sources.items():
                predictor = fit_transfer_predictor(source_predictor, target_subset, correction="auto")
                rows.setdefault(f"transfer from {name}", []).append(report(y[test], predictor.predict_genes(genes[test])))
            alone = fit_latency_predictor(target_subset, random_state=seed)
            rows.setdefault("alone (auto)", []).append(report(y[test], alone.predict_genes(genes[test])))
        out["network_level"][str(n)] = {name: average(runs) for name, runs in rows.items()}
        print(source, "->", target, "networks", n, json.dumps(out["network_level"][str(n)]), flush=True)
    return out


# --- issue 22: block-level transfer with the simulator's components as features -------------------------------
BLOCK_NS = (5, 10, 20)
SHIPPED = ("fpga-dpu", "fpga-scalesim", "cpu-ort", "mobile-ncnn")  # backends with shipped block profiles


def _shipped_blocks(space_name: str, backend: str):
    """``(table {key: ms}, components or None, label)`` of a shipped block profile (its default label)."""
    from hardware_profiles import read_profile, shipped_block_profile_path
    from predictors.blocks import source_block_table
    from predictors.core import default_label

    profile = read_profile(shipped_block_profile_path(space_name, backend))
    metric, statistic = default_label(profile)
    table, components = source_block_table(profile, profile.blocks(), metric, statistic)
    table = {k: v for k, v in table.items() if not k.startswith("null:")}
    return table, components, f"{metric}.{statistic}"


def block_variants(keys, y, source, components):
    """The block models compared, each fitted on the measured ``keys``: ``components`` (the
    default where the source has components: the lowest cross-validated MAPE with the
    components model among the candidates), ``components, prefer simple`` (the same,
    leaving ``components`` only when CV clearly says so), ``components only``, ``one
    latency (previous)`` (the lowest CV MAPE among scale, log-linear and linear: the
    choice before issue 22, still the default without components), ``one latency,
    prefer simple`` and ``no simulator`` (linear on block features)."""
    from predictors.blocks import BlockLatencyRegressor, select_block_model

    out = {}
    if components is not None:
        name, _ = select_block_model(keys, y, source, source_components=components)
        out["components"] = (name, BlockLatencyRegressor(name, source, components).fit(keys, y))
        name, _ = select_block_model(keys, y, source, source_components=components, prefer_default=True)
        out["components, prefer simple"] = (name, BlockLatencyRegressor(name, source, components).fit(keys, y))
        out["components only"] = ("components", BlockLatencyRegressor("components", source, components).fit(keys, y))
    name, _ = select_block_model(keys, y, source)
    out["one latency (previous)"] = (name, BlockLatencyRegressor(name, source).fit(keys, y))
    name, _ = select_block_model(keys, y, source, prefer_default=True)
    out["one latency, prefer simple"] = (name, BlockLatencyRegressor(name, source).fit(keys, y))
    out["no simulator"] = ("linear", BlockLatencyRegressor("linear").fit(keys, y))
    return out


def block_component_study(space_name: str, seeds: int) -> dict:
    """Held-out blocks within +-10% and MAPE at n = 5, 10, 20 measured target blocks, every
    ordered pair of shipped backends, ``seeds`` random draws each."""
    tables = {backend: _shipped_blocks(space_name, backend) for backend in SHIPPED}
    pairs = []
    for source in SHIPPED:
        for target in SHIPPED:
            if source == target:
                continue
            source_table, components, source_label = tables[source]
            target_table, _, target_label = tables[target]
            keys = sorted(set(source_table) & set(target_table))
            row = {"source": source, "target": target, "source_label": source_label, "target_label": target_label,
                   "source_has_components": components is not None, "blocks": len(keys), "n": {}}
            for n in BLOCK_NS:
                scores, chosen = {}, {}
                for seed in range(seeds):
                    pick = set(np.random.default_rng(seed + 100 * n).choice(len(keys), n, replace=False).tolist())
                    measured = [keys[i] for i in sorted(pick)]
                    held = [k for i, k in enumerate(keys) if i not in pick]
                    y = np.array([target_table[k] for k in measured])
                    truth = np.array([target_table[k] for k in held])
                    for variant, (name, model) in block_variants(measured, y, source_table, components).items():
                        scores.setdefault(variant, []).append(report(truth, model.predict(held)))
                        chosen.setdefault(variant, []).append(name)
                row["n"][str(n)] = {variant: {**average(runs), "models": chosen[variant]}
                                    for variant, runs in scores.items()}
                print(source, "->", target, n, json.dumps({v: {k: r[k] for k in ("within_10", "mape")}
                                                           for v, r in row["n"][str(n)].items()}), flush=True)
            pairs.append(row)
    return {"benchmark": "transfer-blocks", "space": space_name, "n": list(BLOCK_NS), "seeds": seeds,
            "variants": ["components", "components, prefer simple", "components only", "one latency (previous)",
                         "one latency, prefer simple", "no simulator"], "pairs": pairs}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="mbv3-small")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--blocks-components", action="store_true",
                        help="only the block-level study of component features (issue 22): every ordered pair of "
                             "shipped block profiles, n = 5, 10, 20, --repeats seeds (default out: "
                             "results/transfer_blocks.json)")
    args = parser.parse_args(argv)
    if args.blocks_components:
        result = {**block_component_study(args.space, args.repeats), "environment": environment()}
        save(result, args.out or RESULTS / "transfer_blocks.json")
        return 0
    args.out = args.out or RESULTS / "transfer.json"
    result = {"benchmark": "transfer", "space": args.space, "environment": environment(), "n": list(NS),
              "repeats": args.repeats, "pairs": []}
    for source, target in PAIRS:
        result["pairs"].append(pair(args.space, source, target, args.repeats, args.seed))
    result["environment_after"] = environment()
    save(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
