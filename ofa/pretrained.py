"""Importing Once-for-All's published MobileNetV3 supernets.

Cai et al. (ICLR 2020) publish two ImageNet supernets,
``ofa_mbv3_d234_e346_k357_w1.0`` and ``ofa_mbv3_d234_e346_k357_w1.2``
(kernel 3/5/7, expand ratio 3/4/6, depth 2/3/4, width multiplier 1.0/1.2).
Each is a ``torch.save`` file holding ``{"state_dict": ...}`` of their
``OFAMobileNetV3``. Nothing is downloaded here: the user fetches the file
(see ``docs/pretrained.md``) and :func:`convert_ofa_mbv3_checkpoint` maps
every tensor onto this package's supernet of the ``ofa-mbv3-w1.0`` /
``ofa-mbv3-w1.2`` space, which computes the same function (the parity test
compares both implementations subnet by subnet).

    >>> from ofa.pretrained import convert_ofa_mbv3_checkpoint, save_converted_supernet
    >>> supernet = convert_ofa_mbv3_checkpoint("ofa_mbv3_d234_e346_k357_w1.0")       # space inferred
    >>> save_converted_supernet(supernet, "runs/ofa-w1.0/final.pt", source="ofa_mbv3_d234_e346_k357_w1.0")

Key names: the reference's current code names a dynamic layer's tensors
``...conv.conv.weight`` / ``...bn.bn.weight`` / ``...linear.linear.weight``
and older releases ``...mobile_inverted_conv...conv.weight`` / ``...bn.weight``;
both spellings are accepted (as the reference's own ``load_state_dict``
does), as is a ``module.`` prefix left by ``DataParallel``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch

from .errors import CheckpointError, ConfigError, SpaceMismatchError
from .io import load_plain_torch_file
from .spaces import MobileNetV3Space, get_space, resolve_space

# The published checkpoints (name -> our space preset). The user downloads
# them by hand from REFERENCE_URL_BASE + name (the URL the reference's
# ``ofa.model_zoo.ofa_net`` reads); this package never fetches them.
PUBLISHED_SUPERNETS = {
    "ofa_mbv3_d234_e346_k357_w1.0": "ofa-mbv3-w1.0",
    "ofa_mbv3_d234_e346_k357_w1.2": "ofa-mbv3-w1.2",
}
REFERENCE_URL_BASE = "https://raw.githubusercontent.com/han-cai/files/master/ofa/ofa_nets/"
IMPORT_SPACES = tuple(PUBLISHED_SUPERNETS.values())

_BN_TENSORS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def read_reference_state_dict(state_dict_or_path) -> "OrderedDict[str, torch.Tensor]":
    """The tensors of a reference checkpoint: a path (read with
    ``weights_only=True``), or an already loaded dict, possibly wrapped as
    ``{"state_dict": ...}``. A ``module.`` prefix is removed."""
    source = state_dict_or_path
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise CheckpointError(f"no checkpoint file at {str(path)!r}; download the published supernet first "
                                  f"(see docs/pretrained.md)")
        source = load_plain_torch_file(path, CheckpointError, "reference checkpoint",
                                       "it is truncated, corrupt, or not a checkpoint of plain tensors")
    if isinstance(source, dict) and "state_dict" in source and isinstance(source["state_dict"], dict):
        source = source["state_dict"]
    if not isinstance(source, dict) or not source:
        raise CheckpointError("a reference checkpoint is a state dict (name -> tensor) or {'state_dict': ...}; "
                              f"got {type(source).__name__}")
    not_names = [k for k in source if not isinstance(k, str)]
    if not_names:
        raise CheckpointError(f"the state dict's keys must be tensor names (strings); it holds {not_names[:5]!r}")
    not_tensors = sorted(k for k, v in source.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise CheckpointError(f"the state dict holds non-tensor entries {not_tensors[:10]}"
                              + (f" (and {len(not_tensors) - 10} more)" if len(not_tensors) > 10 else ""))
    out = OrderedDict()
    for key, value in source.items():
        out[key[len("module."):] if key.startswith("module.") else key] = value
    return out


def canonical_reference_key(key: str) -> str:
    """One spelling for the reference's naming variants (see the module docstring)."""
    key = key.replace(".mobile_inverted_conv.", ".conv.")
    for double, single in ((".bn.bn.", ".bn."), (".conv.conv.weight", ".conv.weight"),
                           (".linear.linear.", ".linear.")):
        key = key.replace(double, single)
    return key


