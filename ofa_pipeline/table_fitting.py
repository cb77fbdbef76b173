"""``ofa-fit-predictor --profile table.csv``: latency predictors fitted straight
from a user's latency table (CSV/TSV, ``docs/imports.md``), scored on held-out
rows and saved like every other predictor.

    # rows name architectures (a JSON column, or one column per gene): a predictor of architectures
    ofa-fit-predictor --profile measured.csv --space mbv3-small --device my-phone \\
        --latency-column latency_ms [--arch-column arch] --out phone.skops

    # free feature columns: a plain-feature predictor; with --space and computable columns it drives specialize
    ofa-fit-predictor --profile wmt14ende_cpu_raspberrypi_all.csv --device raspberrypi \\
        --latency-column latency_mean_encoder+latency_mean_decoder \\
        --feature-columns encoder_embed_dim,encoder_layer_num,... [--space hat-wmt] --out rpi.skops
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ofa.errors import ConfigError


@dataclass(frozen=True)
class TableFitOptions:
    """What to fit from a latency table (or a feature-row profile): the ``ofa-fit-predictor``
    options of the same names (``docs/imports.md``)."""

    profile: str
    latency_column: str | None = None
    feature_columns: "str | list[str] | None" = None
    arch_column: str | None = None
    std_column: str | None = None
    space: str | None = None
    device: str | None = None
    unit: str | None = None
    metric: str | None = None
    statistic: str | None = None
    model: str = "auto"
    cv: int = 5
    test_fraction: float = 0.2
    seed: int = 0
    plot: str | None = None
    merge_duplicates: bool = False
    overwrite: bool = False


def feature_column_list(value) -> list[str]:
    """``--feature-columns a,b c`` (commas or repeated) -> ``["a", "b", "c"]``."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    names = [part.strip() for item in items for part in str(item).split(",") if part.strip()]
    if len(set(names)) != len(names):
        raise ConfigError(f"--feature-columns repeats a column: {names}")
    return names


