"""Imports of latency measurements taken with other tools, into profiles (``docs/imports.md``).

One module per format; each turns its files into a network profile (records
are architectures) or a block profile (records are blocks), validated and
written whole (atomically: a bad file or a kill leaves no partial profile):

========================  =====================================================================
``table``                 CSV/TSV, one row per architecture or block (:mod:`.table`)
``vitis-ai``              Vitis AI profiler ``profile_summary.csv`` + manifest (:mod:`.vitis_ai`)
``ofa-lut``               Once-for-All latency lookup tables, in and out (:mod:`.ofa_lut`)
``tflite-benchmark``      TFLite ``benchmark_model`` output + manifest (:mod:`.tflite`)
``benchncnn``             ncnn ``benchncnn`` runs of an exported bundle (:mod:`hardware_profiles.device_import`)
========================  =====================================================================

Every problem with a file is an :class:`ImportFormatError` (a
:class:`~ofa.errors.ProfileError`) naming the file and line; an import checks
its whole input first and reports every problem at once (:class:`Problems`),
refuses repeated measurements unless asked to merge them, warns about (or
refuses) latencies implausible for the networks' MACs
(:class:`ImplausibleLatencyWarning`), and never writes over a file it reads.
"""

from __future__ import annotations

from .common import (PRECISIONS, ImplausibleLatencyWarning, ImportFormatError, Problems, parse_number,
                     read_manifest, write_profile)

FORMATS = {
    "table": "CSV/TSV latency table: one row per architecture (arch JSON or gene columns) or block (block keys)",
    "vitis-ai": "Vitis AI profiler profile_summary.csv files, listed in a manifest with the block or "
                "architecture each measured",
    "ofa-lut": "Once-for-All latency lookup table YAML (<resolution>_lookup_table.yaml), MobileNetV3 blocks",
    "tflite-benchmark": "TFLite benchmark_model outputs (with --enable_op_profiling=true for blocks), listed in a "
                        "manifest with the architecture each measured",
    "benchncnn": "ncnn benchncnn runs of a bundle from profile_device.py --export-ncnn (tools/phone_benchmark.sh)",
}


def check_format(name: str) -> str:
    if name not in FORMATS:
        import difflib

        close = difflib.get_close_matches(str(name), FORMATS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ImportFormatError(f"import format {name!r} unknown{hint}; known formats: {list(FORMATS)}")
    return name


__all__ = ["FORMATS", "PRECISIONS", "ImplausibleLatencyWarning", "ImportFormatError", "Problems", "check_format",
           "parse_number", "read_manifest", "write_profile"]
