"""Model families behind one small interface.

A family is everything that differs between kinds of networks (an image CNN,
a Transformer): which data a checkpoint was trained on, how a subnet is
evaluated, which ONNX graphs a deployment ships, which graph a phone runtime
converts. Every stage above (deployment, profiling, specialisation) asks
:func:`get_family` instead of testing types.

The other per-family parts register in their own registries, all keyed by
the space's ``type_name``: the space class (:func:`ofa.spaces.register_space_type`),
the supernet (:func:`ofa.supernets.register_supernet`), the trainer
(:func:`ofa.training.register_trainer`), the additive-table layout (a method
of the space). A third family is one new module that defines and registers
these, plus its name in :data:`FAMILY_MODULES` below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from ..errors import ConfigError

if TYPE_CHECKING:  # annotations only: the family registry itself loads without torch
    from torch import nn

FAMILIES: dict[str, "ModelFamily"] = {}
FAMILY_MODULES = ("ofa.families.mobilenetv3", "ofa.families.transformer")


class ModelFamily:
    """What a family must say; one instance per family, registered with :func:`register_family`."""

    name: ClassVar[str] = ""  # the space type_name
    arch_type: ClassVar[type] = object
    accuracy_target: ClassVar[str] = "top1"  # what its accuracy predictors predict: "top1" (higher is better) or "loss"
    accuracy_kind: ClassVar[str] = "top-1"  # how reports name the accuracy column
    can_finetune: ClassVar[bool] = False  # whether :meth:`finetune` is implemented
    can_search_relaxed: ClassVar[bool] = False  # whether :meth:`relaxed_task` is implemented

    def checkpoint_data(self, checkpoint, source=None):
        """The data splits a trained checkpoint (path) was trained on (``source``: the user's data instead)."""
        raise NotImplementedError

    def is_data(self, data) -> bool:
        """Whether ``data`` is this family's kind of data splits."""
        raise NotImplementedError

    def evaluator(self, supernet: nn.Module, data, split: str = "val", calib_images: int = 2000,
                  limit: int = 200, batch_size: int = 256) -> Callable[[Any], dict]:
        """``arch -> {"accuracy", "kind", "loss", "label_loyalty", "probability_loyalty"}`` (loyalty in 0..1,
        to the largest subnet) on ``split``. ``limit``: examples scored per subnet where the family
        samples them (sentences); ``batch_size``: the BatchNorm calibration batch where it re-calibrates.
        A family that can attack its subnets gives the function a ``robustness(arch, attacks, epsilon,
        steps, images)`` attribute (:mod:`ofa.robustness`)."""
        raise NotImplementedError

    def finetune(self, supernet: nn.Module, arch, data, epochs: int, checkpoint=None, calib_images: int = 2000,
                 train: dict | None = None) -> nn.Module:
        """The static subnet ``arch`` trained ``epochs`` more epochs on its own, distilled from the
        supernet's largest subnet, resumable from ``checkpoint`` (``train``: the supernet run's
        training config). Families that cannot say so in :attr:`can_finetune`."""
        raise NotImplementedError

    def evaluate_static(self, static: nn.Module, arch, data, split: str = "val") -> dict:
        """``{"accuracy", "kind", "loss"}`` of a static subnet (BN statistics as they are) on ``split``."""
        raise NotImplementedError

    def write_onnx(self, static: nn.Module, path, opset: int) -> dict:
        """Write the ONNX graph(s) a deployment of ``static`` ships; ``path`` is the main graph.
        Returns extra files as ``{"onnx_<name>": path}``."""
        from ..export import export_model

        export_model(static, path, opset=opset)
        return {}

    def ncnn_graph(self, static: nn.Module) -> nn.Module:
        """The module a phone runtime (ncnn) converts for ``static``."""
        return static

    def relaxed_task(self, supernet: nn.Module, data, batch_size: int = 64, seed: int = 0):
        """The supernet run as a weighted mixture of all its subnets, with its task loss on ``data``
        (``.model``, ``.batch(split, weights)``, ``.loss(weights, batch, over_resolutions)``, ``.copy()``): what
        :func:`ofa.search.differentiable.differentiable_search` optimises."""
        raise ConfigError(f"differentiable search is implemented for mobilenetv3 supernets, not {self.name!r} ones; "
                          f"use the evolution strategy")


def register_family(family: ModelFamily) -> ModelFamily:
    FAMILIES[family.name] = family
    return family


def _load() -> None:
    for module in FAMILY_MODULES:
        importlib.import_module(module)


_load()  # importing this package registers every family (get_family also loads them, for a reload)

def list_families() -> list[str]:
    _load()
    return sorted(FAMILIES)


def get_family(obj: Any) -> ModelFamily:
    """The family of a space, a space type name, an architecture, a supernet or a static model."""
    _load()
    name = obj if isinstance(obj, str) else getattr(obj, "type_name", None)
    if name is None and hasattr(obj, "space"):
        name = getattr(obj.space, "type_name", None)
    if name is None:
        arch = getattr(obj, "arch", obj)
        for family in FAMILIES.values():
            if isinstance(arch, family.arch_type):
                return family
    if name not in FAMILIES:
        raise ConfigError(f"no model family for {type(obj).__name__ if not isinstance(obj, str) else obj!r}; "
                          f"known families: {sorted(FAMILIES)}")
    return FAMILIES[name]


def family_or_none(obj: Any) -> "ModelFamily | None":
    try:
        return get_family(obj)
    except ConfigError:
        return None


__all__ = ["FAMILIES", "FAMILY_MODULES", "ModelFamily", "family_or_none", "get_family", "list_families",
           "register_family"]
