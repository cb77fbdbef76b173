"""Importing Once-for-All's published supernets and accuracy predictor, checked
against the reference implementation, and ImageNet-format data.

Parity tests run the reference package (PyPI ``ofa``, the same import name as
this package) as an oracle in a separate process (``tests/ofa_reference_oracle.py``,
which also holds the stand-in for the torchvision import the reference makes
and does not need). The reference is installed once with
``pip install --no-deps --target ~/.cache/ofa-hw/oracle-<version>`` (or the
directory in ``OFA_ORACLE_DIR``); where it cannot be installed, those tests
are skipped with pip's reason. Both sides get the same random weights (BN
statistics and kernel-transform matrices included), inputs and architectures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ofa.errors import CheckpointError, ConfigError, DataError, PredictorError, SpaceMismatchError
from ofa.pretrained import (convert_ofa_mbv3_checkpoint, convert_ofa_mbv3_state_dict, infer_space, reference_key_map,
                            save_converted_supernet)
from ofa.spaces import get_space

ORACLE_VERSION = "0.1.0.post202307202001"
ORACLE_SCRIPT = Path(__file__).with_name("ofa_reference_oracle.py")
TOLERANCE = 1e-5


# --- the oracle --------------------------------------------------------------------------------------------
def _oracle_dir() -> Path:
    configured = os.environ.get("OFA_ORACLE_DIR")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "ofa-hw" / f"oracle-{ORACLE_VERSION}"


@pytest.fixture(scope="session")
def oracle_dir() -> Path:
    target = _oracle_dir()
    if (target / "ofa" / "__init__.py").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    command = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "--quiet",
               "--target", str(staging), f"ofa=={ORACLE_VERSION}"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as error:
        shutil.rmtree(staging, ignore_errors=True)
        pytest.skip(f"cannot install the reference oracle ofa=={ORACLE_VERSION}: {error}")
    if result.returncode != 0 or not (staging / "ofa" / "__init__.py").is_file():
        shutil.rmtree(staging, ignore_errors=True)
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.skip(f"cannot install the reference oracle ofa=={ORACLE_VERSION} (no network?): {reason}")
    try:
        os.replace(staging, target)  # a complete install appears at once, or not at all
    except OSError:  # another run installed it first
        shutil.rmtree(staging, ignore_errors=True)
    return target


def run_oracle(oracle_dir: Path, request: dict, out_dir: Path) -> Path:
    """Run the reference in its own interpreter, from an empty working
    directory, with ``-I`` so that this repository is not on its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    request_path = out_dir / "request.pt"
    torch.save(request, request_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    workdir = out_dir / "cwd"
    workdir.mkdir(exist_ok=True)
    result = subprocess.run([sys.executable, "-I", str(ORACLE_SCRIPT), str(oracle_dir), str(request_path),
                             str(out_dir)], cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"the oracle failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    assert str(oracle_dir) in result.stdout, result.stdout  # it ran the reference, not this package
    return out_dir


def reference_arch(arch) -> dict:
    """Our architecture as the reference's set_active_subnet arguments (skipped blocks get any value)."""
    return {"ks": [k if k is not None else 3 for k in arch.kernel_sizes],
            "e": [int(e) if e is not None else 3 for e in arch.expand_ratios], "d": list(arch.depths),
            "r": arch.resolution}


def supernet_case(oracle_dir, tmp_path_factory, width_mult, archs, resolutions, seed):
    generator = torch.Generator().manual_seed(seed + 1)
    inputs = [torch.randn(1, 3, r, r, generator=generator) for r in resolutions]
    out = run_oracle(oracle_dir, {"kind": "supernet", "seed": seed, "width_mult": width_mult, "wrapped": True,
                                  "archs": [reference_arch(a) for a in archs], "inputs": inputs},
                     tmp_path_factory.mktemp(f"oracle-w{width_mult}"))
    return {"dir": out, "archs": archs, "inputs": inputs,
            "outputs": torch.load(out / "outputs.pt", weights_only=True)}


@pytest.fixture(scope="session")
def w10_case(oracle_dir, tmp_path_factory):
    space = get_space("ofa-mbv3-w1.0")
    archs = [space.largest(), space.smallest()] + space.sample(rng=np.random.default_rng(13), n=20)
    return supernet_case(oracle_dir, tmp_path_factory, 1.0, archs, (128, 224), seed=0)


@pytest.fixture(scope="session")
def w12_case(oracle_dir, tmp_path_factory):
    space = get_space("ofa-mbv3-w1.2")
    return supernet_case(oracle_dir, tmp_path_factory, 1.2, [space.largest(), space.smallest()], (160, 224),
                         seed=1)


def max_differences(supernet, case) -> tuple[float, float, float]:
    """(dynamic, static, spread): the largest |ours - reference| of the supernet
    with ``set_active`` and of ``extract`` against ``get_active_subnet``, and
    how much the reference outputs of the first two architectures differ."""
    dynamic = static = 0.0
    with torch.no_grad():
        for arch, reference_dynamic, reference_static in zip(case["archs"], case["outputs"]["dynamic"],
                                                              case["outputs"]["static"]):
            supernet.set_active(arch)
            subnet = supernet.extract(arch).eval()
            for x, expected_dynamic, expected_static in zip(case["inputs"], reference_dynamic, reference_static):
                dynamic = max(dynamic, (supernet(x) - expected_dynamic).abs().max().item())
                static = max(static, (subnet(x) - expected_static).abs().max().item())
    first, second = case["outputs"]["dynamic"][0][0], case["outputs"]["dynamic"][1][0]
    return dynamic, static, (first - second).abs().max().item()


# --- supernet parity ---------------------------------------------------------------------------------------
def test_w10_supernet_matches_reference_on_22_subnets(w10_case):
    supernet = convert_ofa_mbv3_checkpoint(w10_case["dir"] / "state_dict.pt")
    assert supernet.space.fingerprint == get_space("ofa-mbv3-w1.0").fingerprint
    dynamic, static, spread = max_differences(supernet, w10_case)
    print(f"\nw1.0 parity, 22 subnets x resolutions (128, 224): supernet {dynamic:.2e}, extracted {static:.2e} "
          f"(largest vs smallest differ by {spread:.2e})")
    assert spread > 0.1  # the comparison can tell subnets apart
    assert dynamic <= TOLERANCE
    assert static <= TOLERANCE


def test_w12_supernet_matches_reference_largest_and_smallest(w12_case):
    supernet = convert_ofa_mbv3_checkpoint(w12_case["dir"] / "wrapped.pt")  # {"state_dict": ..., "epoch": ...}
    assert supernet.space.fingerprint == get_space("ofa-mbv3-w1.2").fingerprint
    dynamic, static, spread = max_differences(supernet, w12_case)
    print(f"\nw1.2 parity, largest + smallest x resolutions (160, 224): supernet {dynamic:.2e}, "
          f"extracted {static:.2e}")
    assert spread > 0.1
    assert dynamic <= TOLERANCE and static <= TOLERANCE


def test_converted_checkpoint_loads_with_load_supernet(w10_case, tmp_path):
    from ofa.training.checkpoint import load_checkpoint, load_supernet
    from ofa_pipeline.commands.import_pretrained import main

    out = tmp_path / "ofa-w1.0.pt"
    assert main(["supernet", str(w10_case["dir"] / "wrapped.pt"), "--out", str(out)]) == 0
    payload = load_checkpoint(out)  # weights_only=True
    assert payload["space_fingerprint"] == get_space("ofa-mbv3-w1.0").fingerprint
    assert payload["config"]["data"]["preprocessing"] == "imagenet"
    supernet = load_supernet(out)
    arch, reference = w10_case["archs"][5], w10_case["outputs"]["dynamic"][5]
    supernet.set_active(arch)
    with torch.no_grad():
        assert (supernet(w10_case["inputs"][0]) - reference[0]).abs().max().item() <= TOLERANCE
    # the input is never overwritten
    assert main(["supernet", str(out), "--out", str(out)]) == 2


# --- converter errors (no oracle needed: a reference-named state dict built from our own supernet) ----------
@pytest.fixture(scope="module")
def reference_named_w10():
    from ofa.supernets import create_supernet

    space = get_space("ofa-mbv3-w1.0")
    torch.manual_seed(0)
    ours = create_supernet(space).state_dict()
    named = {ref: ours[key].clone() for ref, key in reference_key_map(space).items()}
    # the reference's current spelling of dynamic layers
    spelled = {}
    for key, value in named.items():
        if key.startswith("blocks.") and not key.startswith("blocks.0."):
            key = key.replace(".bn.", ".bn.bn.").replace(".conv.weight", ".conv.conv.weight")
        spelled[key] = value
    return spelled, ours


def test_both_key_spellings_convert(reference_named_w10):
    spelled, ours = reference_named_w10
    state = convert_ofa_mbv3_state_dict(spelled)
    assert set(state) == set(ours) and all(torch.equal(state[k].float(), ours[k].float()) for k in ours)
    old_style = {k.replace(".bn.bn.", ".bn.").replace(".conv.conv.weight", ".conv.weight")
                 .replace(".conv.", ".mobile_inverted_conv.", 1) if k.startswith("blocks.") else k: v
                 for k, v in spelled.items()}
    old_style = {("module." + k): v for k, v in old_style.items()}  # a DataParallel prefix too
    state = convert_ofa_mbv3_state_dict({"state_dict": old_style})
    assert all(torch.equal(state[k].float(), ours[k].float()) for k in ours)


def test_unknown_missing_and_misshapen_keys_are_listed(reference_named_w10):
    spelled, _ = reference_named_w10
    extra = dict(spelled, **{"blocks.3.conv.depth_conv.conv.9to7_matrix": torch.eye(49)})
    with pytest.raises(CheckpointError, match=r"1 unknown keys.*9to7_matrix"):
        convert_ofa_mbv3_state_dict(extra, "ofa-mbv3-w1.0")
    missing = {k: v for k, v in spelled.items() if "blocks.7.conv.depth_conv.conv.5to3" not in k}
    with pytest.raises(CheckpointError, match=r"1 missing keys.*blocks\.7\.conv\.depth_conv\.conv\.5to3_matrix"):
        convert_ofa_mbv3_state_dict(missing, "ofa-mbv3-w1.0")
    misshapen = dict(spelled, **{"classifier.linear.weight": torch.zeros(10, 1280)})
    with pytest.raises(CheckpointError, match=r"1 wrongly shaped keys.*classifier\.linear\.weight"):
        convert_ofa_mbv3_state_dict(misshapen, "ofa-mbv3-w1.0")
    with pytest.raises(SpaceMismatchError, match="shapes fit none"):  # and nothing to infer from
        infer_space(misshapen)
    with pytest.raises(CheckpointError, match="not a Once-for-All MobileNetV3 supernet.*unknown"):
        infer_space({"0.weight": torch.zeros(400, 128)})


def test_other_width_multiplier_is_named(reference_named_w10):
    spelled, _ = reference_named_w10
    with pytest.raises(SpaceMismatchError, match=r"ofa-mbv3-w1\.0.*not 'ofa-mbv3-w1\.2'"):
        convert_ofa_mbv3_state_dict(spelled, "ofa-mbv3-w1.2")
    with pytest.raises(ConfigError, match="MobileNetV3"):
        convert_ofa_mbv3_state_dict(spelled, "transformer-small")


def test_checkpoint_files_are_never_unpickled(reference_named_w10, tmp_path):
    spelled, _ = reference_named_w10
    hostile = tmp_path / "with_objects.pth"
    torch.save({"state_dict": spelled, "args": argparse.Namespace(lr=0.1)}, hostile)
    with pytest.raises(CheckpointError, match="cannot be read"):
        convert_ofa_mbv3_checkpoint(hostile)
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        convert_ofa_mbv3_checkpoint(tmp_path / "absent")
    with pytest.raises(CheckpointError, match="non-tensor"):
        convert_ofa_mbv3_state_dict({"first_conv.conv.weight": [1, 2]})


# --- accuracy predictors ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def predictor_case(oracle_dir, tmp_path_factory):
    space = get_space("ofa-mbv3-w1.0")
    archs = [space.largest(), space.smallest()] + space.sample(rng=np.random.default_rng(5), n=300)
    out = run_oracle(oracle_dir, {"kind": "predictors", "seed": 3, "base_acc": 0.75,
                                  "image_sizes": list(space.resolutions),
                                  "archs": [reference_arch(a) for a in archs]},
                     tmp_path_factory.mktemp("oracle-predictors"))
    return {"dir": out, "space": space, "archs": archs,
            "predictions": torch.load(out / "predictions.pt", weights_only=True)}


@pytest.mark.parametrize("encoding, file, key", [("tutorial", "tutorial_acc_predictor.pth", "tutorial"),
                                                 ("arch-encoder", "arch_encoder_predictor.pth", "arch_encoder")])
def test_accuracy_predictor_matches_reference(predictor_case, tmp_path, encoding, file, key):
    from ofa_pipeline.commands.import_pretrained import main
    from predictors import load_predictor

    space, archs = predictor_case["space"], predictor_case["archs"]
    expected = predictor_case["predictions"][key].numpy()
    out = tmp_path / f"{encoding}.skops"
    assert main(["accuracy-predictor", str(predictor_case["dir"] / file), "--space", "ofa-mbv3-w1.0",
                 "--out", str(out)]) == 0
    predictor = load_predictor(out, space=space)  # skops, trusted types only
    assert predictor.model_name == f"ofa-reference-{encoding}"
    genes = space.to_genes(archs)
    ours = predictor.estimator.predict(genes) / 100.0  # percent -> the reference's fraction
    difference = np.abs(ours - expected).max()
    print(f"\n{encoding} predictor parity on {len(archs)} architectures: {difference:.2e} "
          f"(predictions span {expected.min():.3f}-{expected.max():.3f})")
    assert expected.std() > 1e-3
    assert difference <= TOLERANCE
    within = (expected > 0) & (expected < 1)
    assert np.abs(predictor.predict_archs(archs)[within] / 100.0 - expected[within]).max() <= TOLERANCE


def test_arch_encoder_input_matches_reference_encoding(predictor_case):
    from predictors.ofa_reference import convert_ofa_accuracy_predictor

    space = predictor_case["space"]
    predictor = convert_ofa_accuracy_predictor(predictor_case["dir"] / "arch_encoder_predictor.pth", space)
    encoded = predictor.estimator[-1].encode(space.to_genes([predictor_case["archs"][0]]).astype(float))
    np.testing.assert_array_equal(encoded[0], predictor_case["predictions"]["reference_encoding_check"])


def test_predictor_conversion_errors(predictor_case, tmp_path):
    from predictors.ofa_reference import convert_ofa_accuracy_predictor

    state = torch.load(predictor_case["dir"] / "arch_encoder_predictor.pth", weights_only=True)
    with pytest.raises(PredictorError, match="unknown keys.*'head.weight'"):
        convert_ofa_accuracy_predictor(dict(state, **{"head.weight": torch.zeros(1, 3)}), "ofa-mbv3-w1.0")
    with pytest.raises(PredictorError, match="image sizes"):
        convert_ofa_accuracy_predictor(state, "ofa-mbv3-w1.0", image_sizes=[160, 176, 192, 208, 224])
    with pytest.raises(PredictorError, match="inputs"):  # right sizes for the space, wrong for the predictor
        convert_ofa_accuracy_predictor(state, get_space("ofa-mbv3-w1.0", resolutions=(160, 224)))
    tutorial = torch.load(predictor_case["dir"] / "tutorial_acc_predictor.pth", weights_only=True)
    with pytest.raises(PredictorError, match=r"112-239"):
        convert_ofa_accuracy_predictor(tutorial, get_space("ofa-mbv3-w1.0", resolutions=(96, 128)))
    with pytest.raises(PredictorError, match="no accuracy-predictor file"):
        convert_ofa_accuracy_predictor(tmp_path / "absent.pth", "ofa-mbv3-w1.0")


def test_reference_mlp_is_a_plain_estimator():
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    from predictors.ofa_reference import OFAReferenceMLP

    space = get_space("ofa-mbv3-w1.0")
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=(8, 128)), rng.normal(size=(1, 8))]
    model = OFAReferenceMLP(space.to_dict(), "tutorial", weights, [rng.normal(size=8), np.zeros(1)], 0.5)
    with pytest.raises(NotFittedError):
        model.predict(space.to_genes([space.largest()]))
    genes = space.to_genes([space.largest(), space.smallest()] + space.sample(rng=1, n=20))
    np.testing.assert_array_equal(clone(model).fit().predict(genes), model.fit().predict(genes))
    # the tutorial encoding, by hand: kernel 7 -> column 3b+2, expand 6 -> 60+3b+2, 224 px -> 120+7
    largest = model.encode(space.to_genes([space.largest()]))[0]
    assert sorted(np.flatnonzero(largest)) == ([3 * b + 2 for b in range(20)] + [62 + 3 * b for b in range(20)]
                                               + [127])
    smallest = model.encode(space.to_genes([space.smallest()]))[0]  # depth 2: blocks 2, 3 of each stage empty
    used = [b for b in range(20) if b % 4 < 2]
    assert sorted(np.flatnonzero(smallest)) == [3 * b for b in used] + [60 + 3 * b for b in used] + [121]
    with pytest.raises(ConfigError, match="takes 9 inputs but layer 0 gives 8"):
        OFAReferenceMLP(space.to_dict(), "tutorial", [weights[0], rng.normal(size=(1, 9))], [None, None]).fit()
    with pytest.raises(ConfigError, match="one output"):
        OFAReferenceMLP(space.to_dict(), "tutorial", weights[:1], [None]).fit()
    with pytest.raises(ConfigError, match="encoding 'onehot' unknown"):
        OFAReferenceMLP(space.to_dict(), "onehot", weights, [None, None]).fit()


