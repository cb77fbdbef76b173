"""Bad inputs across every tool and the public API: each gets a named
OFAError (tools: exit status 2 and the error's type name on stderr) whose
message names the offending value, before any work, and no file is created
or changed. Plus property-based tests: whatever random input, any failure is
an OFAError."""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from ofa.errors import (CheckpointError, ConfigError, DataError, OFAError, PredictorError, ProfileError,
                        TrainingError)
from ofa.validation import PathError

SPACE = "mbv3-small"
# the cheapest models that save and load like any predictor: these tests check refusals, not predictions
LATENCY_MODEL = "lut"
ACCURACY_MODEL = "mlp"


class NotPlainData:  # a class torch.load(weights_only=True) refuses to unpickle
    def __init__(self):
        self.payload = "would run code"


# --- fixtures, built once ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from hardware_profiles import get_backend, profile_space
    from ofa import create_supernet
    from ofa.spaces import get_space
    from ofa.training.checkpoint import save_checkpoint
    from ofa.training.progressive_shrinking import DEFAULT_CONFIG
    from predictors import fit_latency_predictor, load_predictor

    root = tmp_path_factory.mktemp("fixtures")
    space = get_space(SPACE)
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "final.pt", trainer="mobilenetv3", space=space,
                           config={**DEFAULT_CONFIG, "data": {**DEFAULT_CONFIG["data"], "calib_images": 32}},
                           model=create_supernet(space))
    profile_path = root / "fpga.jsonl"
    profile = profile_space(space, get_backend("fpga-analytical"), 12, profile_path, seed=0, progress=False)
    latency = fit_latency_predictor(profile, model=LATENCY_MODEL, cv=3)
    latency.save(root / "fpga.skops")
    # an accuracy predictor whose recorded held-out rank correlation is negative
    rng = np.random.default_rng(0)
    records = [{"arch": a.to_dict(), "top1": float(50 + 10 * rng.random())} for a in space.sample(0, n=20)]
    from predictors import fit_accuracy_predictor

    with warnings.catch_warnings():  # one training iteration does not converge, and need not
        warnings.simplefilter("ignore")
        accuracy = fit_accuracy_predictor(records, space, model=ACCURACY_MODEL, cv=2, max_iter=1)
    accuracy.metrics_["test"] = {"spearman": 0.9}
    accuracy.save(root / "accuracy.skops")
    accuracy.metrics_["test"] = {"spearman": -0.4}
    accuracy.save(root / "bad-accuracy.skops")
    assert load_predictor(root / "fpga.skops").kind == "latency"
    (root / "random.bin").write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)))
    (root / "truncated.pt").write_bytes(Path(ckpt).read_bytes()[:3000])
    torch.save({"x": NotPlainData()}, root / "malicious.pt")
    (root / "a-dir").mkdir()
    (root / "plain.txt").write_text("hello\n")
    (root / "arch.json").write_text(json.dumps(space.smallest().to_dict()))
    (root / "notjson.json").write_text("{not json")
    (root / "evals.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    return {"root": root, "ckpt": str(ckpt), "profile": str(profile_path), "fpga": str(root / "fpga.skops"),
            "acc": str(root / "accuracy.skops"), "badacc": str(root / "bad-accuracy.skops"),
            "random": str(root / "random.bin"), "truncated": str(root / "truncated.pt"),
            "malicious": str(root / "malicious.pt"), "dir": str(root / "a-dir"), "txt": str(root / "plain.txt"),
            "arch": str(root / "arch.json"), "notjson": str(root / "notjson.json"),
            "evals": str(root / "evals.jsonl"), "png": str(root / "image.png")}


