"""Evaluate subnets of a trained supernet through its model family, images and text alike.

    >>> from ofa_pipeline.evaluate import evaluate_subnets, subnets_to_evaluate
    >>> archs = subnets_to_evaluate(supernet.space, count=60, seed=0)     # largest, smallest, 60 random
    >>> records = evaluate_subnets(supernet, data, archs, "runs/my/evaluations.jsonl")

Each subnet is scored by ``get_family(space).evaluator`` (an image subnet after exact BatchNorm
re-calibration: top-1 and loss; a Transformer: validation loss and token accuracy), so the records
fit an accuracy predictor of the family's target (``top1`` or ``loss``) directly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

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


__all__ = ["evaluate_subnets", "subnets_to_evaluate"]
