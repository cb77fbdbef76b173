#!/usr/bin/env python
"""What onnxruntime makes of a fake-quantised subnet's QDQ graph, with the weights as the exporter
writes them (a float constant behind QuantizeLinear/DequantizeLinear) and stored quantised
(``ofa.export.fold_weight_quantization``: int8 initialisers behind DequantizeLinear), and with each
BatchNorm folded into its quantised conv before export (``bn-folded``: what onnxruntime needs to fuse
DequantizeLinear -> Conv -> QuantizeLinear into integer convolutions; not what the package exports),
beside the floating-point subnet.

    python benchmarks/qdq_weights.py [--rounds 15] [--runs 50] [--out benchmarks/results/qdq_weights.json]

The largest ``mbv3-small`` subnet at its largest resolution, weights and activations at 8/8 and 4/4
bits (step sizes and BatchNorm statistics from one training-mode batch; or, with ``--supernet``, the
largest subnet of a trained supernet, whose example input is still random); one onnxruntime session per
graph, one thread, batch 1. The graphs are timed in interleaved rounds (each round runs every graph
``--runs`` times, in a shuffled order), so a change of the host's speed hits all of them alike; the
figure is the median over rounds of the thread CPU time per inference, and the ratios are taken
within each round before the median.
"""

from __future__ import annotations

import argparse
import copy
import io
import random
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from _timing import environment, save

from ofa.export import export_onnx, fold_weight_quantization, onnx_parity, onnxruntime_session
from ofa.models.quantization import QuantizedConv2d
from ofa.spaces import get_space
from ofa.spaces.precision import FLOAT_BITS
from ofa.supernets import create_supernet
from ofa.training import load_supernet


def raw_export(model, path: Path, example) -> Path:
    """The TorchScript exporter's graph, without the folding ``ofa.export.export_onnx`` applies."""
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buffer, input_names=["input"], output_names=["logits"],
                          opset_version=17, do_constant_folding=True, dynamo=False)
    path.write_bytes(buffer.getvalue())
    return path


def fold_batchnorm(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` with every BatchNorm that follows a quantised conv folded into it. Exact in real
    arithmetic for symmetric per-channel weights (scaling channel c by g_c scales its quantisation scale
    by |g_c| and keeps its integer levels, up to their sign); in floating point the conv outputs round
    differently, and a value that crosses the next quantiser's rounding threshold moves by a whole step,
    so the folded graph is not the same network (its parity is reported)."""
    model = copy.deepcopy(model).eval()
    for sequence in model.modules():
        if not isinstance(sequence, torch.nn.Sequential):
            continue
        for i in range(len(sequence) - 1):
            conv, norm = sequence[i], sequence[i + 1]
            if isinstance(conv, QuantizedConv2d) and isinstance(norm, torch.nn.BatchNorm2d):
                gain = norm.weight / torch.sqrt(norm.running_var + norm.eps)
                with torch.no_grad():
                    conv.weight.mul_(gain.reshape(-1, 1, 1, 1))
                    conv.bias = torch.nn.Parameter(norm.bias - norm.running_mean * gain)
                sequence[i + 1] = torch.nn.Identity()
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=50, help="inferences per graph per round")
    parser.add_argument("--work", default="/tmp/qdq-weights")
    parser.add_argument("--supernet", default=None,
                        help="a trained supernet with 4- and 8-bit choices (ofa-quickstart --precision's): its largest "
                             "subnet instead of an untrained one")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "qdq_weights.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    if args.supernet:
        supernet = load_supernet(args.supernet)
        space = supernet.space
    else:
        space = get_space("mbv3-small", weight_bits=(4, 8), activation_bits=(4, 8, FLOAT_BITS))
        supernet = create_supernet(space)
    largest = space.largest()
    example = torch.randn(1, 3, largest.resolution, largest.resolution)
    graphs, sizes, parity = {}, {}, {}
    # the same architecture without quantisers: the floating-point baseline
    plain = space.replace(weight_bits=(), activation_bits=())
    float_supernet = create_supernet(plain)
    float_supernet.train().set_active(plain.largest())
    with torch.no_grad():
        float_supernet(torch.randn(32, 3, largest.resolution, largest.resolution))
    graphs["float"] = raw_export(float_supernet.extract(plain.largest()).eval(), work / "float.onnx", example)
    for weight_bits, activation_bits in [(8, 8), (4, 4)]:
        arch = space.uniform_precision(largest, weight_bits, activation_bits)
        if not args.supernet:  # step sizes and BatchNorm statistics from one training-mode batch
            supernet.train().set_active(arch)
            with torch.no_grad():
                supernet(3 * torch.randn(32, 3, arch.resolution, arch.resolution))
        static = supernet.extract(arch).eval()
        name = f"qdq-{weight_bits}-{activation_bits}"
        raw = raw_export(static, work / f"{name}.onnx", example)
        graphs[name] = raw
        folded = work / f"{name}-int8-weights.onnx"
        folded.write_bytes(fold_weight_quantization(raw.read_bytes()))
        graphs[f"{name}-int8-weights"] = folded
        bn_folded = export_onnx(fold_batchnorm(static), work / f"{name}-bn-folded.onnx", example)
        graphs[f"{name}-bn-folded"] = bn_folded
        parity[name] = {"as_exported": onnx_parity(static, raw, (example,)),
                        "int8_weights": onnx_parity(static, folded, (example,)),
                        "bn_folded": onnx_parity(static, bn_folded, (example,))}
    for name, path in graphs.items():
        sizes[name] = path.stat().st_size
    sessions = {name: onnxruntime_session(path, threads=1) for name, path in graphs.items()}
    feed = {"input": example.numpy()}
    for session in sessions.values():  # warm-up
        for _ in range(10):
            session.run(None, feed)
    per_round = {name: [] for name in sessions}
    order = list(sessions)
    for round_index in range(args.rounds):
        random.Random(round_index).shuffle(order)
        for name in order:
            start = time.thread_time()
            for _ in range(args.runs):
                sessions[name].run(None, feed)
            per_round[name].append(1000 * (time.thread_time() - start) / args.runs)
    median = {name: float(np.median(values)) for name, values in per_round.items()}
    ratios = {}
    for name in per_round:
        if name != "float":
            ratios[f"{name} / float"] = float(np.median(np.array(per_round[name]) / np.array(per_round["float"])))
    for name in parity:
        for variant in ("int8-weights", "bn-folded"):
            ratios[f"{name}-{variant} / {name}"] = float(np.median(
                np.array(per_round[f"{name}-{variant}"]) / np.array(per_round[name])))
    result = {"environment": environment(), "supernet": args.supernet, "arch": largest.to_dict(),
              "rounds": args.rounds, "runs": args.runs, "median_thread_cpu_ms": median, "ratios": ratios, "file_bytes": sizes,
              "parity_max_abs_diff_vs_pytorch": parity}
    for name, value in median.items():
        print(f"{name:24s} {value:.3f} ms  {sizes[name] / 1024:.0f} KiB")
    for name, value in ratios.items():
        print(f"{name}: x{value:.2f}")
    save(result, args.out)


if __name__ == "__main__":
    main()