def snapshot(*roots: Path) -> dict:
    """Every path under ``roots`` with what identifies its content: small files
    by their bytes' digest, large ones (checkpoints, predictors: written once by
    the fixture) by inode, size and modification time, which any write or
    replacement changes."""
    state = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                stat = path.stat()
                if not path.is_file():
                    state[str(path)] = "dir"
                elif stat.st_size <= 65536:
                    state[str(path)] = (stat.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
                else:
                    state[str(path)] = (stat.st_mtime_ns, stat.st_ino, stat.st_size)
    return state


# --- the tools ----------------------------------------------------------------------------------------------
def _tool(name):
    import importlib

    return importlib.import_module(f"ofa_pipeline.commands.{name}").main


FIT = ["--profile", "{profile}", "--out", "{case}/p.skops"]
EVAL = ["--supernet", "{ckpt}", "--archs", "smallest", "--out", "{case}/e.jsonl"]
EXPORT = ["--supernet", "{ckpt}", "--arch", "{arch}", "--out", "{case}/m.onnx", "--no-recalibrate-bn"]
PROFILE = ["--space", SPACE, "--backend", "fpga-analytical", "--num-archs", "2", "--no-progress",
           "--out", "{case}/prof.jsonl"]
SPEC = ["--supernet", "{ckpt}", "--accuracy-predictor", "{acc}", "--latency-predictor", "{fpga}",
        "--device", "fpga-analytical", "--latency-ms", "1", "--out", "{case}/deploy", "--no-measure"]


def replace(base, option, value):
    """``base`` with ``option``'s value replaced (or the option added)."""
    argv = list(base)
    if option in argv:
        argv[argv.index(option) + 1] = value
    else:
        argv += [option, value]
    return argv


# (tool, argv, error type name, texts the message must contain)
TOOL_CASES = []


def case(tool, argv, error, *texts):
    TOOL_CASES.append((tool, argv, error, texts))


# numeric arguments
for tool, base, option, bad in [
    ("fit_predictor", FIT, "--cv", ["1", "0", "-3", "x", "2.5"]),
    ("fit_predictor", FIT, "--test-fraction", ["0", "1", "1.5", "-0.1", "nan", "inf", "x"]),
    ("fit_predictor", FIT, "--seed", ["-1", "x"]),
    ("evaluate", EVAL, "--batch-size", ["0", "-1", "x", "1.5"]),
    ("evaluate", EVAL, "--calib-images", ["-5", "0", "x"]),
    ("evaluate", EVAL, "--threads", ["-1", "x"]),
    ("evaluate", EVAL, "--seed", ["-2"]),
    ("export_onnx", EXPORT, "--calib-images", ["0", "-5"]),
    ("export_onnx", EXPORT, "--int8-calib-images", ["0", "x"]),
    ("profile_device", PROFILE, "--num-archs", ["0", "-1", "x"]),
    ("profile_device", PROFILE, "--batch-size", ["0", "-2"]),
    ("profile_device", PROFILE, "--chunk-size", ["0"]),
    ("profile_device", PROFILE, "--strata", ["0"]),
    ("profile_device", PROFILE, "--runs", ["0"]),
    ("profile_device", PROFILE, "--warmup", ["-1"]),
    ("profile_device", PROFILE, "--threads", ["0"]),
    ("specialize", SPEC, "--latency-ms", ["0", "-1", "nan", "inf", "x"]),
    ("specialize", SPEC, "--population", ["0", "x"]),
    ("specialize", SPEC, "--generations", ["0"]),
    ("specialize", SPEC, "--pareto-generations", ["-1"]),
    ("specialize", SPEC, "--calib-images", ["-5", "0"]),
    ("specialize", SPEC, "--eval-archs", ["0"]),
    ("specialize", SPEC, "--max-macs", ["-1", "0", "nan"]),
    ("specialize", SPEC, "--max-params", ["-1"]),
]:
    for value in bad:
        case(tool, replace(base, option, value), "ConfigError", option, value)

# choices
case("fit_predictor", FIT + ["--statistic", "p50"], "ConfigError", "p50", "median", "p90")
case("fit_predictor", FIT + ["--statistic", "medain"], "ConfigError", "medain", "did you mean 'median'")
case("fit_predictor", FIT + ["--target", "accuracy"], "ConfigError", "accuracy", "top1")
case("fit_predictor", FIT + ["--metric", "energy_mj"], "ProfileError", "energy_mj", "available metrics")
case("evaluate", EVAL + ["--split", "holdout"], "ConfigError", "holdout", "val")
case("export_onnx", EXPORT + ["--opset", "5"], "ConfigError", "5", "allowed")
case("export_onnx", EXPORT + ["--opset", "99"], "ConfigError", "99", "allowed")
case("export_onnx", EXPORT + ["--opset", "12"], "ConfigError", "12", "allowed")
case("export_onnx", EXPORT + ["--opset", "x"], "ConfigError", "x")
case("evaluate", replace(EVAL, "--archs", "random:0"), "ConfigError", "random:0", "N >= 1")
case("evaluate", replace(EVAL, "--archs", "random:x"), "ConfigError", "random:x")
case("evaluate", replace(EVAL, "--archs", "{notjson}"), "ConfigError", "notjson.json", "JSON")
case("evaluate", replace(EVAL, "--archs", "no-such-spec"), "ConfigError", "no-such-spec", "largest")
case("profile_device", replace(PROFILE, "--backend", "fpga-analyticl"), "OFAError", "fpga-analyticl")
case("profile_device", replace(PROFILE, "--space", "mbv3-tiny-nope"), "OFAError", "mbv3-tiny-nope")
case("specialize", SPEC + ["--device", "cpu-ort"], "ConfigError", "--latency-ms", "2 devices")

# input paths
for tool, base, option in [("fit_predictor", FIT, "--profile"), ("evaluate", EVAL, "--supernet"),
                           ("export_onnx", EXPORT, "--supernet"), ("specialize", SPEC, "--supernet"),
                           ("specialize", SPEC, "--accuracy-predictor"), ("specialize", SPEC, "--latency-predictor")]:
    case(tool, replace(base, option, "{case}/missing.file"), "PathError", "missing.file", "does not exist")
    case(tool, replace(base, option, "{dir}"), "PathError", "a-dir", "directory")
    case(tool, replace(base, option, "{random}"), "PathError", "random.bin", "binary")
    case(tool, replace(base, option, "{txt}"), "PathError", "plain.txt", "text")
    case(tool, replace(base, option, "{png}"), "PathError", "image.png", "PNG")
case("fit_predictor", replace(FIT, "--profile", "{ckpt}"), "PathError", "final.pt", "checkpoint", "profile")
case("evaluate", replace(EVAL, "--supernet", "{profile}"), "PathError", "fpga.jsonl", "profile", "checkpoint")
case("specialize", replace(SPEC, "--accuracy-predictor", "{ckpt}"), "PathError", "final.pt", "predictor")
case("evaluate", replace(EVAL, "--supernet", "{truncated}"), "OFAError", "truncated.pt")
case("evaluate", replace(EVAL, "--supernet", "{malicious}"), "CheckpointError", "malicious.pt", "arbitrary code")
case("export_onnx", replace(EXPORT, "--supernet", "{malicious}"), "CheckpointError", "arbitrary code")
case("export_onnx", replace(EXPORT, "--arch", "{case}/none.json"), "PathError", "none.json", "does not exist")
case("export_onnx", replace(EXPORT, "--arch", "{dir}"), "PathError", "a-dir", "directory")
case("export_onnx", replace(EXPORT, "--arch", "{notjson}"), "ConfigError", "notjson.json", "not JSON")
case("fit_predictor", ["--evaluations", "{random}", "--space", SPACE, "--out", "{case}/a.skops"],
     "PathError", "random.bin")
case("fit_predictor", ["--evaluations", "{evals}", "--out", "{case}/a.skops"], "ConfigError", "--space")
case("profile_device", ["--import", "{case}/none.txt", "--bundle", "{dir}", "--device", "p", "--out",
                        "{case}/x.jsonl"], "PathError", "none.txt", "does not exist")
case("profile_device", ["--import", "{txt}", "--bundle", "{txt}", "--device", "p", "--out", "{case}/x.jsonl"],
     "PathError", "plain.txt", "directory")
case("profile_device", ["--import", "{txt}", "--out", "{case}/x.jsonl"], "ConfigError", "--bundle")

# output paths: never an input, never a valuable file of another kind, writable, right kind
for tool, base, option in [("fit_predictor", FIT, "--out"), ("fit_predictor", FIT, "--plot"),
                           ("fit_predictor", FIT, "--metrics-json"), ("evaluate", EVAL, "--out"),
                           ("evaluate", EVAL, "--plot"), ("profile_device", PROFILE, "--out")]:
    case(tool, replace(base, option, "{ckpt}"), "PathError", "final.pt")
    case(tool, replace(base, option, "{dir}"), "PathError", "a-dir", "directory")
    case(tool, replace(base, option, "/proc/ofa-test/out.x"), "PathError", "/proc", "not writable")
    case(tool, replace(base, option, "{txt}/under/out.x"), "PathError", "plain.txt", "is a file")
    if (tool, option) != ("fit_predictor", "--out"):  # a predictor may replace a predictor
        case(tool, replace(base, option, "{fpga}"), "PathError", "fpga.skops")
case("fit_predictor", replace(FIT, "--out", "{profile}"), "PathError", "fpga.jsonl", "--profile")
case("fit_predictor", FIT + ["--plot", "{profile}"], "PathError", "fpga.jsonl", "--profile")
case("fit_predictor", FIT + ["--plot", "{case}/p.skops"], "PathError", "p.skops", "--out")
case("evaluate", EVAL + ["--plot", "{ckpt}"], "PathError", "final.pt", "--supernet")
case("evaluate", replace(EVAL, "--out", "{profile}"), "PathError", "fpga.jsonl", "profile")
case("profile_device", replace(PROFILE, "--out", "{evals}"), "PathError", "evals.jsonl", "evaluation")
case("export_onnx", replace(EXPORT, "--out", "{ckpt}"), "ConfigError", "final.pt", ".onnx")
case("export_onnx", replace(EXPORT, "--out", "{root}/final.onnx"), "PathError", "final.pt", "--supernet")
case("export_onnx", replace(EXPORT, "--out", "/proc/ofa-test/m.onnx"), "PathError", "/proc")
case("export_onnx", replace(EXPORT, "--out", "{txt}/m.onnx"), "PathError", "plain.txt")
for value in ("{ckpt}", "{txt}", "/proc/ofa-test/deploy", "{fpga}"):
    case("specialize", replace(SPEC, "--out", value), "PathError", value)
case("train_supernet", ["--config", "mbv3-small-digits", "--out", "{txt}"], "PathError", "plain.txt", "directory")
case("train_supernet", ["--config", "mbv3-small-digits", "--out", "/proc/ofa-test/run"], "PathError", "/proc")

# predictors that do not fit the request
case("specialize", replace(SPEC, "--accuracy-predictor", "{fpga}"), "PredictorError", "fpga.skops", "latency",
     "accuracy")
case("specialize", replace(SPEC, "--latency-predictor", "{acc}"), "PredictorError", "accuracy.skops",
     "latency")
case("specialize", replace(SPEC, "--device", "cpu-ort"), "PredictorError", "fpga", "cpu-ort")
case("specialize", replace(SPEC, "--accuracy-predictor", "{badacc}"), "PredictorError", "bad-accuracy.skops",
     "-0.400", "--accept-untrusted-predictor")

# training configs
CONFIGS = {
    "typo": ("space: mbv3-small\ntrian: {batch_size: 8}\n", "ConfigError", ["trian", "did you mean 'train'"]),
    "nested-typo": ("space: mbv3-small\ntrain: {batch_sise: 8}\n", "ConfigError",
                    ["batch_sise", "did you mean 'train.batch_size'"]),
    "nan-lr": ("space: mbv3-small\nphases: [{name: a, epochs: 1, lr: .nan}]\n", "ConfigError", ["lr", "finite"]),
    "inf-lr": ("space: mbv3-small\nphases: [{name: a, epochs: 1, lr: .inf}]\n", "ConfigError", ["lr", "finite"]),
    "neg-lr": ("space: mbv3-small\nphases: [{name: a, epochs: 1, lr: -1}]\n", "ConfigError", ["lr", "-1"]),
    "batch0": ("space: mbv3-small\ntrain: {batch_size: 0}\n", "ConfigError", ["batch_size", ">= 1"]),
    "nan-decay": ("space: mbv3-small\ntrain: {weight_decay: .nan}\n", "ConfigError", ["weight_decay"]),
    "classes": ("space: mbv3-small\nspace_overrides: {num_classes: 3}\n", "ConfigError",
                ["num_classes", "3", "10 classes"]),
    "no-space": ("seed: 0\n", "ConfigError", ["space"]),
    "bad-space": ("space: mbv3-huge\n", "OFAError", ["mbv3-huge"]),
    "list": ("- a\n- b\n", "ConfigError", ["mapping"]),
    "yaml": ("space: [unclosed\n", "ConfigError", ["YAML"]),
    "seed": ("space: mbv3-small\nseed: -3\n", "ConfigError", ["seed", "-3"]),
    "device": ("space: mbv3-small\ndevice: tpu\n", "ConfigError", ["device", "tpu"]),
}
for name, (text, error, texts) in CONFIGS.items():
    case("train_supernet", ["--config", f"{{case}}/{name}.yaml", "--out", "{case}/run"], error, *texts)
case("train_supernet", ["--config", "{case}/none.yaml", "--out", "{case}/run"], "ConfigError", "none.yaml")
case("train_supernet", ["--config", "{dir}", "--out", "{case}/run"], "ConfigError", "a-dir", "directory")


@pytest.mark.parametrize("tool,argv,error,texts", TOOL_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(TOOL_CASES)])
def test_tool_refuses_bad_input(files, tmp_path, capsys, tool, argv, error, texts):
    for name, (text, _, _) in CONFIGS.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    values = {**files, "case": str(tmp_path)}
    argv = [a.format(**values) for a in argv]
    texts = [t.format(**values) for t in texts]
    before = snapshot(files["root"], tmp_path)
    try:
        status = _tool(tool)(argv)
    except SystemExit as exit_:  # argparse usage errors
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2, err
    if error == "OFAError":
        assert "Error" in err, err
    else:
        assert f"{error}" in err, err
    for text in texts:
        assert text in err, (text, err)
    assert "weights_only=False" not in err or "arbitrary code" in err
    assert snapshot(files["root"], tmp_path) == before, "a refused command created or changed files"


