"""Writes the constructed sample files of tests/data/imports (see README.md there).

    python tests/data/imports/make_samples.py

The table sample holds real (simulated) latencies of the deterministic
fpga-analytical backend; the Vitis AI and TFLite samples follow the layout of
those tools' outputs with illustrative numbers (no device was run to make them).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def table_samples(space, backend) -> None:
    archs = space.sample(11, n=6)
    with open(HERE / "table" / "mbv3-small_fpga-analytical.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["arch", "latency_ms", "std_ms"])
        for arch in archs:
            latency = backend.measure_arch(space, arch)["latency_ms"]["median"]
            writer.writerow([json.dumps(arch.to_dict(), separators=(",", ":")), f"{latency:.6f}", "0"])
    blocks = space.blocks(archs[0])
    with open(HERE / "table" / "mbv3-small_blocks_fpga-analytical.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["block", "latency_ms"])
        for _, block in blocks[:5]:
            latency = backend.measure_layers(block.layers())["latency_ms"]["median"]
            writer.writerow([block.key, f"{latency:.6f}"])


VITIS_HEADER = """Profile Summary
Generated on: 2024-05-02 14:31:07
XRT build version: 2.13.0
Build version branch: sample
Build version hash: sample
Build version date: sample
Target devices: zcu102

DPU Summary
Kernel Name,Number Of Runs,CU Full Name,Minimum Time (ms),Average Time (ms),Maximum Time (ms),Workload(GOP),DPU Performance(GOP/s),Mem IO(MB),Mem Bandwidth(MB/s),
"""


def vitis_samples(space) -> None:
    arch = space.sample(11)
    blocks = [b for _, b in space.blocks(arch)]
    rows = {  # file -> DPU subgraph rows (name, runs, cu, min, avg, max, GOP, GOP/s, MB, MB/s) and CPU rows
        "stem.csv": [("subgraph_stem", 1000, "DPUCZDX8G_1:batch-1", 0.041, 0.044, 0.069, 0.001, 22.6, 0.016, 363.6)],
        "block_a_run1.csv": [("subgraph_block", 600, "DPUCZDX8G_1:batch-1", 0.088, 0.092, 0.131, 0.002, 21.7, 0.031,
                              337.0),
                             ("subgraph_block", 400, "DPUCZDX8G_2:batch-1", 0.090, 0.095, 0.140, 0.002, 21.0, 0.031,
                              326.3)],
        "block_a_run2.csv": [("subgraph_block", 1000, "DPUCZDX8G_1:batch-1", 0.089, 0.094, 0.128, 0.002, 21.3, 0.031,
                              329.8)],
        "head.csv": [("subgraph_head_conv", 1000, "DPUCZDX8G_1:batch-1", 0.052, 0.055, 0.080, 0.001, 18.1, 0.061,
                      1109.1),
                     ("subgraph_head_fc", 1000, "DPUCZDX8G_1:batch-1", 0.021, 0.023, 0.037, 0.000, 2.2, 0.026,
                      1130.4)],
    }
    cpu = [("vart::Runner::execute_async", 1000, "CPU", 0.312, 0.338, 0.701)]
    for name, dpu in rows.items():
        lines = [",".join(str(v) for v in row) + "," for row in dpu + cpu]
        (HERE / "vitis-ai" / name).write_text(VITIS_HEADER + "\n".join(lines) + "\n\n")
    manifest = (
        "# Blocks of the mbv3-small space, each compiled to its own xmodel and profiled with vaitrace.\n"
        "device: zcu102-dpu-b4096\n"
        "space: mbv3-small\n"
        "precision: int8\n"
        "backend_version: Vitis AI 2.5\n"
        "entries:\n"
        f"  - file: stem.csv\n    block_key: \"{blocks[0].key}\"\n"
        f"  - file: block_a_run1.csv\n    block: {json.dumps(blocks[3].to_dict())}\n"
        f"  - file: block_a_run2.csv  # the same block again: pooled with --merge-duplicates\n"
        f"    block_key: \"{blocks[3].key}\"\n"
        f"  - file: head.csv\n    block_key: \"{blocks[-1].key}\"\n")
    (HERE / "vitis-ai" / "manifest.yaml").write_text(manifest)


def ofa_latency_name(block) -> str:
    """A block's name in the convention of public OFA latency datasets (NAME_PATTERNS['ofa-latency'])."""
    act = "relu" if block.activation == "relu" else "hswish"
    return (f"in_{block.in_channels}x{block.resolution}x{block.resolution}-out_{block.out_channels}-k{block.kernel}"
            f"-e{block.expand_ratio:g}-s{block.stride}-{act}-se{int(block.se_channels > 0)}")


