"""Specialise one trained supernet for several devices: search, extract,
re-calibrate, export, verify, report.

For every target (a device and its latency budget) :func:`specialize`

1. finds the subnet of highest predicted accuracy (or lowest predicted loss)
   under the budget, plus any MACs / parameter budgets, with
   :func:`~ofa.search.evolution_search` (``joint=True``: one subnet meeting
   every device's budget at once), or with ``strategy="differentiable"`` by
   gradient on the supernet with the expected latency as a cost
   (:func:`~ofa.search.differentiable.differentiable_search`);
2. extracts it, re-calibrates its BatchNorm statistics, saves its weights and
   a parity-checked ONNX file (:func:`~ofa_pipeline.deploy.deploy_subnet`);
3. measures its latency on the real backend where that backend runs here, and
   its accuracy (and loyalty to the largest subnet) on the validation split;
4. computes the device's accuracy/latency Pareto front with NSGA-II and plots
   it with the chosen point marked;
5. writes ``arch.json``, ``result.json`` and a short ``report.md``.

A target whose ``result.json`` already holds the same settings is not
recomputed, so a killed run continues where it stopped.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ofa.families import get_family
from ofa.errors import BackendUnavailableError, ConfigError, OFAError, PredictorError
from ofa.io import atomic_write_json, atomic_write_text
from ofa.search.costs import cost_function
from ofa.search.evolution import evolution_search
from ofa.search.pareto import ParetoFront, ParetoProblem, random_front
from ofa.search.problem import Constraint, Objective, SearchProblem

from predictors.trust import TrustRule, held_out_metrics

from .closed_loop import IMPLAUSIBLE_MS, Verifier, backend_for, closed_loop_search, positive_latency  # noqa: F401


@dataclass(frozen=True)
class Target:
    """One deployment: ``latency_ms`` budgets on one device (or, joint, on several)."""

    budgets: tuple[tuple[str, float], ...]  # (device, latency budget in ms)

    @property
    def name(self) -> str:
        return "+".join(f"{_slug(device)}-{budget:g}ms" for device, budget in self.budgets)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def predictor_for(device: str, predictors) -> object:
    """The latency predictor of ``device``: its device id, or the backend of its profile."""
    matches = [p for p in predictors if device in (p.device, p.profile_header.get("backend"))]
    if len(matches) != 1:
        known = [f"{p.device} ({p.profile_header.get('backend', '?')})" for p in predictors]
        what = "no" if not matches else "more than one"
        raise ConfigError(f"{what} latency predictor for device {device!r}; the predictors given are for: {known}. "
                          f"Pass one --latency-predictor per --device")
    return matches[0]


def check_latency_confidence(confidence: float | None, latency_predictors=()) -> None:
    """``confidence`` is None or in (0.5, 1), and every predictor can give the bound."""
    if confidence is None:
        return
    if not 0.5 < confidence < 1:
        raise ConfigError(f"latency confidence must be between 0.5 and 1 (e.g. 0.9: the budget holds on 9 of 10 "
                          f"held-out measurements), got {confidence}")
    for predictor in latency_predictors:
        if getattr(predictor, "interval_residuals_", None) is None:
            raise PredictorError(f"the {predictor.device!r} latency predictor has no held-out residuals, so it "
                                 f"cannot bound latency at confidence {confidence}: refit it with "
                                 f"ofa-fit-predictor, or search on point predictions")


def accuracy_objective(predictor) -> Objective:
    """Maximise predicted top-1, or minimise predicted loss."""
    target = getattr(predictor, "target", "top1")
    return Objective(target, predictor.predict_genes, maximize=target != "loss")


def stated_error(predictor) -> float | None:
    """What the accuracy predictor says its error is: the RMSE on architectures
    it was not fitted on (a separate test split first, else cross-validation);
    None where it recorded none."""
    try:
        held = held_out_metrics(predictor)
    except PredictorError:  # a predictor without recorded metrics states no error
        return None
    for key in ("test_rmse", "rmse"):
        value = held.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
    return None


def cost_constraints(space, max_macs: float | None = None, max_params: float | None = None) -> list[Constraint]:
    out = []
    if max_macs is not None:
        out.append(Constraint("macs", cost_function(space, "macs"), float(max_macs)))
    if max_params is not None:
        out.append(Constraint("params", cost_function(space, "params"), float(max_params)))
    return out


def feasible_range(space, predictor, confidence: float | None = None, coverage: float = 0.8) -> dict:
    """The latency range a device offers: the smallest and the largest subnet's
    predicted latency with the predictor's interval (where it has one) and the
    value the search would hold under the budget (the bound at ``confidence``).
    A budget below the smallest subnet's searched value has no subnet."""
    out = {"device": predictor.device, "label": predictor.label.name}
    for name, arch in (("smallest", space.smallest()), ("largest", space.largest())):
        genes = space.to_genes(arch)
        entry = {"predicted_ms": float(positive_latency(predictor)(genes)[0]),
                 "searched_ms": float(positive_latency(predictor, confidence)(genes)[0])}
        if getattr(predictor, "interval_residuals_", None) is not None:
            low, high = predictor.predict_interval_genes(genes, coverage)
            entry["interval_ms"] = [float(low[0]), float(high[0])]
            entry["interval_coverage"] = coverage
        out[name] = entry
    return out