# Bort-style extraction (python -m ofa.bort): refused before any data is built or model loaded
BORT = ["--space", "transformer-small", "--out", "{case}/bort.json"]
BORT_CASES = [(replace(BORT, option, value), "ConfigError", (option, value)) for option, values in [
    ("--alpha", ["-1", "nan", "x"]), ("--beta", ["-0.5", "inf"]), ("--gamma", ["nan", "-8"]),
    ("--samples", ["-2", "1.5"]), ("--scratch-steps", ["0", "x"]), ("--limit", ["0", "-3"]), ("--seed", ["-1"]),
] for value in values] + [
    (["--supernet", "{case}/none.pt", "--out", "{case}/b.json"], "PathError", ("none.pt", "does not exist")),
    (["--supernet", "{profile}", "--out", "{case}/b.json"], "PathError", ("fpga.jsonl", "checkpoint")),
    (["--supernet", "{dir}", "--out", "{case}/b.json"], "PathError", ("a-dir", "directory")),
    (["--supernet", "{ckpt}", "--config", "transformer-small", "--out", "{case}/b.json"], "ConfigError",
     ("--config", "--space")),
    (replace(BORT, "--config", "{case}/none.yaml"), "ConfigError", ("none.yaml", "does not exist")),
    (["--supernet", "{ckpt}", "--out", "{ckpt}"], "PathError", ("final.pt", "--supernet")),
    (replace(BORT, "--out", "{dir}"), "PathError", ("a-dir", "directory")),
    (replace(BORT, "--out", "{fpga}"), "PathError", ("fpga.skops", "--overwrite")),
    (replace(BORT, "--out", "/proc/ofa-test/b.json"), "PathError", ("/proc", "not writable")),
    (["--out", "{case}/b.json"], "ConfigError", ("--supernet", "--space")),
]


