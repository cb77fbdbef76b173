"""Early exits of a MobileNetV3 space: where they sit and what blocks they add.

An exit is a small classifier after a stage of the network (Teerapittayanon
et al., "BranchyNet", ICPR 2016; Kaya et al., "Shallow-Deep Networks", ICML
2019). It is an option of the supernet and of the networks extracted from it,
never of the space: the architectures, their genes and the space fingerprint
are the same with or without exits, and so are the latency predictors and
profiles of the space (an exit does not change the blocks of the main path).

A stage's output has a fixed channel count whatever the subnet (only the
middle channels of its blocks and its depth are elastic), so one exit head
per stage serves every subnet. The head has the operators of the network's
own head (1x1 expand with BN and h-swish, global pooling, 1x1 mix, linear),
narrower, so it is a :class:`~ofa.spaces.blocks.ClassifierHeadBlock` that a
block profile measures and a block-sum predictor prices like any other block.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .blocks import ClassifierHeadBlock


@dataclass(frozen=True)
class ExitConfig:
    """Exit heads after the stages ``stages`` (0-based, each before the last
    stage), ``width`` channels wide (expand and mix)."""

    stages: tuple[int, ...]
    width: int = 64

    @classmethod
    def parse(cls, space, value) -> "ExitConfig | None":
        """None (no exits), an ExitConfig, or ``{"stages": [...], "width": n}``, checked against ``space``."""
        if value is None:
            return None
        if isinstance(value, ExitConfig):
            config = value
        elif isinstance(value, dict):
            unknown = sorted(set(value) - {"stages", "width"})
            if unknown or "stages" not in value:
                raise ConfigError(f"exits must be a mapping with 'stages' (a list of stage indices) and optionally "
                                  f"'width' (channels of each exit head); got keys {sorted(value)}")
            stages = value["stages"]
            if not isinstance(stages, (list, tuple)):
                raise ConfigError(f"exits.stages must be a list of stage indices, got {stages!r}")
            config = cls(tuple(stages), value.get("width", 64))
        else:
            raise ConfigError(f"exits must be null or a mapping {{stages: [...], width: n}}, got {value!r}")
        last = space.num_stages - 1
        if (not config.stages or any(isinstance(s, bool) or not isinstance(s, int) for s in config.stages)
                or any(not 0 <= s < last for s in config.stages) or list(config.stages) != sorted(set(config.stages))):
            raise ConfigError(f"exits.stages = {list(config.stages)} is not allowed: give distinct increasing stage "
                              f"indices from 0 to {last - 1} (the space has {space.num_stages} stages; after the last "
                              f"one the network's own head is the final exit)")
        if isinstance(config.width, bool) or not isinstance(config.width, int) or config.width < 1:
            raise ConfigError(f"exits.width must be a positive integer (channels of each exit head), "
                              f"got {config.width!r}")
        return config

    def to_dict(self) -> dict:
        return {"stages": list(self.stages), "width": self.width}


def stage_output_resolutions(space, resolution: int) -> list[int]:
    """The feature-map size after each stage for an input of ``resolution`` (depth does not change it:
    a stage's stride sits in its first block, which always runs)."""
    from .mobilenetv3 import conv_out_size

    size = conv_out_size(resolution, space.stem_stride)
    out = []
    for stride in space.stage_strides:
        size = conv_out_size(size, stride)
        out.append(size)
    return out


def exit_block(space, exits: ExitConfig, arch, index: int) -> ClassifierHeadBlock:
    """The block of exit ``index`` (0-based) for ``arch``."""
    stage = exits.stages[index]
    size = stage_output_resolutions(space, arch.resolution)[stage]
    return ClassifierHeadBlock(size, space.stage_widths[stage], exits.width, exits.width, space.num_classes,
                               "h_swish")


def exit_segments(space, exits: ExitConfig, arch) -> list[list[tuple[str, object]]]:
    """The blocks of ``arch`` (``space.blocks``) cut into segments: segment ``k < E`` holds the
    main-path blocks up to exit ``k`` and, last, the exit head (named ``exits.k``); the final segment
    holds the rest of the network with its head. A runtime that stops at exit ``k`` ran segments
    ``0..k``."""
    arch = space.parse(arch)
    blocks = space.blocks(arch)
    segments: list[list] = [[] for _ in range(len(exits.stages) + 1)]
    current = 0
    for name, block in blocks:
        segments[current].append((name, block))
        if name.startswith("stages."):
            stage, index = (int(part) for part in name.split(".")[1:3])
            if (current < len(exits.stages) and stage == exits.stages[current]
                    and index == arch.depths[stage] - 1):
                segments[current].append((f"exits.{current}", exit_block(space, exits, arch, current)))
                current += 1
    return segments


__all__ = ["ExitConfig", "exit_block", "exit_segments", "stage_output_resolutions"]
