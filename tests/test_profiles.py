"""Profile datasets, the measurement protocol, sampling, resuming and
importing phone measurements (no runtime needed beyond numpy/torch)."""

import json

import numpy as np
import pytest

from hardware_profiles import (MeasurementProtocol, ProfileWriter, get_backend, latency_stats, list_backends,
                               measure_runners, profile_space, read_profile, stratified_sample)
from hardware_profiles.device_import import benchncnn_shape, import_phone_results, parse_phone_results
from hardware_profiles.protocol import Runner
from ofa.errors import BackendUnavailableError, ConfigError, ProfileError


class FakeRunner(Runner):
    """A runner on a fake clock: each run advances it by the next duration (ms)."""

    def __init__(self, durations_ms):
        self.now_ns = 0
        self.durations = iter(durations_ms)
        self.input_shapes = [(1, 3, 8, 8)]
        self.clocks = {"latency_ms": lambda: self.now_ns, "cpu_time_ms": lambda: self.now_ns // 2}

    def run(self):
        self.now_ns += int(round(next(self.durations) * 1e6))


def test_latency_stats_known_values():
    stats = latency_stats(np.arange(1, 11, dtype=float))
    assert stats["median"] == 5.5 and stats["mean"] == 5.5 and stats["runs"] == 10
    assert stats["p10"] == pytest.approx(1.9) and stats["p90"] == pytest.approx(9.1)
    assert stats["std"] == pytest.approx(np.sqrt(110 / 12))  # sample std of 1..10
    assert stats["cv"] == pytest.approx(stats["std"] / 5.5)
    with pytest.raises(ProfileError):
        latency_stats([])
    with pytest.raises(ProfileError):
        latency_stats([1.0, float("nan")])


def test_protocol_statistics_on_fake_timer():
    protocol = MeasurementProtocol(warmup=2, runs=5, passes=2, rel_tolerance=0.05, max_remeasure=0)
    # warm-up 2 runs (not recorded), then two passes of 5 runs
    runner = FakeRunner([100, 100] + [1, 2, 3, 4, 5] + [6, 7, 8, 9, 10])
    (record,) = measure_runners([runner], protocol, rng=0)
    assert record["latency_ms"] == latency_stats(np.arange(1, 11, dtype=float))
    assert record["cpu_time_ms"]["median"] == pytest.approx(2.75)  # the fake thread clock runs at half speed
    # pass medians 3 and 8 ms: 167% apart, more than the tolerance, and no re-measurement allowed
    assert record["pass_gap"] == pytest.approx(5 / 3, abs=1e-6) and not record["passes_agree"]
    assert record["remeasured"] == 0 and "load_average" in record


def test_protocol_remeasures_disagreeing_passes():
    protocol = MeasurementProtocol(warmup=1, runs=4, passes=2, rel_tolerance=0.05, max_remeasure=2)
    steady = FakeRunner([9] + [2.0] * 8)
    # first pair of passes disagrees (2 vs 3 ms), the repeated pair agrees
    drifting = FakeRunner([9] + [2.0] * 4 + [3.0] * 4 + [2.0] * 8)
    a, b = measure_runners([steady, drifting], protocol, rng=1)
    assert a["remeasured"] == 0 and a["passes_agree"]
    assert b["remeasured"] == 1 and b["passes_agree"] and b["pass_gap"] == 0.0
    assert b["latency_ms"]["median"] == pytest.approx(2.0) and b["latency_ms"]["runs"] == 8
    assert a["cpu_time_ms"]["median"] == pytest.approx(1.0)  # the fake thread clock runs at half speed
    assert a["latency_ms"]["std"] == 0.0


def test_protocol_gives_up_after_max_remeasure():
    protocol = MeasurementProtocol(warmup=0, runs=2, passes=2, rel_tolerance=0.05, max_remeasure=1)
    always_drifting = FakeRunner([1, 1, 2, 2, 1, 1, 2, 2])
    (record,) = measure_runners([always_drifting], protocol)
    assert record["remeasured"] == 1 and not record["passes_agree"] and record["pass_gap"] == pytest.approx(1.0)


def test_protocol_rejects_bad_values():
    with pytest.raises(ConfigError):
        MeasurementProtocol(runs=0)
    with pytest.raises(ConfigError):
        MeasurementProtocol(rel_tolerance=1.5)


def test_stratified_sample_covers_range(small_space):
    archs = stratified_sample(small_space, 40, rng=3, min_pool=300)
    assert len({a.to_json() for a in archs}) == 40
    macs = np.array([small_space.cost(a).macs for a in archs])
    assert macs.min() == small_space.cost(small_space.smallest()).macs
    assert macs.max() == small_space.cost(small_space.largest()).macs
    counts = np.histogram(macs, bins=4)[0]
    assert counts.min() >= 5  # every quarter of the MAC range is measured
    again = stratified_sample(small_space, 40, rng=3, min_pool=300)
    assert [a.to_json() for a in again] == [a.to_json() for a in archs]
    with pytest.raises(ConfigError):
        stratified_sample(small_space, 0)


def test_get_backend_names_and_errors():
    assert set(list_backends()) >= {"cpu-ort", "gpu-tensorrt", "gpu-cuda", "mobile-ncnn", "fpga-scalesim",
                                    "fpga-analytical"}
    with pytest.raises(ConfigError, match="available"):
        get_backend("tpu-magic")
    with pytest.raises(ConfigError, match="allowed"):
        get_backend("cpu-ort", thread=2)
    with pytest.raises(ConfigError):
        get_backend("cpu-ort", threads=0)
    with pytest.raises(ConfigError):
        get_backend("fpga-analytical", accelerator="no-such-accelerator")


def _profile(path, space, n=6):
    archs = space.sample(rng=1, n=n)
    return profile_space(space, get_backend("fpga-analytical"), n, path, seed=1, archs=archs, progress=False)


def test_profile_space_resumes_after_kill(tmp_path, small_space):
    path = tmp_path / "p.jsonl"
    full = _profile(path, small_space)
    expected = [r["arch"] for r in full.records]
    assert len(full) == 6 and full.header["backend"] == "fpga-analytical"
    assert full.header["protocol"]["sampling"]["method"] == "given"
    # simulate a kill while the 4th record was being written: keep 3 records and half of the 4th
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:4]) + lines[4][: len(lines[4]) // 2])
    with pytest.raises(ProfileError, match=r":5: the last line is incomplete"):
        read_profile(path)
    assert len(read_profile(path, allow_partial_last_line=True)) == 3
    resumed = _profile(path, small_space)
    assert sorted(json.dumps(r["arch"]) for r in resumed.records) == sorted(json.dumps(a) for a in expected)
    assert path.read_text().endswith("\n")
    # a rerun of a complete profile measures nothing
    before = path.read_text()
    _profile(path, small_space)
    assert path.read_text() == before


def test_resume_refuses_another_backend(tmp_path, small_space):
    path = tmp_path / "p.jsonl"
    _profile(path, small_space, n=2)
    with pytest.raises(ProfileError, match="write to another file"):
        profile_space(small_space, get_backend("fpga-scalesim", cache_dir=tmp_path / "c"), 2, path,
                      archs=small_space.sample(rng=1, n=2), progress=False)


@pytest.mark.parametrize("corrupt, message", [
    (lambda lines: lines[:2] + ["{not json\n"] + lines[3:], r":3: not valid JSON"),
    (lambda lines: lines[:2] + ["[1, 2]\n"] + lines[3:], r":3: expected a JSON object"),
    (lambda lines: [lines[1]] + lines[1:], r":1: the first line must be the profile header"),
    (lambda lines: lines[:3] + [lines[3].replace('"median"', '"middle"')], r":4: latency_ms must hold"),
    (lambda lines: lines[:3] + [lines[3].replace('"resolution":', '"resolution":1000,"x":')],
     r":4: (not valid JSON|architecture not valid)"),
    (lambda lines: lines[:2] + [lines[2].replace('"kind":"measurement"', '"kind":"note"')], r":3: expected a measurement"),
])
def test_malformed_profiles_name_the_line(tmp_path, small_space, corrupt, message):
    path = tmp_path / "p.jsonl"
    _profile(path, small_space, n=3)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(corrupt(lines)))
    with pytest.raises(ProfileError, match=message):
        read_profile(path)