@pytest.mark.parametrize("argv,error,texts", BORT_CASES, ids=[f"bort-{i}" for i in range(len(BORT_CASES))])
def test_bort_refuses_bad_input(files, tmp_path, capsys, argv, error, texts):
    from ofa.bort import main

    values = {**files, "case": str(tmp_path)}
    before = snapshot(files["root"], tmp_path)
    try:
        status = main([a.format(**values) for a in argv])
    except SystemExit as exit_:  # argparse usage errors
        status = exit_.code
    err = capsys.readouterr().err
    assert status == 2 and error in err, err
    for text in texts:
        assert text.format(**values) in err, (text, err)
    assert snapshot(files["root"], tmp_path) == before, "a refused command created or changed files"


@pytest.mark.parametrize("exponents", [{"alpha": -1.0}, {"beta": math.nan}, {"gamma": math.inf}, {"alpha": True}])
def test_extract_optimal_refuses_bad_exponents(exponents):
    from ofa.bort import extract_optimal
    from ofa.spaces import get_space

    space = get_space("transformer-small")
    with pytest.raises(ConfigError, match=next(iter(exponents))):
        extract_optimal(space, lambda arch: 1.0, [space.smallest()], **exponents)


# --- the Python API -------------------------------------------------------------------------------------------
def _api_cases():
    from ofa.spaces import get_space

    space = get_space(SPACE)
    good = space.smallest().to_dict()
    arch_cases = [
        {**good, "kernel_sizes": [4] + good["kernel_sizes"][1:]},
        {**good, "depths": [5, 2, 2, 2]},
        {**good, "depths": [2, 2, 2]},
        {**good, "resolution": 31},
        {**good, "resolution": "32"},
        {**good, "expand_ratios": [7] + good["expand_ratios"][1:]},
        {k: v for k, v in good.items() if k != "depths"},
        {**good, "bogus": 1},
        {**good, "space": "0000000000000000"},
        [1, 2, 3],
        "largest",
        None,
    ]
    return space, arch_cases


