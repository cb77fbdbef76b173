"""Fit a latency predictor on a device profile, or an accuracy predictor on evaluation records,
compare it with the other models on held-out architectures, and save it with its report.

    >>> from ofa_pipeline.fit import FitOptions, fit_accuracy_predictor_from_evaluations, \\
    ...     fit_latency_predictor_from_profile
    >>> fit_latency_predictor_from_profile("profiles/my-cpu.jsonl", "predictors/my-cpu.skops")
    >>> fit_accuracy_predictor_from_evaluations("runs/my/evaluations.jsonl", "mbv3-small", "predictors/top1.skops",
    ...                                         options=FitOptions(model="gbr", cv=3))

A random ``test_fraction`` of the architectures is held out; the rest picks the model by
cross-validation (``model="auto"``) and fits it. Beside the predictor ``<out>.skops`` go
``<out>.json`` (the held-out metrics of every model and the selection reason) and ``<out>.png``
(predicted versus measured on the held-out architectures). Block-sum and transfer fits are in
:mod:`ofa_pipeline.block_fitting`, latency tables in :mod:`ofa_pipeline.table_fitting`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ofa.errors import ConfigError


@dataclass(frozen=True)
class FitOptions:
    """How a predictor is chosen, fitted and reported."""

    model: str = "auto"  # 'auto' (chosen by cross-validation) or a model name
    test_fraction: float = 0.2  # share of architectures held out
    cv: int = 5  # cross-validation folds of the model choice
    seed: int = 0
    plot: str | os.PathLike | None = None  # parity plot PNG (default: <out>.png)
    metrics_json: str | os.PathLike | None = None  # metrics JSON (default: <out>.json)
    overwrite: bool = False  # replace existing output files of another kind


def _report_paths(out: Path, options: FitOptions) -> tuple[Path, Path]:
    plot = Path(options.plot) if options.plot else out.with_suffix(".png")
    metrics = Path(options.metrics_json) if options.metrics_json else out.with_suffix(".json")
    return plot, metrics


def _check_paths(source: tuple[str, Path], space, out: Path, options: FitOptions) -> tuple[Path, Path]:
    """Before any fit: the outputs clobber no input nor a file of another kind; a held-out share is left."""
    from ofa.validation import check_output_path

    if not 0 < options.test_fraction < 1:
        raise ConfigError(f"test_fraction {options.test_fraction}: a profile or evaluations hold out a share of "
                          f"architectures; give a fraction between 0 and 1")
    plot, metrics = _report_paths(out, options)
    inputs = [source] + ([("the space", space)] if isinstance(space, (str, os.PathLike)) else [])
    check_output_path(out, inputs, kind=("predictor",), overwrite=options.overwrite, name="the predictor")
    check_output_path(plot, inputs + [("the predictor", out)], kind=("png",), overwrite=options.overwrite,
                      name="the plot")
    check_output_path(metrics, inputs + [("the predictor", out), ("the plot", plot)], kind=("json",),
                      overwrite=options.overwrite, name="the metrics")
    return plot, metrics


def fit_latency_predictor_from_profile(profile: str | os.PathLike, out: str | os.PathLike, *,
                                       metric: str | None = None, statistic: str | None = None,
                                       options: FitOptions = FitOptions()) -> dict:
    """Fit a latency predictor on the profile file ``profile`` and save it to ``out`` (.skops).
    ``metric`` and ``statistic`` pick the label (default: the drift-corrected thread CPU time's p10
    for timed backends, the exact latency for simulators; docs/profiles.md). Returns the summary
    written to ``<out>.json``."""
    from ofa.validation import check_input_file
    from predictors import core
    from predictors.estimators import LATENCY_MODELS, make_latency_model

    out = Path(out)
    source = ("the profile", check_input_file(profile, "the profile", kinds=("profile",)))
    plot, metrics = _check_paths(source, None, out, options)
    metric, statistic = core.resolve_label(profile, metric, statistic)
    records, genes, y = core.profile_targets(profile, metric, statistic)
    train, test = core.split_indices(len(y), options.test_fraction, options.seed)
    predictor = core.fit_latency_predictor(core.subset_profile(records, train), model=options.model, metric=metric,
                                           statistic=statistic, cv=options.cv, random_state=options.seed)
    summary = {"device": predictor.device, "label": f"{metric}.{statistic}"}
    return _compare_and_write(predictor, records.space, genes, y, train, test, LATENCY_MODELS, make_latency_model,
                              out, plot, metrics, options, source=str(profile), extra=summary, latency=True,
                              title=f"{predictor.device} ({metric}.{statistic})")


def fit_accuracy_predictor_from_evaluations(evaluations: str | os.PathLike, space, out: str | os.PathLike, *,
                                            target: str = "top1", split: str | None = None,
                                            options: FitOptions = FitOptions()) -> dict:
    """Fit an accuracy predictor of ``target`` ("top1", or "loss" for Transformers) on the evaluation
    records ``evaluations`` (JSONL of ``ofa_pipeline.evaluate.evaluate_subnets`` or ``ofa-evaluate``) of
    subnets of ``space`` (a preset, a space file, a checkpoint or a space), only those of ``split`` if
    given, and save it to ``out`` (.skops). Returns the summary written to ``<out>.json``."""
    import numpy as np

    from ofa.spaces import resolve_space
    from ofa.validation import check_input_file
    from predictors import core
    from predictors.estimators import ACCURACY_MODELS, make_accuracy_model

    if target not in ("top1", "loss"):
        raise ConfigError(f"target {target!r}: choose top1 or loss")
    out = Path(out)
    source = ("the evaluations", check_input_file(evaluations, "the evaluations", kinds=("evaluations", "json")))
    plot, metrics = _check_paths(source, space, out, options)
    space = resolve_space(space)
    records = core.read_evaluations(evaluations)
    if split:
        records = [r for r in records if r.get("split") == split]
    train, test = core.split_indices(len(records), options.test_fraction, options.seed)
    predictor = core.fit_accuracy_predictor([records[i] for i in train], space, model=options.model, target=target,
                                            cv=options.cv, random_state=options.seed)
    genes = space.to_genes([r["arch"] for r in records])
    y = np.array([r[target] for r in records], dtype=np.float64)
    return _compare_and_write(predictor, space, genes, y, train, test, ACCURACY_MODELS, make_accuracy_model,
                              out, plot, metrics, options, source=str(evaluations), extra={"target": target},
                              latency=False, title=f"{target} predictor ({Path(evaluations).name})", unit=target)


def _compare_and_write(predictor, space, genes, y, train, test, model_names, make_model, out: Path, plot: Path,
                       metrics: Path, options: FitOptions, source: str, extra: dict, latency: bool, title: str,
                       unit: str = "ms") -> dict:
    """Every other model, fitted on the same training split and scored on the same held-out split
    beside the chosen one; the report and plot written next to the saved predictor."""
    from predictors import core
    from predictors.report import score_held_out, write_held_out

    others = {name: make_model(name, space, options.seed) for name in model_names if name != predictor.model_name}
    compared = core.holdout_comparison(others, (genes[train], y[train]), (genes[test], y[test]), relative=latency)
    report = score_held_out(predictor.predict_genes, genes[test], y[test], predictor.model_name,
                            {name: r["prediction"] for name, r in compared.items()},
                            interval=predictor.predict_interval_genes, relative=latency)
    # latency is compared with the MACs line; accuracy with the best of the other models
    baseline = "macs-linear" if latency else min(others, key=lambda n: report.metrics[n]["rmse"], default=None)
    plotted = {f"{predictor.model_name} (chosen)": predictor.model_name}
    if baseline in report.predictions and baseline != predictor.model_name:
        plotted[baseline] = baseline
    summary = {"predictor": str(out), "model": predictor.model_name, "space_fingerprint": predictor.space_fingerprint,
               "selection": predictor.metrics_["selection"], "cv": predictor.metrics_["cv"],
               "n_train": int(len(train)), "source": source, **extra}
    intro = (f"{len(train)} architectures to fit, {len(test)} held out; selection: "
             f"{predictor.metrics_['selection']['reason']}")
    return write_held_out(predictor, report, out, plot, metrics, summary, intro, title, unit=unit,
                          band=0.10 if latency else None, plotted=plotted)


__all__ = ["FitOptions", "fit_accuracy_predictor_from_evaluations", "fit_latency_predictor_from_profile"]