def vitis_named_samples(space) -> None:
    """A folder of per-block vaitrace summaries named after their blocks (no manifest): two
    MBConv blocks in the OFA latency datasets' convention (one folder each, holding
    profile_summary.csv as vaitrace names it), a head named by its block key and measured as
    three DPU subgraphs sharing one kernel name (summed, not averaged), and one block outside
    the space (kernel 9)."""
    import dataclasses

    folder = HERE / "vitis-ai-named"
    arch = space.sample(11)
    blocks = [b for _, b in space.blocks(arch)]
    mbconv = [b for b in blocks if b.kind == "mbconv"]
    se_block = next(b for b in space.distinct_blocks() if b.kind == "mbconv" and b.se_channels and b.stride == 2)
    outside = dataclasses.replace(mbconv[2], kernel=9)
    files = {
        f"blk03_{ofa_latency_name(mbconv[2])}/profile_summary.csv":
            [("subgraph_blk03", 1000, "DPUCZDX8G_1:batch-1", 0.088, 0.092, 0.131, 0.002, 21.7, 0.031, 337.0)],
        f"blk09_{ofa_latency_name(se_block)}/profile_summary.csv":
            [("subgraph_blk09", 1000, "DPUCZDX8G_1:batch-1", 0.101, 0.108, 0.152, 0.003, 27.8, 0.058, 537.0),
             ("subgraph_blk09_se", 1000, "DPUCZDX8G_1:batch-1", 0.019, 0.021, 0.033, 0.000, 1.1, 0.012, 571.4)],
        f"{blocks[-1].key}.csv":
            [("subgraph_head", 1000, "DPUCZDX8G_1:batch-1", 0.91, 0.952, 1.31, 0.001, 1.1, 0.061, 64.1),
             ("subgraph_head", 1000, "DPUCZDX8G_1:batch-1", 0.83, 0.867, 1.12, 0.000, 0.4, 0.026, 30.0),
             ("subgraph_head", 1000, "DPUCZDX8G_1:batch-1", 0.61, 0.640, 0.93, 0.000, 0.4, 0.031, 48.4)],
        f"blk12_{ofa_latency_name(outside)}/profile_summary.csv":
            [("subgraph_blk12", 1000, "DPUCZDX8G_1:batch-1", 0.131, 0.140, 0.191, 0.004, 28.6, 0.031, 221.4)],
    }
    cpu = [("vart::Runner::execute_async", 1000, "CPU", 0.312, 0.338, 0.701)]
    for name, dpu in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [",".join(str(v) for v in row) + "," for row in dpu + cpu]
        path.write_text(VITIS_HEADER + "\n".join(lines) + "\n\n")


TFLITE_TYPES = {"Conv": "CONV_2D", "HardSwish": "HARD_SWISH", "Add": "ADD", "Mul": "MUL", "ReduceMean": "MEAN",
                "HardSigmoid": "HARD_SIGMOID", "Flatten": "RESHAPE", "Gemm": "FULLY_CONNECTED"}


