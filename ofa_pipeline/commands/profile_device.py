"""Measure subnet latencies of a search space on one backend, into a profile file.

Profile (resumable: rerun the same command after a kill to continue):

    ofa-profile-device --space mbv3-small --backend cpu-ort --num-archs 300 \\
        --out profiles/my-cpu.jsonl

Block profile (every distinct block of the space, for block-sum predictors; resumable too):

    ofa-profile-device --space mbv3-small --backend cpu-ort --blocks --out profiles/my-cpu.blocks.jsonl
    ofa-profile-device --space transformer-small --backend fpga-analytical --blocks \
        --workload decode --cache-lengths 0 9 19 --out profiles/fpga.decode.blocks.jsonl

Phone measurements with ncnn's benchncnn (see tools/phone_benchmark.sh):

    ofa-profile-device --space mbv3-small --export-ncnn bundle/ --num-archs 300
    tools/phone_benchmark.sh bundle/ results.txt            # on a host with adb and a phone
    ofa-profile-device --import results.txt --bundle bundle/ --device pixel-7 \\
        --out profiles/pixel-7-ncnn.jsonl
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


from ofa.errors import ConfigError, OFAError
from ofa.validation import (ArgumentParser, check_input_dir, check_input_file, check_output_path, non_negative_int,
                            positive_int)


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="mbv3-small", help="search space preset, a space JSON/YAML file, or a trained checkpoint (.pt)")
    p.add_argument("--backend", default="cpu-ort",
                   help="cpu-ort, gpu-tensorrt, gpu-cuda, mobile-ncnn, fpga-scalesim, fpga-analytical, fpga-dpu")
    p.add_argument("--num-archs", type=positive_int, default=300, help="architectures to measure (stratified over MACs)")
    p.add_argument("--out", type=Path, help="profile file (JSONL) to create or resume")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the architecture sample and pass shuffling")
    p.add_argument("--device", help="device id written into the header (default: derived from the backend)")
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--chunk-size", type=positive_int, default=4, help="architectures measured together per shuffled pass")
    p.add_argument("--strata", type=positive_int, default=10, help="MAC strata of the architecture sample")
    p.add_argument("--threads", type=positive_int, help="runtime threads (cpu-ort, mobile-ncnn); default 1")
    p.add_argument("--precision", help="fp32 or fp16 (gpu-tensorrt, gpu-cuda, mobile-ncnn)")
    p.add_argument("--accelerator", help="fpga-*: accelerator config name (see hardware_profiles/configs; fpga-dpu: dpu-*) or JSON path")
    p.add_argument("--cache-dir", type=Path, help="fpga-scalesim: simulation cache (default ~/.cache/ofa-hw/scalesim)")
    p.add_argument("--warmup", type=non_negative_int, help="protocol: warm-up runs")
    p.add_argument("--runs", type=positive_int, help="protocol: timed runs per pass (>= 50 recommended)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    # block profiles
    p.add_argument("--blocks", action="store_true",
                   help="measure the space's distinct blocks into a block profile (docs/profiles.md)")
    p.add_argument("--resolutions", type=int, nargs="+", help="--blocks, CNN spaces: input resolutions (default all)")
    p.add_argument("--workload", choices=("forward", "decode"),
                   help="--blocks, Transformer spaces: blocks of one teacher-forced pass or of cached decoding")
    p.add_argument("--cache-lengths", type=int, nargs="+",
                   help="--blocks --workload decode: cache lengths of the decoding steps (default all)")
    p.add_argument("--beam-size", type=int, help="--blocks --workload decode: hypotheses decoded together")
    # on-device (phone) measurements
    p.add_argument("--export-ncnn", type=Path, metavar="DIR",
                   help="write ncnn models of the sampled architectures and a manifest for tools/phone_benchmark.sh")
    p.add_argument("--import", dest="import_path", type=Path, metavar="RESULTS",
                   help="read the output of tools/phone_benchmark.sh into a profile (needs --bundle, --device, --out)")
    p.add_argument("--bundle", type=Path, help="the --export-ncnn directory the phone results belong to")
    p.add_argument("--merge-duplicates", action="store_true",
                   help="--import: pool a run listed twice (same model and repeat) as samples; refused without")
    return p.parse_args(argv)


def backend_settings(args) -> "BackendSettings":
    from ofa_pipeline.profile import BackendSettings

    return BackendSettings(threads=args.threads, precision=args.precision, accelerator=args.accelerator,
                           cache_dir=args.cache_dir, warmup=args.warmup, runs=args.runs)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.import_path is not None:
            from hardware_profiles.device_import import import_phone_results

            if args.bundle is None or args.out is None or args.device is None:
                raise ConfigError("--import needs --bundle DIR, --device ID and --out FILE")
            check_input_file(args.import_path, "--import")
            check_input_dir(args.bundle, "--bundle")
            check_output_path(args.out, [("the --import results", args.import_path),
                                         ("the bundle's manifest", args.bundle / "manifest.json")],
                              kind=("profile",), name="--out")
            profile = import_phone_results(args.import_path, args.bundle, args.out, device=args.device,
                                           merge_duplicates=args.merge_duplicates)
            print(f"{args.out}: {len(profile)} records imported for device {profile.device}")
            return 0
        if args.export_ncnn is not None:
            from hardware_profiles.device_import import export_ncnn_bundle

            check_output_path(args.export_ncnn, [("the --space", args.space)], kind="dir", name="--export-ncnn")

            manifest = export_ncnn_bundle(args.space, args.export_ncnn, args.num_archs, seed=args.seed,
                                          strata=args.strata)
            print(f"{manifest}: ncnn models written; next: tools/phone_benchmark.sh {args.export_ncnn} results.txt")
            return 0
        if args.out is None:
            raise ConfigError("--out FILE is required (the profile to create or resume)")
        check_output_path(args.out, [("the --space", args.space)], kind=("profile",), name="--out")
        from ofa_pipeline.profile import drift_lines, profile_device, profile_device_blocks

        settings = backend_settings(args)
        ignored = settings.ignored_by(args.backend)
        if ignored:
            print(f"note: backend {args.backend} ignores {ignored}", file=sys.stderr)
        if args.blocks:
            profile = profile_device_blocks(args.space, args.backend, args.out, settings=settings, device=args.device,
                                            batch_size=args.batch_size, seed=args.seed, resolutions=args.resolutions,
                                            workload=args.workload, cache_lengths=args.cache_lengths,
                                            beam_size=args.beam_size, progress=not args.no_progress)
            print(f"{args.out}: {len(profile)} blocks, device {profile.device}, backend {args.backend}")
        else:
            profile = profile_device(args.space, args.backend, args.out, args.num_archs, settings=settings,
                                     seed=args.seed, device=args.device, batch_size=args.batch_size,
                                     chunk_size=args.chunk_size, strata=args.strata, progress=not args.no_progress)
            print(f"{args.out}: {len(profile)} records, device {profile.device}, backend {args.backend}")
        for line in drift_lines(profile):
            print(line)
        return 0
    except OFAError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