def describe_range(device: str, entry: dict) -> str:
    def cell(e):
        text = f"{e['predicted_ms']:.4g} ms"
        if "interval_ms" in e:
            text += f" ({e['interval_coverage']:.0%} interval {e['interval_ms'][0]:.4g}-{e['interval_ms'][1]:.4g})"
        return text
    return (f"{device}: feasible budgets from {entry['smallest']['searched_ms']:.4g} ms (smallest subnet "
            f"{cell(entry['smallest'])}) up to {entry['largest']['searched_ms']:.4g} ms (largest subnet "
            f"{cell(entry['largest'])}); label {entry['label']}")


def pareto_front(space, accuracy, latency, constraints, population: int, generations: int, seed: int) -> ParetoFront:
    """Accuracy vs latency front of one device: NSGA-II, or random search without pymoo."""
    problem = ParetoProblem(space, [accuracy_objective(accuracy),
                                    Objective(f"latency_ms@{latency.device}", positive_latency(latency),
                                              maximize=False)], constraints)
    try:
        from ofa.search.nsga2 import nsga2_search

        front = nsga2_search(problem, population, generations, seed=seed, on_infeasible="nearest")
    except BackendUnavailableError:
        front = random_front(problem, population * (generations + 1), seed, on_infeasible="nearest")
    plausible = front.values[:, 1] < IMPLAUSIBLE_MS
    front.genes, front.values = front.genes[plausible], front.values[plausible]
    return front


def plot_front(path: Path, front: ParetoFront, cloud: tuple[np.ndarray, np.ndarray], chosen: dict,
               budget: float, device: str) -> None:
    """Accuracy vs predicted latency: random subnets, the Pareto front, the
    budget and the chosen subnet (predicted, and measured where available)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ofa.io import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(6, 4.2))
    plausible = cloud[1] < IMPLAUSIBLE_MS
    ax.scatter(cloud[1][plausible], cloud[0][plausible], s=6, c="#bbbbbb", label="random subnets (predicted)")
    ax.plot(front.values[:, 1], front.values[:, 0], "-o", ms=3, c="#1f77b4", label=f"Pareto front ({front.method})")
    ax.axvline(budget, ls="--", c="#d62728", label=f"budget {budget:g} ms")
    ax.scatter([chosen["predicted_latency_ms"]], [chosen["predicted_objective"]], marker="*", s=220, c="#ff7f0e",
               edgecolors="k", zorder=5, label="chosen (predicted)")
    if chosen.get("measured_latency_ms") is not None:
        ax.scatter([chosen["measured_latency_ms"]], [chosen["predicted_objective"]], marker="x", s=80, c="k",
                   zorder=5, label="chosen (measured latency)")
    ax.set_xlabel(f"latency on {device} (ms)")
    ax.set_ylabel(f"predicted {front.names[0]}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


STRATEGIES = ("evolution", "differentiable")


def check_strategy(strategy: str, space) -> None:
    """``strategy`` is known and can search ``space`` (before any predictor is fitted or subnet evaluated)."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"search strategy {strategy!r} unknown; allowed: {STRATEGIES}")
    if strategy != "differentiable":
        return
    family = get_family(space)
    if not family.can_search_relaxed:
        raise ConfigError(f"the differentiable strategy is implemented for mobilenetv3 supernets, not "
                          f"{family.name!r} ones; use --strategy evolution (strategy='evolution')")
    if getattr(space, "has_precision", False):
        from ofa.search.differentiable import PRECISION_NOT_RELAXED

        raise ConfigError(PRECISION_NOT_RELAXED)
    if space.additive_layout() is None:
        raise ConfigError(f"the differentiable strategy needs a space with additive cost tables; this "
                          f"{space.type_name} space has none: use --strategy evolution (strategy='evolution')")