# --- ImageNet-format data -----------------------------------------------------------------------------------
CLASSES = ("n01440764", "n01443537", "n01484850")
COLOURS = ((200, 30, 30), (30, 200, 30), (30, 30, 200))


def make_imagenet_folder(root: Path, train_per_class: int = 3, val_per_class: int = 2) -> Path:
    """A tiny folder in the ILSVRC layout: JPEG and PNG images of several sizes."""
    from PIL import Image

    rng = np.random.default_rng(0)
    sizes = ((300, 200), (180, 260), (240, 240), (400, 150))
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for c, (name, colour) in enumerate(zip(CLASSES, COLOURS)):
            directory = root / split / name
            directory.mkdir(parents=True)
            for i in range(count):
                width, height = sizes[(i + c) % len(sizes)]
                noise = rng.integers(-40, 40, size=(height, width, 3))
                pixels = np.clip(np.array(colour)[None, None, :] + noise, 0, 255).astype(np.uint8)
                image = Image.fromarray(pixels)
                if i % 2:
                    image.save(directory / f"{name}_{i}.png")
                else:
                    image.save(directory / f"{name}_{i}.JPEG", quality=90)
    return root


@pytest.fixture(scope="module")
def imagenet_folder(tmp_path_factory):
    return make_imagenet_folder(tmp_path_factory.mktemp("imagenet"))


