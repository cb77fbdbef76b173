"""Predictors: estimator API, features, metrics, persistence, transfer, accuracy."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import check_estimator

from ofa.errors import ConfigError, DataError, PredictorError, SpaceMismatchError
from ofa.spaces import get_space
from predictors import (AccuracyPredictor, AdditiveLUTRegressor, ArchFeaturizer, HybridLatencyRegressor,
                        LatencyPredictor, SourceCorrectionRegressor, fit_accuracy_predictor, fit_latency_predictor,
                        fit_transfer_predictor, interval_coverage, kendall, load_predictor, make_latency_model, mape,
                        regression_report, rmse, spearman, within)

ROOT = Path(__file__).resolve().parents[1]


# --- a synthetic device with a known, non-additive latency model ---------------------------
def roofline_latency(space, genes, peak_macs_per_ms=2e6, elements_per_ms=4e5, overhead_ms=0.004):
    """Per layer: the slower of compute and memory traffic, plus a fixed launch cost."""
    out = []
    for arch in space.from_genes(genes):
        total = 0.0
        for layer in space.cost(arch).layers:
            memory = layer.input_elements + layer.output_elements + layer.params
            total += max(layer.macs / peak_macs_per_ms, memory / elements_per_ms) + overhead_ms
        out.append(total)
    return np.array(out)


def write_profile(path, space, genes, latencies, device="synthetic-roofline"):
    from hardware_profiles.dataset import ProfileWriter, latency_stats, make_header

    header = make_header(space, device, "synthetic", "1", threads=1, batch_size=1, precision="fp32",
                         protocol={"model": "roofline"}, host={"cpu": "none"})
    writer = ProfileWriter(path, header)
    for arch, value in zip(space.from_genes(genes), latencies):
        writer.append(arch, latency_stats([value, value]))
    return path


@pytest.fixture(scope="module", autouse=True)
def one_blas_thread():
    """Small matrices: BLAS threads only fight the other test processes for the cores."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def space():
    return get_space("mbv3-small")


@pytest.fixture(scope="module")
def device_data(space):
    rng = np.random.default_rng(0)
    genes = space.sample_genes(260, rng)
    clean = roofline_latency(space, genes)
    noisy = clean * np.exp(rng.normal(0, 0.02, size=len(clean)))  # 2% measurement noise
    return genes, clean, noisy


@pytest.fixture(scope="module")
def profile_path(tmp_path_factory, space, device_data):
    genes, _, noisy = device_data
    return write_profile(tmp_path_factory.mktemp("profiles") / "roofline.jsonl", space, genes[:200], noisy[:200])


@pytest.fixture(scope="module")
def fitted(profile_path):
    return fit_latency_predictor(profile_path, model="auto", cv=3)


