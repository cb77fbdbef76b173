"""Specialise a trained supernet for one or more devices and latency budgets.

    ofa-specialize --supernet runs/mbv3-small-digits/final.pt \
        --device cpu-ort --latency-ms 0.3 --device fpga-scalesim --latency-ms 3 --out deploy/digits

fits what it is not given: a latency predictor per device from the shipped
profile of the supernet's space, and an accuracy predictor from
``--eval-archs`` evaluated subnets (both saved under ``--out/predictors/``).
The accuracy predictor must pass the trust rule of ``predictors.trust``
(held-out Spearman >= 0.5, RMSE <= 0.9 x the spread of its target; see
``--min-rank-correlation``, ``--max-rmse-ratio``, ``--accept-untrusted-predictor``).
With your own predictors:

    ofa-specialize --supernet runs/mbv3-small-digits/final.pt \\
        --accuracy-predictor runs/qs/predictors/top1.skops \\
        --latency-predictor runs/qs/predictors/cpu-ort.skops --latency-predictor runs/qs/predictors/fpga.skops \\
        --device cpu-ort --latency-ms 0.8 --device fpga-scalesim --latency-ms 0.05 --out deploy/digits

Each ``--device NAME --latency-ms X`` pair is one target (NAME is the backend
of a latency predictor's profile, e.g. ``cpu-ort``, or its device id); a
device may appear with several budgets. ``--joint`` instead finds one subnet
that meets every budget at once. ``--max-macs`` / ``--max-params`` add budgets
to every target.

For each target, ``--out/<device>-<budget>ms/`` receives ``arch.json``,
``model.pt`` (weights, BN re-calibrated), ``model.onnx`` (parity-checked),
``pareto_<device>.png`` (the chosen point marked), ``result.json`` and
``report.md``; ``--out/summary.md`` tabulates all targets. Latency is measured
on the real backend where it runs here (``--no-measure`` skips it) and
accuracy on the validation split of the training data set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


from ofa.cli import run_command
from ofa.errors import ConfigError, PredictorError
from ofa.validation import (ArgumentParser, check_input_file, check_output_path, float_between, non_negative_int,
                            positive_float, positive_int)


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--supernet", required=True, help="supernet checkpoint (final.pt of train_supernet.py)")
    p.add_argument("--accuracy-predictor",
                   help="accuracy (top1) or loss predictor (.skops); default: evaluate --eval-archs random "
                        "subnets of the supernet (BN re-calibrated) and fit one")
    p.add_argument("--eval-archs", type=positive_int, default=60,
                   help="random subnets to evaluate when no --accuracy-predictor is given")
    p.add_argument("--latency-predictor", action="append", default=[],
                   help="latency predictor of a device (.skops); repeat for several devices. A device without "
                        "one gets a predictor fitted on the shipped profile of the supernet's space, if any")
    p.add_argument("--device", action="append", default=[], required=True, help="target device (repeatable)")
    p.add_argument("--latency-ms", action="append", type=positive_float, default=[],
                   help="latency budget of the --device at the same position (repeatable)")
    p.add_argument("--joint", action="store_true", help="one subnet meeting every budget at once")
    p.add_argument("--max-macs", type=positive_float, help="MACs budget for every target")
    p.add_argument("--max-params", type=positive_float, help="parameter budget for every target")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--strategy", choices=("evolution", "differentiable"), default="evolution",
                   help="how to search: evolution on the predictors (default), or differentiable search on the "
                        "supernet with the expected latency as a cost (docs/search.md); either pick is verified")
    p.add_argument("--diff-mode", choices=("frozen", "darts", "yoso"), default=None,
                   help="differentiable: architecture parameters on the frozen supernet (frozen, default), DARTS "
                        "alternating weights and architecture (darts), or YOSO scale factors with L1 (yoso)")
    p.add_argument("--diff-steps", type=positive_int, default=None, help="differentiable: optimisation steps")
    p.add_argument("--diff-order", type=int, choices=(1, 2), default=None,
                   help="differentiable, darts: 1 first order, 2 the unrolled second-order approximation")
    p.add_argument("--diff-budget", choices=("target", "lagrange", "penalty"), default=None,
                   help="differentiable: the expected latency pulled to the budget (target, default), kept under it "
                        "by a Lagrange multiplier (lagrange), or penalised (penalty); every pick meets the budget")
    p.add_argument("--diff-batch-size", type=positive_int, default=None, help="differentiable: images per step")
    p.add_argument("--diff-resolution", choices=("expected", "sample", "mix"), default=None,
                   help="differentiable: every resolution run and the loss's expectation over them (expected, "
                        "default), one resolution drawn per step (sample: cheaper, a weaker signal), or logits mixed")
    p.add_argument("--population", type=positive_int, default=100)
    p.add_argument("--generations", type=positive_int, default=500)
    p.add_argument("--pareto-generations", type=positive_int, default=100, help="NSGA-II generations of the Pareto plot")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--nearest", action="store_true",
                   help="on an infeasible budget, deploy the closest subnet instead of failing")
    p.add_argument("--data", help="data set (default: the one the supernet was trained on)")
    p.add_argument("--calib-images", type=positive_int, default=2000, help="BN re-calibration images")
    p.add_argument("--no-measure", action="store_true", help="do not measure latency on the real backends")
    p.add_argument("--ncnn", action="store_true", help="also convert each subnet to ncnn")
    p.add_argument("--int8", action="store_true", help="also quantise each subnet to INT8 and compare with FP32")
    p.add_argument("--latency-confidence", type=float_between(0.5, 1), default=None,
                   help="keep the latency predictor's upper bound at this confidence (0.5-1, e.g. 0.9) under the "
                        "budget instead of its point prediction, which the search leaves right at the budget")
    p.add_argument("--max-rounds", type=positive_int, default=3,
                   help="closed loop: searches per target at most; after an over-budget pick, measure the candidates "
                        "nearest the budget, recalibrate the latency predictor and search again (simulators: up to "
                        "10 rounds, then the smallest subnet; they never return an over-budget pick)")
    p.add_argument("--measurements-per-round", type=positive_int, default=4,
                   help="closed loop: candidates measured per device after an over-budget pick")
    p.add_argument("--finetune-epochs", type=non_negative_int, default=0,
                   help="train each pick this many epochs more on its own, distilled from the supernet's largest "
                        "subnet, and deploy those weights (image supernets; resumable); the report gives the "
                        "inherited and the fine-tuned accuracy and the extra time. Default 0: inherited weights")
    p.add_argument("--allow-over-budget", action="store_true",
                   help="exit 0 even when a pick still measures over its budget after the closed loop (it is "
                        "written and reported OVER BUDGET either way); without it the exit status is 3")
    p.add_argument("--show-range", action="store_true",
                   help="print each --device's feasible latency range (smallest and largest subnet, predicted "
                        "with interval) and exit; --latency-ms may then be left out")
    p.add_argument("--strict", action="store_true",
                   help="kept for old scripts: an over-budget pick exits with status 3 by default now")
    p.add_argument("--accept-untrusted-predictor", action="store_true",
                   help="use an accuracy predictor that fails the trust rule (predictors.trust: held-out Spearman "
                        "below --min-rank-correlation, or RMSE above --max-rmse-ratio x the target's spread)")
    # defaults (None) are the trust rule's, read in trust_rule(): importing predictors here would cost --help seconds
    p.add_argument("--min-rank-correlation", type=float_between(-1, 1, closed=True), default=None,
                   help="smallest held-out Spearman correlation of the accuracy predictor accepted, from -1 to 1 "
                        "(default 0.5, predictors.trust.DEFAULT_MIN_SPEARMAN)")
    p.add_argument("--max-rmse-ratio", type=positive_float, default=None,
                   help="largest held-out RMSE of the accuracy predictor accepted, as a multiple of the standard "
                        "deviation of its target (default 0.9, predictors.trust.DEFAULT_MAX_RMSE_RATIO; 1.0 is "
                        "what predicting the mean achieves)")
    return p.parse_args(argv)


def fit_shipped_latency_predictor(space, device: str, out_dir: Path) -> Path:
    """A latency predictor for ``device`` fitted on shipped data: the shipped network
    profile of ``space``, else a shipped block profile holding most of its blocks
    (:func:`ofa_pipeline.shipped.shipped_latency_predictor`, which prints what it reused)."""
    from ofa_pipeline.shipped import shipped_latency_predictor

    path, _ = shipped_latency_predictor(space, device, out_dir, log=print)
    return path


def fit_default_accuracy_predictor(args, supernet, data, out_dir: Path) -> Path:
    """Evaluate the largest, the smallest and ``--eval-archs`` random subnets (BN re-calibrated,
    through the model family's evaluator, in this process) and fit a top-1 predictor on them."""
    from ofa.families import get_family
    from ofa_pipeline.evaluate import evaluate_subnets, subnets_to_evaluate
    from predictors import fit_accuracy_predictor

    space = supernet.space
    if get_family(space).accuracy_target != "top1":
        raise ConfigError("pass --accuracy-predictor for this supernet (for Transformers: a validation-loss "
                          "predictor, see the README)")
    evaluations = out_dir / "evaluations.jsonl"
    archs = subnets_to_evaluate(space, args.eval_archs, args.seed)
    print(f"evaluating {len(archs)} subnets for the accuracy predictor -> {evaluations}")
    evaluate_subnets(supernet, data, archs, evaluations, calib_images=args.calib_images)
    path = out_dir / "accuracy.skops"
    fit_accuracy_predictor(evaluations, space, target="top1").save(path)
    return path


def check_accuracy_predictor(args, accuracy) -> None:
    """The accuracy predictor predicts accuracy or loss and ranks subnets usefully."""
    from predictors import AccuracyPredictor

    if not isinstance(accuracy, AccuracyPredictor):
        device = getattr(accuracy, "device", "?")
        raise PredictorError(f"--accuracy-predictor {args.accuracy_predictor} is a {accuracy.kind} predictor "
                             f"(target {accuracy.target!r}, device {device!r}); it must predict accuracy "
                             f"(top1) or loss: fit one with ofa-fit-predictor --evaluations")
    trust_rule(args).check(accuracy, name=f"--accuracy-predictor {args.accuracy_predictor}",
                           way_out="pass --accept-untrusted-predictor to use it anyway")


def trust_rule(args):
    """The trust rule with the command's thresholds (the rule's own defaults where none is given)."""
    from predictors.trust import TrustRule

    defaults = TrustRule()
    return TrustRule(defaults.min_spearman if args.min_rank_correlation is None else args.min_rank_correlation,
                     defaults.max_rmse_ratio if args.max_rmse_ratio is None else args.max_rmse_ratio,
                     args.accept_untrusted_predictor)


def check_latency_predictors(args, latency, paths: list[str]) -> None:
    """Each latency predictor predicts latency of one of the --device targets."""
    from predictors import LatencyPredictor

    for path, predictor in zip(paths, latency):
        if not isinstance(predictor, LatencyPredictor):
            raise PredictorError(f"--latency-predictor {path} is an {predictor.kind} predictor (target "
                                 f"{predictor.target!r}); it must predict a device's latency: fit one with "
                                 f"ofa-fit-predictor --profile")
        names = {predictor.device, predictor.profile_header.get("backend")} - {None}
        if not names & set(args.device):
            raise PredictorError(f"--latency-predictor {path} predicts latency on device {predictor.device!r} "
                                 f"(backend {predictor.profile_header.get('backend')!r}), which is none of the "
                                 f"--device targets {sorted(set(args.device))}: pass the predictor of that "
                                 f"device, or name its device with --device")


def check_paths(args) -> None:
    """Inputs exist and are what they should be; --out is a writable directory that is none of them."""
    check_input_file(args.supernet, "--supernet", kinds=("checkpoint",))
    inputs = [("the --supernet checkpoint", args.supernet)]
    if args.accuracy_predictor is not None:
        check_input_file(args.accuracy_predictor, "--accuracy-predictor", kinds=("predictor",))
        inputs.append(("the --accuracy-predictor", args.accuracy_predictor))
    for path in args.latency_predictor:
        check_input_file(path, "--latency-predictor", kinds=("predictor",))
        inputs.append(("a --latency-predictor", path))
    check_output_path(args.out, inputs, kind="dir", name="--out")
    if args.show_range and not args.latency_ms:
        args.latency_ms = [None] * len(args.device)
    if len(args.device) != len(args.latency_ms):
        raise ConfigError(f"give one --latency-ms per --device: got {len(args.device)} devices and "
                          f"{len(args.latency_ms)} budgets")
    from ofa_pipeline.specialize import check_latency_confidence

    check_latency_confidence(args.latency_confidence)
    args.differentiable = differentiable_options(args)


def differentiable_options(args) -> dict | None:
    """The --diff-* options as a dict; refused unless --strategy differentiable."""
    keys = ("mode", "steps", "order", "budget", "batch_size", "resolution")
    options = {key: getattr(args, f"diff_{key}") for key in keys if getattr(args, f"diff_{key}", None) is not None}
    if options and args.strategy != "differentiable":
        flags = ", ".join(f"--diff-{k.replace('_', '-')}" for k in options)
        raise ConfigError(f"{flags} only apply to --strategy differentiable (the strategy is {args.strategy})")
    if args.strategy != "differentiable":
        return None
    from ofa.search.differentiable import DifferentiableConfig

    DifferentiableConfig.from_dict(options)
    return options


def run(args) -> list[dict]:
    from ofa_pipeline.deploy import checkpoint_data
    from ofa_pipeline.specialize import (SpecializeConfig, Target, check_strategy, specialize, specialize_provenance,
                                         summary_table)
    from ofa.training import load_supernet
    from predictors import load_predictor

    check_paths(args)
    pairs = list(zip(args.device, args.latency_ms))
    targets = [Target(tuple(pairs))] if args.joint else [Target((pair,)) for pair in pairs]
    supernet = load_supernet(args.supernet)
    check_strategy(args.strategy, supernet.space)  # before any predictor is fitted or subnet evaluated
    made = Path(args.out) / "predictors"
    given_accuracy = args.accuracy_predictor is not None
    latency = [load_predictor(path, space=supernet.space) for path in args.latency_predictor]
    check_latency_predictors(args, latency, list(args.latency_predictor))
    if args.show_range:
        return show_ranges(args, supernet.space, latency, made)
    if given_accuracy:
        accuracy = load_predictor(args.accuracy_predictor, space=supernet.space)
        check_accuracy_predictor(args, accuracy)
        data = checkpoint_data(args.supernet, args.data)
    else:
        data = checkpoint_data(args.supernet, args.data)
        args.accuracy_predictor = str(fit_default_accuracy_predictor(args, supernet, data, made))
        accuracy = load_predictor(args.accuracy_predictor, space=supernet.space)
    add_shipped_predictors(args, supernet.space, latency, made)
    provenance = specialize_provenance(args.supernet, args.accuracy_predictor, args.latency_predictor, args.data,
                                       args.calib_images)
    config = SpecializeConfig(
        max_macs=args.max_macs, max_params=args.max_params, strategy=args.strategy, population=args.population,
        generations=args.generations, differentiable=args.differentiable,
        on_infeasible="nearest" if args.nearest else "raise", seed=args.seed,
        pareto_generations=args.pareto_generations, latency_confidence=args.latency_confidence,
        measure=not args.no_measure, max_rounds=args.max_rounds, measurements_per_round=args.measurements_per_round,
        calib_images=args.calib_images, ncnn=args.ncnn, int8=args.int8, finetune_epochs=args.finetune_epochs,
        finetune_train=checkpoint_training(args.supernet) if args.finetune_epochs else None,
        trust=trust_rule(args), provenance=provenance)
    rows = specialize(supernet, accuracy, latency, targets, args.out, data=data, config=config)
    print(summary_table(rows))
    print(f"results: {Path(args.out) / 'summary.md'}")
    missed = [f"{row['target']} on {d['device']}: measured {d['measured_latency_ms']:.3f} ms > budget "
              f"{d['budget_ms']:g} ms" for row in rows for d in row["devices"]
              if d.get("measured_latency_ms") is not None and d["measured_latency_ms"] > d["budget_ms"]]
    for line in missed:
        print(f"WARNING: over budget: {line}", file=sys.stderr)
    for row in rows:
        if row.get("int8") and row.get("fp32") and row["int8"].get("latency_ms", 0) > row["fp32"].get("latency_ms", 0):
            print(f"WARNING: {row['target']}: INT8 is slower than FP32 ({row['int8']['latency_ms']:.3f} ms vs "
                  f"{row['fp32']['latency_ms']:.3f} ms)", file=sys.stderr)
    args.missed_budgets = missed
    return rows


def checkpoint_training(path: str) -> dict:
    """The ``train`` section of the config a supernet checkpoint was trained with (batch size, optimizer, ...)."""
    from ofa.training.checkpoint import load_checkpoint

    return dict(load_checkpoint(path)["config"].get("train", {}))


def add_shipped_predictors(args, space, latency: list, made: Path) -> None:
    """A latency predictor fitted on shipped data for every --device without one."""
    covered = {name for predictor in latency
               for name in (predictor.device, predictor.profile_header.get("backend"))}
    from predictors import load_predictor

    for device in dict.fromkeys(args.device):
        if device not in covered:
            path = fit_shipped_latency_predictor(space, device, made)
            args.latency_predictor.append(str(path))
            latency.append(load_predictor(path, space=space))
            check_shipped_intervals(args, latency[-1])


def check_shipped_intervals(args, predictor) -> None:
    """--latency-confidence needs intervals; say why a predictor fitted on shipped blocks has none."""
    note = (predictor.metrics_.get("shipped") or {}).get("intervals_note")
    if args.latency_confidence is not None and predictor.interval_residuals_ is None and note:
        raise PredictorError(f"--latency-confidence {args.latency_confidence}: the {predictor.device!r} latency "
                             f"predictor fitted on shipped data cannot bound latency: {note}; or leave out "
                             f"--latency-confidence to search on its point predictions")


def show_ranges(args, space, latency: list, made: Path) -> list:
    """``--show-range``: each device's feasible latency range, nothing searched."""
    from ofa_pipeline.specialize import describe_range, feasible_range, predictor_for

    add_shipped_predictors(args, space, latency, made)
    ranges = []
    for device in dict.fromkeys(args.device):
        entry = feasible_range(space, predictor_for(device, latency), args.latency_confidence)
        print(describe_range(device, entry))
        ranges.append(entry)
    return ranges


def main(argv=None) -> int:
    from ofa.errors import OverBudgetError

    args = parse_args(argv)
    status = run_command(run, args)
    if status == 0 and getattr(args, "missed_budgets", None) and not args.allow_over_budget:
        error = OverBudgetError(f"{len(args.missed_budgets)} pick(s) still measured over budget after the closed "
                                f"loop (written and reported OVER BUDGET): " + "; ".join(args.missed_budgets)
                                + ". Raise the budget, allow more --max-rounds, or pass --allow-over-budget")
        print(f"error: {error}", file=sys.stderr)
        return 3
    return status


if __name__ == "__main__":
    sys.exit(main())