def test_center_crop_follows_the_reference_geometry():
    from PIL import Image

    from ofa.data.imagenet import center_crop, eval_resize_size

    assert eval_resize_size(224) == 256 and eval_resize_size(128) == 147 and eval_resize_size(160) == 183
    pixels = np.random.default_rng(1).integers(0, 256, size=(200, 300, 3)).astype(np.uint8)
    image = Image.fromarray(pixels)
    # shorter side 200 -> 147, longer 300 -> int(147 * 1.5) = 220; crop at (round(46), round(9.5) = 10)
    expected = np.asarray(image.resize((220, 147), Image.BILINEAR).crop((46, 10, 174, 138)))
    np.testing.assert_array_equal(center_crop(image, 128), expected)
    tall = Image.fromarray(pixels.transpose(1, 0, 2).copy())  # 200 wide, 300 high
    assert center_crop(tall, 224).shape == (224, 224, 3)


def test_imagenet_splits_preprocessing_and_labels(imagenet_folder):
    from ofa.data import build_datasets, imagenet_datasets
    from ofa.data.imagenet import IMAGENET_MEAN, IMAGENET_STD

    data = imagenet_datasets(imagenet_folder, 160)
    assert data.class_names == CLASSES
    assert (len(data.train), len(data.val), len(data.test)) == (9, 6, 6)
    images, labels = data.val.tensors()
    assert images.shape == (6, 3, 160, 160) and labels.tolist() == [0, 0, 1, 1, 2, 2]
    # normalised with ImageNet statistics: the mean colour of each image comes back
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    colours = (images * std + mean).mean(dim=(2, 3)) * 255
    for colour, label in zip(colours, labels):
        assert torch.allclose(colour, torch.tensor(COLOURS[label], dtype=torch.float32), atol=6)
    # another resolution decodes again (no square resize of a cached image)
    assert data.val.tensors(resolution=128)[0].shape == (6, 3, 128, 128)
    again = build_datasets(imagenet_folder, 160, preprocessing="imagenet")
    assert torch.equal(again.val.tensors()[0], images)


