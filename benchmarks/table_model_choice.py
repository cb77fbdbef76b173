"""How often the automatic model choice on a latency table picks the model that
is best on held-out rows: the earlier rule (one 5-fold cross-validation, the
highest share within +-10%, ties by MAPE) against the current one (3 x 5-fold
repeated cross-validation, the simplest model within one standard error of the
lowest mean MAPE, ``predictors.model_choice``).

    python benchmarks/table_model_choice.py /tmp/hat [--splits 10] [--out benchmarks/results/table_model_choice.json]

The folder holds latency tables in the layout of Hardware-Aware Transformers'
``latency_dataset/*_all.csv`` (mit-han-lab/hardware-aware-transformers: ten
feature columns, ``latency_mean_encoder``, ``latency_mean_decoder`` and their
stds). Nothing is fetched: put the files there yourself. Each table is read
with the importer's reader (``table_profile``), and for each label (HAT's
total, encoder + decoder, which its own predictor fits; and the decoder alone)
and each of ``--splits`` seeded 80/20 splits, every candidate is fitted on the
80% and scored on the 20%; each rule chooses from the 80% alone.

Beside them, HAT's own latency predictor as its repository trains it
(``latency_predictor.py`` and ``configs/wmt14.en-de/latency_predictor/*.yml``:
features divided by ``[640, 6, 2048, 6, 640, 6, 2048, 6, 6, 2]``, the latency by
the device's ``lat-norm``, an MLP of four 400-unit ReLU layers, MSE, Adam at
1e-5, 5000 steps of 128 rows drawn at random), re-implemented here and fitted on
the same 80%: ``hat_mlp_mape`` and the ratio of the chosen model's MAPE to it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.base import clone

from _timing import environment, save

HAT_FEATURES = ("encoder_embed_dim", "encoder_layer_num", "encoder_ffn_embed_dim_avg",
                "encoder_self_attention_heads_avg", "decoder_embed_dim", "decoder_layer_num",
                "decoder_ffn_embed_dim_avg", "decoder_self_attention_heads_avg", "decoder_ende_attention_heads_avg",
                "decoder_arbitrary_ende_attn_avg")
LABELS = {"total": "latency_mean_encoder+latency_mean_decoder", "decoder": "latency_mean_decoder"}
# HAT's normalisation of its ten features and, per latency table, of the latency (its configs'
# feature-norm and lat-norm); a table without a published lat-norm uses its training rows' mean
HAT_FEATURE_NORM = (640, 6, 2048, 6, 640, 6, 2048, 6, 6, 2)
HAT_LAT_NORM = {"wmt14ende_cpu_raspberrypi_all": 5000.0}


def hat_mlp_predictions(X_train, y_train, X_test, lat_norm: float, seed: int) -> np.ndarray:
    """HAT's latency MLP trained as its repository trains it (see the module's docstring)."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    norm = np.asarray(HAT_FEATURE_NORM, dtype=np.float64)
    x = torch.tensor(X_train / norm, dtype=torch.float32)
    y = torch.tensor(y_train / lat_norm, dtype=torch.float32)
    layers = [torch.nn.Linear(x.shape[1], 400), torch.nn.ReLU()]
    for _ in range(3):
        layers += [torch.nn.Linear(400, 400), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(400, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    for _ in range(5000):
        batch = torch.as_tensor(rng.choice(len(x), size=min(128, len(x)), replace=False))
        loss = torch.nn.functional.mse_loss(model(x[batch]).squeeze(1), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return model(torch.tensor(X_test / norm, dtype=torch.float32)).squeeze(1).double().numpy() * lat_norm


def earlier_choice(make, X, y, candidates, seed):
    """The rule before repeated cross-validation: one seeded 5-fold cross-validation, the
    highest share within +-10% (ties within a point by MAPE)."""
    from predictors import core

    results = core.cross_validate_models({name: make(name) for name in candidates}, X, y, cv=5, random_state=seed)
    return core.select_model(results)[0]


def current_choice(make, X, y, candidates, seed):
    from predictors.model_choice import choose_model

    return choose_model(make, X, y, candidates, folds=5, random_state=seed)[0]


def one_split(X, y, candidates, seed, test_fraction, lat_norm=None):
    from predictors import core
    from predictors.estimators import make_latency_model
    from predictors.metrics import mape

    def make(name):
        return make_latency_model(name, None, seed, feature_names=HAT_FEATURES)

    train, test = core.split_indices(len(y), test_fraction, seed)
    held_out = {name: mape(y[test], clone(make(name)).fit(X[train], y[train]).predict(X[test]))
                for name in candidates}
    best = min(held_out, key=held_out.get)
    before = earlier_choice(make, X[train], y[train], candidates, seed)
    after = current_choice(make, X[train], y[train], candidates, seed)
    norm = lat_norm if lat_norm is not None else float(np.mean(y[train]))
    hat = mape(y[test], hat_mlp_predictions(X[train], y[train], X[test], norm, seed))
    return {"seed": seed, "n_train": int(len(train)), "n_test": int(len(test)), "held_out_mape": held_out,
            "best": best, "before": before, "after": after, "hat_mlp_mape": hat, "hat_lat_norm": norm,
            "after_over_hat_mlp": held_out[after] / hat}


def summarize(splits: list[dict]) -> dict:
    def mean(values):
        return float(np.mean(values))

    return {
        "splits": len(splits),
        "before_picks_best": sum(s["before"] == s["best"] for s in splits),
        "after_picks_best": sum(s["after"] == s["best"] for s in splits),
        "mape_before": mean([s["held_out_mape"][s["before"]] for s in splits]),
        "mape_after": mean([s["held_out_mape"][s["after"]] for s in splits]),
        "mape_best": mean([s["held_out_mape"][s["best"]] for s in splits]),
        "chosen_before": {m: sum(s["before"] == m for s in splits) for m in splits[0]["held_out_mape"]},
        "chosen_after": {m: sum(s["after"] == m for s in splits) for m in splits[0]["held_out_mape"]},
        "best_held_out": {m: sum(s["best"] == m for s in splits) for m in splits[0]["held_out_mape"]},
        "hat_mlp_mape": mean([s["hat_mlp_mape"] for s in splits]),
        "after_over_hat_mlp": mean([s["held_out_mape"][s["after"]] for s in splits])
        / mean([s["hat_mlp_mape"] for s in splits]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", help="folder of HAT-layout latency tables (*.csv)")
    p.add_argument("--splits", type=int, default=10, help="seeded 80/20 splits per table and label")
    p.add_argument("--test-fraction", type=float, default=0.2)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "table_model_choice.json"))
    args = p.parse_args()
    from hardware_profiles.imports.table import table_profile
    from predictors.estimators import AUTO_FEATURE_MODELS

    tables = sorted(Path(args.folder).glob("*.csv"))
    if not tables:
        sys.exit(f"no *.csv in {args.folder}: put HAT's latency_dataset/*_all.csv files there")
    result = {"environment": environment(), "candidates": list(AUTO_FEATURE_MODELS), "splits": args.splits,
              "test_fraction": args.test_fraction, "tables": {}}
    for path in tables:
        for label, column in LABELS.items():
            profile = table_profile(path, None, path.stem, latency=column, feature_columns=HAT_FEATURES)
            X, y = profile.feature_matrix(), profile.latencies("latency_ms", "median")
            splits = [one_split(X, y, AUTO_FEATURE_MODELS, seed, args.test_fraction, HAT_LAT_NORM.get(path.stem))
                      for seed in range(args.splits)]
            entry = {"rows": int(len(y)), "label": column, **summarize(splits), "per_split": splits}
            result["tables"][f"{path.name}:{label}"] = entry
            print(f"{path.name} {label}: best held-out picked {entry['before_picks_best']}/{args.splits} before, "
                  f"{entry['after_picks_best']}/{args.splits} after; MAPE before {entry['mape_before']:.2f}%, "
                  f"after {entry['mape_after']:.2f}%, best {entry['mape_best']:.2f}%; "
                  f"HAT's MLP {entry['hat_mlp_mape']:.2f}% "
                  f"(ratio {entry['after_over_hat_mlp']:.2f})", flush=True)
    save(result, args.out)


if __name__ == "__main__":
    main()
