"""Runs the reference Once-for-All package (PyPI ``ofa``) as a test oracle.

Started by ``tests/test_pretrained.py`` as
``python -I tests/ofa_reference_oracle.py ORACLE_DIR REQUEST.pt OUT_DIR``
in a temporary working directory: ``-I`` keeps the working directory, the
script's directory and PYTHONPATH off ``sys.path``, and ORACLE_DIR (a
``pip install --no-deps --target`` of the reference) is put first, so
``import ofa`` finds the reference, never this repository's ``ofa`` (checked
below). torch comes from the running interpreter's environment.

The reference's ``ofa.utils`` imports a torchvision data loader at import
time that building models and predictors never uses; a stand-in
``torchvision`` module is placed in ``sys.modules`` of THIS process only, so
nothing outside the oracle sees it.

The request (a ``torch.save`` dict) says what to build; results go to
``OUT_DIR`` as ``torch.save`` files of tensors and plain data.
"""

import importlib.util
import os
import sys
import types


def install_torchvision_stand_in():
    torchvision = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    datasets = types.ModuleType("torchvision.datasets")

    class RandomResizedCrop:  # only subclassed at import time, never instantiated here
        pass

    transforms.RandomResizedCrop = RandomResizedCrop
    transforms.functional = functional
    torchvision.transforms = transforms
    torchvision.datasets = datasets
    sys.modules.update({"torchvision": torchvision, "torchvision.transforms": transforms,
                        "torchvision.transforms.functional": functional, "torchvision.datasets": datasets})


def import_reference(oracle_dir):
    sys.path.insert(0, oracle_dir)
    install_torchvision_stand_in()
    import ofa

    where = os.path.realpath(ofa.__file__)
    if not where.startswith(os.path.realpath(oracle_dir) + os.sep):
        raise SystemExit(f"oracle: 'ofa' resolved to {where}, not to the reference under {oracle_dir}")
    return ofa


def randomise(module, torch, generator):
    """Random weights everywhere, BN statistics and kernel-transform matrices
    included, scaled so that activations stay of order one."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            if name.endswith("_matrix"):
                param.copy_(torch.eye(param.shape[0]) + 0.1 * torch.randn(param.shape, generator=generator))
        for submodule in module.modules():
            if isinstance(submodule, torch.nn.BatchNorm2d):
                n = submodule.num_features
                submodule.weight.copy_(0.5 + torch.rand(n, generator=generator))
                submodule.bias.copy_(0.1 * torch.randn(n, generator=generator))
                submodule.running_mean.copy_(0.1 * torch.randn(n, generator=generator))
                submodule.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=generator))
                submodule.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=generator)))
        for name, param in module.named_parameters():
            if name.startswith("classifier."):  # logits of order one, so that 1e-5 is a strict bound
                param.mul_(30.0)


def run_supernet(request, out_dir, torch):
    from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3

    torch.manual_seed(request["seed"])
    net = OFAMobileNetV3(n_classes=request.get("n_classes", 1000), dropout_rate=0.1,
                         width_mult=request["width_mult"], ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6],
                         depth_list=[2, 3, 4])
    randomise(net, torch, torch.Generator().manual_seed(request["seed"]))
    net.eval()
    state = net.state_dict()
    torch.save(state, os.path.join(out_dir, "state_dict.pt"))
    if request.get("wrapped"):
        torch.save({"state_dict": state, "epoch": 180}, os.path.join(out_dir, "wrapped.pt"))
    dynamic, static = [], []
    with torch.no_grad():
        for arch in request["archs"]:
            net.set_active_subnet(ks=arch["ks"], e=arch["e"], d=arch["d"])
            subnet = net.get_active_subnet(preserve_weight=True).eval()
            dynamic.append([net(x) for x in request["inputs"]])
            static.append([subnet(x) for x in request["inputs"]])
    torch.save({"dynamic": dynamic, "static": static}, os.path.join(out_dir, "outputs.pt"))


def run_predictors(request, out_dir, torch, oracle_dir):
    import numpy as np

    from ofa.nas.accuracy_predictor import AccuracyPredictor, MobileNetArchEncoder

    generator = torch.Generator().manual_seed(request["seed"])
    results = {}
    # ofa/nas/accuracy_predictor: MLP over MobileNetArchEncoder, output + base_acc.
    encoder = MobileNetArchEncoder(image_size_list=request["image_sizes"], ks_list=[3, 5, 7],
                                   expand_list=[3, 4, 6], depth_list=[2, 3, 4], n_stage=5)
    predictor = AccuracyPredictor(encoder, hidden_size=400, n_layers=3, device="cpu")
    with torch.no_grad():
        for param in predictor.parameters():
            param.copy_(0.05 * torch.randn(param.shape, generator=generator))
        predictor.base_acc.fill_(request["base_acc"])
        archs = [{"ks": a["ks"], "e": a["e"], "d": a["d"], "image_size": a["r"]} for a in request["archs"]]
        results["arch_encoder"] = predictor.predict_acc(archs).double()
    torch.save(predictor.state_dict(), os.path.join(out_dir, "arch_encoder_predictor.pth"))
    # ofa/tutorial/accuracy_predictor.py (the published acc_predictor.pth): loaded from its file, because
    # ofa/tutorial/__init__.py imports evaluation helpers with further dependencies.
    spec = importlib.util.spec_from_file_location(
        "reference_tutorial_accuracy_predictor", os.path.join(oracle_dir, "ofa", "tutorial", "accuracy_predictor.py"))
    tutorial = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tutorial)
    predictor = tutorial.AccuracyPredictor(pretrained=False, device="cpu")
    with torch.no_grad():
        for param in predictor.model.parameters():
            param.copy_(0.05 * torch.randn(param.shape, generator=generator))
        predictor.model[-1].bias.fill_(request["base_acc"])
        population = [{"ks": list(a["ks"]), "e": list(a["e"]), "d": list(a["d"]), "r": [a["r"]]}
                      for a in request["archs"]]
        results["tutorial"] = predictor.predict_accuracy(population).double().reshape(-1)
    torch.save(predictor.model.state_dict(), os.path.join(out_dir, "tutorial_acc_predictor.pth"))
    results["reference_encoding_check"] = np.asarray(encoder.arch2feature(archs[0])).tolist()
    torch.save(results, os.path.join(out_dir, "predictions.pt"))


def main():
    oracle_dir, request_path, out_dir = sys.argv[1:4]
    import torch

    torch.set_num_threads(1)
    ofa = import_reference(oracle_dir)
    request = torch.load(request_path, weights_only=True)
    if request["kind"] == "supernet":
        run_supernet(request, out_dir, torch)
    elif request["kind"] == "predictors":
        run_predictors(request, out_dir, torch, oracle_dir)
    else:
        raise SystemExit(f"oracle: unknown request kind {request['kind']!r}")
    print("oracle ok", getattr(ofa, "__version__", ""), os.path.dirname(ofa.__file__))


if __name__ == "__main__":
    main()
