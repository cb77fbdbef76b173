"""Specialise a subnet together with its exit thresholds, export it, measure it.

:func:`specialize_exits` takes a supernet trained with exits
(:mod:`ofa.training.progressive_shrinking`, an ``exits: true`` phase), a
block-sum latency predictor of the device, an expected-latency budget and a
worst-case budget, and

1. splits the held-out split (``val``) in two fixed halves: *selection* and
   *calibration*;
2. searches subnets (the largest, the smallest, random ones, then mutations
   of the best): for each, BN re-calibrated, the logits of every exit on the
   held-out split; for each subset of the supernet's exits, on the selection
   half, the threshold that Learn-then-Test certifies at the tolerance
   (:func:`ofa.search.exits.calibrate_threshold`), the exit distribution it
   gives and so the expected latency (:mod:`predictors.exits`). Each exit costs
   its head and a runtime call, so a subnet keeps the subset of exits with the
   lowest expected latency within the budgets (its accuracy is the subnet's
   within the tolerance whatever the subset); across subnets the most accurate
   adaptive one wins. The best static subnet under the expected-latency budget
   is kept for comparison;
3. calibrates the winner's threshold again on the calibration half, which the
   search did not look at, so the guarantee holds for it;
4. reports the test split: top-1 of the full subnet and of the adaptive one,
   the accuracy loss and the exit distribution;
5. exports one ONNX graph per segment with the thresholds
   (:func:`ofa.export.export_exit_segments`) and the static subnet, and, with
   ``measure``, times both on onnxruntime (:class:`ofa.export.EarlyExitRunner`)
   at batch 1 and at a larger batch.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ofa.errors import ConfigError, SearchError

DEFAULT_TOLERANCE = 0.01
DEFAULT_DELTA = 0.1


class _AllExits(nn.Module):
    """Runs every exit, so BN re-calibration reaches the exit heads' BatchNorm too."""

    def __init__(self, static: nn.Module):
        super().__init__()
        self.static = static

    def forward(self, x):
        return self.static.forward_exits(x)


class ExitEvaluator:
    """Static subnets with exits, BN re-calibrated on a fixed training subset, and the logits of
    every exit on a split (cached per architecture)."""

    def __init__(self, supernet: nn.Module, data, calib_images: int = 500, batch_size: int = 256):
        from ofa.data import fixed_subset

        if getattr(supernet, "exits", None) is None:
            raise ConfigError("this supernet has no exit heads: train it with the config key exits "
                              "({stages: [...], width: n}) and a phase with exits: true")
        self.supernet, self.space, self.data = supernet, supernet.space, data
        self.calib_set = fixed_subset(data.train, calib_images)
        self.batch_size = batch_size
        self._cache: dict = {}
        self._images: dict = {}

    def images(self, split: str, resolution: int):
        key = (split, resolution)
        if key not in self._images:
            dataset = self.calib_set if split == "calib" else getattr(self.data, split)
            self._images[key] = dataset.tensors(resolution=resolution)
        return self._images[key]

    def _prepared(self, split: str, resolution: int):
        from ofa.fast_evaluation import PreparedImages

        key = ("prepared", split, resolution)
        if key not in self._images:
            self._images[key] = PreparedImages.build(self.images("calib", resolution)[0],
                                                     self.images(split, resolution)[0], self.batch_size)
        return self._images[key]

    def subnet(self, arch) -> nn.Module:
        """The static subnet with exits, channels-last, BN statistics (exit heads' too)
        re-calibrated on the fixed training subset, in eval mode."""
        from ofa.fast_evaluation import recalibrate_bn_batches

        arch = self.space.parse(arch)
        static = self.supernet.extract(arch).to(memory_format=torch.channels_last)
        recalibrate_bn_batches(_AllExits(static), self._prepared("val", arch.resolution).calibration)
        return static.eval()

    def logits(self, arch, split: str = "val") -> list[np.ndarray]:
        """Every exit's logits, then the final head's, on ``split`` (BatchNorm folded: inference only)."""
        import copy

        from ofa.fast_evaluation import fold_batchnorm

        arch = self.space.parse(arch)
        key = (arch, split)
        if key not in self._cache:
            static = fold_batchnorm(copy.deepcopy(self.subnet(arch)))
            images = self._prepared(split, arch.resolution).evaluation
            with torch.inference_mode():
                parts = [static.forward_exits(images[i:i + 1024]) for i in range(0, len(images), 1024)]
            self._cache[key] = [torch.cat([p[k] for p in parts]).numpy() for k in range(len(parts[0]))]
        return self._cache[key]

    def labels(self, split: str) -> np.ndarray:
        return getattr(self.data, split).labels