def test_calibration_crops_are_fixed_random_resized_crops(imagenet_folder):
    from ofa.data import imagenet_datasets

    data = imagenet_datasets(imagenet_folder, 128)
    first, _ = data.train.tensors()
    second, _ = imagenet_datasets(imagenet_folder, 128).train.tensors()
    assert torch.equal(first, second)  # the same crops in every run
    centre = imagenet_datasets(imagenet_folder, 128, calib_crop="center").train.tensors()[0]
    assert not torch.equal(first, centre)
    other_seed = imagenet_datasets(imagenet_folder, 128, seed=1).train.tensors()[0]
    assert not torch.equal(first, other_seed)


def test_class_list_keeps_the_model_label_order(imagenet_folder, tmp_path):
    from ofa.data import imagenet_datasets

    class_file = tmp_path / "synsets.txt"
    class_file.write_text("n00000001 first\nn01484850 goldfish\nn01443537 x\nn01440764 tench\n")
    data = imagenet_datasets(imagenet_folder, 128, class_list=class_file)
    assert data.num_classes == 4
    assert data.val.labels.tolist() == [3, 3, 2, 2, 1, 1]
    with pytest.raises(DataError, match="not in the class list"):
        imagenet_datasets(imagenet_folder, 128, class_list=["n01440764", "n01443537"])