def tflite_samples(space) -> None:
    import onnx

    from ofa.export import export_model
    from ofa.supernets import create_supernet

    arch = space.sample(3)
    path = HERE / "tflite" / "net_a.onnx"
    export_model(create_supernet(space).eval().extract(arch).eval(), path)
    nodes = [n for n in onnx.load(str(path)).graph.node if n.op_type not in ("Identity", "Relu")]
    path.unlink()
    rng = np.random.default_rng(0)
    ops = []
    for index, node in enumerate(nodes):
        kind = TFLITE_TYPES.get(node.op_type, node.op_type.upper())
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if kind == "CONV_2D" and group > 1:
            kind = "DEPTHWISE_CONV_2D"
        ops.append((kind, round(float(rng.uniform(0.004, 0.06)), 3), f"[{node.name}]:{index}"))
    total = sum(ms for _, ms, _ in ops)
    header = "\t             [node type]\t  [first]\t [avg ms]\t     [%]\t  [cdf%]\t  [mem KB]\t[times called]\t[Name]"
    rows, cdf = [], 0.0
    for kind, ms, name in ops:
        share = 100 * ms / total
        cdf += share
        rows.append(f"\t{kind:>24}\t{ms * 1.1:9.3f}\t{ms:9.3f}\t{share:7.3f}%\t{cdf:7.3f}%\t{0:10.3f}\t{1:9d}\t{name}")
    average_us = total * 1000 * 1.04
    text = [
        "INFO: STARTING!", "INFO: Log parameter values verbosely: [0]", "INFO: Num threads: [1]",
        "INFO: Graph: [/data/local/tmp/net_a.tflite]", "INFO: Enable op profiling: [1]",
        "INFO: #threads used for CPU inference: [1]", "INFO: Loaded model /data/local/tmp/net_a.tflite",
        "INFO: Initialized TensorFlow Lite runtime.", "INFO: The input model file size (MB): 0.452",
        "INFO: Initialized session in 4.87ms.",
        "INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding "
        "150 seconds.",
        f"INFO: count=230 first={int(average_us * 1.6)} curr={int(average_us)} min={int(average_us * 0.96)} "
        f"max={int(average_us * 1.6)} avg={average_us * 1.03:.1f} std={int(average_us * 0.05)}", "",
        "INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding "
        "150 seconds.",
        f"INFO: count=470 first={int(average_us)} curr={int(average_us)} min={int(average_us * 0.97)} "
        f"max={int(average_us * 1.21)} avg={average_us:.1f} std={int(average_us * 0.03)}", "",
        f"INFO: Inference timings in us: Init: 4870, First inference: {int(average_us * 1.6)}, Warmup (avg): "
        f"{average_us * 1.03:.1f}, Inference (avg): {average_us:.1f}",
        "INFO: Profiling Info for Benchmark Initialization:",
        "============================== Run Order ==============================", header,
        "\t         AllocateTensors\t    0.212\t    0.212\t100.000%\t100.000%\t     0.000\t        1\tAllocateTensors/0",
        "", "Operator-wise Profiling Info for Regular Benchmark Runs:",
        "============================== Run Order ==============================", header, *rows, "",
        f"Timings (microseconds): count=470 first={int(total * 1100)} curr={int(total * 1000)} "
        f"min={int(total * 970)} max={int(total * 1210)} avg={total * 1000:.1f} std={int(total * 30)}",
        "Memory (bytes): count=0", f"{len(ops)} nodes observed", ""]
    (HERE / "tflite" / "net_a.txt").write_text("\n".join(text) + "\n")
    (HERE / "tflite" / "manifest.yaml").write_text(
        "# One mbv3-small network, converted to TFLite and run with benchmark_model --enable_op_profiling=true.\n"
        "device: pixel7-tflite-1t\nspace: mbv3-small\nlevel: network\nbackend_version: \"2.16\"\n"
        f"entries:\n  - file: net_a.txt\n    arch: {json.dumps(arch.to_dict())}\n")


if __name__ == "__main__":
    from hardware_profiles import get_backend
    from ofa.spaces import get_space

    space = get_space("mbv3-small")
    table_samples(space, get_backend("fpga-analytical"))
    vitis_samples(space)
    vitis_named_samples(space)
    tflite_samples(space)
