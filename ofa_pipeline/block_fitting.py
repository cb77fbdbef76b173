"""``ofa-fit-predictor --blocks`` and ``--transfer-from``: block-sum predictors
and few-shot transfer, fitted, scored on held-out networks and saved.

    # block-sum predictor of one device; 10 networks of --profile fit its network-level correction
    ofa-fit-predictor --blocks hardware_profiles/data/blocks/mbv3-small_cpu-ort.jsonl \\
        --profile hardware_profiles/data/mbv3-small_cpu-ort.jsonl --fit-networks 10 --out cpu.skops

    # a new device from a few measured blocks, the rest predicted from another device's blocks
    ofa-fit-predictor --blocks my-phone.blocks.jsonl --transfer-from cpu.blocks.jsonl --out phone.skops

    # a new device from 20 measured networks and a simulator (or 'macs', or a saved predictor)
    ofa-fit-predictor --profile my-fpga.jsonl --transfer-from fpga-analytical --fit-networks 20 \\
        --out fpga.skops
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ofa.errors import ConfigError, DataError


@dataclass(frozen=True)
class BlockFitOptions:
    """What to fit: the ``ofa-fit-predictor`` options of the same names. ``blocks``: a block profile
    of the device; ``profile``: its whole-network measurements (``fit_networks`` of them fit the
    network-level correction or the transfer, the rest score it); ``transfer_from``: a predictor
    file, a block profile, a backend (``accelerator``: its configuration) or ``"macs"``."""

    blocks: str | None = None
    profile: str | None = None
    transfer_from: str | None = None
    accelerator: str | None = None
    workload: str | None = None
    metric: str | None = None
    statistic: str | None = None
    fit_networks: int | None = None
    seed: int = 0
    overwrite: bool = False


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


def fit_block_or_transfer(options: BlockFitOptions, out: Path, plot_path: Path, json_path: Path) -> dict:
    """Fit a block-sum or transfer predictor, score it on the held-out networks of ``options.profile``
    (where given), save it to ``out``, its parity plot and its JSON summary; returns the summary."""
    from hardware_profiles import read_profile
    from ofa.io import atomic_write_json
    from ofa.validation import check_input_file, check_output_path
    from predictors import core
    from predictors.blocks import fit_block_predictor
    from predictors.report import score_held_out, write_held_out

    inputs = []
    for name, value in (("--blocks", options.blocks), ("--profile", options.profile)):
        if value is not None:
            inputs.append((f"the {name}", check_input_file(value, name, kinds=("profile",))))
    for path, name, kind in ((out, "--out", "predictor"), (plot_path, "--plot", "png"),
                             (json_path, "--metrics-json", "json")):
        check_output_path(path, inputs, kind=(kind,), overwrite=options.overwrite, name=name)
    if options.blocks is None and options.profile is None:
        raise ConfigError("--transfer-from needs what was measured on the new device: --blocks and/or --profile")
    accelerator = options.accelerator
    if accelerator is not None and not options.transfer_from:
        raise ConfigError("--accelerator configures the simulator given as --transfer-from; give --transfer-from")
    source = _source(options.transfer_from, accelerator) if options.transfer_from else None
    block_options = {"mode": options.workload} if options.workload else None

    genes = y = fit = test = None
    if options.profile is not None:
        profile = read_profile(options.profile)
        metric, statistic = core.resolve_label(profile, options.metric, options.statistic)
        profile, genes, y = core.profile_targets(profile, metric, statistic)
        wanted = options.fit_networks if options.fit_networks is not None else (10 if options.blocks else 20)
        if wanted > len(y) - 1:
            raise DataError(f"--fit-networks {wanted}: the profile holds {len(y)} networks and at least one is "
                            f"held out for scoring")
        order = np.random.default_rng(options.seed).permutation(len(y))
        fit, test = np.sort(order[:wanted]), np.sort(order[wanted:])
    blocks = read_profile(options.blocks) if options.blocks else None
    if blocks is not None:
        metric, statistic = core.resolve_label(blocks, options.metric, options.statistic)
        if options.profile is not None:
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
            core.subset_profile(profile, fit), metric=metric, statistic=statistic, random_state=options.seed)

    report = {"predictor": str(out), "model": predictor.model_name, "device": predictor.device,
              "label": f"{metric}.{statistic}", "space_fingerprint": predictor.space_fingerprint,
              "selection": predictor.metrics_.get("selection"), "blocks": options.blocks, "profile": options.profile,
              "transfer_from": options.transfer_from,
              **({"accelerator": accelerator} if accelerator is not None else {}), "n_fit_networks": 0 if fit is None else int(len(fit))}
    if test is not None and len(test):
        held_out = score_held_out(predictor.predict_genes, genes[test], y[test], predictor.model_name,
                                  {name: other.predict_genes(genes[test]) for name, other in compared.items()},
                                  interval=(predictor.predict_interval_genes
                                            if predictor.interval_residuals_ is not None else None))
        intro = (f"{report['n_fit_networks']} networks to fit, {len(test)} held out; "
                 f"{(predictor.metrics_.get('selection') or {}).get('reason', predictor.model_name)}")
        return write_held_out(predictor, held_out, out, plot_path, json_path, report, intro,
                              f"{predictor.device} ({metric}.{statistic})")
    print(predictor.metrics_.get("selection", {}).get("reason", predictor.model_name))
    predictor.save(out)
    atomic_write_json(json_path, core.json_safe(report))
    print(f"wrote {out}, {json_path}")
    return report
