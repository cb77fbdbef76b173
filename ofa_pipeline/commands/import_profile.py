"""Import latencies measured with other tools into a profile (docs/imports.md).

A table (CSV/TSV), one row per architecture or block:

    ofa-import-profile --format table measured.csv --space mbv3-small --device my-phone \\
        --latency-column latency_ms [--std-column std_ms] [--arch-column arch | --block-column block] \\
        --out profiles/my-phone.jsonl

Vitis AI profiler summaries (profile_summary.csv) or TFLite benchmark_model
outputs, listed in a manifest with the block or architecture each measured:

    ofa-import-profile --format vitis-ai zcu102/manifest.yaml --out profiles/zcu102.blocks.jsonl

or, for Vitis AI, a folder of summaries named after their blocks (no manifest: one
folder per block named like ``in_24x56x56-out_24-k3-e4-s1-relu-se0``, or a block key):

    ofa-import-profile --format vitis-ai zcu102/ --space ofa-mbv3-w1.0 --device zcu102-b4096 \\
        [--skip-outside-space] --out profiles/zcu102.blocks.jsonl
    ofa-import-profile --format tflite-benchmark pixel7/manifest.yaml --out profiles/pixel7.jsonl

Once-for-All latency lookup tables (one YAML per resolution), in and out:

    ofa-import-profile --format ofa-lut 160_lookup_table.yaml --space ofa-mbv3-w1.2 \\
        --device note10 --out profiles/note10.blocks.jsonl
    ofa-import-profile --format ofa-lut --export profiles/note10.blocks.jsonl --out lut.yaml

ncnn benchncnn runs of a bundle (tools/phone_benchmark.sh):

    ofa-import-profile --format benchncnn results.txt --bundle bundle/ --device pixel-7 \\
        --out profiles/pixel-7-ncnn.jsonl

Every format writes the whole profile at once after validating all of its
input: every problem is reported at once with its file and line, and nothing is
written. ``--out`` may never be a file the import reads (an input, a file a
manifest names, the bundle's manifest, a --space file), even with --overwrite.
The same architecture or block measured twice (rows, entries, tables, runs) is
refused unless --merge-duplicates (then pooled as samples, and listed). Latencies
whose magnitude does not fit the networks' MACs (microseconds or seconds read as
milliseconds) are warned about, or refused with --refuse-implausible. A table of free
feature columns (--feature-columns, e.g. HAT's latency datasets) imports to a feature-row
profile; the table reader is the one ``ofa-fit-predictor --profile table.csv`` uses, so a
table one accepts the other does.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from hardware_profiles.imports.common import PRECISIONS, ImplausibleLatencyWarning
from ofa.cli import run_command
from ofa.errors import ConfigError
from ofa.validation import (ArgumentParser, check_input_dir, check_input_file, check_output_path, choice,
                            positive_int)

FORMAT_NAMES = ("table", "vitis-ai", "ofa-lut", "tflite-benchmark", "benchncnn")
IMPORTS = ("table", "ofa-lut", "vitis-ai", "tflite-benchmark", "benchncnn")
# the formats that read each option (others take it from their files: a manifest, the bundle)
OPTION_FORMATS = {
    "space": ("table", "ofa-lut", "vitis-ai"), "device": ("table", "ofa-lut", "benchncnn", "vitis-ai"),
    "backend": ("table", "ofa-lut"), "backend_version": ("table", "ofa-lut", "vitis-ai"),
    "precision": ("table", "ofa-lut", "vitis-ai"), "skip_outside_space": ("vitis-ai",), "threads": ("table", "ofa-lut"),
    "batch_size": ("table", "ofa-lut"), "latency_column": ("table",), "std_column": ("table",),
    "runs_column": ("table",), "unit": ("table",), "arch_column": ("table",), "block_column": ("table",),
    "feature_columns": ("table",),
    "delimiter": ("table",), "statistic": ("ofa-lut --export",), "bundle": ("benchncnn",),
    "merge_duplicates": IMPORTS, "refuse_implausible": IMPORTS,
}


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--format", required=True, type=choice(FORMAT_NAMES), help=f"one of {', '.join(FORMAT_NAMES)}")
    p.add_argument("inputs", nargs="+", help="the file(s) to import: a table, a manifest, lookup tables, results")
    p.add_argument("--out", required=True, help="profile (JSONL) to write; with --export, the lookup table (YAML)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (never a file the import reads)")
    p.add_argument("--space", help="table, ofa-lut: search space (preset, space file or checkpoint)")
    p.add_argument("--device", help="table, ofa-lut, benchncnn: device id written into the profile")
    p.add_argument("--backend", help="table, ofa-lut: what measured (header 'backend'; default: the format name; "
                                     "a backend of this package lets specialize re-measure on it)")
    p.add_argument("--backend-version", help="table, ofa-lut: version of what measured (default: unknown)")
    p.add_argument("--precision", type=choice(PRECISIONS),
                   help=f"table, ofa-lut: one of {', '.join(PRECISIONS)} (default fp32; manifests say their own)")
    p.add_argument("--threads", type=positive_int, help="table, ofa-lut: threads of the measurements (1)")
    p.add_argument("--batch-size", type=positive_int, help="table, ofa-lut: batch size of the measurements (1)")
    p.add_argument("--merge-duplicates", action="store_true",
                   help="pool an architecture or block measured more than once (repeated rows, manifest entries, "
                        "tables, benchncnn runs) as samples, and list what was merged; refused without it")
    p.add_argument("--skip-outside-space", action="store_true",
                   help="vitis-ai: import the blocks of the space and skip (and list) those no architecture of "
                        "the space runs; without it the import refuses them all, listed")
    p.add_argument("--refuse-implausible", action="store_true",
                   help="refuse latencies whose magnitude does not fit the networks' MACs (a likely unit mistake: "
                        "microseconds or seconds read as milliseconds) instead of importing them with a warning")
    # table
    p.add_argument("--latency-column", help="table: latency column ('a+b' sums columns)")
    p.add_argument("--std-column", help="table: standard deviation column ('a+b': root sum of squares)")
    p.add_argument("--runs-column", help="table: number-of-runs column")
    p.add_argument("--unit", type=choice(("ms", "us", "s")), help="table: latency unit (ms)")
    p.add_argument("--arch-column", help="table: column holding each row's architecture (JSON)")
    p.add_argument("--block-column", help="table: column holding each row's block key (a block profile)")
    p.add_argument("--feature-columns", action="append",
                   help="table: the rows' own numeric columns (comma-separated or repeated; HAT's latency "
                        "datasets): a feature-row profile, --space optional")
    p.add_argument("--delimiter", help="table: cell delimiter (default: tab for .tsv or a tab header, else , or ;)")
    # ofa-lut
    p.add_argument("--export", action="store_true",
                   help="ofa-lut: write the block profile given as input as a lookup table (YAML) instead")
    p.add_argument("--statistic", type=choice(("mean", "median", "p10", "p90")),
                   help="ofa-lut --export: the statistic written as the table's mean (mean)")
    # benchncnn
    p.add_argument("--bundle", help="benchncnn: the bundle directory from profile_device.py --export-ncnn")
    return p.parse_args(argv)


def _require(args, names: tuple[str, ...]) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) in (None, "")]
    if missing:
        raise ConfigError(f"--format {args.format} needs {', '.join(missing)}")


def check_arguments(args) -> list[Path]:
    """Everything checkable before reading the inputs: options per format (an option the format
    does not read is refused, not ignored), input and output paths (``--out`` is none of the
    files the import reads: the inputs, the files a manifest names, the bundle's manifest, a
    --space file)."""
    if args.export and args.format != "ofa-lut":
        raise ConfigError("--export is for --format ofa-lut (a block profile written as a lookup table)")
    fmt = "ofa-lut --export" if args.export else args.format
    for option, formats in OPTION_FORMATS.items():
        if getattr(args, option) not in (None, False) and fmt not in formats:
            flag = "--" + option.replace("_", "-")
            reads = {"vitis-ai": "its manifest", "tflite-benchmark": "its manifest", "benchncnn": "the bundle",
                     "ofa-lut --export": "the block profile"}.get(fmt, "")
            raise ConfigError(f"{flag} is for --format {' / '.join(formats)}; --format {fmt} does not read it"
                              + (f" (it takes that from {reads})" if reads else "") + ": leave it out")
    for option in ("device", "backend", "backend_version", "latency_column", "std_column", "runs_column",
                   "arch_column", "block_column", "space"):
        value = getattr(args, option)
        if value is not None and not value.strip():
            raise ConfigError(f"--{option.replace('_', '-')} is empty: give a value or leave the option out")
    single = args.format in ("table", "vitis-ai", "tflite-benchmark", "benchncnn") or args.export
    if single and len(args.inputs) != 1:
        raise ConfigError(f"--format {args.format}{' --export' if args.export else ''} takes one input file, got "
                          f"{len(args.inputs)}")
    if args.format == "table":
        from hardware_profiles.imports.table import check_row_naming
        from ofa_pipeline.table_fitting import feature_column_list

        args.feature_columns = feature_column_list(args.feature_columns) or None
        _require(args, ("device", "latency_column"))
        check_row_naming(args.space, args.arch_column, args.block_column, args.feature_columns)
    elif args.format == "ofa-lut" and not args.export:
        _require(args, ("space", "device"))
    elif args.format == "benchncnn":
        _require(args, ("bundle", "device"))
        check_input_dir(args.bundle, "--bundle")
    folder = args.format == "vitis-ai" and Path(args.inputs[0]).is_dir()  # summaries named after their blocks
    if folder:
        _require(args, ("space", "device"))
    elif args.format == "vitis-ai":
        given = [f"--{n.replace('_', '-')}" for n in ("space", "device", "precision", "backend_version")
                 if getattr(args, n) is not None]
        if given:
            raise ConfigError(f"{', '.join(given)}: a Vitis AI manifest gives these itself; they are for a folder "
                              f"of summaries named after their blocks")
    inputs = [check_input_dir(args.inputs[0], "input")] if folder else \
        [check_input_file(path, "input") for path in args.inputs]
    check_output_path(args.out, read_paths(args, inputs), kind=("text", "json") if args.export else ("profile",),
                      overwrite=args.overwrite, name="--out")
    return inputs


def read_paths(args, inputs: list[Path]) -> list[tuple[str, Path]]:
    """Every file the import will read, labelled: what ``--out`` may never be."""
    from hardware_profiles.imports.common import manifest_files, space_file

    reads = [("an input", path) for path in inputs]
    if args.format == "vitis-ai" and inputs[0].is_dir():
        reads += [("a summary in the input folder", path) for path in sorted(inputs[0].rglob("*.csv"))]
    elif args.format in ("vitis-ai", "tflite-benchmark"):
        reads += [(f"a file the manifest {inputs[0].name} names", path) for path in manifest_files(inputs[0])]
    if args.format == "benchncnn":
        reads.append(("the bundle's manifest", Path(args.bundle) / "manifest.json"))
    if args.space and space_file(args.space):
        reads.append(("the --space file", space_file(args.space)))
    return reads


def run(args):
    from hardware_profiles.imports import check_format

    check_format(args.format)
    inputs = check_arguments(args)
    common = dict(backend_version=args.backend_version or "unknown", precision=args.precision or "fp32",
                  threads=args.threads or 1, batch_size=args.batch_size or 1)
    duplicates = dict(merge_duplicates=args.merge_duplicates,
                      on_implausible="refuse" if args.refuse_implausible else "warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ImplausibleLatencyWarning)
        profile = _import(args, inputs, common, duplicates)
    for warning in caught:
        if issubclass(warning.category, ImplausibleLatencyWarning):
            print(f"WARNING: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    if isinstance(profile, Path):
        return profile
    for item in profile.header.get("skipped") or []:
        print(f"skipped {item['named']}: block {item['key']} is not in the space (--skip-outside-space)")
    for item in profile.header.get("merged") or []:
        print(f"merged {len(item['sources'])} measurements of {item['key']} ({', '.join(item['sources'])})")
    print(f"wrote {len(profile)} {profile.level} record(s) for device {profile.device!r} to {args.out}")
    return profile


def _import(args, inputs, common, duplicates):
    if args.format == "table":
        from hardware_profiles.imports.table import import_table

        return import_table(inputs[0], args.out, args.space, args.device, overwrite=args.overwrite,
                            latency=args.latency_column, std=args.std_column, runs=args.runs_column,
                            arch_column=args.arch_column, block_column=args.block_column,
                            feature_columns=args.feature_columns, unit=args.unit or "ms",
                            backend=args.backend or "table", delimiter=args.delimiter, **common, **duplicates)
    if args.format == "vitis-ai":
        from hardware_profiles.imports.vitis_ai import import_vitis_ai

        folder = {"space": args.space, "device": args.device, "precision": args.precision or "int8",
                  "backend_version": args.backend_version or "unknown"} if inputs[0].is_dir() else {}
        return import_vitis_ai(inputs[0], args.out, overwrite=args.overwrite,
                               skip_outside_space=args.skip_outside_space, **folder, **duplicates)
    if args.format == "tflite-benchmark":
        from hardware_profiles.imports.tflite import import_tflite_benchmark

        return import_tflite_benchmark(inputs[0], args.out, overwrite=args.overwrite, **duplicates)
    if args.format == "ofa-lut" and args.export:
        from hardware_profiles.imports.ofa_lut import export_ofa_lut, ofa_lut_entries

        statistic = args.statistic or "mean"
        path = export_ofa_lut(inputs[0], args.out, statistic=statistic, overwrite=args.overwrite)
        print(f"wrote {len(ofa_lut_entries(inputs[0], statistic))} lookup-table entries to {path}")
        return path
    if args.format == "ofa-lut":
        from hardware_profiles.imports.ofa_lut import import_ofa_lut

        return import_ofa_lut(inputs, args.out, args.space, args.device, overwrite=args.overwrite,
                              backend=args.backend or "ofa-lut", **common, **duplicates)
    from hardware_profiles.device_import import import_phone_results

    out = Path(args.out)
    if out.exists() and args.overwrite:  # a fresh profile, moved over the old one only once it is complete
        staging = out.with_name(f".{out.name}.importing")
        staging.unlink(missing_ok=True)
        try:
            import_phone_results(inputs[0], args.bundle, staging, device=args.device, **duplicates)
            os.replace(staging, out)
        finally:
            staging.unlink(missing_ok=True)
        from hardware_profiles import read_profile

        return read_profile(out)
    # creates the profile, or extends one of the same device (as profile_device.py --import does)
    return import_phone_results(inputs[0], args.bundle, out, device=args.device, **duplicates)


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_command(run, args)


if __name__ == "__main__":
    sys.exit(main())
