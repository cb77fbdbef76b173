"""Export one subnet of a trained supernet: ONNX (+ ncnn, TensorRT, INT8).

    ofa-export-onnx --supernet runs/mbv3-small-digits/final.pt --arch arch.json --out deploy/model.onnx
        [--ncnn] [--tensorrt [--fp16]] [--int8] [--data digits|DIR] [--opset 17]

``--arch`` is an architecture JSON file (``arch.json`` written by
``ofa-specialize``, or any file holding the architecture dict, or a dict
with an ``"arch"`` key). The subnet's BatchNorm statistics are re-calibrated
on training images (``--calib-images``; ``--no-recalibrate-bn`` skips it), the
ONNX file has a dynamic batch axis (opset 17 by default) and is checked
against PyTorch with onnxruntime (max abs difference <= 1e-4, reported).
Everything lands next to ``--out``: ``model.onnx``, ``model.pt`` (weights),
``model.export.json`` (the report) and, as asked, ``model.ncnn.param``/``.bin``,
``model.engine``, ``model.int8.onnx``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ofa.errors import ConfigError, OFAError
from ofa.validation import ArgumentParser, check_input_file, check_output_path, positive_int
from ofa.io import atomic_write_json


def read_arch(path: str) -> dict:
    try:
        value = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"architecture file {path} does not exist") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not JSON ({error.msg}, line {error.lineno})") from None
    if isinstance(value, dict) and isinstance(value.get("arch"), dict):
        value = value["arch"]
    if not isinstance(value, dict):
        raise ConfigError(f"{path} must hold an architecture (a JSON object)")
    return value


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supernet", required=True, help="supernet checkpoint (final.pt of train_supernet.py)")
    parser.add_argument("--arch", required=True, help="architecture JSON file")
    parser.add_argument("--out", required=True, help="ONNX file to write (other files go next to it)")
    # the default is ofa.export.DEFAULT_OPSET, read in main: importing ofa.export here would load torch for --help
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: ofa.export.DEFAULT_OPSET)")
    parser.add_argument("--data", default=None, help="data set for BN re-calibration and INT8 calibration "
                        "(default: the one the supernet was trained on)")
    parser.add_argument("--calib-images", type=positive_int, default=2000, help="BN re-calibration images")
    parser.add_argument("--no-recalibrate-bn", action="store_true", help="keep the supernet's BN statistics")
    parser.add_argument("--ncnn", action="store_true", help="also convert to ncnn with pnnx")
    parser.add_argument("--tensorrt", action="store_true", help="also build a TensorRT engine (NVIDIA GPU)")
    parser.add_argument("--fp16", action="store_true", help="TensorRT engine in FP16")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files of another kind")
    parser.add_argument("--int8", action="store_true", help="also quantise to INT8 with onnxruntime and "
                        "compare accuracy, latency and loyalty with FP32")
    parser.add_argument("--int8-calib-images", type=positive_int, default=512, help="INT8 calibration images")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        from ofa_pipeline.deploy import checkpoint_data, deploy_subnet
        from ofa.export import DEFAULT_OPSET, check_opset
        from ofa.training import load_supernet

        if args.opset is None:
            args.opset = DEFAULT_OPSET

        out = Path(args.out)
        if out.suffix != ".onnx":
            raise ConfigError(f"--out must name an .onnx file, got {args.out}")
        check_opset(args.opset)
        check_input_file(args.supernet, "--supernet", kinds=("checkpoint",))
        check_input_file(args.arch, "--arch")
        inputs = [("the --supernet checkpoint", args.supernet), ("the --arch file", args.arch)]
        if args.data and Path(args.data).exists():
            inputs.append(("the --data", args.data))
        check_output_path(out, inputs, kind=("binary", "text", "json"), overwrite=args.overwrite, name="--out")
        for suffix in (".pt", ".export.json", ".int8.onnx", ".ncnn.param", ".ncnn.bin", ".engine"):
            check_output_path(out.parent / f"{out.stem}{suffix}", inputs, kind="file", name=f"--out ({suffix} next to it)")
        supernet = load_supernet(args.supernet)
        arch = supernet.space.parse(read_arch(args.arch))
        needs_data = args.int8 or not args.no_recalibrate_bn
        data = checkpoint_data(args.supernet, args.data) if needs_data else None
        _, report = deploy_subnet(supernet, arch, out.parent, out.stem, data=data, calib_images=args.calib_images,
                                  opset=args.opset, ncnn=args.ncnn, tensorrt=args.tensorrt, fp16=args.fp16,
                                  int8=args.int8, int8_calib_images=args.int8_calib_images)
        atomic_write_json(out.parent / f"{out.stem}.export.json", report)
    except OFAError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 2
    print(f"ONNX: {report['onnx']} (opset {report['opset']}, dynamic batch); onnxruntime parity "
          f"max |diff| = {report['parity_max_abs_diff']:.2e} on outputs up to {report['output_max_abs']:.3g} "
          f"(allowed: {report['tolerance']:g} x max(1, output))")
    if "ncnn_param" in report:
        print(f"ncnn: {report['ncnn_param']} / .bin; parity max |diff| = {report['ncnn_parity_max_abs_diff']:.2e}")
    if "tensorrt_engine" in report:
        print(f"TensorRT engine: {report['tensorrt_engine']}")
    if "precision" in report:
        for name, entry in report["precision"].items():
            extra = (f", label loyalty {entry['label_loyalty']:.4f}, probability loyalty "
                     f"{entry['probability_loyalty']:.4f}") if "label_loyalty" in entry else ""
            print(f"{name}: top-1 {entry['top1']:.2f}% (val), latency {entry['latency_ms']:.3f} ms "
                  f"(onnxruntime, 1 thread), {entry['size_bytes'] / 1024:.0f} KiB{extra}")
    print(f"report: {out.parent / (out.stem + '.export.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