class SearchStrategy:
    """How :func:`specialize` searches: evolution, or differentiable search (checked before any work)."""

    def __init__(self, name: str, options: dict | None, supernet, data, seed: int, latency_predictors, log):
        check_strategy(name, supernet.space)
        if options is not None and not isinstance(options, dict):
            raise ConfigError(f"differentiable options must be a dict of DifferentiableConfig fields, got "
                              f"{type(options).__name__}")
        if options and name != "differentiable":
            raise ConfigError("differentiable search options were given with the evolution strategy; pass "
                              "strategy='differentiable' (--strategy differentiable) or leave them out")
        self.name, self.options, self.log = name, dict(options or {}), log
        self.relaxed: dict = {}
        if name == "differentiable":
            from ofa.search.differentiable import DifferentiableConfig

            self.config = DifferentiableConfig.from_dict(self.options)
            self.task = get_family(supernet.space).relaxed_task(supernet, data, self.config.batch_size, seed)
            for predictor in latency_predictors:  # a space without additive tables fails here, before any work
                self.relaxation(predictor)
        self.seed = seed

    def settings(self) -> dict:
        if self.name == "evolution":  # results stored before the option existed stay reusable
            return {}
        return {"strategy": self.name, "differentiable": self.options}

    def relaxation(self, predictor):
        from predictors.relaxed import relaxed_latency

        key = id(predictor)
        if key not in self.relaxed:
            relaxation = relaxed_latency(predictor)
            if not relaxation.exact:
                self.log(f"{predictor.device}: no block-sum predictor, the latency term is an additive surrogate "
                         f"of it ({relaxation.report.get('test_mape_percent')}% mean error on random subnets)")
            self.relaxed[key] = relaxation
        return self.relaxed[key]

    def search(self, problem: SearchProblem, predictors, on_infeasible: str):
        from ofa.search.differentiable import differentiable_search
        from ofa.search.relaxation import cost_relaxation

        relaxations = {f"latency_ms@{device}": self.relaxation(predictor) for device, _, predictor in predictors}
        for constraint in problem.constraints:
            if constraint.name in ("macs", "params"):
                relaxations[constraint.name] = cost_relaxation(problem.space, constraint.name)
        return differentiable_search(problem, self.task, relaxations, self.config, seed=self.seed,
                                     on_infeasible=on_infeasible, log=self.log)


@dataclass(frozen=True)
class SpecializeConfig:
    """How :func:`specialize` searches, verifies and deploys (every field has a working default).

    * budgets on every target: ``max_macs``, ``max_params``;
    * the search: ``strategy`` ``"evolution"`` (``population`` x ``generations``) or
      ``"differentiable"`` (``differentiable``: the options of
      :class:`~ofa.search.differentiable.DifferentiableConfig`, mode ``frozen``, ``darts`` or
      ``yoso``, steps, order, ...; it needs data); ``on_infeasible`` ``"raise"`` or ``"nearest"``;
      ``seed``; the Pareto plot's NSGA-II ``pareto_population`` x ``pareto_generations``;
    * latency: ``latency_confidence`` (e.g. 0.9) keeps each pick's latency bound under the budget,
      not its point prediction (:func:`positive_latency`); ``measure`` on the real backend where it
      runs here; the closed loop (:func:`~ofa_pipeline.closed_loop.closed_loop_search`) runs
      ``max_rounds`` searches at most, measuring ``measurements_per_round`` candidates after an
      over-budget pick (each row's ``verification``: ``"verified"``, ``"over-budget"`` or
      ``"not-verified"``);
    * deployment: ``calib_images`` for BN re-calibration, ``ncnn`` and ``int8`` exports;
      ``finetune_epochs`` > 0 trains each pick that many epochs more on its own, distilled from the
      largest subnet (``finetune_train``: the supernet run's training config; resumable), and
      deploys those weights;
    * ``trust``: the thresholds the accuracy predictor must pass (:class:`predictors.trust.TrustRule`);
    * ``provenance`` (file names, digests): stored with each result; it decides, with the rest,
      whether a finished target can be reused.
    """

    max_macs: float | None = None
    max_params: float | None = None
    strategy: str = "evolution"
    population: int = 100
    generations: int = 500
    differentiable: dict | None = None
    on_infeasible: str = "raise"
    seed: int = 0
    pareto_population: int = 100
    pareto_generations: int = 100
    latency_confidence: float | None = None
    measure: bool = True
    max_rounds: int = 3
    measurements_per_round: int = 4
    calib_images: int = 2000
    ncnn: bool = False
    int8: bool = False
    finetune_epochs: int = 0
    finetune_train: dict | None = None
    trust: TrustRule = field(default_factory=TrustRule)
    provenance: dict | None = None


