"""Evaluate subnets of a trained supernet through its model family, images and text alike.

    >>> from ofa_pipeline.evaluate import evaluate_subnets, subnets_to_evaluate
    >>> archs = subnets_to_evaluate(supernet.space, count=60, seed=0)     # largest, smallest, 60 random
    >>> records = evaluate_subnets(supernet, data, archs, "runs/my/evaluations.jsonl")

Each subnet is scored by ``get_family(space).evaluator`` (an image subnet after exact BatchNorm
re-calibration: top-1 and loss; a Transformer: validation loss and token accuracy), so the records
fit an accuracy predictor of the family's target (``top1`` or ``loss``) directly.

``evaluate_checkpoint`` evaluates a saved supernet (what ``ofa-evaluate`` runs): architectures
named as ``largest``, ``smallest``, ``random:N``, ``stratified:N`` (spread over MACs) or files,
optionally adversarial robustness, and a plot of top-1 versus MACs:

    >>> from ofa_pipeline.evaluate import EvaluateOptions, evaluate_checkpoint
    >>> records = evaluate_checkpoint("runs/digits/final.pt", "runs/digits/eval.jsonl",
    ...                               ["largest", "smallest", "stratified:20"], EvaluateOptions(calib_images=500))
"""

from __future__ import annotations

import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ofa.errors import ConfigError
from ofa.families import get_family
from ofa.io import append_jsonl


def subnets_to_evaluate(space, count: int, seed: int = 0) -> list:
    """The largest and the smallest subnet and ``count`` random ones (seeded), without repeats."""
    archs, seen = [], set()
    for arch in [space.largest(), space.smallest(), *space.sample(seed, n=count)]:
        if arch.to_json() not in seen:
            seen.add(arch.to_json())
            archs.append(arch)
    return archs


def evaluate_subnets(supernet, data, archs: Sequence, out: str | os.PathLike | None = None, split: str = "val",
                     calib_images: int = 2000, text_limit: int = 200, log=None) -> list[dict]:
    """One record per architecture: ``{"arch", "split", "space", <target>, "accuracy", "accuracy_kind", "loss",
    "label_loyalty", "probability_loyalty"}``, where ``<target>`` is the family's accuracy target
    (``top1`` for images, ``loss`` for Transformers). With ``out`` (JSONL) each record is appended
    as it is made, and subnets already recorded there for this space and split are not evaluated again
    (a killed run continues). ``text_limit``: validation sentences per Transformer subnet."""
    space = supernet.space
    family = get_family(space)
    out = Path(out) if out is not None else None
    done = {}
    if out is not None and out.is_file():
        for line in out.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            if isinstance(record, dict) and record.get("space") == space.fingerprint and record.get("split") == split:
                done[json.dumps(record.get("arch"), sort_keys=True)] = record
    evaluate = None
    records = []
    for number, arch in enumerate(archs, start=1):
        key = json.dumps(arch.to_dict(), sort_keys=True)
        if key not in done:
            if evaluate is None:  # built on first need: it prepares the teacher and the calibration images
                evaluate = family.evaluator(supernet, data, split, calib_images, text_limit)
            result = evaluate(arch)
            done[key] = {"arch": arch.to_dict(), "split": split, "space": space.fingerprint,
                         family.accuracy_target: result["loss" if family.accuracy_target == "loss" else "accuracy"],
                         "accuracy": result["accuracy"], "accuracy_kind": result["kind"], "loss": result["loss"],
                         "label_loyalty": result["label_loyalty"],
                         "probability_loyalty": result["probability_loyalty"]}
            if out is not None:
                append_jsonl(out, done[key])
            if log is not None:
                log(f"  subnet {number}/{len(archs)}: {result['kind']} {result['accuracy']:.2f}, "
                    f"loss {result['loss']:.3f}")
        records.append(done[key])
    return records


@dataclass(frozen=True)
class EvaluateOptions:
    """How ``evaluate_checkpoint`` evaluates: the split and data, BatchNorm re-calibration, the draws,
    the plot, and adversarial robustness (``attacks``: e.g. ``("fgsm", "pgd")``, images only)."""

    split: str = "val"  # val, test or train
    data: str | None = None  # data set (default: the one the supernet was trained on)
    calib_images: int | None = None  # BN re-calibration images (default: the training config's)
    batch_size: int = 256  # calibration batch (BN normalises each with its own statistics)
    seed: int = 0  # seed of random:N and stratified:N
    threads: int = 0  # torch threads (0: torch's default)
    plot: str | os.PathLike | None = None  # PNG of top-1 versus MACs (default: the output with .png)
    overwrite: bool = False  # replace an existing output or plot of another kind
    attacks: tuple[str, ...] = ()
    epsilon: float | None = None  # L-infinity radius in normalised input units (default: ofa.robustness's)
    pgd_steps: int | None = None
    robustness_images: int = 500  # images of the split attacked per subnet (a fixed random subset)
    sentences: int = 200  # validation sentences each Transformer subnet is scored on (images: unused)


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


