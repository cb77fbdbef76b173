"""``tools/fit_predictor.py --blocks`` and ``--transfer-from``: block-sum predictors
and few-shot transfer, fitted, scored on held-out networks and saved.

    # block-sum predictor of one device; 10 networks of --profile fit its network-level correction
    python tools/fit_predictor.py --blocks hardware_profiles/data/blocks/mbv3-small_cpu-ort.jsonl \\
        --profile hardware_profiles/data/mbv3-small_cpu-ort.jsonl --fit-networks 10 --out cpu.skops

    # a new device from a few measured blocks, the rest predicted from another device's blocks
    python tools/fit_predictor.py --blocks my-phone.blocks.jsonl --transfer-from cpu.blocks.jsonl --out phone.skops

    # a new device from 20 measured networks and a simulator (or 'macs', or a saved predictor)
    python tools/fit_predictor.py --profile my-fpga.jsonl --transfer-from fpga-analytical --fit-networks 20 \\
        --out fpga.skops
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ofa.errors import ConfigError, DataError


def _source(spec: str, accelerator: str | None = None):
    """A transfer source from the command line: a predictor file, a block profile, a backend name
    (with ``accelerator``: that simulator built for the accelerator configuration, a config name
    or JSON file, so it prices the blocks the fit needs at the device's size) or 'macs'."""
    from ofa.validation import sniff_kind

    from hardware_profiles.backends import BACKENDS, get_backend

    if accelerator is not None and spec not in BACKENDS:
        raise ConfigError(f"--accelerator configures a simulator used as --transfer-from; --transfer-from {spec!r} is "
                          f"not a backend ({sorted(BACKENDS)}): leave --accelerator out")
    if accelerator is not None:
        return get_backend(spec, accelerator=accelerator)  # an unknown option or config: a named error, listed
    if spec == "macs":
        return spec
    kind = sniff_kind(spec)
    if kind == "predictor":
        from predictors import load_predictor

        return load_predictor(spec)
    if kind == "profile":
        return spec
    if spec in BACKENDS:
        return spec
    raise ConfigError(f"--transfer-from {spec!r} is neither a predictor file (.skops), a block profile, a backend "
                      f"({sorted(BACKENDS)}) nor 'macs'")


def run_block_or_transfer(args, out: Path, plot_path: Path, json_path: Path) -> dict:
    from hardware_profiles import read_profile
    from ofa.io import atomic_write_json
    from ofa.validation import check_input_file, check_output_path
    from predictors import core
    from predictors.blocks import fit_block_predictor
    from predictors.metrics import format_table, interval_coverage, regression_report
    from predictors.plots import save_parity_plot

    if args.evaluations is not None:
        raise ConfigError("--blocks and --transfer-from fit latency predictors; --evaluations fits accuracy ones")
    inputs = []
    for name, value in (("--blocks", args.blocks), ("--profile", args.profile)):
        if value is not None:
            inputs.append((f"the {name}", check_input_file(value, name, kinds=("profile",))))
    for path, name, kind in ((out, "--out", "predictor"), (plot_path, "--plot", "png"),
                             (json_path, "--metrics-json", "json")):
        check_output_path(path, inputs, kind=(kind,), overwrite=args.overwrite, name=name)
    if args.blocks is None and args.profile is None:
        raise ConfigError("--transfer-from needs what was measured on the new device: --blocks and/or --profile")
    accelerator = getattr(args, "accelerator", None)
    if accelerator is not None and not args.transfer_from:
        raise ConfigError("--accelerator configures the simulator given as --transfer-from; give --transfer-from")
    source = _source(args.transfer_from, accelerator) if args.transfer_from else None
    block_options = {"mode": args.workload} if args.workload else None

    genes = y = fit = test = None
    if args.profile is not None:
        profile = read_profile(args.profile)
        metric, statistic = core.resolve_label(profile, args.metric, args.statistic)
        profile, genes, y = core.profile_targets(profile, metric, statistic)
        wanted = args.fit_networks if args.fit_networks is not None else (10 if args.blocks else 20)
        if wanted > len(y) - 1:
            raise DataError(f"--fit-networks {wanted}: the profile holds {len(y)} networks and at least one is "
                            f"held out for scoring")
        order = np.random.default_rng(args.seed).permutation(len(y))
        fit, test = np.sort(order[:wanted]), np.sort(order[wanted:])
    blocks = read_profile(args.blocks) if args.blocks else None
    if blocks is not None:
        metric, statistic = core.resolve_label(blocks, args.metric, args.statistic)
        if args.profile is not None:
            blocks.space.check_fingerprint(profile.space.fingerprint, "the --profile networks")
    networks = (genes[fit], y[fit]) if fit is not None and len(fit) else None
    compared = {}
    if blocks is not None and source is not None:
        predictor = core.fit_transfer_predictor(source, blocks, metric=metric, statistic=statistic,
                                                networks=networks, block_options=block_options)
    elif blocks is not None:
        predictor = fit_block_predictor(blocks, networks, metric=metric, statistic=statistic,
                                        block_options=block_options)
        if networks is not None:
            compared["block-sum, no correction"] = fit_block_predictor(blocks, None, metric=metric,
                                                                       statistic=statistic,
                                                                       block_options=block_options)
    else:
        if fit is None or len(fit) < 2:
            raise DataError("transfer from whole networks needs at least 2 --fit-networks")
        predictor = core.fit_transfer_predictor(source, core.subset_profile(profile, fit), correction="auto",
                                                metric=metric, statistic=statistic, block_options=block_options)
    if fit is not None and len(fit) >= 5 and (blocks is None or source is None):
        compared[f"fitted on the {len(fit)} networks alone"] = core.fit_latency_predictor(
            core.subset_profile(profile, fit), metric=metric, statistic=statistic, random_state=args.seed)

    report = {"predictor": str(out), "model": predictor.model_name, "device": predictor.device,
              "label": f"{metric}.{statistic}", "space_fingerprint": predictor.space_fingerprint,
              "selection": predictor.metrics_.get("selection"), "blocks": args.blocks, "profile": args.profile,
              "transfer_from": args.transfer_from,
              **({"accelerator": accelerator} if accelerator is not None else {}), "n_fit_networks": 0 if fit is None else int(len(fit))}
    if test is not None and len(test):
        chosen = predictor.predict_genes(genes[test])
        results = {f"{predictor.model_name} (saved)": regression_report(y[test], chosen)}
        shown = {predictor.model_name: chosen}
        for name, other in compared.items():
            prediction = other.predict_genes(genes[test])
            results[name] = regression_report(y[test], prediction)
            shown[name] = prediction
        predictor.metrics_["test"] = results[f"{predictor.model_name} (saved)"]
        predictor.metrics_["test_all_models"] = results
        predictor.metrics_["n_test"] = int(len(test))
        report.update(test=results, n_test=int(len(test)))
        print(f"{report['n_fit_networks']} networks to fit, {len(test)} held out; "
              f"{(predictor.metrics_.get('selection') or {}).get('reason', predictor.model_name)}")
        print(format_table(results))
        if predictor.interval_residuals_ is not None:
            coverage = {}
            for level in (0.8, 0.9):
                low, high = predictor.predict_interval_genes(genes[test], level)
                coverage[f"{level:.0%}"] = interval_coverage(y[test], low, high)
            predictor.metrics_["interval_coverage_test"] = coverage
            report["interval_coverage_test"] = coverage
        save_parity_plot(plot_path, y[test], shown, f"{predictor.device} ({metric}.{statistic})", unit="ms",
                         band=0.10)
    else:
        print(predictor.metrics_.get("selection", {}).get("reason", predictor.model_name))
    predictor.save(out)
    atomic_write_json(json_path, core.json_safe(report))
    print(f"wrote {out}" + (f", {plot_path}" if test is not None and len(test) else "") + f", {json_path}")
    return report
