"""The FPGA models side by side on the blocks of OFA-MobileNetV3 (w1.2, 224 px).

For every distinct block of ``ofa-mbv3-w1.2`` at 224 px (the first block and
every position x kernel {3, 5, 7} x expand ratio {3, 4, 6}; stem and head too)
the latency under ``fpga-dpu`` (B1152, B2304, B4096), ``fpga-analytical`` and
``fpga-scalesim`` (the shipped 32x32 weight-stationary array), and, to show
what the depthwise fix changed, ``fpga-analytical`` with SCALE-Sim's own
channel-serial depthwise mapping. Reported:

* kernel-size ratios k5/k3 and k7/k3 per position (mean over expand ratios),
  and expand-ratio ratios e6/e4 per position and kernel;
* the DPU's share of time per engine (all blocks summed) and its on-chip and
  DDR traffic per block, with the blocks whose tensors spill; for every shipped
  DPU size (``ddr_traffic``) the predicted DDR traffic of every block (MB as
  vaitrace counts it) next to its predicted latency, and the blocks that spill;
* with ``--compare-traffic imported.jsonl``: the model's DDR traffic next to
  the profiler's measured ``Mem IO(MB)`` of each imported block;
* Spearman rank correlation between the models' block latencies, and with MACs;
* predicted vs published whole-network figures (Vitis AI Model Zoo) with the
  per-operation overhead at 0, 200 (shipped) and 400 cycles;
* how long the DPU model takes for all blocks and for 1000 networks.

SCALE-Sim takes from half a minute to minutes per block at 224 px on this
machine, so it runs on a documented subset: the second block of stages 1
and 2 (stride 1) with every kernel and expand ratio (18 blocks); its
per-layer cache (``~/.cache/ofa-hw/scalesim``) makes reruns fast.

    python benchmarks/fpga_models.py            # writes benchmarks/results/fpga_models.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from collections import defaultdict

import numpy as np
from scipy.stats import spearmanr

from _timing import environment, save
from hardware_profiles import get_backend
from hardware_profiles.dpu import (PROFILER_MB, cache_info, list_dpus, load_dpu, memory_traffic_comparison,
                                  simulate_block, simulate_network)
from hardware_profiles.dpu_reference import NETWORKS, PUBLISHED, published_latency_ms, simulate_reference
from hardware_profiles.systolic import load_accelerator
from ofa.spaces import MBConvBlock, get_space

DPUS = ("dpu-b1152", "dpu-b2304", "dpu-b4096")
SCALESIM_POSITIONS = ("stages.1.1", "stages.2.1")


def positions(space, resolution):
    """``{block key: position}`` for the elastic blocks (position = stages.s.i)."""
    out, size = {}, -(-resolution // space.stem_stride)
    for stage in range(space.num_stages):
        for i in range(space.max_depth):
            for k in space.kernel_sizes:
                for e in space.expand_ratios:
                    # blocks 1.. of a stage are one block (same shape): they keep the first position's name
                    out.setdefault(space.block_spec(stage, i, k, e, size).key, f"stages.{stage}.{i}")
            size = -(-size // (space.stage_strides[stage] if i == 0 else 1))
    return out


def ratios(latency: dict, blocks: list, where: dict) -> dict:
    """Kernel ratios per position (mean over expand ratios) and e6/e4 per position and kernel."""
    table = defaultdict(dict)
    for block in blocks:
        if isinstance(block, MBConvBlock) and block.key in where and block.key in latency:
            table[where[block.key]][(block.kernel, block.expand_ratio)] = latency[block.key]
    out = {}
    for position, cell in sorted(table.items()):
        row = {}
        for k in (5, 7):
            pairs = [cell[(k, e)] / cell[(3, e)] for e in (3.0, 4.0, 6.0) if (k, e) in cell and (3, e) in cell]
            if pairs:
                row[f"k{k}/k3"] = round(float(np.mean(pairs)), 3)
        for k in (3, 5, 7):
            if (k, 6.0) in cell and (k, 4.0) in cell:
                row[f"e6/e4@k{k}"] = round(cell[(k, 6.0)] / cell[(k, 4.0)], 3)
        out[position] = row
    return out


def summary(ratio_table: dict) -> dict:
    keys = sorted({k for row in ratio_table.values() for k in row})
    return {k: {"min": min(r[k] for r in ratio_table.values() if k in r),
                "median": float(np.median([r[k] for r in ratio_table.values() if k in r])),
                "max": max(r[k] for r in ratio_table.values() if k in r)} for k in keys}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolution", type=int, default=224)
    p.add_argument("--no-scalesim", action="store_true", help="skip the SCALE-Sim subset")
    p.add_argument("--compare-traffic", help="an imported Vitis AI block profile (with mem_io_mb): the model's DDR "
                                             "traffic of its blocks next to the profiler's measured traffic")
    p.add_argument("--accelerator", default="dpu-b4096-zcu102", help="with --compare-traffic: the DPU config")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "fpga_models.json"))
    args = p.parse_args()
    measured = None
    if args.compare_traffic:  # read and checked before any simulation
        from hardware_profiles import read_profile

        measured, _ = read_profile(args.compare_traffic), load_dpu(args.accelerator)

    space = get_space("ofa-mbv3-w1.2")
    blocks = space.distinct_blocks(resolutions=[args.resolution])
    where = positions(space, args.resolution)
    macs = {b.key: b.macs for b in blocks}
    result = {"space": "ofa-mbv3-w1.2", "resolution": args.resolution, "blocks": len(blocks),
              "environment": environment()}
    latency: dict[str, dict[str, float]] = {}

    # --- the DPU model ---------------------------------------------------------------------------------------
    dpu = {}
    for name in DPUS:
        config = load_dpu(name)
        start = time.perf_counter()
        sims = {b.key: simulate_block(b, config) for b in blocks}
        cold = time.perf_counter() - start
        latency[f"fpga-dpu/{name}"] = {k: r.latency_ms for k, r in sims.items()}
        engines = defaultdict(int)
        for r in sims.values():
            for engine, cycles in r.engine_cycles:
                engines[engine] += cycles
        total = sum(engines.values())
        dpu[name] = {
            "engine_share": {k: round(v / total, 4) for k, v in engines.items()},
            "blocks_with_spills": sum(bool(r.spilled) for r in sims.values()),
            "seconds_all_blocks_cold_cache": round(cold, 4),
            "ratios": ratios(latency[f"fpga-dpu/{name}"], blocks, where),
        }
        dpu[name]["ratio_summary"] = summary(dpu[name]["ratios"])
        if name == "dpu-b4096":
            dpu[name]["traffic_per_block"] = [
                {"block": k, "position": where.get(k, k.split(":")[0]), "latency_ms": round(r.latency_ms, 5),
                 "ddr_read_bytes": r.ddr_read_bytes, "ddr_write_bytes": r.ddr_write_bytes,
                 "onchip_bytes": r.onchip_bytes, "spilled": list(r.spilled)} for k, r in sims.items()]
    # predicted DDR traffic per block next to predicted latency, and which blocks spill, every shipped DPU
    dpu["ddr_traffic"] = {}
    for name in list_dpus():
        config = load_dpu(name)
        sims = {b.key: simulate_block(b, config) for b in blocks}
        dpu["ddr_traffic"][name] = {
            "blocks_with_spills": sorted(where.get(k, k.split(":")[0]) + " " + k for k, r in sims.items() if r.spilled),
            "per_block": [{"block": k, "position": where.get(k, k.split(":")[0]), "latency_ms": round(r.latency_ms, 5),
                           "ddr_mb": round(r.ddr_bytes / PROFILER_MB, 6), "ddr_read_bytes": r.ddr_read_bytes,
                           "ddr_write_bytes": r.ddr_write_bytes, "spilled": list(r.spilled)}
                          for k, r in sims.items()]}
    if measured is not None:
        dpu["measured_traffic"] = {"profile": str(args.compare_traffic), "accelerator": args.accelerator,
                                   "blocks": memory_traffic_comparison(measured, args.accelerator)}
    archs = space.sample(rng=0, n=1000)
    config = load_dpu("dpu-b4096")
    start = time.perf_counter()
    for arch in archs:
        simulate_network(space.blocks(arch), config)
    dpu["seconds_1000_networks_b4096"] = round(time.perf_counter() - start, 3)
    dpu["cache"] = cache_info()._asdict()
    result["fpga-dpu"] = dpu

    # --- the systolic models ---------------------------------------------------------------------------------
    systolic = {}
    for label, backend in (("fpga-analytical", get_backend("fpga-analytical")),
                           ("fpga-analytical/channel-serial", get_backend("fpga-analytical", accelerator={
                               **load_accelerator("systolic-32x32-ws").to_dict(),
                               "depthwise_mapping": "channel-serial"}))):
        start = time.perf_counter()
        latency[label] = {b.key: backend.measure_layers(b.layers())["latency_ms"]["median"] for b in blocks}
        systolic[label] = {"seconds_all_blocks": round(time.perf_counter() - start, 3),
                           "ratios": ratios(latency[label], blocks, where)}
        systolic[label]["ratio_summary"] = summary(systolic[label]["ratios"])
    if not args.no_scalesim:
        backend = get_backend("fpga-scalesim")
        subset = [b for b in blocks if where.get(b.key) in SCALESIM_POSITIONS]
        start = time.perf_counter()
        latency["fpga-scalesim"] = {b.key: backend.measure_layers(b.layers())["latency_ms"]["median"]
                                    for b in subset}
        systolic["fpga-scalesim"] = {"subset": list(SCALESIM_POSITIONS), "blocks": len(subset),
                                     "seconds": round(time.perf_counter() - start, 1),
                                     "cache": backend.cache_stats(),
                                     "ratios": ratios(latency["fpga-scalesim"], subset, where)}
        systolic["fpga-scalesim"]["ratio_summary"] = summary(systolic["fpga-scalesim"]["ratios"])
    result["systolic"] = systolic

    # --- rank agreement --------------------------------------------------------------------------------------
    names = list(latency)
    spearman = {}
    for i, a in enumerate(names):
        for b in names[i + 1:] + ["macs"]:
            other = macs if b == "macs" else latency[b]
            keys = sorted(set(latency[a]) & set(other))
            rho = spearmanr([latency[a][k] for k in keys], [other[k] for k in keys]).statistic
            spearman[f"{a} vs {b}"] = {"rho": round(float(rho), 4), "blocks": len(keys)}
    result["spearman"] = spearman

    # --- published whole-network figures ---------------------------------------------------------------------
    rows = []
    for network, board, config_name, figure, value, source in PUBLISHED:
        base = load_dpu(config_name)
        predicted = {ov: simulate_reference(network, base.replace(op_overhead_cycles=ov)).latency_ms
                     for ov in (0, 200, 400)}
        published = published_latency_ms(figure, value)
        shipped = simulate_reference(network, base)
        rows.append({"network": network, "board": board, "config": config_name, "figure": figure,
                     "published_value": value, "published_ms": round(published, 3),
                     "predicted_ms": round(predicted[200], 3), "ratio": round(predicted[200] / published, 3),
                     "predicted_ms_overhead_0": round(predicted[0], 3),
                     "predicted_ms_overhead_400": round(predicted[400], 3),
                     "conv_engine_floor_ms": round(sum(op.compute_cycles for op in shipped.ops
                                                       if op.engine == "conv") / (base.clock_mhz * 1e3), 3),
                     "operations": len(shipped.ops), "source": source})
    result["published"] = rows
    result["networks"] = sorted(NETWORKS)
    result["latency_ms"] = latency
    save(result, args.out)


if __name__ == "__main__":
    main()
