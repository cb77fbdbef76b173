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
default: --out with .png) and a printed summary table.

``--robustness fgsm,pgd [--epsilon 0.1] [--pgd-steps 10] [--robustness-images 500]``
adds ``"robustness": {attack: {"clean_top1", "adversarial_top1",
"success_rate", "epsilon", "images", ...}}`` for the subnet and
``"robustness_largest"`` (the same for the largest subnet) to each record
(:mod:`ofa.robustness`; epsilon is in normalised input units).
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path


from ofa.cli import run_command
from ofa.errors import ConfigError
from ofa.validation import (ArgumentParser, check_input_file, check_output_path, non_negative_int, positive_int)


def read_arch_file(path: Path, space) -> list:
    """Architectures from a JSONL file (one arch dict, or a record with an
    "arch" key, per line) or a JSON list."""
    if not path.is_file():
        raise ConfigError(f"--archs entry {str(path)!r} is neither largest, smallest, random:N, stratified:N "
                          f"nor a file")
    text = path.read_text()
    try:
        if text.lstrip().startswith("["):
            items = json.loads(text)
        else:
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path}: not JSON/JSONL ({error})") from None
    return [space.parse(item["arch"] if isinstance(item, dict) and "arch" in item else item) for item in items]


def parse_arch_specs(specs: list[str], space, seed: int) -> list[tuple[str, object]]:
    """(name, arch) pairs for ``largest``, ``smallest``, ``random:N``, ``stratified:N`` and files."""
    archs = []
    for spec in specs:
        if spec == "largest":
            archs.append(("largest", space.largest()))
        elif spec == "smallest":
            archs.append(("smallest", space.smallest()))
        elif spec.startswith(("random:", "stratified:")):
            kind, count = spec.split(":", 1)
            if not count.isdigit() or int(count) < 1:
                raise ConfigError(f"--archs {spec!r}: write {kind}:N with N >= 1")
            if kind == "random":
                drawn = space.sample(seed, n=int(count))
            else:
                from hardware_profiles import stratified_sample

                drawn = stratified_sample(space, int(count), rng=seed)
            archs += [(f"{kind}{i}", a) for i, a in enumerate(drawn)]
        else:
            archs += [(f"{Path(spec).stem}{i}", a) for i, a in enumerate(read_arch_file(Path(spec), space))]
    unique, seen = [], set()
    for name, arch in archs:
        if arch.to_json() not in seen:
            seen.add(arch.to_json())
            unique.append((name, arch))
    return unique


def save_plot(records: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ofa.io import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.scatter([r["macs"] / 1e6 for r in records], [r["top1"] for r in records], s=18, alpha=0.8)
    for r in records:
        if r.get("name") in ("largest", "smallest"):
            ax.annotate(r["name"], (r["macs"] / 1e6, r["top1"]), fontsize=8, xytext=(4, -10),
                        textcoords="offset points")
    ax.set_xlabel("MMACs")
    ax.set_ylabel(f"top-1 accuracy on {records[0]['split']} (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


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
    args = parser.parse_args(argv)
    return run_command(evaluate, args)


def evaluate(args) -> list[dict]:
    import torch
    from tqdm import tqdm

    from ofa.evaluation import SubnetEvaluator
    from ofa.families import get_family
    from ofa.io import append_jsonl
    from ofa.training.checkpoint import load_checkpoint, load_supernet
    from ofa.training.runlog import format_table

    check_input_file(args.supernet, "--supernet", kinds=("checkpoint",))
    attacks = ()
    if args.robustness is not None:
        from ofa.robustness import DEFAULT_EPSILON, check_attack_settings, parse_attacks

        attacks = parse_attacks(args.robustness)
        check_attack_settings(DEFAULT_EPSILON if args.epsilon is None else args.epsilon, args.pgd_steps or 1)
    out = Path(args.out)
    plot = Path(args.plot) if args.plot else out.with_suffix(".png")
    inputs = [("the --supernet checkpoint", args.supernet)] + [
        (f"the --archs file {spec}", spec) for spec in args.archs if Path(spec).is_file()]
    check_output_path(out, inputs, kind=("evaluations",), overwrite=args.overwrite, name="--out")
    check_output_path(plot, inputs + [("the --out", out)], kind=("png",), overwrite=args.overwrite, name="--plot")
    if args.threads:
        torch.set_num_threads(args.threads)
    supernet = load_supernet(args.supernet)
    space = supernet.space
    config = load_checkpoint(args.supernet)["config"]
    archs = parse_arch_specs(args.archs, space, args.seed)
    data = get_family(space).checkpoint_data(args.supernet, args.data)
    if data.num_classes != space.num_classes:
        raise ConfigError(f"the data set has {data.num_classes} classes; the supernet predicts {space.num_classes}")
    supernet_id = str(Path(args.supernet).resolve())
    done = {}
    if out.is_file():
        for line in out.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            if record.get("supernet") == supernet_id and record.get("split") == args.split:
                done[json.dumps(record["arch"], sort_keys=True)] = record
    calib = args.calib_images or config.get("data", {}).get("calib_images", 2000)
    evaluator = SubnetEvaluator(supernet, data, args.split, calib, args.batch_size)
    records = []
    robust_settings = dict(attacks=attacks, epsilon=args.epsilon, steps=args.pgd_steps, images=args.robustness_images)
    largest_robustness = None
    for name, arch in tqdm(archs, desc="subnets", file=sys.stderr, leave=False):
        key = json.dumps(arch.to_dict(), sort_keys=True)
        if key in done and (not attacks or set(attacks) <= set(done[key].get("robustness") or {})):
            records.append(done[key])
            continue
        record = {**evaluator.evaluate(arch), "name": name, "space": space.fingerprint, "supernet": supernet_id}
        if attacks:
            if largest_robustness is None:
                largest_robustness = evaluator.robustness(space.largest(), **robust_settings)
            record["robustness"] = (largest_robustness if arch == space.largest()
                                    else evaluator.robustness(arch, **robust_settings))
            record["robustness_largest"] = largest_robustness
        append_jsonl(out, record)
        records.append(record)
    save_plot(records, plot, f"{Path(args.supernet).parent.name}: {len(records)} subnets, BN re-calibrated")
    rows = [{**r, "mmacs": r["macs"] / 1e6, "label_loyalty": 100 * r["label_loyalty"],
             "probability_loyalty": 100 * r["probability_loyalty"]} for r in records]
    print(format_table(rows, ["name", "resolution", "mmacs", "params", "top1", "loss", "label_loyalty",
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
