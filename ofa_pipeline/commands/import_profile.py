"""Import latencies measured with other tools into a profile (docs/imports.md).

A table (CSV/TSV), one row per architecture or block:

    python tools/import_profile.py --format table measured.csv --space mbv3-small --device my-phone \\
        --latency-column latency_ms [--std-column std_ms] [--arch-column arch | --block-column block] \\
        --out profiles/my-phone.jsonl

Vitis AI profiler summaries (profile_summary.csv) or TFLite benchmark_model
outputs, listed in a manifest with the block or architecture each measured:

    python tools/import_profile.py --format vitis-ai zcu102/manifest.yaml --out profiles/zcu102.blocks.jsonl
    python tools/import_profile.py --format tflite-benchmark pixel7/manifest.yaml --out profiles/pixel7.jsonl

Once-for-All latency lookup tables (one YAML per resolution), in and out:

    python tools/import_profile.py --format ofa-lut 160_lookup_table.yaml --space ofa-mbv3-w1.2 \\
        --device note10 --out profiles/note10.blocks.jsonl
    python tools/import_profile.py --format ofa-lut --export profiles/note10.blocks.jsonl --out lut.yaml

ncnn benchncnn runs of a bundle (tools/phone_benchmark.sh):

    python tools/import_profile.py --format benchncnn results.txt --bundle bundle/ --device pixel-7 \\
        --out profiles/pixel-7-ncnn.jsonl

Every format writes the whole profile at once after validating it: a bad file
stops the import with its line number and writes nothing. A table of free
feature columns is not a profile: fit on it directly with
``tools/fit_predictor.py --profile table.csv --latency-column ... --feature-columns ...``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ofa.cli import run_command
from ofa.errors import ConfigError
from ofa.validation import (ArgumentParser, check_input_dir, check_input_file, check_output_path, choice,
                            positive_int)

FORMAT_NAMES = ("table", "vitis-ai", "ofa-lut", "tflite-benchmark", "benchncnn")


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--format", required=True, type=choice(FORMAT_NAMES), help=f"one of {', '.join(FORMAT_NAMES)}")
    p.add_argument("inputs", nargs="+", help="the file(s) to import: a table, a manifest, lookup tables, results")
    p.add_argument("--out", required=True, help="profile (JSONL) to write; with --export, the lookup table (YAML)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--space", help="table, ofa-lut: search space (preset, space file or checkpoint)")
    p.add_argument("--device", help="table, ofa-lut, benchncnn: device id written into the profile")
    p.add_argument("--backend", help="table, ofa-lut: what measured (header 'backend'; default: the format name; "
                                     "a backend of this package lets specialize re-measure on it)")
    p.add_argument("--backend-version", default="unknown")
    p.add_argument("--precision", default="fp32", help="table, ofa-lut: fp32, fp16 or int8")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--batch-size", type=positive_int, default=1)
    # table
    p.add_argument("--latency-column", help="table: latency column ('a+b' sums columns)")
    p.add_argument("--std-column", help="table: standard deviation column ('a+b': root sum of squares)")
    p.add_argument("--runs-column", help="table: number-of-runs column")
    p.add_argument("--unit", default="ms", type=choice(("ms", "us", "s")), help="table: latency unit (ms)")
    p.add_argument("--arch-column", help="table: column holding each row's architecture (JSON)")
    p.add_argument("--block-column", help="table: column holding each row's block key (a block profile)")
    p.add_argument("--delimiter", help="table: cell delimiter (default: tab for .tsv or a tab header, else , or ;)")
    # ofa-lut
    p.add_argument("--export", action="store_true",
                   help="ofa-lut: write the block profile given as input as a lookup table (YAML) instead")
    p.add_argument("--statistic", default="mean", type=choice(("mean", "median", "p10", "p90")),
                   help="ofa-lut --export: the statistic written as the table's mean")
    # benchncnn
    p.add_argument("--bundle", help="benchncnn: the bundle directory from profile_device.py --export-ncnn")
    return p.parse_args(argv)


def _require(args, names: tuple[str, ...]) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) in (None, "")]
    if missing:
        raise ConfigError(f"--format {args.format} needs {', '.join(missing)}")


def check_arguments(args) -> list[Path]:
    """Everything checkable before reading the inputs: options per format, input and output paths."""
    if args.export and args.format != "ofa-lut":
        raise ConfigError("--export is for --format ofa-lut (a block profile written as a lookup table)")
    single = args.format in ("table", "vitis-ai", "tflite-benchmark", "benchncnn") or args.export
    if single and len(args.inputs) != 1:
        raise ConfigError(f"--format {args.format}{' --export' if args.export else ''} takes one input file, got "
                          f"{len(args.inputs)}")
    if args.format == "table":
        _require(args, ("space", "device", "latency_column"))
    elif args.format == "ofa-lut" and not args.export:
        _require(args, ("space", "device"))
    elif args.format == "benchncnn":
        _require(args, ("bundle", "device"))
        check_input_dir(args.bundle, "--bundle")
    inputs = [check_input_file(path, "input") for path in args.inputs]
    kind = ("text", "json") if args.export else ("profile",)
    check_output_path(args.out, [("an input", p) for p in inputs], kind=kind, overwrite=args.overwrite, name="--out")
    return inputs


def run(args):
    from hardware_profiles.imports import check_format

    check_format(args.format)
    inputs = check_arguments(args)
    common = dict(backend_version=args.backend_version, precision=args.precision, threads=args.threads,
                  batch_size=args.batch_size)
    if args.format == "table":
        from hardware_profiles.imports.table import import_table

        profile = import_table(inputs[0], args.out, args.space, args.device, overwrite=args.overwrite,
                               latency=args.latency_column, std=args.std_column, runs=args.runs_column,
                               arch_column=args.arch_column, block_column=args.block_column, unit=args.unit,
                               backend=args.backend or "table", delimiter=args.delimiter, **common)
    elif args.format == "vitis-ai":
        from hardware_profiles.imports.vitis_ai import import_vitis_ai

        profile = import_vitis_ai(inputs[0], args.out, overwrite=args.overwrite)
    elif args.format == "tflite-benchmark":
        from hardware_profiles.imports.tflite import import_tflite_benchmark

        profile = import_tflite_benchmark(inputs[0], args.out, overwrite=args.overwrite)
    elif args.format == "ofa-lut" and args.export:
        from hardware_profiles.imports.ofa_lut import export_ofa_lut, ofa_lut_entries

        path = export_ofa_lut(inputs[0], args.out, statistic=args.statistic, overwrite=args.overwrite)
        print(f"wrote {len(ofa_lut_entries(inputs[0], args.statistic))} lookup-table entries to {path}")
        return path
    elif args.format == "ofa-lut":
        from hardware_profiles.imports.ofa_lut import import_ofa_lut

        profile = import_ofa_lut(inputs, args.out, args.space, args.device, overwrite=args.overwrite,
                                 backend=args.backend or "ofa-lut", **common)
    else:
        from hardware_profiles.device_import import import_phone_results

        out = Path(args.out)
        if out.exists() and args.overwrite:  # a fresh profile, moved over the old one only once it is complete
            staging = out.with_name(f".{out.name}.importing")
            staging.unlink(missing_ok=True)
            try:
                import_phone_results(inputs[0], args.bundle, staging, device=args.device)
                os.replace(staging, out)
            finally:
                staging.unlink(missing_ok=True)
            from hardware_profiles import read_profile

            profile = read_profile(out)
        else:  # creates the profile, or extends one of the same device (as profile_device.py --import does)
            profile = import_phone_results(inputs[0], args.bundle, out, device=args.device)
    print(f"wrote {len(profile)} {profile.level} record(s) for device {profile.device!r} to {args.out}")
    return profile


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_command(run, args)


if __name__ == "__main__":
    sys.exit(main())