def parse_arch_specs(specs: Sequence[str], space, seed: int) -> list[tuple[str, object]]:
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
    """Top-1 (or the records' accuracy) versus MACs of evaluated subnets, the largest and the smallest named."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ofa.io import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(6, 4.2))
    key = "top1" if "top1" in records[0] else "accuracy"
    ax.scatter([r["macs"] / 1e6 for r in records], [r[key] for r in records], s=18, alpha=0.8)
    for r in records:
        if r.get("name") in ("largest", "smallest"):
            ax.annotate(r["name"], (r["macs"] / 1e6, r[key]), fontsize=8, xytext=(4, -10),
                        textcoords="offset points")
    ax.set_xlabel("MMACs")
    ax.set_ylabel(f"{'top-1 ' if key == 'top1' else ''}accuracy on {records[0]['split']} (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def evaluate_checkpoint(checkpoint: str | os.PathLike, out: str | os.PathLike,
                        archs: Sequence[str] = ("largest", "smallest", "random:20"),
                        options: EvaluateOptions = EvaluateOptions(), progress: bool = True) -> list[dict]:
    """Evaluate subnets of the supernet saved at ``checkpoint`` (``archs``: ``largest``, ``smallest``,
    ``random:N``, ``stratified:N`` or JSON/JSONL files of architectures) and append one record per
    subnet to ``out`` (JSONL): ``{"arch", "top1" (percent), "loss", "macs", "params", "label_loyalty",
    "probability_loyalty", "split", "resolution", "name", "space", "supernet"}``, with
    ``"robustness"`` and ``"robustness_largest"`` when ``options.attacks`` names attacks. Subnets
    already recorded in ``out`` for this supernet and split are not evaluated again (a killed run
    continues). Each subnet is scored by the model family's evaluator (``get_family(space).evaluator``,
    as :func:`evaluate_subnets` and specialisation do; a family whose accuracy is not top-1 records it
    as ``"accuracy"``). Writes the plot of accuracy versus MACs; returns the records."""
    import torch
    from tqdm import tqdm

    from ofa.training.checkpoint import load_checkpoint, load_supernet
    from ofa.validation import check_input_file, check_output_path

    check_input_file(checkpoint, "--supernet", kinds=("checkpoint",))
    attacks = tuple(options.attacks)
    if attacks:
        from ofa.robustness import DEFAULT_EPSILON, check_attack_settings

        check_attack_settings(DEFAULT_EPSILON if options.epsilon is None else options.epsilon, options.pgd_steps or 1)
    out = Path(out)
    plot = Path(options.plot) if options.plot else out.with_suffix(".png")
    inputs = [("the --supernet checkpoint", checkpoint)] + [
        (f"the --archs file {spec}", spec) for spec in archs if Path(spec).is_file()]
    check_output_path(out, inputs, kind=("evaluations",), overwrite=options.overwrite, name="--out")
    check_output_path(plot, inputs + [("the --out", out)], kind=("png",), overwrite=options.overwrite, name="--plot")
    if options.threads:
        torch.set_num_threads(options.threads)
    supernet = load_supernet(checkpoint)
    space = supernet.space
    family = get_family(space)
    config = load_checkpoint(checkpoint)["config"]
    named_archs = parse_arch_specs(archs, space, options.seed)
    data = family.checkpoint_data(checkpoint, options.data)
    classes = getattr(data, "num_classes", None)
    if classes is not None and classes != getattr(space, "num_classes", classes):
        raise ConfigError(f"the data set has {classes} classes; the supernet predicts {space.num_classes}")
    supernet_id = str(Path(checkpoint).resolve())
    done = {}
    if out.is_file():
        for line in out.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            if record.get("supernet") == supernet_id and record.get("split") == options.split:
                done[json.dumps(record["arch"], sort_keys=True)] = record
    calib = options.calib_images or config.get("data", {}).get("calib_images", 2000)
    # the family's evaluator, as for specialisation: the same numbers for the same subnet
    evaluate = family.evaluator(supernet, data, options.split, calib, limit=options.sentences,
                                batch_size=options.batch_size)
    if attacks and not hasattr(evaluate, "robustness"):
        raise ConfigError(f"robustness attacks apply to image subnets; a {space.type_name} supernet has none")
    accuracy_key = "top1" if family.accuracy_target == "top1" else "accuracy"
    records = []
    robust_settings = dict(attacks=attacks, epsilon=options.epsilon, steps=options.pgd_steps,
                           images=options.robustness_images)
    largest_robustness = None
    for name, arch in tqdm(named_archs, desc="subnets", file=sys.stderr, leave=False, disable=not progress):
        key = json.dumps(arch.to_dict(), sort_keys=True)
        if key in done and (not attacks or set(attacks) <= set(done[key].get("robustness") or {})):
            records.append(done[key])
            continue
        result, cost = evaluate(arch), space.cost(arch)
        record = {"arch": arch.to_dict(), accuracy_key: result["accuracy"], "loss": result["loss"],
                  "macs": int(cost.macs), "params": int(cost.params), "label_loyalty": result["label_loyalty"],
                  "probability_loyalty": result["probability_loyalty"], "split": options.split,
                  "resolution": int(arch.resolution) if hasattr(arch, "resolution") else None,
                  "name": name, "space": space.fingerprint, "supernet": supernet_id}
        if attacks:
            if largest_robustness is None:
                largest_robustness = evaluate.robustness(space.largest(), **robust_settings)
            record["robustness"] = (largest_robustness if arch == space.largest()
                                    else evaluate.robustness(arch, **robust_settings))
            record["robustness_largest"] = largest_robustness
        append_jsonl(out, record)
        records.append(record)
    save_plot(records, plot, f"{Path(checkpoint).parent.name}: {len(records)} subnets, BN re-calibrated")
    return records


__all__ = ["EvaluateOptions", "evaluate_checkpoint", "evaluate_subnets", "parse_arch_specs",
           "read_arch_file", "save_plot", "subnets_to_evaluate"]