def reference_key_map(space: MobileNetV3Space) -> "OrderedDict[str, str]":
    """Canonical reference key -> key of this package's supernet state dict."""
    mapping: OrderedDict[str, str] = OrderedDict()

    def conv_bn(ref_conv: str, ref_bn: str, ours_conv: str, ours_bn: str) -> None:
        mapping[f"{ref_conv}.weight"] = f"{ours_conv}.weight"
        for tensor in _BN_TENSORS:
            mapping[f"{ref_bn}.{tensor}"] = f"{ours_bn}.{tensor}"

    conv_bn("first_conv.conv", "first_conv.bn", "stem.0", "stem.1")
    conv_bn("blocks.0.conv.depth_conv.conv", "blocks.0.conv.depth_conv.bn",
            "first_block.depthwise.0", "first_block.depthwise.1")
    conv_bn("blocks.0.conv.point_linear.conv", "blocks.0.conv.point_linear.bn",
            "first_block.project.0", "first_block.project.1")
    kernels = sorted(space.kernel_sizes, reverse=True)
    for stage in range(space.num_stages):
        for i in range(space.max_depth):
            ref = f"blocks.{1 + stage * space.max_depth + i}.conv"
            ours = f"stages.{stage}.{i}"
            conv_bn(f"{ref}.inverted_bottleneck.conv", f"{ref}.inverted_bottleneck.bn",
                    f"{ours}.expand_conv", f"{ours}.expand_bn")
            conv_bn(f"{ref}.depth_conv.conv", f"{ref}.depth_conv.bn", f"{ours}.depthwise", f"{ours}.depthwise_bn")
            for big, small in zip(kernels[:-1], kernels[1:]):
                mapping[f"{ref}.depth_conv.conv.{big}to{small}_matrix"] = f"{ours}.depthwise.transforms.{big}to{small}"
            if space.stage_use_se[stage]:
                for part, name in (("reduce", "se_reduce"), ("expand", "se_expand")):
                    for tensor in ("weight", "bias"):
                        mapping[f"{ref}.depth_conv.se.fc.{part}.{tensor}"] = f"{ours}.{name}.{tensor}"
            conv_bn(f"{ref}.point_linear.conv", f"{ref}.point_linear.bn", f"{ours}.project_conv", f"{ours}.project_bn")
    conv_bn("final_expand_layer.conv", "final_expand_layer.bn", "final_expand.0", "final_expand.1")
    mapping["feature_mix_layer.conv.weight"] = "feature_mix.weight"
    mapping["classifier.linear.weight"] = "classifier.weight"
    mapping["classifier.linear.bias"] = "classifier.bias"
    return mapping


def _check_space(space) -> MobileNetV3Space:
    space = resolve_space(space)
    if not isinstance(space, MobileNetV3Space):
        raise ConfigError(f"the published Once-for-All supernets are MobileNetV3 supernets; the space "
                          f"{space.type_name!r} cannot receive them (use one of {IMPORT_SPACES})")
    return space


def _shape_mismatches(tensors: dict, space: MobileNetV3Space) -> list[str]:
    expected = _expected_shapes(space)
    mapping = reference_key_map(space)
    return [f"{key}: {tuple(value.shape)} (expected {expected[mapping[key]]})"
            for key, value in tensors.items()
            if key in mapping and tuple(value.shape) != expected[mapping[key]]]


_SHAPES: dict[str, dict[str, tuple]] = {}


def _expected_shapes(space: MobileNetV3Space) -> dict[str, tuple]:
    from .supernets import create_supernet

    if space.fingerprint not in _SHAPES:
        with torch.device("meta"):  # shapes only: no memory, no initialisation work
            supernet = create_supernet(space)
        _SHAPES[space.fingerprint] = {key: tuple(value.shape) for key, value in supernet.state_dict().items()}
    return _SHAPES[space.fingerprint]


