"""Cost of elasticity for Transformers: one training step (forward + backward,
label-smoothed cross entropy) of the HAT supernet at an architecture versus
the extracted static subnet, on the same batch, measured alternately in one run.

    python benchmarks/transformer_train_step.py [--repeats 10] [--out benchmarks/results/transformer_train_step.json]

``transformer-small`` (the default-task vocabulary sizes, batch 64, source 16 and
target 20 tokens) and a wider HAT-style space (embed 256/512, head size 64,
FFN up to 2048, 6+6 layers, batch 32); the largest, smallest and 3 random
subnets. Target: ratio (supernet / static) <= 1.10. One thread; CPU time is
the steadier figure on a shared machine (the small space's ~10 ms steps are
repeated 3x as often).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from _timing import environment, save, time_alternately

from ofa import create_supernet, get_space
from ofa.models.transformer import BOS
from ofa.spaces import TransformerSpace


def train_step(model, src, tgt):
    def step():
        model.zero_grad(set_to_none=True)
        logits = model(src, tgt[:, :-1])
        F.cross_entropy(logits.flatten(0, 1), tgt[:, 1:].flatten(), label_smoothing=0.1).backward()
    return step


def spaces() -> dict:
    """name -> (space, batch size, repeats multiplier: small steps are cheap, so measure them more often)."""
    return {
        "transformer-small": (get_space("transformer-small", src_vocab_size=37, tgt_vocab_size=32), 64, 3),
        "hat-medium": (TransformerSpace(encoder_embed_dims=(256, 512), decoder_embed_dims=(256, 512),
                                        encoder_layer_counts=(6,), decoder_layer_counts=(1, 2, 3, 4, 5, 6),
                                        ffn_dims=(512, 1024, 2048), head_counts=(4, 8), head_dim=64,
                                        src_vocab_size=1000, tgt_vocab_size=1000, max_positions=64,
                                        source_length=16, target_length=20), 32, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--random-subnets", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/transformer_train_step.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, (space, batch, repeat_factor) in spaces().items():
        torch.manual_seed(0)
        supernet = create_supernet(space).train()
        src = torch.randint(4, space.src_vocab_size, (batch, space.source_length))
        tgt = torch.randint(4, space.tgt_vocab_size, (batch, space.target_length + 1))
        src[:, 0] = tgt[:, 0] = BOS
        archs = {"largest": space.largest(), "smallest": space.smallest()}
        archs.update({f"random-{i}": a for i, a in enumerate(space.sample(0, args.random_subnets))})
        for label, arch in archs.items():
            supernet.set_active(arch)
            static = supernet.extract(arch).train()
            timings = time_alternately({"supernet": train_step(supernet, src, tgt),
                                        "static": train_step(static, src, tgt)},
                                       repeats=args.repeats * repeat_factor)
            row = {"space": name, "subnet": label, "macs": space.cost(arch).macs,
                   "supernet_cpu_ms": round(timings["supernet"]["cpu_ms"], 2),
                   "static_cpu_ms": round(timings["static"]["cpu_ms"], 2),
                   "ratio_cpu": round(timings["supernet"]["cpu_ms"] / timings["static"]["cpu_ms"], 3),
                   "ratio_wall": round(timings["supernet"]["wall_ms"] / timings["static"]["wall_ms"], 3)}
            rows.append(row)
            print(row, flush=True)
    worst = max(row["ratio_cpu"] for row in rows)
    save({"benchmark": "transformer_train_step", "target_ratio": 1.10, "worst_ratio_cpu": worst,
          "median_ratio_cpu": sorted(r["ratio_cpu"] for r in rows)[len(rows) // 2], "rows": rows,
          "environment": environment()}, args.out)


if __name__ == "__main__":
    main()