API_ARCH_INDICES = list(range(12))


@pytest.mark.parametrize("index", API_ARCH_INDICES)
def test_space_parse_refuses_bad_arch(index):
    space, cases = _api_cases()
    with pytest.raises(ConfigError):
        space.parse(cases[index])


@pytest.mark.parametrize("rng", ["seed", 1.5, -1, True, [1, 2], object()])
def test_as_rng_refuses_wrong_types(rng):
    from ofa.spaces import as_rng

    with pytest.raises(ConfigError, match="rng must be"):
        as_rng(rng)


@pytest.mark.parametrize("name", ["ckpt_dir", "missing", "random", "truncated", "malicious", "profile", "empty"])
def test_load_checkpoint_refuses(files, tmp_path, name):
    from ofa.training.checkpoint import load_checkpoint, load_supernet

    (tmp_path / "empty.pt").write_bytes(b"")
    path = {"ckpt_dir": files["dir"], "missing": str(tmp_path / "x.pt"), "random": files["random"],
            "truncated": files["truncated"], "malicious": files["malicious"], "profile": files["profile"],
            "empty": str(tmp_path / "empty.pt")}[name]
    for load in (load_checkpoint, load_supernet):
        with pytest.raises(CheckpointError) as info:
            load(path)
        message = str(info.value)
        assert Path(path).name in message
        if name == "ckpt_dir":
            assert "is a directory" in message and "does not exist" not in message
        assert "weights_only=False" not in message or "arbitrary code" in message


