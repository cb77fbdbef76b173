"""Fit a latency predictor on a device profile (or an accuracy predictor on
evaluation records), compare it with the baselines on held-out architectures,
and save it.

Latency:

    ofa-fit-predictor --profile hardware_profiles/data/mbv3-small_cpu-ort.jsonl \\
        --out predictors/data/mbv3-small_cpu-ort.skops [--metric cpu_time_ms] [--model auto]

Accuracy (records written by ofa-evaluate):

    ofa-fit-predictor --evaluations runs/digits/evaluations.jsonl --space mbv3-small \\
        --target top1 --out predictors/data/mbv3-small_top1.skops

A random ``--test-fraction`` of the architectures is held out; the rest picks
the model by cross-validation (``--model auto``) and fits it. For a table,
``--test-fraction 0`` fits on every row and reports the cross-validated metrics. The held-out
metrics of every model are printed as a table and written, with the selection
reason, to ``<out>.json``; ``<out>.png`` is the parity plot (predicted vs
measured on the held-out architectures).

A latency table (CSV/TSV, e.g. Hardware-Aware Transformers' latency datasets)
works as ``--profile`` too: name its ``--latency-column`` and either its
architectures (``--space``, ``--arch-column`` or one column per gene) or free
``--feature-columns`` (see docs/imports.md):

    ofa-fit-predictor --profile wmt14ende_cpu_raspberrypi_all.csv --device raspberrypi \\
        --latency-column latency_mean_encoder+latency_mean_decoder --space hat-wmt \\
        --feature-columns encoder_embed_dim,encoder_layer_num,encoder_ffn_embed_dim_avg --out rpi.skops
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


from ofa.cli import run_command
from ofa.errors import ConfigError
from ofa.validation import (ArgumentParser, check_input_file, check_output_path, choice, holdout_fraction,
                            int_at_least, non_negative_int)

STATISTICS = ("median", "mean", "p10", "p90")


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--profile", help="latency profile (JSONL) of one device")
    source.add_argument("--evaluations", help="evaluation records (JSONL) of ofa-evaluate")
    p.add_argument("--out", required=True, help="predictor file to write (.skops)")
    p.add_argument("--model", default="auto", help="'auto' (chosen by cross-validation) or a model name")
    p.add_argument("--metric", default=None,
                   help="profile label: corrected_cpu_time_ms / corrected_latency_ms (drift-corrected by the "
                        "reference network), cpu_time_ms (thread CPU time) or latency_ms (wall). Default: the "
                        "drift-corrected thread CPU time where the profile has it, cpu_time_ms on older timed "
                        "profiles, latency_ms for simulators; see docs/profiles.md. Specialisation verifies picks "
                        "with the same label")
    p.add_argument("--statistic", default=None, type=choice(STATISTICS),
                   help="statistic of the label: median, mean, p10, p90 (default: p10 of the thread CPU time for "
                        "timed backends, the statistic that repeats best; median for simulators and wall clock)")
    # block-sum predictors and transfer (ofa_pipeline.block_fitting)
    p.add_argument("--blocks", help="block profile (JSONL, ofa-profile-device --blocks): fit a block-sum "
                                    "predictor; --profile then gives whole-network measurements of the same device")
    p.add_argument("--transfer-from", help="transfer source: a predictor file (.skops), a block profile of another "
                                           "device, a simulator backend (fpga-analytical) or 'macs'")
    p.add_argument("--accelerator",
                   help="with --transfer-from fpga-dpu / fpga-analytical / fpga-scalesim: the source simulator's "
                        "accelerator (a config name such as dpu-b4096-zcu102, see hardware_profiles/configs, or a "
                        "JSON file); the simulator prices exactly the blocks the fit needs")
    p.add_argument("--fit-networks", type=non_negative_int, default=None,
                   help="with --blocks or --transfer-from: how many --profile networks to fit on (the rest is held "
                        "out; default 10 with --blocks, 20 with --transfer-from)")
    p.add_argument("--workload", choices=("forward", "decode"),
                   help="with --blocks, Transformer spaces: the workload the networks were measured on")
    p.add_argument("--space", help="search space of the evaluations or of a --profile table (preset, space JSON/YAML "
                                   "file, or trained checkpoint .pt)")
    # a user's latency table as --profile (CSV/TSV, docs/imports.md; ofa_pipeline.table_fitting)
    p.add_argument("--latency-column", help="--profile table: latency column ('a+b' sums columns)")
    p.add_argument("--std-column", help="--profile table: standard deviation column (kept with the records)")
    p.add_argument("--feature-columns", action="append",
                   help="--profile table: fit on these free feature columns (comma-separated or repeated); with "
                        "--space and columns computable from an architecture the predictor can drive specialize")
    p.add_argument("--arch-column", help="--profile table: column holding each row's architecture (JSON); default: "
                                         "one column per gene (kernel_sizes.0, ..., see docs/imports.md)")
    p.add_argument("--unit", choices=("ms", "us", "s"), help="--profile table: latency unit (default ms)")
    p.add_argument("--device", help="--profile table: device id of the predictor (default: the file name)")
    p.add_argument("--merge-duplicates", action="store_true",
                   help="--profile table: pool rows that measure the same architecture as samples (refused without)")
    p.add_argument("--target", default="top1", type=choice(("top1", "loss")), help="evaluation target: top1 or loss")
    p.add_argument("--split", help="use only evaluation records of this split")
    p.add_argument("--test-fraction", type=holdout_fraction, default=0.2,
                   help="share of architectures held out (0.2); 0 with a --profile table: fit on every row and "
                        "report the cross-validated metrics of the model choice (no held-out rows, no --plot)")
    p.add_argument("--cv", type=int_at_least(2), default=5, help="cross-validation folds for the model choice (5)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--plot", help="parity plot PNG (default: <out>.png)")
    p.add_argument("--metrics-json", help="metrics JSON (default: <out>.json)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files of another kind")
    return p.parse_args(argv)


def check_paths(args, out: Path, plot_path: Path, json_path: Path) -> None:
    """Inputs exist and hold what they should; outputs clobber no input nor a file of another kind."""
    if args.profile is not None:
        source = ("the --profile", check_input_file(args.profile, "--profile", kinds=("profile",)))
    else:
        source = ("the --evaluations", check_input_file(args.evaluations, "--evaluations",
                                                         kinds=("evaluations", "json")))
    inputs = [source] + ([("the --space", args.space)] if args.space else [])
    check_output_path(out, inputs, kind=("predictor",), overwrite=args.overwrite, name="--out")
    check_output_path(plot_path, inputs + [("the --out", out)], kind=("png",), overwrite=args.overwrite,
                      name="--plot")
    check_output_path(json_path, inputs + [("the --out", out), ("the --plot", plot_path)], kind=("json",),
                      overwrite=args.overwrite, name="--metrics-json")


def _is_table(path) -> bool:
    """A latency table, or a feature-row profile imported from one: fitted by ofa_pipeline.table_fitting."""
    from hardware_profiles.imports.table import is_table
    from ofa_pipeline.table_fitting import is_feature_profile

    return Path(path).is_file() and (is_table(path) or is_feature_profile(path))


def options_of(args, options_class):
    """The library's options dataclass filled from the parsed command line (same names)."""
    from dataclasses import fields

    return options_class(**{f.name: getattr(args, f.name) for f in fields(options_class)})