# --- metrics ----------------------------------------------------------------------------
def test_metrics_on_hand_computed_cases():
    y = [1.0, 2.0, 4.0, 10.0]
    p = [1.1, 1.8, 4.0, 13.0]  # relative errors +10%, -10%, 0%, +30%
    assert rmse(y, p) == pytest.approx(np.sqrt((0.01 + 0.04 + 0 + 9) / 4))
    assert mape(y, p) == pytest.approx(100 * (0.1 + 0.1 + 0 + 0.3) / 4)
    assert within(y, p, 0.05) == 25.0
    assert within(y, p, 0.10) == 75.0  # exactly 10% counts as within
    assert spearman(y, p) == pytest.approx(1.0)
    assert kendall([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)  # 2 concordant, 1 discordant pair
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    report = regression_report(y, p)
    assert set(report) == {"n", "rmse", "mape", "within_5", "within_10", "spearman", "kendall"}
    assert "mae" in regression_report(y, p, relative=False)
    assert interval_coverage([1, 2, 3, 4], [0, 2.5, 2, 5], [2, 3, 4, 6]) == 50.0
    with pytest.raises(PredictorError):
        mape([0.0, 1.0], [1.0, 1.0])
    with pytest.raises(PredictorError):
        rmse([1.0], [1.0, 2.0])


def test_model_selection_reports_why():
    from predictors import select_model

    def result(w10, mape_):
        return {"metrics": {"n": 100, "within_10": w10, "mape": mape_}}

    best, reason = select_model({"macs-linear": result(80.0, 7.0), "rf": result(96.0, 3.5),
                                 "hybrid": result(95.5, 2.9)})
    assert best == "hybrid"  # half a point behind: a tie, broken by the lower MAPE
    assert reason.startswith("hybrid") and "tied" in reason and "macs-linear 80.0%" in reason
    best, _ = select_model({"rf": result(96.0, 3.5), "hybrid": result(90.0, 2.9)})
    assert best == "rf"


# --- features -----------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["mbv3-small", "ofa-mbv3-w1.0", "transformer-small", "bort-small", "hat-wmt"])
def test_table_features_equal_the_cost_model(preset):
    space = get_space(preset)
    featurizer = ArchFeaturizer(space.to_dict()).fit()
    assert featurizer.tables_ is not None
    genes = space.sample_genes(60, 1)
    fast = featurizer.transform(genes)
    exact = featurizer.analytic_features_slow(genes)
    np.testing.assert_array_equal(fast, exact)
    names = list(featurizer.get_feature_names_out())
    costs = [space.cost(a) for a in space.from_genes(genes)]
    np.testing.assert_array_equal(fast[:, names.index("macs")], [c.macs for c in costs])


def test_space_without_tables_falls_back_to_the_cost_model(space, monkeypatch):
    from ofa.spaces import MobileNetV3Space

    genes = space.sample_genes(20, 2)
    fast = ArchFeaturizer(space.to_dict()).fit().transform(genes)
    monkeypatch.setattr(MobileNetV3Space, "additive_layout", lambda self: None)
    slow = ArchFeaturizer(space.to_dict()).fit()
    assert slow.tables_ is None
    np.testing.assert_array_equal(slow.transform(genes), fast)


def test_featurizer_is_a_transformer(space):
    genes = space.sample_genes(10, 0)
    featurizer = ArchFeaturizer(space.to_dict(), "analytic+encoding")
    assert featurizer.fit(genes) is featurizer
    assert featurizer.transform(genes).shape == (10, len(featurizer.get_feature_names_out()))
    assert clone(featurizer).get_params() == featurizer.get_params()
    featurizer.set_params(features=("macs", "params"))
    np.testing.assert_array_equal(featurizer.fit_transform(genes)[:, 0],
                                  [space.cost(a).macs for a in space.from_genes(genes)])
    assert ArchFeaturizer("mbv3-small", "encoding").fit().transform(genes).shape == (10, space.encoding_size)
    with pytest.raises(ConfigError, match="unknown analytic feature"):
        ArchFeaturizer(space.to_dict(), ("flops",)).fit()
    with pytest.raises(ConfigError, match="shape"):
        featurizer.transform(genes[:, :5])
    with pytest.raises(ConfigError, match="out of range"):
        featurizer.transform(np.full_like(genes, 7))
    # values left in the genes of skipped blocks are ignored, as the space defines
    padded = np.where(genes == -1, 0, genes)
    np.testing.assert_array_equal(featurizer.transform(padded), featurizer.transform(genes))


# --- the estimator API ---------------------------------------------------------------------
class _SumSource(RegressorMixin, BaseEstimator):
    """A stand-in source device for the estimator checks (any number of columns)."""

    def fit(self, X, y=None):
        return self

    def predict(self, X):
        return 1.0 + np.abs(np.asarray(X, dtype=np.float64)).sum(axis=1)


@pytest.mark.parametrize("estimator", [AdditiveLUTRegressor(), HybridLatencyRegressor(n_estimators=10),
                                       SourceCorrectionRegressor(FrozenEstimator(_SumSource())),
                                       SourceCorrectionRegressor(FrozenEstimator(_SumSource()), "linear",
                                                                 FrozenEstimator(FunctionTransformer()))],
                         ids=["lut", "hybrid", "transfer-log-linear", "transfer-linear"])
def test_sklearn_check_estimator(estimator):
    failed = [r for r in check_estimator(estimator, on_fail=None) if r["status"] == "failed"]
    assert not failed, [(r["check_name"], str(r["exception"])[:200]) for r in failed]


def test_models_work_in_pipelines_grid_search_and_cross_validation(space, device_data):
    genes, clean, _ = device_data
    model = make_latency_model("hybrid", space)
    scores = cross_val_score(model, genes[:120], clean[:120], cv=KFold(3, shuffle=True, random_state=0))
    assert np.all(scores > 0.9)
    grid = GridSearchCV(make_latency_model("gbr", space), {"model__regressor__max_depth": [2, 3]}, cv=3)
    grid.fit(genes[:90], clean[:90])
    assert grid.best_params_["model__regressor__max_depth"] in (2, 3)
    assert make_latency_model("macs-linear", space).fit(genes, clean).score(genes, clean) > 0.8


def test_lut_is_exact_on_additive_data(space):
    rng = np.random.default_rng(3)
    counts = [len(c) for c in space.gene_choices]
    table = [rng.uniform(0.1, 1.0, size=n + 1) for n in counts]  # entry 0: skipped (-1)
    genes = space.sample_genes(400, rng)
    y = 0.5 + sum(table[j][genes[:, j] + 1] for j in range(space.num_genes))
    model = make_latency_model("lut", space).fit(genes[:300], y[:300])
    np.testing.assert_allclose(model.predict(genes[300:]), y[300:], rtol=1e-9)


# --- the architecture-level predictor -----------------------------------------------------------
def test_fit_latency_predictor_chooses_by_cross_validation(fitted, space, device_data):
    assert isinstance(fitted, LatencyPredictor)
    assert fitted.device == "synthetic-roofline" and fitted.target == "latency_ms"
    selection = fitted.metrics_["selection"]
    assert selection["model"] == fitted.model_name
    assert selection["reason"].startswith(fitted.model_name) and "within +-10%" in selection["reason"]
    cv = fitted.metrics_["cv"]
    assert set(cv) == {"macs-linear", "lut", "gbr", "hybrid"}
    assert cv[fitted.model_name]["within_10"] >= max(m["within_10"] for m in cv.values()) - max(1.0, 100 / 200)
    genes, clean, _ = device_data
    held_out = regression_report(clean[200:], fitted.predict_genes(genes[200:]))
    assert held_out["within_10"] >= 90 and held_out["spearman"] > 0.95
    archs = space.from_genes(genes[200:203])
    np.testing.assert_array_equal(fitted.predict_archs(archs), fitted.predict_genes(genes[200:203]))
    low, high = fitted.predict_interval_genes(genes[200:], coverage=0.8)
    assert np.all(low <= high)
    assert 55 <= interval_coverage(clean[200:], low, high) <= 100


def test_transformer_space_latency_predictor(tmp_path):
    space = get_space("transformer-small")
    genes = space.sample_genes(120, 4)
    latency = roofline_latency(space, genes, peak_macs_per_ms=5e5, elements_per_ms=2e5)
    path = write_profile(tmp_path / "transformer.jsonl", space, genes[:80], latency[:80])
    predictor = fit_latency_predictor(path, model="hybrid", cv=3)
    assert within(latency[80:], predictor.predict_genes(genes[80:]), 0.10) >= 90
    np.testing.assert_array_equal(predictor.predict_archs(space.from_genes(genes[80:82])),
                                  predictor.predict_genes(genes[80:82]))


def test_round_trip_and_refusals(fitted, space, device_data, tmp_path):
    genes = device_data[0]
    path = fitted.save(tmp_path / "cpu.skops")
    loaded = load_predictor(path, space="mbv3-small")
    np.testing.assert_array_equal(loaded.predict_genes(genes), fitted.predict_genes(genes))
    assert (loaded.model_name, loaded.device, loaded.target) == (fitted.model_name, fitted.device, fitted.target)
    assert loaded.space_fingerprint == space.fingerprint
    assert loaded.metrics_["selection"] == fitted.metrics_["selection"]
    assert loaded.profile_header["device"] == "synthetic-roofline"
    np.testing.assert_allclose(loaded.predict_interval_genes(genes[:5])[0],
                               fitted.predict_interval_genes(genes[:5])[0])
    # made for another space
    with pytest.raises(SpaceMismatchError):
        load_predictor(path, space="ofa-mbv3-w1.0")
    other = get_space("ofa-mbv3-w1.0")
    with pytest.raises(SpaceMismatchError):
        loaded.predict_archs(other.sample(rng=0))
    with pytest.raises(ConfigError):
        loaded.predict_genes(other.sample_genes(3, 0))
    # not a predictor / untrusted content
    (tmp_path / "junk.skops").write_bytes(b"\x80\x04not a zip")
    with pytest.raises(PredictorError, match="not a predictor"):
        load_predictor(tmp_path / "junk.skops")
    import skops.io

    hostile = skops.io.dumps({"estimator": FunctionTransformer(func=eval), "meta": "{}"})
    (tmp_path / "hostile.skops").write_bytes(hostile)
    with pytest.raises(PredictorError, match="does not trust"):
        load_predictor(tmp_path / "hostile.skops")
    with pytest.raises(PredictorError, match="no predictor file"):
        load_predictor(tmp_path / "missing.skops")


def test_features_of_another_version_are_refused(fitted, tmp_path, monkeypatch):
    path = fitted.save(tmp_path / "p.skops")
    import predictors.features as features

    monkeypatch.setattr(features, "FEATURES_VERSION", features.FEATURES_VERSION + 1)
    with pytest.raises(PredictorError, match="re-fit"):
        load_predictor(path)


# --- transfer to a new device -----------------------------------------------------------------
def test_transfer_with_few_samples_beats_training_on_them_alone(fitted, space, device_data, tmp_path):
    genes, clean, _ = device_data
    target = 1.8 * clean ** 0.9  # the new device: faster on big networks, slower on small ones
    few = np.arange(200, 212)  # 12 measured architectures on the new device
    test = np.arange(212, 260)
    transferred = fit_transfer_predictor(fitted, (genes[few], target[few]))
    assert transferred.model_name.startswith("transfer-") and transferred.device == "unknown"
    assert "within +-10%" in transferred.metrics_["selection"]["reason"]
    log_linear = fit_transfer_predictor(fitted, (genes[few], target[few]), correction="log-linear")
    assert log_linear.estimator.steps[-1][1].slope_ == pytest.approx(0.9, abs=0.1)
    with_transfer = within(target[test], transferred.predict_genes(genes[test]), 0.10)
    assert with_transfer >= 95
    alone = {name: within(target[test], make_latency_model(name, space).fit(genes[few], target[few]).predict(
        genes[test]), 0.10) for name in ("macs-linear", "gbr", "hybrid")}
    assert with_transfer >= max(alone.values())
    assert with_transfer > alone["macs-linear"] and with_transfer > alone["gbr"]
    # cross-validation keeps the frozen source fitted
    scores = cross_val_score(transferred.estimator, genes[few], target[few], cv=3)
    assert np.all(np.isfinite(scores))
    loaded = load_predictor(transferred.save(tmp_path / "transfer.skops"))
    np.testing.assert_array_equal(loaded.predict_genes(genes[test]), transferred.predict_genes(genes[test]))


# --- accuracy predictors -------------------------------------------------------------------------
def _evaluation_records(space, n, seed=0):
    rng = np.random.default_rng(seed)
    genes = space.sample_genes(n, rng)
    macs = np.array([space.cost(a).macs for a in space.from_genes(genes)])
    top1 = 60 + 8 * np.log(macs / macs.min()) + rng.normal(0, 0.3, size=n)  # bigger subnets: more accurate
    return [{"arch": a.to_dict(), "top1": float(t), "loss": float(3 - t / 40), "split": "val"}
            for a, t in zip(space.from_genes(genes), top1)]


def test_accuracy_predictor_from_jsonl(space, tmp_path):
    records = _evaluation_records(space, 120)
    path = tmp_path / "evaluations.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    predictor = fit_accuracy_predictor(path, space, model="auto", cv=3, max_iter=30)
    assert isinstance(predictor, AccuracyPredictor) and predictor.target == "top1"
    assert set(predictor.metrics_["cv"]) == {"mlp", "gbr"}
    assert "RMSE" in predictor.metrics_["selection"]["reason"]
    test = _evaluation_records(space, 60, seed=1)
    truth = np.array([r["top1"] for r in test])
    prediction = predictor.predict_archs([r["arch"] for r in test])
    assert spearman(truth, prediction) > 0.8
    low, high = predictor.predict_interval_archs([r["arch"] for r in test], coverage=0.8)
    assert np.all(high - low > 0)
    loaded = load_predictor(predictor.save(tmp_path / "acc.skops"))
    assert isinstance(loaded, AccuracyPredictor)
    np.testing.assert_array_equal(loaded.predict_archs([r["arch"] for r in test]), prediction)
    loss = fit_accuracy_predictor(records, space, model="gbr", target="loss", split="val", cv=3)
    assert loss.target == "loss"
    with pytest.raises(DataError, match="at least 16"):
        fit_accuracy_predictor(records, space, split="test")
    few = fit_accuracy_predictor(records[:16], space, model="mlp", max_iter=30)  # the MLP's early stopping copes
    assert np.all((few.predict_archs([r["arch"] for r in test]) >= 0) & (few.predict_archs([r["arch"] for r in test]) <= 100))
    with pytest.raises(DataError, match="no numeric 'top5'"):
        fit_accuracy_predictor(records, space, target="top5")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(records[0]) + "\n{oops\n")
    with pytest.raises(DataError, match="bad.jsonl:2"):
        fit_accuracy_predictor(bad, space)


# --- the command-line tool ------------------------------------------------------------------------
def test_fit_predictor_tool(profile_path, tmp_path):
    out = tmp_path / "device.skops"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "fit_predictor.py"), "--profile",
                             str(profile_path), "--out", str(out), "--cv", "3", "--model", "hybrid"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert "macs-linear" in result.stdout and "within_10" in result.stdout
    report = json.loads(out.with_suffix(".json").read_text())
    assert set(report["test"]) == {"macs-linear", "lut", "rf", "gbr", "hybrid"}
    assert report["n_test"] == 40 and report["selection"]["model"] == report["model"] == "hybrid"
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert load_predictor(out).metrics_["test"]["n"] == 40
    missing = subprocess.run([sys.executable, str(ROOT / "tools" / "fit_predictor.py"), "--profile",
                              str(tmp_path / "nope.jsonl"), "--out", str(out)], capture_output=True, text=True,
                             cwd=ROOT, timeout=120, env=env)
    assert missing.returncode == 2 and "PathError" in missing.stderr
    assert "--profile" in missing.stderr and "nope.jsonl" in missing.stderr and "does not exist" in missing.stderr