@pytest.mark.parametrize("name", ["malicious", "random", "dir", "ckpt"])
def test_load_subnet_weights_refuses(files, name):
    from ofa.export import load_subnet_weights

    with pytest.raises(CheckpointError) as info:
        load_subnet_weights(files[name])
    assert "weights_only=False" not in str(info.value) or "arbitrary code" in str(info.value)


@pytest.mark.parametrize("text", [b"\xff\xfe\x00garbage", b"", b"not json\n", b'{"kind": "header"}\n',
                                  b'[1, 2]\n', b'{"kind": "measurement"}\n', b"\n\n"])
def test_read_profile_refuses(tmp_path, text):
    from hardware_profiles import read_profile

    path = tmp_path / "p.jsonl"
    path.write_bytes(text)
    with pytest.raises(ProfileError, match="p.jsonl"):
        read_profile(path)


def test_read_profile_random_bytes_and_directory(files):
    from hardware_profiles import read_profile

    with pytest.raises(ProfileError, match="not UTF-8"):
        read_profile(files["random"])
    with pytest.raises(ProfileError, match="directory"):
        read_profile(files["dir"])


@pytest.mark.parametrize("statistic", ["p50", "max", ""])
def test_profile_statistic_lists_statistics(files, statistic):
    from hardware_profiles import read_profile

    with pytest.raises(ProfileError) as info:
        read_profile(files["profile"]).latencies("latency_ms", statistic)
    assert "available statistics" in str(info.value) and "median" in str(info.value)
    assert "latency_ms'" not in str(info.value).split("available statistics")[1]


@pytest.mark.parametrize("name", ["random", "ckpt", "dir", "txt"])
def test_load_predictor_refuses(files, name):
    from predictors import load_predictor

    with pytest.raises(OFAError):
        load_predictor(files[name])