def run(args) -> dict:
    out = Path(args.out)
    plot_path = Path(args.plot) if args.plot else out.with_suffix(".png")
    json_path = Path(args.metrics_json) if args.metrics_json else out.with_suffix(".json")
    if args.accelerator is not None and not args.transfer_from:
        raise ConfigError("--accelerator configures the simulator given as --transfer-from; give --transfer-from "
                          "(or profile the device with ofa-profile-device --accelerator)")
    if args.blocks or args.transfer_from:
        from ofa_pipeline.block_fitting import BlockFitOptions, fit_block_or_transfer

        if args.evaluations is not None:
            raise ConfigError("--blocks and --transfer-from fit latency predictors; --evaluations fits accuracy ones")
        return fit_block_or_transfer(options_of(args, BlockFitOptions), out, plot_path, json_path)
    if args.profile is None and args.evaluations is None:
        raise ConfigError("give --profile (latency), --evaluations (accuracy) or --blocks (block-sum latency)")
    if args.profile is not None and (args.latency_column or args.feature_columns or args.arch_column
                                     or _is_table(args.profile)):
        from ofa_pipeline.table_fitting import TableFitOptions, fit_table

        return fit_table(options_of(args, TableFitOptions), out, plot_path, json_path)
    if args.test_fraction == 0:
        raise ConfigError("--test-fraction 0 (fit on every row) is for a --profile table; a profile or evaluations "
                          "hold out a share of architectures: give a fraction between 0 and 1")
    check_paths(args, out, plot_path, json_path)  # named by their options, before the library checks them again
    from ofa_pipeline.fit import FitOptions, fit_accuracy_predictor_from_evaluations, fit_latency_predictor_from_profile

    options = options_of(args, FitOptions)
    if args.profile is not None:
        return fit_latency_predictor_from_profile(args.profile, out, metric=args.metric, statistic=args.statistic,
                                                  options=options)
    if not args.space:
        raise ConfigError("--evaluations needs --space (the search space the architectures belong to)")
    return fit_accuracy_predictor_from_evaluations(args.evaluations, args.space, out, target=args.target,
                                                   split=args.split, options=options)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_command(run, args)


if __name__ == "__main__":
    sys.exit(main())
