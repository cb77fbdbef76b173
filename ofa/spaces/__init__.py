"""Search spaces: one registry of space types and named presets.

    >>> from ofa.spaces import get_space
    >>> space = get_space("mbv3-small")
    >>> arch = space.sample(rng=0)
    >>> space.cost(arch).macs
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError
from .blocks import (BLOCK_KINDS, BlockSpec, ClassifierHeadBlock, CrossKVBlock, DecoderLayerBlock, DecoderStepBlock,
                     EmbeddingBlock, EncoderLayerBlock, MBConvBlock, NullBlock, OutputBlock, StemBlock, block_from_dict,
                     block_from_key, register_block)
from .base import SKIPPED, Architecture, CostReport, LayerShape, SearchSpace, as_rng
from .mobilenetv3 import MobileNetV3Arch, MobileNetV3Space, make_divisible
from .transformer import TransformerArch, TransformerSpace

SPACE_TYPES: dict[str, type[SearchSpace]] = {}
# other files that hold a space (``.pt`` training checkpoints: registered by ofa.training.checkpoint)
SPACE_FILE_LOADERS: dict[str, Callable[[Path], SearchSpace]] = {}
# the module that registers each file loader, imported on the first file of its kind (it needs torch,
# which a preset or a JSON space does not)
SPACE_FILE_LOADER_MODULES = {".pt": "ofa.training.checkpoint"}
PRESETS: dict[str, Callable[[], SearchSpace]] = {}


def register_space_type(cls: type[SearchSpace]) -> type[SearchSpace]:
    SPACE_TYPES[cls.type_name] = cls
    return cls


def register_preset(name: str, factory: Callable[[], SearchSpace]) -> None:
    PRESETS[name] = factory


def list_spaces() -> list[str]:
    return sorted(PRESETS)


def get_space(name: str, **overrides: Any) -> SearchSpace:
    """A preset space by name, with optional field overrides (e.g. ``num_classes=10``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown search space preset {name!r}; available: {list_spaces()}")
    space = PRESETS[name]()
    return space.replace(**overrides) if overrides else space


def space_from_dict(config: dict) -> SearchSpace:
    """Rebuild a space from ``space.to_dict()`` (JSON/YAML)."""
    if not isinstance(config, dict) or "type" not in config:
        raise ConfigError(f"a search space is a dict with a 'type' key (one of {sorted(SPACE_TYPES)})")
    config = dict(config)
    kind = config.pop("type")
    if not isinstance(kind, str) or kind not in SPACE_TYPES:
        raise ConfigError(f"unknown search space type {kind!r}; known types: {sorted(SPACE_TYPES)}")
    cls = SPACE_TYPES[kind]
    allowed = [f for f in cls.__dataclass_fields__]
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown field(s) {unknown} for a {kind} space; allowed fields: {allowed}")
    try:
        return cls(**config)
    except TypeError as error:
        raise ConfigError(f"bad {kind} space definition: {error}") from None


def resolve_space(spec: "str | dict | SearchSpace | Path") -> SearchSpace:
    """A space from a preset name, a dict, a JSON/YAML file, a trained
    checkpoint (``.pt``: the space it was trained on), or a space."""
    if isinstance(spec, SearchSpace):
        return spec
    if isinstance(spec, dict):
        return space_from_dict(spec)
    if isinstance(spec, str) and spec in PRESETS:
        return get_space(spec)
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"{spec!r} is neither a space preset ({list_spaces()}) nor a space file "
                          f"(.json/.yaml) nor a checkpoint (.pt)")
    if path.suffix in SPACE_FILE_LOADER_MODULES and path.suffix not in SPACE_FILE_LOADERS:
        importlib.import_module(SPACE_FILE_LOADER_MODULES[path.suffix])
    if path.suffix in SPACE_FILE_LOADERS:
        return SPACE_FILE_LOADERS[path.suffix](path)
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return space_from_dict(yaml.safe_load(text))
    return space_from_dict(json.loads(text))


def _ofa_mobilenetv3(width_mult: float) -> MobileNetV3Space:
    widths = [make_divisible(w * width_mult) for w in (16, 16, 24, 40, 80, 112, 160, 960, 1280)]
    return MobileNetV3Space(
        stem_width=widths[0], first_block_width=widths[1], stage_widths=tuple(widths[2:7]),
        final_expand_width=widths[7], feature_mix_width=widths[8],
    )


def _small_mobilenetv3() -> MobileNetV3Space:
    """For 24-32 px inputs (digits, CIFAR): four stages, three of them
    downsampling, narrow widths; it trains on 2 CPU cores in minutes."""
    return MobileNetV3Space(
        resolutions=(24, 28, 32), stem_width=16, stem_stride=2, first_block_width=16,
        stage_widths=(24, 32, 48, 64), stage_strides=(2, 2, 1, 2),
        stage_activations=("relu", "relu", "h_swish", "h_swish"), stage_use_se=(False, True, True, True),
        final_expand_width=192, feature_mix_width=256, num_classes=10,
    )


register_space_type(MobileNetV3Space)
register_preset("ofa-mbv3-w1.0", lambda: _ofa_mobilenetv3(1.0))
register_preset("ofa-mbv3-w1.2", lambda: _ofa_mobilenetv3(1.2))
register_preset("mbv3-small", _small_mobilenetv3)
# The same network with resolutions 20-32 px, the cluttered-digits default: 20/32 = 0.625, about
# Once-for-All's 128/224 = 0.57, so resolution is a real knob (docs/accuracy.md).
register_preset("mbv3-small-r20-32", lambda: _small_mobilenetv3().replace(resolutions=(20, 24, 28, 32)))

register_space_type(TransformerSpace)
# HAT's WMT'14 En-De space (Wang et al., 2020): about 4e14 architectures.
register_preset("hat-wmt", TransformerSpace)
register_preset("transformer-small", lambda: TransformerSpace.small())
# Bort's encoder space (de Wynter and Perry, 2020): exactly 300 architectures.
register_preset("bort", lambda: TransformerSpace.bort())
register_preset("bort-small", lambda: TransformerSpace.bort_small())

__all__ = [
    "BLOCK_KINDS", "BlockSpec", "ClassifierHeadBlock", "MBConvBlock", "StemBlock", "block_from_dict",
    "block_from_key", "register_block", "CrossKVBlock", "DecoderLayerBlock", "DecoderStepBlock", "EmbeddingBlock",
    "EncoderLayerBlock", "NullBlock", "OutputBlock",
    "SKIPPED", "Architecture", "CostReport", "LayerShape", "SearchSpace", "MobileNetV3Arch", "MobileNetV3Space",
    "TransformerArch", "TransformerSpace",
    "as_rng", "get_space", "list_spaces", "register_preset", "register_space_type", "resolve_space",
    "space_from_dict", "make_divisible",
]