@pytest.mark.parametrize("shape", [(1, 1, 32, 32), (1, 4, 32, 32), (3, 32, 32), (32,)])
def test_network_refuses_wrong_input_shape(shape):
    from ofa import create_supernet
    from ofa.spaces import get_space

    space = get_space(SPACE)
    supernet = create_supernet(space).eval()
    for model in (supernet, supernet.extract(space.smallest())):
        with pytest.raises(DataError, match=r"\(batch, 3, height, width\)"):
            model(torch.zeros(shape))


@pytest.mark.parametrize("opset", [0, 5, 13, 100, "17", 17.0, True, None])
def test_check_opset(opset):
    from ofa.export import check_opset

    with pytest.raises(ConfigError, match="opset"):
        check_opset(opset)


@pytest.mark.parametrize("lr", [math.nan, math.inf, -0.1, 0.0])
def test_train_classifier_refuses_bad_learning_rate(lr):
    from ofa.training.static import train_classifier

    with pytest.raises(TrainingError, match="learning rate"):
        train_classifier(torch.nn.Linear(2, 2), None, 1, 8, lr=lr)


def test_non_finite_loss_and_gradient_stop_with_step():
    from ofa.training.finite import check_finite_step

    model = torch.nn.Linear(2, 1)
    with pytest.raises(TrainingError, match="step 7"):
        check_finite_step(float("nan"), model, None, "step 7")
    model(torch.tensor([[float("inf"), 1.0]])).sum().backward()
    with pytest.raises(TrainingError, match="gradient"):
        check_finite_step(1.0, model, None, "step 8")
    optimizer = torch.optim.SGD(model.parameters(), lr=float("nan"))
    with pytest.raises(TrainingError, match="learning rate"):
        check_finite_step(1.0, None, optimizer, "step 9")


def test_diverging_supernet_training_stops_with_named_error(tmp_path):
    """A learning rate so large the loss overflows: TrainingError naming the phase and
    step; no final.pt is written."""
    from ofa.training.progressive_shrinking import ProgressiveShrinkingTrainer

    config = {"space": SPACE, "data": {"max_train_images": 64, "calib_images": 16},
              "train": {"batch_size": 32, "progress": False, "threads": 1, "kd_ratio": 0.0},
              "phases": [{"name": "teacher", "epochs": 1, "lr": 1e30, "kernel_sizes": "max", "expand_ratios": "max",
                          "depths": "max", "resolutions": "min"}]}
    with pytest.raises(TrainingError, match=r"phase 0 \(teacher\).*step"):
        ProgressiveShrinkingTrainer(config, tmp_path / "run").run()
    assert not (tmp_path / "run" / "final.pt").exists()


