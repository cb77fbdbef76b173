"""Latency spread on this CPU between the smallest and the largest subnet:
greedy decoding of one sentence (batch 1) with the extracted static network
and its key/value cache, measured alternately in one run.

    python benchmarks/transformer_latency.py [--supernet runs/transformer-small/final.pt] [--repeats 15]
        [--out benchmarks/results/transformer_latency.json]

Spaces: ``transformer-small`` (the trained supernet when given, else random
weights) and HAT's ``hat-wmt`` (random weights, 32000-token vocabularies).
Every decode runs exactly ``target_length`` steps (no early stop at EOS), so
subnets are compared on the same work; source length is the space's
``source_length``. One thread; CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from _timing import environment, save, time_alternately

from ofa import get_space
from ofa.models.transformer import BOS, Transformer


def fixed_length_greedy(model, src: torch.Tensor, steps: int):
    """Greedy decoding of exactly ``steps`` tokens (encoder once, cached decoder steps)."""
    @torch.no_grad()
    def run():
        memory = model.encode(src)
        token = torch.full((src.shape[0], 1), BOS, dtype=torch.long)
        cache = None
        for _ in range(steps):
            logits, cache = model.decode_step(token, memory, cache)
            token = logits.argmax(-1, keepdim=True)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--supernet", default=None, help="trained transformer-small checkpoint (optional)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", default="benchmarks/results/transformer_latency.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    models = {}
    if args.supernet:
        from ofa.training.transformer import load_trained

        supernet, _ = load_trained(args.supernet)
        space = supernet.space
        models["transformer-small"] = (space, {"smallest": supernet.extract(space.smallest()).eval(),
                                               "largest": supernet.extract(space.largest()).eval()})
    else:
        space = get_space("transformer-small", src_vocab_size=37, tgt_vocab_size=32)
        models["transformer-small"] = (space, {k: Transformer(space, getattr(space, k)()).eval()
                                               for k in ("smallest", "largest")})
    space = get_space("hat-wmt")
    models["hat-wmt"] = (space, {k: Transformer(space, getattr(space, k)()).eval() for k in ("smallest", "largest")})

    rows = []
    for name, (space, pair) in models.items():
        src = torch.randint(4, space.src_vocab_size, (1, space.source_length))
        src[:, 0] = BOS
        timings = time_alternately({label: fixed_length_greedy(model, src, space.target_length)
                                    for label, model in pair.items()}, repeats=args.repeats)
        small, large = timings["smallest"], timings["largest"]
        row = {"space": name, "source_length": space.source_length, "decoded_tokens": space.target_length,
               "smallest_cpu_ms": round(small["cpu_ms"], 2), "largest_cpu_ms": round(large["cpu_ms"], 2),
               "spread_cpu": round(large["cpu_ms"] / small["cpu_ms"], 2),
               "smallest_wall_ms": round(small["wall_ms"], 2), "largest_wall_ms": round(large["wall_ms"], 2),
               "spread_wall": round(large["wall_ms"] / small["wall_ms"], 2),
               "macs_ratio": round(space.cost(space.largest()).macs / space.cost(space.smallest()).macs, 2),
               "smallest": space.smallest().to_dict(), "largest": space.largest().to_dict()}
        rows.append(row)
        print({k: v for k, v in row.items() if k not in ("smallest", "largest")}, flush=True)
    save({"benchmark": "transformer_latency", "batch_size": 1, "rows": rows, "environment": environment()},
         args.out)


if __name__ == "__main__":
    main()
