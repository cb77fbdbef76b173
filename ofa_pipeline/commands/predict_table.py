"""Predict the latency of new rows of a table with a plain-feature predictor
(one fitted by ``ofa-fit-predictor --profile table.csv --feature-columns ...``).

    ofa-predict-table --predictor rpi.skops --table new_configs.csv --out predicted.csv \\
        [--coverage 0.9] [--delimiter ,]

The table needs the predictor's feature columns (a finite number in every row);
a latency column is not needed. ``--out`` is the table with three columns
added: ``predicted_latency_ms`` and the ``--coverage`` interval's
``low_latency_ms`` / ``high_latency_ms`` (split-conformal, see
docs/imports.md). Every bad cell is reported at once with its line, before
anything is written; ``--out`` is written whole or not at all, and is never the
table or the predictor.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys

from ofa.cli import run_command
from ofa.validation import ArgumentParser, check_input_file, check_output_path, float_between

ADDED = ("predicted_latency_ms", "low_latency_ms", "high_latency_ms")


def parse_args(argv=None) -> argparse.Namespace:
    p = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--predictor", required=True, help="a plain-feature predictor (.skops) from fit_predictor.py")
    p.add_argument("--table", required=True, help="the rows to predict (CSV/TSV with the predictor's feature columns)")
    p.add_argument("--out", required=True, help="the table with the predictions added (CSV)")
    p.add_argument("--coverage", type=float_between(0, 1), default=0.9,
                   help="coverage of the prediction interval, strictly between 0 and 1 (0.9)")
    p.add_argument("--delimiter", help="cell delimiter of --table (default: tab for .tsv or a tab header, else , or ;)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return p.parse_args(argv)


def run(args):
    from hardware_profiles.imports.table import read_table
    from ofa.errors import PredictorError
    from ofa.io import atomic_write_text
    from predictors import load_predictor
    from predictors.tabular import FeatureTablePredictor

    predictor_path = check_input_file(args.predictor, "--predictor")
    table_path = check_input_file(args.table, "--table", kinds=("text",))
    check_output_path(args.out, [("the --table", table_path), ("the --predictor", predictor_path)], kind=("text",),
                      overwrite=args.overwrite, name="--out")
    predictor = load_predictor(predictor_path)
    if not isinstance(predictor, FeatureTablePredictor):
        raise PredictorError(f"--predictor {predictor_path} is a {predictor.kind} predictor of architectures; this "
                             f"command predicts rows of a feature table with a plain-feature predictor "
                             f"(fit_predictor.py --feature-columns); price architectures with the predictor's "
                             f"predict_archs or specialize")
    table = read_table(table_path, args.delimiter)
    clash = [name for name in ADDED if name in table.columns]
    if clash:
        raise PredictorError(f"--table {table_path} already has column(s) {clash}, which this command adds; rename "
                             f"them")
    import numpy as np

    X = np.column_stack([table.numbers(name, "feature", positive=False) for name in predictor.feature_names])
    prediction = predictor.predict_features(X)
    low, high = predictor.predict_interval_features(X, args.coverage)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(table.columns) + list(ADDED))
    for row, value, lo, hi in zip(table.rows, prediction, low, high):
        writer.writerow(list(row) + [f"{value:.6g}", f"{lo:.6g}", f"{hi:.6g}"])
    atomic_write_text(args.out, buffer.getvalue())
    print(f"predicted {len(table)} row(s) with {predictor.model_name} on {list(predictor.feature_names)}; "
          f"{args.coverage:.0%} intervals; wrote {args.out}")
    return prediction


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_command(run, args)


if __name__ == "__main__":
    sys.exit(main())
