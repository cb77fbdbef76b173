"""Evaluate subnets of a trained supernet: accuracy after BN re-calibration,
MACs, parameters and loyalty to the full network.

    ofa-evaluate --supernet runs/digits/final.pt --archs largest smallest random:20 \\
        [stratified:20] [more_archs.jsonl] --out runs/digits/eval.jsonl [--split val|test] [--data PATH]

``random:N`` draws subnets uniformly over the space's choices (most of them
mid-sized); ``stratified:N`` spreads them evenly over MACs, so the small and
large ends - where tight and loose latency budgets send the search - are as
well covered as the middle (the sampling of ``ofa-profile-device``).

Writes one JSON record per subnet to --out (appended as it goes; a re-run with
the same --out skips subnets already evaluated for this supernet and split):
``{"arch", "top1" (percent), "loss" (cross entropy), "macs", "params",
"label_loyalty" (0..1), "probability_loyalty" (0..1), "split", "resolution",
"name", "space", "supernet"}``; plus a PNG of top-1 versus MACs (--plot,
default: --out with .png) and a printed summary table. Each subnet is scored by
the model family's evaluator, as specialisation scores it
(:func:`ofa_pipeline.evaluate.evaluate_checkpoint`); a Transformer's records
hold its token ``"accuracy"`` instead of ``"top1"``.

``--robustness fgsm,pgd [--epsilon 0.1] [--pgd-steps 10] [--robustness-images 500]``
adds ``"robustness": {attack: {"clean_top1", "adversarial_top1",
"success_rate", "epsilon", "images", ...}}`` for the subnet and
``"robustness_largest"`` (the same for the largest subnet) to each record
(:mod:`ofa.robustness`; epsilon is in normalised input units).
"""

from __future__ import annotations

import sys
from pathlib import Path


from ofa.cli import run_command
from ofa.validation import ArgumentParser, non_negative_int, positive_int

# the library's helpers, importable from here as before
from ofa_pipeline.evaluate import parse_arch_specs, read_arch_file, save_plot  # noqa: F401


def main(argv=None) -> int:
    parser = ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--supernet", required=True, help="checkpoint (e.g. runs/<name>/final.pt)")
    parser.add_argument("--archs", nargs="+", default=["largest", "smallest", "random:20"],
                        help="largest, smallest, random:N, stratified:N (spread over MACs), or JSON/JSONL files "
                             "of architectures")
    parser.add_argument("--out", required=True, help="JSONL output")
    parser.add_argument("--plot", default=None, help="PNG of accuracy versus MACs (default: --out with .png)")
    parser.add_argument("--split", default="val", choices=("val", "test", "train"))
    parser.add_argument("--data", default=None, help="data set (default: the one the supernet was trained on)")
    parser.add_argument("--calib-images", type=positive_int, default=None, help="BN re-calibration images (default: config)")
    parser.add_argument("--batch-size", type=positive_int, default=256)
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of random:N and stratified:N")
    parser.add_argument("--threads", type=non_negative_int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out/--plot of another kind")
    parser.add_argument("--robustness", default=None, metavar="ATTACKS",
                        help="also score adversarial robustness: comma-separated fgsm,pgd (images only); each record "
                             "gets 'robustness' and 'robustness_largest' (the largest subnet's, for reference)")
    parser.add_argument("--epsilon", type=float, default=None,
                        help="L-infinity attack radius in normalised input units (default 0.1; see ofa.robustness)")
    parser.add_argument("--pgd-steps", type=positive_int, default=None, help="PGD steps (default 10)")
    parser.add_argument("--robustness-images", type=positive_int, default=500,
                        help="images of the split attacked per subnet (a fixed random subset; default %(default)s)")
    parser.add_argument("--sentences", type=positive_int, default=200,
                        help="Transformers: validation sentences each subnet is scored on (default %(default)s)")
    args = parser.parse_args(argv)
    return run_command(evaluate, args)


def evaluate(args) -> list[dict]:
    from ofa.training.runlog import format_table
    from ofa_pipeline.evaluate import EvaluateOptions, evaluate_checkpoint

    attacks = ()
    if args.robustness is not None:
        from ofa.robustness import parse_attacks

        attacks = tuple(parse_attacks(args.robustness))
    out = Path(args.out)
    plot = Path(args.plot) if args.plot else out.with_suffix(".png")
    options = EvaluateOptions(split=args.split, data=args.data, calib_images=args.calib_images,
                              batch_size=args.batch_size, seed=args.seed, threads=args.threads, plot=args.plot,
                              overwrite=args.overwrite, attacks=attacks, epsilon=args.epsilon,
                              pgd_steps=args.pgd_steps, robustness_images=args.robustness_images,
                              sentences=args.sentences)
    records = evaluate_checkpoint(args.supernet, out, args.archs, options)
    rows = [{**r, "mmacs": r["macs"] / 1e6, "label_loyalty": 100 * r["label_loyalty"],
             "probability_loyalty": 100 * r["probability_loyalty"]} for r in records]
    accuracy = "top1" if records and "top1" in records[0] else "accuracy"  # a Transformer's: token accuracy
    print(format_table(rows, ["name", "resolution", "mmacs", "params", accuracy, "loss", "label_loyalty",
                              "probability_loyalty"]))
    if attacks:
        rows = [{"name": r["name"], **{f"{a}_top1": r["robustness"][a]["adversarial_top1"] for a in attacks},
                 **{f"{a}_success": r["robustness"][a]["success_rate"] for a in attacks}}
                for r in records if r.get("robustness")]
        first = next(iter(records[0]["robustness"].values())) if records and records[0].get("robustness") else {}
        print(f"\nadversarial top-1 (%) and attack success rate (%), epsilon {first.get('epsilon')} "
              f"(normalised units), {first.get('images')} images:")
        print(format_table(rows, ["name"] + [f"{a}_top1" for a in attacks] + [f"{a}_success" for a in attacks]))
    print(f"{len(records)} subnets on the {args.split} split -> {out}, plot {plot}")
    return records

if __name__ == "__main__":
    sys.exit(main())