def test_imagenet_layout_errors(imagenet_folder, tmp_path):
    from ofa.data import build_datasets, imagenet_datasets

    shutil.copytree(imagenet_folder / "train", tmp_path / "only_train" / "train")
    with pytest.raises(DataError, match="train/<class>.*val/<class>"):
        imagenet_datasets(tmp_path / "only_train")
    with pytest.raises(DataError, match="3 colour channels"):
        imagenet_datasets(imagenet_folder, 128, channels=1)
    with pytest.raises(DataError, match="preprocessing"):
        build_datasets(imagenet_folder, 128, preprocessing="tf")
    broken = tmp_path / "broken"
    shutil.copytree(imagenet_folder, broken)
    (broken / "train" / CLASSES[0] / "zz_bad.JPEG").write_bytes(b"not an image")
    calibration = imagenet_datasets(broken, 128).train  # train/ is checked as images are decoded
    with pytest.raises(DataError, match="cannot read image.*zz_bad"):
        calibration.tensors()
    (broken / "val" / CLASSES[0] / "zz_bad.JPEG").write_bytes(b"not an image")
    with pytest.raises(DataError, match="evaluation file.*not readable.*zz_bad"):  # val/ before any work
        imagenet_datasets(broken, 128)


def test_bn_recalibration_and_evaluation_on_an_imagenet_folder(imagenet_folder):
    from ofa.data import fixed_subset, imagenet_datasets
    from ofa.evaluation import SubnetEvaluator, recalibrate_bn
    from ofa.supernets import create_supernet

    space = get_space("mbv3-small")
    torch.manual_seed(0)
    supernet = create_supernet(space).eval()
    supernet.space = space
    data = imagenet_datasets(imagenet_folder, 32)
    subnet = supernet.extract(space.smallest())
    before = subnet.stem[1].running_mean.clone()
    used = recalibrate_bn(subnet, fixed_subset(data.train, 2000).tensors(resolution=24)[0])
    assert used == 9 and not torch.equal(before, subnet.stem[1].running_mean)
    evaluator = SubnetEvaluator(supernet, data, "val", calib_images=2000, batch_size=4)
    for arch in (space.smallest(), space.largest()):
        record = evaluator.evaluate(arch)
        assert 0 <= record["top1"] <= 100 and np.isfinite(record["loss"])