def specialize(supernet, accuracy_predictor, latency_predictors: list, targets: list[Target], out_dir,
               data=None, config: SpecializeConfig | None = None, log=print, **options) -> list[dict]:
    """Run the whole specialisation for every target (see the module docstring), with the
    settings of ``config`` (:class:`SpecializeConfig`; ``options`` replace single fields of it,
    e.g. ``population=20``).

    ``data`` (:class:`ofa.data.DataSplits`) enables BN re-calibration and measured accuracy.
    Returns one summary row per target, also written to ``out_dir/summary.json``; a target whose
    ``result.json`` holds the same settings is reused. The accuracy predictor must pass
    ``config.trust`` (:func:`predictors.trust.check_trustworthy`), else
    :class:`~ofa.errors.PredictorError` before any search."""
    config = replace(config or SpecializeConfig(), **options)

    from .deploy import deploy_subnet

    space = supernet.space
    out_dir = Path(out_dir)
    for predictor in [accuracy_predictor, *latency_predictors]:
        space.check_fingerprint(predictor.space_fingerprint, f"predictor {getattr(predictor, 'target', '')!r}")
    check_latency_confidence(config.latency_confidence, latency_predictors)
    family = get_family(space)
    if config.finetune_epochs and not family.can_finetune:
        raise ConfigError(f"fine-tuning a specialised subnet is implemented for image (mobilenetv3) supernets, "
                          f"not {family.name!r} ones; run without --finetune-epochs")
    if config.finetune_epochs and not family.is_data(data):
        raise ConfigError("fine-tuning trains on the supernet's training images: it needs the data set (--data)")
    search_strategy = SearchStrategy(config.strategy, config.differentiable, supernet, data, config.seed,
                                     latency_predictors, log)
    config.trust.check(accuracy_predictor, name="the accuracy predictor",
                way_out="pass trust=TrustRule(accept_untrusted=True) in the config to use it anyway")
    objective = accuracy_objective(accuracy_predictor)
    extra = cost_constraints(space, config.max_macs, config.max_params)
    evaluator = None
    fronts: dict[str, tuple[ParetoFront, tuple]] = {}
    verifiers: dict[str, Verifier] = {}
    ranges: dict[str, dict] = {}
    rows = []
    for target in targets:
        directory = out_dir / target.name
        settings = {"budgets": [list(b) for b in target.budgets], "max_macs": config.max_macs,
                    "max_params": config.max_params, "population": config.population,
                    "generations": config.generations, "seed": config.seed, "ncnn": config.ncnn, "int8": config.int8,
                    "pareto": [config.pareto_population, config.pareto_generations], "measure": config.measure,
                    "provenance": config.provenance or {}, "latency_confidence": config.latency_confidence,
                    "closed_loop": [config.max_rounds, config.measurements_per_round],
                    "finetune_epochs": config.finetune_epochs}
        settings.update(search_strategy.settings())
        previous = directory / "result.json"
        if previous.is_file():
            stored = json.loads(previous.read_text())
            if stored.get("settings") == settings:
                log(f"[{target.name}] already done (same settings): {previous}")
                rows.append(stored["summary"])
                continue
        predictors = [(device, budget, predictor_for(device, latency_predictors)) for device, budget in target.budgets]
        for device, _, predictor in predictors:
            if device not in verifiers:
                verifiers[device] = Verifier(predictor, supernet, config.measure)
                ranges[device] = feasible_range(space, predictor, config.latency_confidence)
                log(describe_range(device, ranges[device]))

        def search(latency_functions, predictors=predictors):
            constraints = [Constraint(f"latency_ms@{device}", latency_functions[device], budget, "ms")
                           for device, budget, _ in predictors] + extra
            problem = SearchProblem(space, objective, constraints)
            if search_strategy.name == "differentiable":
                return search_strategy.search(problem, predictors, config.on_infeasible)
            return evolution_search(problem, config.population, config.generations, seed=config.seed,
                                    on_infeasible=config.on_infeasible)

        log(f"[{target.name}] searching, then verifying the pick")
        loop = closed_loop_search(space, search, predictors, verifiers, max_rounds=config.max_rounds,
                                  measurements_per_round=config.measurements_per_round,
                                  confidence=config.latency_confidence, objective=objective, seed=config.seed,
                                  nearest=config.on_infeasible == "nearest", log=log)
        result, arch = loop.result, loop.arch
        log(f"[{target.name}] {loop.status}: predicted {objective.name} {result.objective:.4g} "
            + ", ".join(f"{k} {v:.4g}" for k, v in result.constraints.items())
            + f" ({result.num_evaluations} evals per search, {len(loop.rounds)} round(s), "
              f"{loop.measurements} measurement(s))")
        static = finetune = None
        if config.finetune_epochs:
            log(f"[{target.name}] fine-tuning the pick {config.finetune_epochs} epoch(s), distilled from the largest "
                f"subnet")
            started = time.perf_counter()
            static = family.finetune(supernet, arch, data, config.finetune_epochs, directory / "finetune.ckpt",
                                     config.calib_images, train=config.finetune_train)
            finetune = {"epochs": config.finetune_epochs, "seconds": round(time.perf_counter() - started, 1)}
        static, deployment = deploy_subnet(supernet, arch, directory, "model", data=data,
                                           calib_images=config.calib_images, ncnn=config.ncnn, int8=config.int8,
                                           static=static)
        atomic_write_json(directory / "arch.json", arch.to_dict())

        devices = []
        genes = space.to_genes(arch)
        for device, budget, predictor in predictors:
            check = loop.checks[device]
            measured = check["measured_ms"]
            interval = (predictor.predict_interval_genes(genes, 0.8)
                        if getattr(predictor, "interval_residuals_", None) is not None else None)
            devices.append({"device": device, "device_id": predictor.device, "budget_ms": budget,
                            "predicted_latency_ms": float(positive_latency(predictor)(genes)[0]),
                            "latency_bound_ms": (
                                None if config.latency_confidence is None
                                else float(positive_latency(predictor, config.latency_confidence)(genes)[0])),
                            "latency_confidence": config.latency_confidence,
                            "interval_80_ms": None if interval is None else [float(interval[0][0]),
                                                                             float(interval[1][0])],
                            "label": predictor.label.name,
                            "measured_latency_ms": measured, "raw_measured_ms": check["raw_ms"],
                            "measurement": check["how"], "verified": check["verified"],
                            "over_budget": measured is not None and measured > budget,
                            "feasible_range": ranges[device]})
        accuracy = {}
        if data is not None:
            if evaluator is None:
                evaluator = validation_evaluator(supernet, data, config.calib_images)
            accuracy = evaluator(arch)
        if finetune is not None:  # the deployed weights are the fine-tuned ones; the inherited stay in the report
            tuned = family.evaluate_static(static, arch, data, "val")
            finetune.update(inherited_accuracy=accuracy["accuracy"], finetuned_accuracy=tuned["accuracy"],
                            gain=tuned["accuracy"] - accuracy["accuracy"])
            log(f"[{target.name}] fine-tuned in {finetune['seconds']:.0f} s: {family.accuracy_kind} "
                f"{accuracy['accuracy']:.2f} inherited -> {tuned['accuracy']:.2f}")
        cost = space.cost(arch)
        summary = {
            "target": target.name, "arch": arch.to_dict(), "arch_summary": arch_summary(arch),
            "predicted_objective": result.objective, "objective": objective.name, "feasible": result.feasible,
            "devices": devices, "macs": int(cost.macs), "params": int(cost.params),
            # the deployed weights' accuracy; the predictor's check below reads the inherited one it predicts
            "measured_accuracy": finetune["finetuned_accuracy"] if finetune else accuracy.get("accuracy"),
            "accuracy_kind": accuracy.get("kind"),
            "measured_loss": accuracy.get("loss"),
            "measured_objective": accuracy.get("loss" if objective.name == "loss" else "accuracy"),
            "predicted_objective_rmse": stated_error(accuracy_predictor),
            "label_loyalty": accuracy.get("label_loyalty"), "probability_loyalty": accuracy.get("probability_loyalty"),
            "onnx": deployment["onnx"], "onnx_parity_max_abs_diff": deployment["parity_max_abs_diff"],
            "verification": loop.status, "closed_loop": loop.to_dict(), "finetune": finetune,
        }
        if "precision" in deployment:
            summary["int8"] = deployment["precision"]["int8"]
            summary["fp32"] = deployment["precision"]["fp32"]
            summary["int8_slower_than_fp32"] = bool(summary["int8"]["latency_ms"] > summary["fp32"]["latency_ms"])
        summary["warnings"] = target_warnings(summary)

        for entry, (device, budget, predictor) in zip(devices, predictors):
            if device not in fronts:
                front = pareto_front(space, accuracy_predictor, predictor, extra, config.pareto_population,
                                     config.pareto_generations, config.seed)
                cloud_genes = space.sample_genes(1000, np.random.default_rng(config.seed))
                cloud = (accuracy_predictor.predict_genes(cloud_genes), positive_latency(predictor)(cloud_genes))
                fronts[device] = (front, cloud)
                atomic_write_json(out_dir / f"pareto_{_slug(device)}.json", front.to_records())
            front, cloud = fronts[device]
            plot = directory / f"pareto_{_slug(device)}.png"
            plot_front(plot, front, cloud, {**entry, "predicted_objective": result.objective}, budget, device)
            entry["pareto_plot"] = str(plot)
            entry["pareto_front_size"] = len(front)
        atomic_write_json(directory / "result.json", {"settings": settings, "summary": summary,
                                                      "search": result.to_dict(), "deployment": deployment})
        atomic_write_text(directory / "report.md", target_report(summary, deployment, result))
        rows.append(summary)
    atomic_write_json(out_dir / "summary.json", rows)
    atomic_write_text(out_dir / "summary.md", summary_table(rows) + "\n")
    for device, verifier in verifiers.items():
        verifier.close()
        try:  # the loop's measurements, for refitting; a failure here must not lose the results above
            verifier.save(out_dir / "measurements" / f"{_slug(device)}.jsonl")
        except OFAError as error:
            log(f"warning: the {device} measurements of the closed loop were not saved: {error}")
    return rows