def fit_table(options: TableFitOptions, out: Path, plot_path: Path, json_path: Path) -> dict:
    """Fit, score on held-out rows (``test_fraction``; 0: every row, cross-validated metrics), save
    the predictor to ``out``, its parity plot and its JSON summary; returns the summary."""
    from hardware_profiles.imports.table import check_row_naming, table_profile
    from hardware_profiles.imports.common import load_space
    from ofa.validation import check_input_file, check_output_path
    from predictors import core
    from predictors.estimators import FEATURE_LATENCY_MODELS, LATENCY_MODELS, make_latency_model

    from hardware_profiles.imports.table import is_table

    # a JSONL profile with --feature-columns alone: its records' numeric fields are the features
    # (an imported Vitis AI profile's mem_io_mb, workload_gop, runs; macs, params)
    of_profile = (Path(options.profile).is_file() and not is_table(options.profile) and not options.latency_column
                  and not options.arch_column and (bool(options.feature_columns) or is_feature_profile(options.profile)))
    if Path(options.profile).is_file() and not is_table(options.profile) and not of_profile:
        raise ConfigError(f"--latency-column and --arch-column describe a table (CSV/TSV); --profile {options.profile} "
                          f"is not one (fit a JSONL profile without them, or on its records' numeric fields with "
                          f"--feature-columns alone)")
    if not options.latency_column and not of_profile:
        raise ConfigError(f"--profile {options.profile} is a table: name its latency column with --latency-column")
    source = check_input_file(options.profile, "--profile", kinds=("profile",) if of_profile else ("text",))
    inputs = [("the --profile table", source)]
    every_row = options.test_fraction == 0
    if every_row and options.plot:
        raise ConfigError("--plot shows predictions on held-out rows; with --test-fraction 0 nothing is held out "
                          "(the metrics are cross-validated): leave out --plot or hold out a fraction")
    check_output_path(out, inputs, kind=("predictor",), overwrite=options.overwrite, name="--out")
    if not every_row:
        check_output_path(plot_path, inputs + [("the --out", out)], kind=("png",), overwrite=options.overwrite,
                          name="--plot")
    check_output_path(json_path, inputs + [("the --out", out), ("the --plot", plot_path)], kind=("json",),
                      overwrite=options.overwrite, name="--metrics-json")
    features = feature_column_list(options.feature_columns)
    device = options.device or source.stem
    unit = options.unit or "ms"
    space = load_space(options.space) if options.space else None
    label = options.latency_column
    if of_profile:
        X, y, header, features = profile_features(source, features, options.metric, options.statistic)
        device = options.device or header["device"]
        label = header["label"]  # what the report names as the label
    else:
        # the one table reader that ofa-import-profile --format table writes profiles with
        check_row_naming(space, options.arch_column, None, features)
        profile = table_profile(source, space, device, latency=options.latency_column, std=options.std_column,
                                arch_column=options.arch_column, feature_columns=features or None, unit=unit,
                                merge_duplicates=options.merge_duplicates)
        header = {"device": device, "backend": "table", "source": source.name,
                  "latency_column": options.latency_column, "std_column": options.std_column, "unit": unit}
        if features:
            X, y = profile.feature_matrix(features), profile.latencies("latency_ms", "median")
    if features:
        from predictors.tabular import fit_feature_predictor

        train, test = _split(len(y), options.test_fraction, options.seed)
        predictor = fit_feature_predictor(X[train], y[train], features, space=space, model=options.model, cv=options.cv,
                                          random_state=options.seed, device=device, profile_header=header,
                                          source=str(source))
        names = FEATURE_LATENCY_MODELS
        baseline = "linear"

        def make(name):
            return make_latency_model(name, None, options.seed, feature_names=features)

        predict, interval = predictor.predict_features, predictor.predict_interval_features
        what = "rows"
    else:
        profile, X, y = core.profile_targets(profile, "latency_ms", "median")
        train, test = _split(len(y), options.test_fraction, options.seed)
        predictor = core.fit_latency_predictor(core.subset_profile(profile, train), model=options.model,
                                               metric="latency_ms", statistic="median", cv=options.cv,
                                               random_state=options.seed)
        names = LATENCY_MODELS
        baseline = "macs-linear"

        def make(name):
            return make_latency_model(name, space, options.seed)

        predict, interval = predictor.predict_genes, predictor.predict_interval_genes
        what = "architectures"
    return _report(label, predictor, X, y, train, test, names, make, predict, interval, baseline, what, out,
                   plot_path, json_path, str(source))


def is_feature_profile(path) -> bool:
    """Whether ``path`` is a feature-row profile (``ofa-import-profile --format table --feature-columns``)."""
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            header = json.loads(handle.readline())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(header, dict) and header.get("level") == "features"


def profile_features(path, features: list[str], metric: str | None, statistic: str | None):
    """``(X, y, header, features)`` of a profile fitted on numeric features: a feature-row
    profile's feature columns (default: all of them), or the named numeric fields of every
    record of another profile (each a finite number in every record, else every record lacking
    one is named); ``y`` the label (the profile's default unless ``metric``/``statistic``)."""
    import math

    import numpy as np

    from hardware_profiles import read_profile
    from ofa.errors import DataError
    from predictors import core

    profile = read_profile(path)
    metric, statistic = core.resolve_label(profile, metric, statistic)
    header = {"device": profile.device, "backend": profile.header.get("backend"), "source": Path(path).name,
              "label": f"{metric}.{statistic}"}
    if profile.level == "features":
        features = features or profile.feature_names
        return profile.feature_matrix(features), profile.latencies(metric, statistic), header, features
    records = [r for r in profile.records if not str(r.get("key", "")).startswith("null:")]
    problems = []
    for name in features:
        bad = [number for number, record in enumerate(records, start=2)  # line 1 is the header
               if isinstance(record.get(name), bool) or not isinstance(record.get(name), (int, float))
               or not math.isfinite(record[name])]
        if bad:
            problems.append(f"{name!r} is not a finite number in {len(bad)} of {len(records)} records (lines "
                            f"{', '.join(map(str, bad[:8]))}{', ...' if len(bad) > 8 else ''})")
    if problems:
        numeric = sorted(k for k, v in records[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool))
        raise DataError(f"{path}: " + "; ".join(problems) + f"; numeric fields of its first record: {numeric}")
    X = np.array([[float(r[name]) for name in features] for r in records])
    y = np.array([float(r[metric][statistic]) for r in records])
    return X, y, header, features