def infer_space(state_dict_or_path) -> MobileNetV3Space:
    """The preset (``ofa-mbv3-w1.0`` or ``-w1.2``) whose supernet the tensors fit."""
    tensors = _canonical(read_reference_state_dict(state_dict_or_path))
    for name in IMPORT_SPACES:
        if _fits(tensors, get_space(name)):
            return get_space(name)
    mapping = reference_key_map(get_space(IMPORT_SPACES[0]))  # both presets share the key names
    unknown = sorted(set(tensors) - set(mapping))
    missing = sorted(set(mapping) - set(tensors) - _optional_keys(mapping))
    if unknown or missing:
        raise CheckpointError("the checkpoint is not a Once-for-All MobileNetV3 supernet (kernel 3/5/7, expand "
                              "3/4/6, depth 2/3/4): " + _listing(unknown=unknown, missing=missing))
    first = tuple(tensors["first_conv.conv.weight"].shape)
    raise SpaceMismatchError(
        f"the checkpoint's tensor shapes fit none of the importable spaces {IMPORT_SPACES} (its stem weight is "
        f"{first}); only the published ofa_mbv3_d234_e346_k357_w1.0 / _w1.2 supernets can be imported")


def _listing(**groups) -> str:
    parts = []
    for label, keys in groups.items():
        if keys:
            more = " ..." if len(keys) > 12 else ""
            parts.append(f"{len(keys)} {label.replace('_', ' ')} keys: {keys[:12]}{more}")
    return "; ".join(parts)


def _optional_keys(mapping) -> set[str]:
    # BN batch counters do not affect the function; very old files may lack them.
    return {key for key in mapping if key.endswith("num_batches_tracked")}


def _canonical(tensors: dict) -> "OrderedDict[str, torch.Tensor]":
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in tensors.items():
        canonical = canonical_reference_key(key)
        if canonical in out:
            raise CheckpointError(f"the checkpoint holds {canonical!r} twice (as {key!r} and another spelling)")
        out[canonical] = value
    return out


def convert_ofa_mbv3_state_dict(state_dict_or_path, space=None) -> "OrderedDict[str, torch.Tensor]":
    """This package's supernet state dict for a reference ``OFAMobileNetV3``
    state dict; ``space`` defaults to the preset the tensors fit.

    Every reference tensor must map onto a supernet tensor of the same shape
    and every supernet tensor must be provided (BN batch counters excepted),
    and every value must be usable (finite floating-point weights, whole BN
    batch counters): otherwise :class:`~ofa.errors.CheckpointError` lists the
    unknown, missing, mis-shaped and unusable keys; a checkpoint of the other width multiplier gets
    :class:`~ofa.errors.SpaceMismatchError` naming the right space."""
    tensors = _canonical(read_reference_state_dict(state_dict_or_path))
    space = infer_space(tensors) if space is None else _check_space(space)
    mapping = reference_key_map(space)
    expected = _expected_shapes(space)
    unknown = sorted(set(tensors) - set(mapping))
    missing = sorted(set(mapping) - set(tensors) - _optional_keys(mapping))
    wrong = _shape_mismatches(tensors, space)
    bad = _bad_values(tensors)
    if wrong or unknown or missing:
        other = _other_fitting_space(tensors, space)
        if other is not None:
            raise SpaceMismatchError(f"this checkpoint is the {other} supernet, not {space_label(space)}: "
                                     f"import it into the {other!r} space")
        raise CheckpointError(f"the checkpoint does not fit the Once-for-All MobileNetV3 supernet of the space "
                              f"{space_label(space)}: "
                              + _listing(unknown=unknown, missing=missing, wrongly_shaped=wrong, unusable=bad))
    if bad:
        raise CheckpointError(f"the checkpoint's weights are not usable: {len(bad)} tensor(s) hold values a network "
                              f"cannot compute with: " + "; ".join(bad[:12]) + (" ..." if len(bad) > 12 else "")
                              + ". The file is corrupt or was saved from a diverged run: download it again")
    state: OrderedDict[str, torch.Tensor] = OrderedDict()
    for ref_key, our_key in mapping.items():
        if ref_key in tensors:
            value = tensors[ref_key]
            state[our_key] = value.to(torch.long) if our_key.endswith("num_batches_tracked") else value.float()
        else:
            state[our_key] = torch.zeros((), dtype=torch.long)
    if set(state) != set(expected):  # the map must cover the supernet exactly
        raise CheckpointError(f"internal key map incomplete for this space: "
                              f"{sorted(set(expected) ^ set(state))[:10]}")
    return state