def test_corrupt_images_reported_together_before_work(tmp_path):
    from PIL import Image

    from ofa.data import build_datasets

    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(4):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / label / f"{i}.png")
    (tmp_path / "a" / "bad1.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "b" / "bad2.jpg").write_bytes(b"not an image at all")
    with pytest.raises(DataError) as info:
        build_datasets(tmp_path, 16, 3)
    assert "bad1.png" in str(info.value) and "bad2.jpg" in str(info.value) and "2 file(s)" in str(info.value)


def test_second_profile_writer_is_refused(tmp_path, files):
    from hardware_profiles import ProfileWriter, read_profile

    header = read_profile(files["profile"]).header
    first = ProfileWriter(tmp_path / "p.jsonl", header)
    with pytest.raises(ProfileError, match="another process is writing"):
        ProfileWriter(tmp_path / "p.jsonl", header)
    first.close()
    ProfileWriter(tmp_path / "p.jsonl", header).close()


def test_truncated_last_checkpoint_names_phase_checkpoint(tmp_path, files):
    from ofa.spaces import get_space
    from ofa.training.resume import resume_payload

    run = tmp_path / "run"
    run.mkdir()
    (run / "phase0-teacher.pt").write_bytes(Path(files["ckpt"]).read_bytes())
    (run / "last.pt").write_bytes(Path(files["truncated"]).read_bytes())
    with pytest.raises(CheckpointError, match="phase0-teacher.pt"):
        resume_payload(run, True, get_space(SPACE), "mobilenetv3", {})


@pytest.mark.parametrize("value,check", [("0", "positive_int"), ("-1", "non_negative_int"), ("nan", "fraction"),
                                         ("1", "fraction"), ("inf", "positive_float"), ("0", "positive_float"),
                                         ("true", "positive_int"), ("", "positive_float")])
def test_validation_helpers(value, check):
    from ofa import validation

    with pytest.raises(ConfigError) as info:
        getattr(validation, check)(value, "--x")
    assert "--x" in str(info.value) and repr(value) in str(info.value)


def test_output_checks_leave_nothing_behind(tmp_path, files):
    from ofa.validation import check_output_path

    before = snapshot(tmp_path)
    check_output_path(tmp_path / "new" / "deeper" / "out.png", kind=("png",))
    check_output_path(tmp_path / "outdir", kind="dir")
    assert snapshot(tmp_path) == before
    with pytest.raises(PathError, match="--overwrite"):
        check_output_path(files["ckpt"], kind=("png",))
    check_output_path(files["ckpt"], kind=("png",), overwrite=True)  # allowed when asked


# --- reports flag missed budgets and INT8 regressions --------------------------------------------------------
def test_reports_flag_over_budget_and_int8_regression():
    from ofa_pipeline.specialize import summary_table, target_warnings

    row = {"target": "cpu-1ms", "arch_summary": "k3", "objective": "top1", "predicted_objective": 80.0,
           "measured_accuracy": 79.0, "label_loyalty": 0.9, "probability_loyalty": 0.9,
           "devices": [{"device": "cpu-ort", "budget_ms": 1.0, "predicted_latency_ms": 0.9,
                        "measured_latency_ms": 1.4}],
           "int8": {"latency_ms": 0.8}, "fp32": {"latency_ms": 0.5}}
    warnings = target_warnings(row)
    assert any("OVER BUDGET" in w and "1.400" in w for w in warnings)
    assert any("INT8 IS SLOWER" in w for w in warnings)
    table = summary_table([row])
    assert "OVER BUDGET" in table and "INT8 IS SLOWER" in table


# --- property-based: whatever the input, a failure is an OFAError --------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

PROPERTY = settings(max_examples=25, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
plain = st.recursive(st.none() | st.booleans() | st.integers(-10, 300) | st.floats(allow_nan=True) | st.text(max_size=5),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=10)


@PROPERTY
@given(st.dictionaries(st.sampled_from(["kernel_sizes", "expand_ratios", "depths", "resolution", "space", "x"]),
                       plain, max_size=5))
def test_property_arch_dicts(value):
    from ofa.spaces import get_space

    try:
        get_space(SPACE).parse(value)
    except OFAError:
        pass


@PROPERTY
@given(st.dictionaries(st.sampled_from(["kernel_sizes", "depths", "resolutions", "num_classes", "in_channels",
                                        "stage_widths", "type", "stem_width"]), plain, max_size=4))
def test_property_space_configs(overrides):
    from ofa.spaces import get_space, space_from_dict

    try:
        space_from_dict({**get_space(SPACE).to_dict(), **overrides})
    except OFAError:
        pass


@PROPERTY
@given(st.dictionaries(st.sampled_from(["space", "seed", "train", "data", "phases", "device", "space_overrides",
                                        "trian"]), plain, max_size=4))
def test_property_training_configs(config):
    from ofa.training.progressive_shrinking import check_config

    try:
        check_config({"space": SPACE, **config})
    except OFAError:
        pass


@PROPERTY
@given(st.lists(st.binary(max_size=40) | st.text(max_size=40).map(str.encode), min_size=0, max_size=3))
def test_property_profile_lines(lines):
    import tempfile

    from hardware_profiles import read_profile

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "p.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        try:
            read_profile(path)
        except OFAError:
            pass


@PROPERTY
@given(st.sampled_from(["--batch-size", "--calib-images", "--threads", "--seed"]),
       st.text(max_size=6) | st.integers(-5, 0).map(str))
def test_property_tool_arguments(option, value):
    import contextlib
    import io
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        stderr = io.StringIO()
        argv = ["--supernet", str(Path(directory) / "none.pt"), "--out", str(Path(directory) / "e.jsonl"),
                option, value]
        with contextlib.redirect_stderr(stderr):
            try:
                status = _tool("evaluate")(argv)
            except SystemExit as exit_:
                status = exit_.code
        assert status == 2 and "Error" in stderr.getvalue()
        assert os.listdir(directory) == []