# --- the one command of the common case ----------------------------------------------------------------------
def _cpu_ort_latency_predictor(space, directory: Path) -> Path | None:
    """None when a profile of this space on cpu-ort ships with the package
    (specialize then fits its own); else a predictor fitted on a few quickly
    measured subnets (a light protocol: this is a functional test)."""
    from hardware_profiles import get_backend, profile_space, read_profile, shipped_profile_path, shipped_profiles
    from predictors import fit_latency_predictor

    for name in shipped_profiles():
        header = read_profile(shipped_profile_path(*name.split("_", 1))).header
        if header["space_fingerprint"] == space.fingerprint and "cpu-ort" in (header["backend"], header["device"]):
            return None
    backend = get_backend("cpu-ort", protocol={"warmup": 1, "runs": 3, "passes": 1, "max_remeasure": 0})
    archs = [space.smallest(), space.largest()] + space.sample(rng=np.random.default_rng(0), n=3)
    profile = profile_space(space, backend, len(archs), directory / "cpu-ort.jsonl", archs=archs, progress=False)
    path = directory / "cpu-ort.skops"
    fit_latency_predictor(profile, model="macs-linear").save(path)
    return path


@pytest.mark.slow
def test_specialize_a_converted_supernet_on_an_imagenet_folder(tmp_path, imagenet_folder):
    """``tools/specialize.py --supernet <converted> --accuracy-predictor <converted> --device cpu-ort
    --latency-ms 20 --data <imagenet folder>``, with a random-weight converted supernet."""
    from ofa.data import imagenet_datasets
    from ofa.evaluation import SubnetEvaluator
    from ofa.supernets import create_supernet
    from ofa.training.checkpoint import load_supernet
    from ofa_pipeline.commands.import_pretrained import main as import_pretrained
    from ofa_pipeline.commands.specialize import main as specialize

    space = get_space("ofa-mbv3-w1.0")
    torch.manual_seed(0)
    ours = create_supernet(space).state_dict()
    reference_state = {ref: ours[key] for ref, key in reference_key_map(space).items()}
    torch.save({"state_dict": reference_state}, tmp_path / "ofa_mbv3_d234_e346_k357_w1.0")
    supernet_path = tmp_path / "ofa-w1.0.pt"
    save_converted_supernet(convert_ofa_mbv3_checkpoint(tmp_path / "ofa_mbv3_d234_e346_k357_w1.0"), supernet_path,
                            source="ofa_mbv3_d234_e346_k357_w1.0", data=str(imagenet_folder))
    rng = torch.Generator().manual_seed(0)
    widths = [(400, 128)] + [(400, 400)] * 2 + [(1, 400)]
    torch.save({f"{i * 2}.{part}": (0.05 * torch.randn(shape if part == "weight" else shape[:1], generator=rng))
                for i, shape in enumerate(widths) for part in ("weight", "bias")}, tmp_path / "acc_predictor.pth")
    assert import_pretrained(["accuracy-predictor", str(tmp_path / "acc_predictor.pth"), "--space",
                              str(supernet_path), "--out", str(tmp_path / "top1.skops")]) == 0
    latency = _cpu_ort_latency_predictor(space, tmp_path)
    out = tmp_path / "deploy"
    argv = ["--supernet", str(supernet_path), "--accuracy-predictor", str(tmp_path / "top1.skops"),
            "--device", "cpu-ort", "--latency-ms", "20", "--data", str(imagenet_folder), "--out", str(out),
            "--population", "16", "--generations", "5", "--pareto-generations", "3", "--calib-images", "2000",
            "--nearest"] + (["--latency-predictor", str(latency)] if latency else [])
    assert specialize(argv) == 0
    target = next(p for p in out.iterdir() if p.is_dir() and p.name.startswith("cpu-ort"))
    summary = json.loads((target / "result.json").read_text())["summary"]
    assert (target / "model.onnx").is_file()
    arch = space.parse(json.loads((target / "arch.json").read_text()))
    assert summary["arch"] == arch.to_dict()
    # The accuracy specialize reports is the one ImageNet preprocessing gives (resize shorter side,
    # centre crop, ImageNet mean/std; BN re-calibrated on fixed random-resized train crops).
    evaluator = SubnetEvaluator(load_supernet(supernet_path), imagenet_datasets(imagenet_folder, 224), "val",
                                calib_images=2000)
    expected = evaluator.evaluate(arch)
    assert summary["measured_loss"] == pytest.approx(expected["loss"], rel=1e-4, abs=1e-5)