def specialize_provenance(supernet_path, accuracy_predictor_path, latency_predictor_paths, data,
                          calib_images: int) -> dict:
    """What a specialisation was made from, for its outputs: a short digest of each input file, the
    data and the BatchNorm calibration size."""
    from ofa.io import file_digest

    def short(path) -> str:
        return file_digest(path)[:16]

    return {"supernet": short(supernet_path), "accuracy_predictor": short(accuracy_predictor_path),
            "latency_predictors": [short(p) for p in latency_predictor_paths], "data": data,
            "calib_images": calib_images}


def specialize_checkpoint(supernet_path, accuracy_predictor_path, latency_predictor_paths: list,
                          targets: list[Target], out_dir, *, data: str | None = None,
                          config: SpecializeConfig | None = None) -> list[dict]:
    """:func:`specialize` on saved files: the supernet checkpoint, its accuracy predictor and one
    latency predictor per device of the ``targets``, with the data it was trained on (``data``: another
    data set) and the files' digests recorded as the results' provenance. Returns the summary rows
    (also in ``out_dir/summary.json``)."""
    from ofa.training import load_supernet
    from ofa.validation import check_input_file, check_output_path
    from predictors import AccuracyPredictor, LatencyPredictor, load_predictor

    from .deploy import checkpoint_data

    config = config or SpecializeConfig()
    check_input_file(supernet_path, "the supernet", kinds=("checkpoint",))
    check_input_file(accuracy_predictor_path, "the accuracy predictor", kinds=("predictor",))
    for path in latency_predictor_paths:
        check_input_file(path, "a latency predictor", kinds=("predictor",))
    inputs = [("the supernet", supernet_path), ("the accuracy predictor", accuracy_predictor_path)] + [
        ("a latency predictor", path) for path in latency_predictor_paths]
    check_output_path(out_dir, inputs, kind="dir", name="the output directory")
    supernet = load_supernet(supernet_path)
    accuracy = load_predictor(accuracy_predictor_path, space=supernet.space)
    if not isinstance(accuracy, AccuracyPredictor):
        raise PredictorError(f"{accuracy_predictor_path} is a {accuracy.kind} predictor (target {accuracy.target!r}); "
                             f"the accuracy predictor must predict accuracy (top1) or loss")
    latency = [load_predictor(path, space=supernet.space) for path in latency_predictor_paths]
    for path, predictor in zip(latency_predictor_paths, latency):
        if not isinstance(predictor, LatencyPredictor):
            raise PredictorError(f"{path} is an {predictor.kind} predictor (target {predictor.target!r}); a latency "
                                 f"predictor must predict a device's latency")
    provenance = specialize_provenance(supernet_path, accuracy_predictor_path, latency_predictor_paths, data,
                                       config.calib_images)
    return specialize(supernet, accuracy, latency, targets, out_dir, data=checkpoint_data(supernet_path, data),
                      config=replace(config, provenance=provenance))