def split_halves(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two fixed disjoint halves of ``range(n)``: selection, calibration."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:n // 2]), np.sort(order[n // 2:])


def _take(logits, index):
    return [x[index] for x in logits]


def _top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(100.0 * np.mean(logits.argmax(axis=-1) == labels))


def check_budgets(expected_ms: float, worst_ms: float | None) -> None:
    if isinstance(expected_ms, bool) or not isinstance(expected_ms, (int, float)) or not expected_ms > 0:
        raise ConfigError(f"the expected-latency budget must be a latency > 0 (ms), got {expected_ms!r}")
    if worst_ms is not None and (isinstance(worst_ms, bool) or not isinstance(worst_ms, (int, float))
                                 or not worst_ms >= expected_ms):
        raise ConfigError(f"the worst-case budget must be a latency >= the expected-latency budget "
                          f"({expected_ms:g} ms), got {worst_ms!r}")


def specialize_exits(supernet, data, latency_predictor, expected_budget_ms: float, worst_budget_ms: float | None = None,
                     tolerance: float = DEFAULT_TOLERANCE, delta: float = DEFAULT_DELTA, measure: str = "maxprob",
                     risk: str = "consistency", candidates: int = 24, rounds: int = 1, seed: int = 0,
                     evaluator: ExitEvaluator | None = None, calib_images: int = 500,
                     call_overhead_ms: float = 0.0) -> dict:
    """Search (subnet, threshold) under the budgets; see the module docstring. Returns the report
    (``chosen``, ``static``, ``candidates``); :class:`~ofa.errors.SearchError` when no subnet fits."""
    from ofa.search.exits import calibrate_threshold, check_calibration_args
    from ofa.spaces.exits import ExitConfig
    from predictors.exits import block_sum_regressor, check_call_overhead, exit_latencies, expected_latency

    check_budgets(expected_budget_ms, worst_budget_ms)
    check_calibration_args(tolerance, delta, risk, measure)
    check_call_overhead(call_overhead_ms)
    block_sum_regressor(latency_predictor)  # a PredictorError before any work
    space = supernet.space
    evaluator = evaluator or ExitEvaluator(supernet, data, calib_images)
    exits = supernet.exits
    labels = evaluator.labels("val")
    select, calib = split_halves(len(labels), seed)
    rng = np.random.default_rng(seed)
    seen: dict = {}

    subsets = [list(c) for r in range(1, len(exits.stages) + 1)
               for c in itertools.combinations(range(len(exits.stages)), r)]

    def consider(arch) -> dict | None:
        arch = space.parse(arch)
        if arch in seen:
            return seen[arch]
        options = []
        for subset in subsets:
            config = ExitConfig(tuple(exits.stages[i] for i in subset), exits.width)
            options.append((subset, config, exit_latencies(latency_predictor, space, config, arch, call_overhead_ms)))
        static_latency = options[0][2]["static"]
        record = {"arch": arch.to_dict(), "evaluated": False, "static_latency": static_latency,
                  "worst_case_min": min(o[2]["worst_case"] for o in options),
                  "first_exit_min": min(o[2]["cumulative"][0] for o in options),
                  "static_feasible": (static_latency <= expected_budget_ms
                                      and (worst_budget_ms is None or static_latency <= worst_budget_ms))}
        seen[arch] = record
        options = [o for o in options if worst_budget_ms is None or o[2]["worst_case"] <= worst_budget_ms]
        if not options:
            record["reason"] = "worst case over budget with every subset of exits"
        elif min(o[2]["cumulative"][0] for o in options) > expected_budget_ms and not record["static_feasible"]:
            record["reason"] = "even the first exit is over the expected-latency budget"
        if "reason" in record:
            if record["static_feasible"]:  # out with exits, still a static subnet under the budget
                record["accuracy_full"] = _top1(evaluator.logits(arch)[-1][select], labels[select])
            return record
        logits = _take(evaluator.logits(arch), select)
        best = None
        for subset, config, latency in options:
            cal = calibrate_threshold([logits[i] for i in subset] + [logits[-1]], labels[select], tolerance, delta,
                                      measure, risk)
            expected = expected_latency(cal.exit_distribution, latency["cumulative"])
            if best is None or expected < best["expected_latency"]:
                best = {"exit_indices": subset, "exit_stages": list(config.stages), "latency": latency,
                        "threshold": cal.threshold, "exit_distribution": cal.exit_distribution,
                        "expected_latency": expected, "accuracy_full": cal.accuracy_full,
                        "accuracy_adaptive": cal.accuracy_adaptive}
        record.update(best, evaluated=True, feasible=best["expected_latency"] <= expected_budget_ms)
        return record

    for arch in [space.largest(), space.smallest(), *space.sample(rng, n=candidates)]:
        consider(arch)
    for _ in range(rounds):
        best = sorted((r for r in seen.values() if r.get("feasible")), key=lambda r: -r["accuracy_adaptive"])[:4]
        for record in best:
            for _ in range(max(1, candidates // 8)):
                consider(space.mutate(space.parse(record["arch"]), rng, prob=0.2))
    evaluated = [r for r in seen.values() if r["evaluated"]]
    feasible = [r for r in evaluated if r["feasible"]]
    if not feasible:
        if evaluated:
            found = f"the lowest expected latency found was {min(r['expected_latency'] for r in evaluated):.3g} ms"
        else:  # every subnet was out before calibration: say by how much
            found = (f"every one is out before calibration: the lowest worst case was "
                     f"{min(r['worst_case_min'] for r in seen.values()):.3g} ms and the lowest latency up to the "
                     f"first exit {min(r['first_exit_min'] for r in seen.values()):.3g} ms")
        raise SearchError(f"no subnet with exits meets an expected latency of {expected_budget_ms:g} ms"
                          + (f" and a worst case of {worst_budget_ms:g} ms" if worst_budget_ms is not None else "")
                          + f" among {len(seen)} searched; {found}: raise the budgets or the tolerance")
    chosen = max(feasible, key=lambda r: (r["accuracy_adaptive"], -r["expected_latency"]))
    statics = [r for r in seen.values() if r["static_feasible"] and "accuracy_full" in r]
    static = max(statics, key=lambda r: (r["accuracy_full"], -r["static_latency"])) if statics else None

    # the final threshold, calibrated on the half the search did not look at
    arch = space.parse(chosen["arch"])
    kept = chosen["exit_indices"] + [len(exits.stages)]
    logits = [evaluator.logits(arch)[i] for i in kept]
    final = calibrate_threshold(_take(logits, calib), labels[calib], tolerance, delta, measure, risk)
    latency = chosen["latency"]
    expected = expected_latency(final.exit_distribution, latency["cumulative"])
    test = adaptive_report([evaluator.logits(arch, "test")[i] for i in kept], evaluator.labels("test"),
                           final.threshold, measure)
    report = {
        "budgets_ms": {"expected": expected_budget_ms, "worst_case": worst_budget_ms},
        "tolerance": tolerance, "delta": delta, "measure": measure, "risk": risk,
        "call_overhead_ms": call_overhead_ms,
        "exits": ExitConfig(tuple(chosen["exit_stages"]), exits.width).to_dict(),
        "supernet_exits": exits.to_dict(), "latency_label": latency_predictor.label.name,
        "chosen": {"arch": chosen["arch"], "exit_indices": chosen["exit_indices"], "threshold": final.threshold,
                   "calibration": final.to_dict(),
                   "predicted_latency_ms": {"expected": expected, "worst_case": latency["worst_case"],
                                            "static": latency["static"], "segments": latency["segments"]},
                   "within_budgets": bool(expected <= expected_budget_ms and (
                       worst_budget_ms is None or latency["worst_case"] <= worst_budget_ms)),
                   "selection": {k: chosen[k] for k in ("threshold", "expected_latency", "accuracy_full",
                                                        "accuracy_adaptive", "exit_distribution")},
                   "test": test},
        "searched": len(seen), "evaluated": len(evaluated),
    }
    if static is not None:
        static_arch = space.parse(static["arch"])
        report["static"] = {"arch": static["arch"], "predicted_latency_ms": static["static_latency"],
                            "test_top1": _top1(evaluator.logits(static_arch, "test")[-1], evaluator.labels("test"))}
    return report


def adaptive_report(all_logits, labels, threshold: float, measure: str) -> dict:
    """Top-1 of the full subnet and of the adaptive one, the loss, the exit distribution."""
    from ofa.models.exits import adaptive_predictions

    predictions, where = adaptive_predictions(all_logits, threshold, measure)
    full = _top1(all_logits[-1], labels)
    adaptive = float(100.0 * np.mean(predictions == labels))
    return {"top1_full": full, "top1_adaptive": adaptive, "accuracy_loss": full - adaptive,
            "disagreement": float(np.mean(predictions != all_logits[-1].argmax(axis=-1))),
            "exit_distribution": (np.bincount(where, minlength=len(all_logits)) / len(where)).tolist(),
            "n": int(len(labels))}


# --- export and measurement ------------------------------------------------------------------------------------
def export_chosen(evaluator: ExitEvaluator, report: dict, out_dir, opset: int | None = None) -> dict:
    """Write the chosen subnet (one graph per segment with its threshold, and its weights) under
    ``out_dir/exits``, the same subnet without exits (``out_dir/same-static/model.onnx``) and the
    best static subnet under the budget (``out_dir/static/model.onnx``); returns their paths."""
    from ofa.export import DEFAULT_OPSET, export_checked, export_exit_segments, save_subnet_weights

    out_dir = Path(out_dir)
    opset = opset or DEFAULT_OPSET
    chosen = report["chosen"]
    static = evaluator.subnet(chosen["arch"]).keep_exits(chosen["exit_indices"])
    manifest = export_exit_segments(static, out_dir / "exits", chosen["threshold"], report["measure"], opset)
    save_subnet_weights(static, evaluator.space, out_dir / "exits" / "model.pt")
    paths = {"exits": str(out_dir / "exits"), "exits_parity_max_abs_diff": manifest["parity_max_abs_diff"],
             "same-static": export_checked(static, out_dir / "same-static" / "model.onnx", opset)["onnx"]}
    if "static" in report:
        plain = evaluator.subnet(report["static"]["arch"])
        paths["static"] = export_checked(plain, out_dir / "static" / "model.onnx", opset)["onnx"]
    return paths


def measure_latency(exits_dir, statics: dict, images: np.ndarray, thresholds=None, batch_sizes=(1, 32),
                    warmup: int = 20, repeats: int = 1) -> dict:
    """Measured mean milliseconds per image on onnxruntime (1 thread) of the early-exit runner
    (``"exits"``) and of each static ONNX file of ``statics`` ({name: path}), at each batch size,
    timed in turn batch by batch (the order rotating) so that load on the machine falls on all
    alike; with the exit distribution the runner produced."""
    from ofa.export import EarlyExitRunner, onnxruntime_session

    images = np.ascontiguousarray(images, dtype=np.float32)
    runner = EarlyExitRunner(exits_dir, thresholds)
    runs = {"exits": None}
    for name, path in statics.items():
        session = onnxruntime_session(path)
        runs[name] = (session, session.get_inputs()[0].name)

    def call(name, batch):
        if name == "exits":
            return runner.run(batch)[1]
        session, input_name = runs[name]
        session.run(None, {input_name: batch})
        return None

    names = list(runs)
    out = {}
    for batch_size in batch_sizes:
        batches = [images[i:i + batch_size] for i in range(0, len(images) - batch_size + 1, batch_size)]
        if not batches:
            raise ConfigError(f"batch size {batch_size} is larger than the {len(images)} images to time")
        for batch in batches[:max(1, warmup // batch_size)]:
            for name in names:
                call(name, batch)
        elapsed = dict.fromkeys(names, 0.0)
        where = []
        for r in range(repeats):
            for i, batch in enumerate(batches):
                shift = (i + r) % len(names)
                for name in names[shift:] + names[:shift]:
                    start = time.perf_counter()
                    result = call(name, batch)
                    elapsed[name] += time.perf_counter() - start
                    if result is not None:
                        where.append(result)
        count = repeats * sum(len(b) for b in batches)
        where = np.concatenate(where)
        out[str(batch_size)] = {
            **{f"{name}_ms_per_image": 1000.0 * elapsed[name] / count for name in names},
            "exit_distribution": (np.bincount(where, minlength=runner.exits + 1) / len(where)).tolist(),
            "images": count}
    return out




TIMED_BATCH = 32  # timing: batch 1 and this batch


@dataclass(frozen=True)
class ExitSearchOptions:
    """The calibration guarantee, the search and the timing of ``specialize_exits_checkpoint``."""

    tolerance: float = DEFAULT_TOLERANCE  # largest allowed disagreement with the full subnet
    delta: float = DEFAULT_DELTA  # the guarantee holds with probability 1 - delta
    confidence: str = "maxprob"  # confidence measure at each exit: maxprob or entropy
    risk: str = "consistency"  # what calibration bounds: consistency (no labels needed) or accuracy
    call_overhead_ms: float = 0.0  # the runner's cost per segment after the first
    candidates: int = 24  # random subnets searched
    calib_images: int = 500  # BN re-calibration images
    seed: int = 0
    threads: int = 1  # torch threads: as fast for networks this small, and steady on a busy machine
    time: bool = False  # time the exported graphs on onnxruntime (batch 1 and TIMED_BATCH)
    time_images: int | None = None  # test images timed (default: the whole test split)


def specialize_exits_checkpoint(supernet_path, latency_predictor_path, out_dir, expected_latency_ms: float,
                                worst_latency_ms: float | None = None,
                                options: ExitSearchOptions = ExitSearchOptions()) -> dict:
    """:func:`specialize_exits` on saved files: a supernet checkpoint trained with exits and the
    block-sum latency predictor of the device. Exports the chosen subnet with exits (``out_dir/exits/``),
    without (``same-static/``) and the best static subnet (``static/``), times them with
    ``options.time``, and writes the report to ``out_dir/result.json``; returns it."""
    from ofa.io import atomic_write_json
    from ofa.search.exits import check_calibration_args
    from ofa.training import load_supernet
    from ofa.validation import check_input_file, check_output_path
    from predictors import load_predictor
    from predictors.exits import block_sum_regressor

    from .deploy import checkpoint_data

    check_budgets(expected_latency_ms, worst_latency_ms)
    check_calibration_args(options.tolerance, options.delta, options.risk, options.confidence)
    if options.time_images is not None and not options.time:
        raise ConfigError("--time-images sets how many test images --time times: give --time too, or leave it out")
    if options.time_images is not None and options.time_images < TIMED_BATCH:
        raise ConfigError(f"--time-images must be at least {TIMED_BATCH} (--time times batches of 1 and of "
                          f"{TIMED_BATCH}), got {options.time_images}")
    check_input_file(supernet_path, "--supernet", kinds=("checkpoint",))
    check_input_file(latency_predictor_path, "--latency-predictor", kinds=("predictor",))
    out = Path(out_dir)
    check_output_path(out, [("the --supernet", supernet_path)], kind="dir", name="--out")
    predictor = load_predictor(latency_predictor_path)
    block_sum_regressor(predictor)
    torch.set_num_threads(options.threads)
    supernet = load_supernet(supernet_path)
    predictor.space.check_fingerprint(supernet.space.fingerprint, "the supernet")
    if getattr(supernet, "exits", None) is None:
        raise ConfigError(f"{supernet_path} has no exit heads: train it with the config key exits ({{stages: [...], "
                          f"width: n}}) and a phase with exits: true, or add them to a finished run with "
                          f"ofa.training.progressive_shrinking.seed_exit_phase")
    data = checkpoint_data(supernet_path)
    evaluator = ExitEvaluator(supernet, data, options.calib_images)
    report = specialize_exits(supernet, data, predictor, expected_latency_ms, worst_latency_ms, options.tolerance,
                              options.delta, options.confidence, options.risk, options.candidates,
                              seed=options.seed, evaluator=evaluator, call_overhead_ms=options.call_overhead_ms)
    report["files"] = export_chosen(evaluator, report, out)
    if options.time:
        arch = supernet.space.parse(report["chosen"]["arch"])
        images = evaluator.images("test", arch.resolution)[0].numpy()[:options.time_images]
        statics = {"same_static": report["files"]["same-static"]}
        report["measured"] = measure_latency(report["files"]["exits"], statics, images, batch_sizes=(1, TIMED_BATCH))
    atomic_write_json(out / "result.json", report)
    return report


__all__ = ["DEFAULT_DELTA", "DEFAULT_TOLERANCE", "ExitEvaluator", "ExitSearchOptions", "TIMED_BATCH",
           "adaptive_report", "check_budgets", "export_chosen", "measure_latency", "specialize_exits",
           "specialize_exits_checkpoint", "split_halves"]