def _bad_values(tensors: dict) -> list[str]:
    """Every tensor a converted supernet could not compute with: NaN or infinite values,
    a dtype that is not floating point (BN batch counters: a whole number), a sparse layout."""
    bad = []
    for key, value in tensors.items():
        if value.layout != torch.strided:
            bad.append(f"{key}: a {value.layout} tensor (dense weights expected)")
        elif key.endswith("num_batches_tracked"):
            if value.numel() != 1 or value.is_complex() or not torch.isfinite(value.double()).all() \
                    or float(value.double()) != round(float(value.double())) or float(value.double()) < 0:
                bad.append(f"{key}: {value.tolist() if value.numel() <= 4 else tuple(value.shape)} (a BN batch "
                           f"counter is one whole number >= 0)")
        elif not value.is_floating_point():
            bad.append(f"{key}: dtype {value.dtype} (weights are floating point)")
        else:
            count = int((~torch.isfinite(value)).sum())
            if count:
                bad.append(f"{key}: {count} of {value.numel()} values NaN or infinite")
    return bad


def space_label(space: MobileNetV3Space) -> str:
    for name in IMPORT_SPACES:
        if get_space(name).fingerprint == space.fingerprint:
            return repr(name)
    return f"with fingerprint {space.fingerprint!r}"


def _fits(tensors: dict, space: MobileNetV3Space) -> bool:
    mapping = reference_key_map(space)
    required = set(mapping) - _optional_keys(mapping)
    return not required - set(tensors) and not set(tensors) - set(mapping) and not _shape_mismatches(tensors, space)


def _other_fitting_space(tensors, space) -> str | None:
    for name in IMPORT_SPACES:
        if get_space(name).fingerprint != space.fingerprint and _fits(tensors, get_space(name)):
            return name
    return None


def convert_ofa_mbv3_checkpoint(state_dict_or_path, space=None):
    """This package's :class:`~ofa.supernets.OFAMobileNetV3` holding a
    reference checkpoint's weights (all of them, BN statistics and
    kernel-transform matrices included), in eval mode, ``supernet.space`` set.

    ``state_dict_or_path``: the downloaded file (e.g.
    ``ofa_mbv3_d234_e346_k357_w1.0``) or its loaded dict; ``space``: a preset
    name or space (default: inferred from the tensor shapes)."""
    from .supernets import create_supernet

    tensors = read_reference_state_dict(state_dict_or_path)
    space = infer_space(tensors) if space is None else _check_space(space)
    state = convert_ofa_mbv3_state_dict(tensors, space)
    supernet = create_supernet(space)
    supernet.load_state_dict(state)
    supernet.space = space
    return supernet.eval()


def save_converted_supernet(supernet, path: str | os.PathLike, source: str = "", data: str | None = None) -> Path:
    """Write a converted supernet as this package's checkpoint (atomic;
    loadable with :func:`ofa.training.load_supernet`). ``data`` (an
    ImageNet-layout folder) is recorded as the supernet's data set, with
    ImageNet preprocessing (:func:`ofa.data.imagenet_datasets`)."""
    from .training.checkpoint import save_checkpoint

    space = supernet.space
    data_config = {"preprocessing": "imagenet", "calib_images": 2000}
    if data is not None:
        data_config["dataset"] = str(data)
    config = {"data": data_config, "imported": {"from": "once-for-all", "source": str(source)}}
    return save_checkpoint(path, trainer="mobilenetv3", space=space, config=config, model=supernet,
                           include_rng=False, extra={"imported_from": str(source)})


__all__ = ["IMPORT_SPACES", "PUBLISHED_SUPERNETS", "REFERENCE_URL_BASE", "canonical_reference_key",
           "convert_ofa_mbv3_checkpoint", "convert_ofa_mbv3_state_dict", "infer_space", "read_reference_state_dict",
           "reference_key_map", "save_converted_supernet"]