def validation_evaluator(supernet, data, calib_images: int = 2000, text_limit: int = 200):
    """``arch -> {"accuracy", "kind", "loss", "label_loyalty", "probability_loyalty"}`` on the
    validation split, loyalty (0..1) to the largest subnet, as the supernet's family evaluates
    (:meth:`ofa.families.ModelFamily.evaluator`: image top-1 with BN re-calibrated, or token
    accuracy and loss on ``text_limit`` validation sentences)."""
    return get_family(supernet.space).evaluator(supernet, data, "val", calib_images=calib_images, limit=text_limit)


def arch_summary(arch) -> str:
    """A one-line description: for MobileNetV3 resolution, depths, kernel and
    expand choices of the running blocks; for Transformers width x layers,
    FFN widths, heads (self+cross) and cross-attended encoder layers."""
    d = arch.to_dict()
    if {"kernel_sizes", "expand_ratios", "depths", "resolution"} <= set(d):
        used = [(k, e) for k, e in zip(d["kernel_sizes"], d["expand_ratios"]) if k is not None]
        kernels = "".join(str(k) for k, _ in used)
        expands = "".join(f"{e:g}" for _, e in used)
        return f"r{d['resolution']} d{''.join(map(str, d['depths']))} k{kernels} e{expands}"
    if "encoder_embed_dim" in d:  # Transformer: width x layers, FFN widths, heads per layer
        def join(values):
            return "/".join(str(v) for v in values)

        text = (f"enc {d['encoder_embed_dim']}x{d['encoder_layers']} ffn {join(d['encoder_ffn_dims'])} "
                f"h {join(d['encoder_heads'])}")
        if d.get("decoder_layers"):
            text += (f"; dec {d['decoder_embed_dim']}x{d['decoder_layers']} ffn {join(d['decoder_ffn_dims'])} "
                     f"h {join(d['decoder_self_heads'])}+{join(d['decoder_cross_heads'])} "
                     f"x {join(d['decoder_cross_layers'])}")
        return text
    return ", ".join(f"{k}={v}" for k, v in d.items() if k != "space")


def _fmt(value, spec=".3f", missing="-") -> str:
    return missing if value is None else format(value, spec)


def _measured_cell(device: dict) -> str:
    """The measured latency, marked when it is over the budget; why not, when it was not measured."""
    measured = device.get("measured_latency_ms")
    if measured is None:
        return "not verified"
    raw = device.get("raw_measured_ms")
    # the label's value (for a drift-corrected label: on the profile's scale) and the raw time at this host's speed
    suffix = f" (raw {raw:.3f})" if raw is not None and abs(raw - measured) > 5e-4 else ""
    if measured > device["budget_ms"]:
        return f"**{measured:.3f} OVER BUDGET**{suffix}"
    return _fmt(measured) + suffix