def test_empty_and_missing_profiles(tmp_path):
    with pytest.raises(ProfileError, match="no profile file"):
        read_profile(tmp_path / "absent.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ProfileError, match="empty"):
        read_profile(tmp_path / "empty.jsonl")


def test_unavailable_gpu_backends_say_what_to_install(small_space):
    torch = pytest.importorskip("torch")
    from ofa.supernets import create_supernet

    model = create_supernet(small_space).extract(small_space.smallest())
    for name in ("gpu-cuda", "gpu-tensorrt"):
        backend = get_backend(name)
        if backend.available():
            continue  # covered by the GPU tests in test_profiles_backends.py
        assert backend.available() is False
        with pytest.raises(BackendUnavailableError, match="pip install|CUDA"):
            backend.measure(model)
    with pytest.raises(ConfigError):
        get_backend("gpu-tensorrt", precision="int4")
    del torch


def _bundle(tmp_path, space, archs):
    from ofa.io import atomic_write_json

    bundle = tmp_path / "bundle"
    atomic_write_json(bundle / "manifest.json", {
        "format": "ofa-hw-ncnn-bundle", "version": 1, "space": space.to_dict(),
        "space_fingerprint": space.fingerprint, "seed": 0, "strata": 10,
        "models": [{"id": f"a{i:04d}", "arch": a.to_dict(), "input_shapes": [[1, 3, a.resolution, a.resolution]],
                    "param": f"models/a{i:04d}.param"} for i, a in enumerate(archs)]})
    return bundle


def test_import_phone_results(tmp_path, small_space):
    archs = small_space.sample(rng=0, n=2)
    bundle = _bundle(tmp_path, small_space, archs)
    lines = ["# model = Pixel 7", "# soc = Tensor G2", "# threads = 1", "# loops = 1", "# repeats = 3"]
    for i, times in enumerate([(1.5, 1.7, 1.6), (2.25, 2.0, 2.5)]):
        for r, t in enumerate(times, start=1):
            lines.append(f"a{i:04d} {r}  models/a{i:04d}.param  min = {t:7.2f}  max = {t:7.2f}  avg = {t:7.2f}")
    results = tmp_path / "results.txt"
    results.write_text("\n".join(lines) + "\n")
    profile = import_phone_results(results, bundle, tmp_path / "phone.jsonl", device="pixel-7")
    assert profile.device == "pixel-7" and profile.header["host"]["phone"] == "Pixel 7"
    assert profile.header["measured_on_device"] is True
    assert np.allclose(profile.latencies(), [1.6, 2.25])
    assert [a.to_json() for a in profile.archs()] == [a.to_json() for a in archs]
    # a second import of the same results adds nothing
    again = import_phone_results(results, bundle, tmp_path / "phone.jsonl", device="pixel-7")
    assert len(again) == 2


def test_import_phone_results_errors(tmp_path, small_space):
    bundle = _bundle(tmp_path, small_space, small_space.sample(rng=0, n=1))
    bad = tmp_path / "bad.txt"
    bad.write_text("# threads = 1\na0000 1 models/a0000.param min = 1.0 max = 1.2 avg = 1.1\na0000 oops\n")
    with pytest.raises(ProfileError, match=r"bad.txt:3:"):
        parse_phone_results(bad)
    other = tmp_path / "other.txt"
    other.write_text("a0099 1 x min = 1.0 max = 1.0 avg = 1.0\n")
    with pytest.raises(ProfileError, match="not in"):
        import_phone_results(other, bundle, tmp_path / "o.jsonl", device="phone")
    with pytest.raises(ProfileError, match="manifest"):
        import_phone_results(other, tmp_path / "nowhere", tmp_path / "o.jsonl", device="phone")
    assert benchncnn_shape([1, 3, 24, 32]) == "[32,24,3]"


def test_profile_writer_keeps_records_atomic(tmp_path, small_space):
    backend = get_backend("fpga-analytical")
    from hardware_profiles import profile_header

    header = profile_header(small_space, backend)
    writer = ProfileWriter(tmp_path / "w.jsonl", header)
    arch = small_space.smallest()
    writer.append(arch, latency_stats([1.0, 2.0]), input_shapes=[[1, 3, 24, 24]], load_average=0.5)
    assert arch.to_json() in writer.measured
    profile = read_profile(tmp_path / "w.jsonl")
    assert profile.latencies("latency_ms", "mean")[0] == 1.5
    with pytest.raises(ProfileError, match="cpu_time_ms"):
        profile.latencies("cpu_time_ms")


def test_profile_device_command(tmp_path, capsys):
    from ofa_pipeline.commands import profile_device as tool

    out = tmp_path / "cli.jsonl"
    args = ["--space", "mbv3-small", "--backend", "fpga-analytical", "--num-archs", "3", "--out", str(out),
            "--no-progress"]
    assert tool.main(args) == 0
    assert len(read_profile(out)) == 3
    assert tool.main(args) == 0  # resumes: nothing left to measure
    assert len(read_profile(out)) == 3
    assert tool.main(["--backend", "no-such-backend", "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "unknown backend" in capsys.readouterr().err
