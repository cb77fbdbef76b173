"""Elastic supernets and the one factory that builds the right one for a space."""

from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ..errors import ConfigError
from ..spaces import SearchSpace, resolve_space
from .mobilenetv3 import OFAMobileNetV3
from .transformer import HATTransformer

SUPERNET_TYPES: dict[str, Callable[..., nn.Module]] = {"mobilenetv3": OFAMobileNetV3}


def register_supernet(space_type: str, factory: Callable[..., nn.Module]) -> None:
    SUPERNET_TYPES[space_type] = factory


register_supernet("transformer", HATTransformer)


def create_supernet(space: "str | dict | SearchSpace", **kwargs: Any) -> nn.Module:
    """The supernet for ``space`` (a preset name, a dict or a space value)."""
    space = resolve_space(space)
    if space.type_name not in SUPERNET_TYPES:
        raise ConfigError(f"no supernet for space type {space.type_name!r}; known: {sorted(SUPERNET_TYPES)}")
    return SUPERNET_TYPES[space.type_name](space, **kwargs)


__all__ = ["HATTransformer", "OFAMobileNetV3", "create_supernet", "register_supernet", "SUPERNET_TYPES"]