def _predicted_latency_cell(device: dict) -> str:
    """The point prediction, and the bound the search kept under the budget when it used one."""
    cell = f"{device['predicted_latency_ms']:.3f}"
    if device.get("latency_bound_ms") is not None:
        cell += f" (<= {device['latency_bound_ms']:.3f} at {device['latency_confidence']:.0%})"
    return cell


def _error_cell(row: dict) -> str:
    rmse = row.get("predicted_objective_rmse")
    return "" if rmse is None else f" ± {rmse:.2g}"


def _fine_tuning_text(tuned: dict) -> str:
    return (f"{tuned['epochs']} epoch(s) distilled from the largest subnet, {tuned['seconds']:.0f} s; "
            f"inherited {tuned['inherited_accuracy']:.2f} %, {tuned['gain']:+.2f} points")


def _accuracy_cell(row: dict) -> str:
    tuned = row.get("finetune")
    if not tuned or row["measured_accuracy"] is None:
        return _fmt(row["measured_accuracy"], ".2f")
    return (f"{row['measured_accuracy']:.2f} (fine-tuned {tuned['epochs']} ep., {tuned['seconds']:.0f} s; "
            f"inherited {tuned['inherited_accuracy']:.2f})")


def summary_table(rows: list[dict]) -> str:
    """Markdown table: device, budget, architecture, predicted/measured latency, accuracy, loyalty."""
    lines = ["| device | budget (ms) | architecture | predicted latency (ms) | measured latency (ms) | closed loop | "
             "predicted | measured accuracy (%) | label loyalty | prob. loyalty |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        loop = row.get("closed_loop") or {}
        loop_cell = (f"{row.get('verification', '-')}, {len(loop.get('rounds', []))} round(s), "
                     f"{loop.get('measurements', 0)} measured") if loop else "-"
        for device in row["devices"]:
            lines.append(
                f"| {device['device']} | {device['budget_ms']:g} | `{row['arch_summary']}` | "
                f"{_predicted_latency_cell(device)} | {_measured_cell(device)} | {loop_cell} | "
                f"{row['objective']} {row['predicted_objective']:.3f}{_error_cell(row)} | "
                f"{_accuracy_cell(row)} | "
                f"{_fmt(row['label_loyalty'], '.3f')} | {_fmt(row['probability_loyalty'], '.3f')} |")
    warnings = [f"**WARNING ({row['target']}): {w}**" for row in rows for w in target_warnings(row)]
    return "\n".join(lines + ([""] + warnings if warnings else []))


def target_warnings(summary: dict) -> list[str]:
    """What a reader must not miss: a measured latency over its budget, a measured accuracy
    further from the prediction than the predictor's stated error allows, INT8 slower than FP32."""
    rounds = len(summary.get("closed_loop", {}).get("rounds", []))
    warnings = [f"OVER BUDGET on {d['device']}: measured {d['measured_latency_ms']:.3f} ms > budget "
                f"{d['budget_ms']:g} ms (predicted {d['predicted_latency_ms']:.3f} ms"
                + (f"; still over after {rounds} closed-loop round(s): the best pick found" if rounds else "") + ")"
                for d in summary["devices"]
                if d.get("measured_latency_ms") is not None and d["measured_latency_ms"] > d["budget_ms"]]
    warnings += [f"PREDICTED, NOT VERIFIED on {d['device']}: {d.get('measurement', '')}"
                 + (f"; 80% interval {d['interval_80_ms'][0]:.3f}-{d['interval_80_ms'][1]:.3f} ms"
                    if d.get("interval_80_ms") else "")
                 for d in summary["devices"] if d.get("measured_latency_ms") is None
                 and "--no-measure" not in str(d.get("measurement", ""))]
    rmse, measured = summary.get("predicted_objective_rmse"), summary.get("measured_objective")
    if rmse is not None and measured is not None and abs(measured - summary["predicted_objective"]) > 2 * rmse:
        warnings.append(f"{summary['objective'].upper()} OUTSIDE THE PREDICTOR'S ERROR: measured {measured:.4g}, "
                        f"predicted {summary['predicted_objective']:.4g} with held-out RMSE {rmse:.2g} "
                        f"(more than 2 RMSE apart): refit the accuracy predictor with more evaluated subnets")
    if summary.get("int8") and summary.get("fp32") and summary["int8"]["latency_ms"] > summary["fp32"]["latency_ms"]:
        warnings.append(f"INT8 IS SLOWER than FP32: {summary['int8']['latency_ms']:.3f} ms vs "
                        f"{summary['fp32']['latency_ms']:.3f} ms (onnxruntime, 1 thread): deploy FP32")
    return warnings


def loop_rounds_table(summary: dict) -> list[str]:
    """Markdown lines: predicted, searched and measured latency of each closed-loop round's pick."""
    loop = summary.get("closed_loop") or {}
    lines = [f"Closed loop: **{summary.get('verification', 'not-verified')}** after {len(loop.get('rounds', []))} "
             f"round(s), {loop.get('measurements', 0)} measurement(s) (label of each device's predictor).", "",
             "| round | device | budget (ms) | predicted (ms) | searched (ms) | measured (ms) | recalibration |",
             "|---|---|---|---|---|---|---|"]
    for entry in loop.get("rounds", []):
        for device, d in entry["devices"].items():
            measured = "-" if d.get("measured_ms") is None else f"{d['measured_ms']:.4g}"
            scale = f"x{d['scale']:.3f}" + (f" -> x{d['scale_after']:.3f} ({d.get('candidates_measured', 0)} "
                                             f"candidates measured)" if d.get("scale_after", d["scale"]) != d["scale"]
                                             or d.get("candidates_measured") else "")
            lines.append(f"| {entry['round']} | {device} | {d['budget_ms']:g} | {d['predicted_ms']:.4g} | "
                         f"{d['searched_ms']:.4g} | {measured} | {scale} |")
    return lines


def _relaxed_text(trace: dict | None) -> str:
    """A differentiable search's relaxed costs at its end beside the pick's own values."""
    if not trace or not trace.get("relaxed"):
        return ""
    parts = [f"{name}: expected {v['expected']:.4g} under the final distribution, {v['constraint_at_pick']:.4g} "
             f"for the pick" + ("" if v.get("exact") else " (additive surrogate of the predictor)")
             for name, v in trace["relaxed"].items() if v.get("constraint_at_pick") is not None]
    return (f" Mode {trace['mode']}" + (f", order {trace['order']}" if trace.get("order") else "")
            + f", {trace['steps']} steps, budget {trace['budget']}, {trace['search_seconds']:.1f} s"
            + ("; " + "; ".join(parts) if parts else "") + ".")


def target_report(summary: dict, deployment: dict, result) -> str:
    lines = [f"# Specialised subnet: {summary['target']}", ""]
    lines += [f"**WARNING: {w}**" for w in target_warnings(summary)] + ([""] if target_warnings(summary) else [])
    lines += [
             f"Architecture: `{summary['arch_summary']}` ({summary['macs'] / 1e6:.2f} M MACs, "
             f"{summary['params'] / 1e6:.3f} M parameters); full value in `arch.json`.", "",
             "| device | budget (ms) | predicted (ms) | measured (ms) | how measured |", "|---|---|---|---|---|"]
    for d in summary["devices"]:
        lines.append(f"| {d['device']} | {d['budget_ms']:g} | {_predicted_latency_cell(d)} | "
                     f"{_measured_cell(d)} | {d['measurement']} |")
    lines += ["", *loop_rounds_table(summary)]
    lines += ["", f"Predicted {summary['objective']}: {summary['predicted_objective']:.4f}"
              + (f" (held-out RMSE {summary['predicted_objective_rmse']:.3g})"
                 if summary.get("predicted_objective_rmse") is not None else "") + "; measured "
              f"{summary['accuracy_kind'] or 'accuracy'} on the validation split: "
              f"{_fmt(summary['measured_accuracy'], '.2f')} %"
              + (f" after fine-tuning ({_fine_tuning_text(summary['finetune'])}); inherited weights: "
                 if summary.get("finetune") else ", ")
              + f"loss {_fmt(summary['measured_loss'], '.4f')}, label loyalty to the largest subnet "
              f"{_fmt(summary['label_loyalty'])}, probability loyalty {_fmt(summary['probability_loyalty'])}.", "",
              f"Search: {result.method}, {result.num_evaluations} architectures scored, seed {result.seed}."
              + _relaxed_text(getattr(result, "trace", None)), "",
              "Files: `model.pt` (weights"
              + (f", BN re-calibrated on {deployment['bn_recalibration_images']} training images"
                 if "bn_recalibration_images" in deployment else "")
              + f"), `model.onnx` (opset {deployment['opset']}, dynamic batch, onnxruntime parity "
              f"max |diff| {deployment['parity_max_abs_diff']:.2e})"
              + (", `model.ncnn.param`/`.bin`" if "ncnn_param" in deployment else "")
              + (", `model.int8.onnx`" if "precision" in deployment else "")
              + ", `pareto_<device>.png` (the chosen point is the star)."]
    if "precision" in deployment:
        fp32, int8 = deployment["precision"]["fp32"], deployment["precision"]["int8"]
        lines += ["", "| precision | top-1 (%) | latency (ms, onnxruntime 1 thread) | size (KiB) | label loyalty | "
                  "prob. loyalty |", "|---|---|---|---|---|---|",
                  f"| FP32 | {fp32['top1']:.2f} | {fp32['latency_ms']:.3f} | {fp32['size_bytes'] / 1024:.0f} | - | - |",
                  f"| INT8 | {int8['top1']:.2f} | {int8['latency_ms']:.3f} | {int8['size_bytes'] / 1024:.0f} | "
                  f"{int8['label_loyalty']:.3f} | {int8['probability_loyalty']:.3f} |"]
    return "\n".join(lines) + "\n"