def _split(n: int, test_fraction: float, seed: int):
    """``(train, test)`` row indices: a seeded random hold-out, or every row to fit (``test_fraction`` 0)."""
    import numpy as np

    from predictors import core

    if test_fraction == 0:
        return np.arange(n), np.arange(0)
    return core.split_indices(n, test_fraction, seed)


def _report(label, predictor, X, y, train, test, names, make, predict, interval, baseline, what, out, plot_path,
            json_path, source) -> dict:
    """Every model on the same held-out rows, interval coverage, save, print, plot, JSON; with
    nothing held out (``--test-fraction 0``) the cross-validated metrics of the model choice
    stand in for them (every candidate scored on the same folds) and no plot is drawn."""
    from predictors import core
    from predictors.report import score_held_out, write_held_out

    if len(test) == 0:
        return _report_every_row(label, predictor, train, what, out, json_path, source)

    others = {name: make(name) for name in names if name != predictor.model_name}
    compared = core.holdout_comparison(others, (X[train], y[train]), (X[test], y[test]), relative=True)
    report = score_held_out(predict, X[test], y[test], predictor.model_name,
                            {name: r["prediction"] for name, r in compared.items()}, interval=interval)
    plotted = {f"{predictor.model_name} (chosen)": predictor.model_name}
    if baseline in report.predictions and baseline != predictor.model_name:
        plotted[baseline] = baseline
    summary = {"predictor": str(out), "kind": predictor.kind, "model": predictor.model_name,
               "space_fingerprint": predictor.space_fingerprint, "selection": predictor.metrics_["selection"],
               "cv": predictor.metrics_["cv"], "n_train": int(len(train)), "source": source,
               "device": predictor.device, "label": label}
    if predictor.kind == "feature-latency":
        summary["features"] = list(predictor.feature_names)
        summary["drives_search"] = bool(predictor.space is not None and not predictor.uncomputable_features)
    intro = f"{len(train)} {what} to fit, {len(test)} held out; selection: {predictor.metrics_['selection']['reason']}"
    return write_held_out(predictor, report, out, plot_path, json_path, summary, intro,
                          f"{predictor.device} (table {Path(source).name})", plotted=plotted, what="rows")


def _report_every_row(label, predictor, train, what, out, json_path, source) -> dict:
    """The report of a predictor fitted on every row: its cross-validated metrics (the
    out-of-fold predictions of the model choice: each row predicted by a model that did
    not see it), saved, printed and written like a held-out report."""
    from ofa.io import atomic_write_json
    from predictors import core
    from predictors.report import record_nothing_held_out

    cv = predictor.metrics_["cv"]
    record_nothing_held_out(predictor, "--test-fraction 0")
    predictor.save(out)
    print(f"{len(train)} {what} to fit, none held out (--test-fraction 0); selection: "
          f"{predictor.metrics_['selection']['reason']}")
    print(f"cross-validated metrics ({predictor.metrics_['cv_folds']} folds, every candidate on the same folds; "
          f"chosen: {predictor.model_name}):")
    print(predictor.metrics_["table"])
    report = {"predictor": str(out), "kind": predictor.kind, "model": predictor.model_name,
              "space_fingerprint": predictor.space_fingerprint, "selection": predictor.metrics_["selection"],
              "cv": cv, "cv_chosen": cv[predictor.model_name], "test": None,
              "metrics_source": predictor.metrics_["metrics_source"], "n_train": int(len(train)), "n_test": 0,
              "source": source, "device": predictor.device, "label": label}
    if predictor.kind == "feature-latency":
        report["features"] = list(predictor.feature_names)
        report["drives_search"] = bool(predictor.space is not None and not predictor.uncomputable_features)
    atomic_write_json(json_path, core.json_safe(report))
    print(f"wrote {out}, {json_path}")
    return report
