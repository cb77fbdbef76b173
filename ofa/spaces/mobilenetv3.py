"""The Once-for-All MobileNetV3 search space and its architecture values.

Network layout (Cai et al., ICLR 2020): a static stem conv and first block,
then ``len(stage_widths)`` stages of up to ``max(depths)`` inverted-residual
blocks, each with an elastic depthwise kernel and expand ratio, then a static
final 1x1 expansion, global pooling, a feature-mix 1x1 conv and the classifier.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import numpy as np

from ..errors import ConfigError
from .tables import TableLayout
from .precision import FLOAT_BITS, check_bits_choices
from .blocks import BlockSpec, ClassifierHeadBlock, MBConvBlock, StemBlock
from .base import (
    SKIPPED,
    Architecture,
    CostReport,
    LayerShape,
    SearchSpace,
    as_rng,
    check_choice,
    check_positive_ints,
    check_keys,
    check_sequence,
)

ACTIVATIONS = ("relu", "h_swish")


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` without going more than 10% down
    (the rule MobileNets use)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_out_size(size: int, stride: int) -> int:
    """Output size of a conv with odd kernel k, padding k // 2 and this stride."""
    return (size - 1) // stride + 1


@dataclass(frozen=True)
class MobileNetV3Arch(Architecture):
    """One subnet: per-block kernel size and expand ratio (``None`` for blocks
    that depth skips), per-stage depth, input resolution; in a space with
    precision, per-block weight and activation bits (``None`` for skipped
    blocks; empty in spaces without precision, and then left out of the dict)."""

    kernel_sizes: tuple[Optional[int], ...]
    expand_ratios: tuple[Optional[float], ...]
    depths: tuple[int, ...]
    resolution: int
    space: str
    weight_bits: tuple[Optional[int], ...] = ()
    activation_bits: tuple[Optional[int], ...] = ()

    def to_dict(self) -> dict:
        d = super().to_dict()
        if not self.weight_bits:
            del d["weight_bits"], d["activation_bits"]
        return d

    def block_bits(self, block: int) -> tuple[int, int]:
        """(weight bits, activation bits) of block ``block`` (floating point, 32, in a space without precision)."""
        if not self.weight_bits:
            return FLOAT_BITS, FLOAT_BITS
        return self.weight_bits[block], self.activation_bits[block]

    def active_blocks(self):
        """(stage, index within stage, kernel, expand) of every block that runs."""
        max_depth = len(self.kernel_sizes) // len(self.depths)
        for stage, depth in enumerate(self.depths):
            for i in range(depth):
                b = stage * max_depth + i
                yield stage, i, self.kernel_sizes[b], self.expand_ratios[b]


@dataclass(frozen=True)
class MobileNetV3Space(SearchSpace):
    """Elastic kernel, expand ratio, depth and resolution over a MobileNetV3 body.

    ``weight_bits`` and ``activation_bits`` (both or neither) make precision a
    per-block decision too (``ofa.spaces.precision``: 2-8 bits, 32 for floating
    point); left empty, the space, its genes, fingerprint and block keys are
    those of a space that never had the option."""

    type_name: ClassVar[str] = "mobilenetv3"

    kernel_sizes: tuple[int, ...] = (3, 5, 7)
    expand_ratios: tuple[float, ...] = (3, 4, 6)
    depths: tuple[int, ...] = (2, 3, 4)
    resolutions: tuple[int, ...] = tuple(range(128, 225, 4))
    stem_width: int = 16
    stem_stride: int = 2
    first_block_width: int = 16
    stage_widths: tuple[int, ...] = (24, 40, 80, 112, 160)
    stage_strides: tuple[int, ...] = (2, 2, 2, 1, 2)
    stage_activations: tuple[str, ...] = ("relu", "relu", "h_swish", "h_swish", "h_swish")
    stage_use_se: tuple[bool, ...] = (False, True, False, True, True)
    final_expand_width: int = 960
    feature_mix_width: int = 1280
    num_classes: int = 1000
    in_channels: int = 3
    weight_bits: tuple[int, ...] = ()
    activation_bits: tuple[int, ...] = ()

    def to_dict(self) -> dict:
        d = super().to_dict()
        if not self.has_precision:  # the dict, hence the fingerprint, of a space without precision is unchanged
            del d["weight_bits"], d["activation_bits"]
        return d

    @property
    def has_precision(self) -> bool:
        return bool(self.weight_bits)

    def _validate(self) -> None:
        if bool(self.weight_bits) != bool(self.activation_bits):
            raise ConfigError(f"space fields weight_bits {self.weight_bits!r} and activation_bits "
                              f"{self.activation_bits!r}: give both (precision as a decision) or neither")
        if self.has_precision:
            check_bits_choices("weight_bits", self.weight_bits)
            check_bits_choices("activation_bits", self.activation_bits)
        check_positive_ints("kernel_sizes", self.kernel_sizes, distinct=True)
        if any(k % 2 == 0 for k in self.kernel_sizes):
            raise ConfigError(f"space kernel_sizes must be odd, got {self.kernel_sizes}")
        if not self.expand_ratios or any(isinstance(e, bool) or not isinstance(e, (int, float)) or e <= 0
                                         for e in self.expand_ratios):
            raise ConfigError(f"space expand_ratios must be positive numbers, got {self.expand_ratios!r}")
        check_positive_ints("depths", self.depths, distinct=True)
        check_positive_ints("resolutions", self.resolutions, distinct=True)
        check_positive_ints("stage_widths", self.stage_widths)
        check_positive_ints("stage_strides", self.stage_strides)
        check_positive_ints("stem_width, first_block_width, final_expand_width, feature_mix_width, num_classes, "
                      "in_channels, stem_stride",
                      (self.stem_width, self.first_block_width, self.final_expand_width, self.feature_mix_width,
                       self.num_classes, self.in_channels, self.stem_stride))
        n = len(self.stage_widths)
        for name in ("stage_strides", "stage_activations", "stage_use_se"):
            if len(getattr(self, name)) != n:
                raise ConfigError(f"space field {name} has {len(getattr(self, name))} entries; "
                                  f"stage_widths has {n}: give one per stage")
        for act in self.stage_activations:
            if act not in ACTIVATIONS:
                raise ConfigError(f"space stage_activations entry {act!r} unknown; allowed: {ACTIVATIONS}")
        if any(not isinstance(v, bool) for v in self.stage_use_se):
            raise ConfigError(f"space stage_use_se must be true/false per stage, got {self.stage_use_se!r}")

    # --- layout -----------------------------------------------------------------------------------
    @property
    def num_stages(self) -> int:
        return len(self.stage_widths)

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    @property
    def num_blocks(self) -> int:
        return self.num_stages * self.max_depth

    def block_in_channels(self, stage: int, index: int) -> int:
        if index > 0:
            return self.stage_widths[stage]
        return self.stage_widths[stage - 1] if stage > 0 else self.first_block_width

    def mid_channels(self, in_channels: int, expand_ratio: float) -> int:
        return make_divisible(round(in_channels * expand_ratio))

    @staticmethod
    def se_channels(mid_channels: int) -> int:
        return make_divisible(mid_channels // 4)

    # --- genes: [kernel per block] [expand per block] [depth per stage] [resolution] ---
    # with precision, then [weight bits per block] [activation bits per block]
    @property
    def gene_layout(self) -> dict[str, slice]:
        b, s = self.num_blocks, self.num_stages
        layout = {"kernel_sizes": slice(0, b), "expand_ratios": slice(b, 2 * b), "depths": slice(2 * b, 2 * b + s),
                  "resolution": slice(2 * b + s, 2 * b + s + 1)}
        if self.has_precision:
            start = 2 * b + s + 1
            layout["weight_bits"] = slice(start, start + b)
            layout["activation_bits"] = slice(start + b, start + 2 * b)
        return layout

    @property
    def resolution_gene(self) -> int:
        return 2 * self.num_blocks + self.num_stages

    @functools.cached_property
    def gene_choices(self) -> tuple[tuple, ...]:
        b = self.num_blocks
        choices = ((tuple(self.kernel_sizes),) * b + (tuple(self.expand_ratios),) * b
                   + (tuple(self.depths),) * self.num_stages + (tuple(self.resolutions),))
        if self.has_precision:
            choices += (tuple(self.weight_bits),) * b + (tuple(self.activation_bits),) * b
        return choices

    def active_genes(self, genes: np.ndarray) -> np.ndarray:
        genes = np.atleast_2d(genes)
        b, s = self.num_blocks, self.num_stages
        depth_idx = genes[:, 2 * b:2 * b + s]
        depth = np.asarray(self.depths)[np.clip(depth_idx, 0, None)]  # (n, stages)
        position = np.arange(self.max_depth)
        block_used = (position[None, None, :] < depth[:, :, None]).reshape(len(genes), b)
        active = np.ones(genes.shape, dtype=bool)
        active[:, :b] = block_used
        active[:, b:2 * b] = block_used
        if self.has_precision:
            layout = self.gene_layout
            active[:, layout["weight_bits"]] = block_used
            active[:, layout["activation_bits"]] = block_used
        return active

    def _arch_to_genes(self, arch: MobileNetV3Arch) -> list[int]:
        def index(values, v):
            return SKIPPED if v is None else values.index(v)

        genes = ([index(self.kernel_sizes, k) for k in arch.kernel_sizes]
                 + [index(self.expand_ratios, e) for e in arch.expand_ratios]
                 + [self.depths.index(d) for d in arch.depths] + [self.resolutions.index(arch.resolution)])
        if self.has_precision:
            genes += ([index(self.weight_bits, w) for w in arch.weight_bits]
                      + [index(self.activation_bits, a) for a in arch.activation_bits])
        return genes

    def _genes_to_arch(self, genes: np.ndarray) -> MobileNetV3Arch:
        b, s = self.num_blocks, self.num_stages
        precision = {}
        if self.has_precision:
            layout = self.gene_layout
            precision = {"weight_bits": tuple(None if g < 0 else self.weight_bits[g]
                                              for g in genes[layout["weight_bits"]]),
                         "activation_bits": tuple(None if g < 0 else self.activation_bits[g]
                                                  for g in genes[layout["activation_bits"]])}
        return MobileNetV3Arch(
            kernel_sizes=tuple(None if g < 0 else self.kernel_sizes[g] for g in genes[:b]),
            expand_ratios=tuple(None if g < 0 else self.expand_ratios[g] for g in genes[b:2 * b]),
            depths=tuple(self.depths[g] for g in genes[2 * b:2 * b + s]),
            resolution=self.resolutions[genes[self.resolution_gene]],
            space=self.fingerprint,
            **precision,
        )

    @property
    def choices_per_block(self) -> int:
        """Distinct settings of one running block (kernel x expand ratio [x weight bits x activation bits])."""
        count = len(self.kernel_sizes) * len(self.expand_ratios)
        return count * len(self.weight_bits) * len(self.activation_bits) if self.has_precision else count

    def sample_genes(self, n: int, rng: np.random.Generator | int | None = None,
                     distribution: str = "independent") -> np.ndarray:
        """``n`` random architectures.

        ``distribution="independent"``: every decision uniform (what Once-for-All
        trains with; each stage depth equally likely). ``"uniform"``: every
        distinct network equally likely, so deeper stages (which have more
        kernel/expand combinations) are drawn proportionally more often."""
        rng = as_rng(rng)
        genes = super().sample_genes(n, rng)
        if distribution == "uniform":
            weights = np.array([float(self.choices_per_block) ** d for d in self.depths])
            b = self.num_blocks
            genes[:, 2 * b:2 * b + self.num_stages] = rng.choice(
                len(self.depths), size=(n, self.num_stages), p=weights / weights.sum())
            genes = self.normalize_genes(genes, rng)
        elif distribution != "independent":
            raise ConfigError(f"distribution {distribution!r} unknown; allowed: 'independent', 'uniform'")
        return genes

    # --- values -------------------------------------------------------------------------------------
    def parse(self, config: Any) -> MobileNetV3Arch:
        if isinstance(config, MobileNetV3Arch):
            self.check_fingerprint(config.space, "this architecture")
            return config
        if isinstance(config, Architecture):
            raise ConfigError(f"a {type(config).__name__} is not an architecture of a {self.type_name} space")
        keys = ("kernel_sizes", "expand_ratios", "depths", "resolution")
        if self.has_precision:
            keys += ("weight_bits", "activation_bits")
        check_keys(config, keys + ("space",), keys, "a MobileNetV3 architecture")
        if "space" in config:
            self.check_fingerprint(config["space"], "this architecture")
        b, s, d = self.num_blocks, self.num_stages, self.max_depth
        hint = f" ({s} stages x {d} blocks)"
        kernels = check_sequence(config["kernel_sizes"], b, "kernel_sizes", hint)
        expands = check_sequence(config["expand_ratios"], b, "expand_ratios", hint)
        depths = [check_choice(v, self.depths, f"depths[{i}]")
                  for i, v in enumerate(check_sequence(config["depths"], s, "depths", " (one per stage)"))]
        resolution = check_choice(config["resolution"], self.resolutions, "resolution")
        per_block = {"kernel_sizes": (kernels, self.kernel_sizes), "expand_ratios": (expands, self.expand_ratios)}
        if self.has_precision:
            per_block["weight_bits"] = (check_sequence(config["weight_bits"], b, "weight_bits", hint), self.weight_bits)
            per_block["activation_bits"] = (check_sequence(config["activation_bits"], b, "activation_bits", hint),
                                            self.activation_bits)
        out: dict[str, list] = {name: [] for name in per_block}
        for i in range(b):
            used = i % d < depths[i // d]
            given = {name: values[i] for name, (values, _) in per_block.items()}
            if any(v is None for v in given.values()):
                if used:
                    listed = ", ".join(f"{name}[{i}]={v!r}" for name, v in given.items())
                    allowed = " and ".join(str(choices) for _, choices in per_block.values())
                    raise ConfigError(f"block {i} (stage {i // d}) runs at depth {depths[i // d]} but has "
                                      f"{listed}; give values from {allowed}")
            else:
                given = {name: check_choice(v, per_block[name][1], f"{name}[{i}]") for name, v in given.items()}
            for name, v in given.items():
                out[name].append(v if used else None)
        precision = {name: tuple(out[name]) for name in ("weight_bits", "activation_bits") if name in out}
        return MobileNetV3Arch(tuple(out["kernel_sizes"]), tuple(out["expand_ratios"]), tuple(depths), resolution,
                               self.fingerprint, **precision)

    def _uniform_arch(self, kernel, expand, depth, resolution, weight_bits=None, activation_bits=None
                      ) -> MobileNetV3Arch:
        b = self.num_blocks
        config = {"kernel_sizes": [kernel] * b, "expand_ratios": [expand] * b, "depths": [depth] * self.num_stages,
                  "resolution": resolution}
        if self.has_precision:
            config.update(weight_bits=[weight_bits] * b, activation_bits=[activation_bits] * b)
        return self.parse(config)

    def smallest(self) -> MobileNetV3Arch:
        """Every decision at its smallest value (fewest bits, where the space has precision)."""
        return self._uniform_arch(min(self.kernel_sizes), min(self.expand_ratios), min(self.depths),
                                  min(self.resolutions), min(self.weight_bits, default=None),
                                  min(self.activation_bits, default=None))

    def largest(self) -> MobileNetV3Arch:
        return self._uniform_arch(max(self.kernel_sizes), max(self.expand_ratios), max(self.depths),
                                  max(self.resolutions), max(self.weight_bits, default=None),
                                  max(self.activation_bits, default=None))

    def uniform_precision(self, arch, weight_bits: int, activation_bits: int) -> MobileNetV3Arch:
        """``arch`` with every running block at this precision (one of the space's choices)."""
        if not self.has_precision:
            raise ConfigError("this space has no precision decision: build it with weight_bits and activation_bits")
        arch = self.parse(arch)
        config = arch.to_dict()
        config["weight_bits"] = [None if k is None else weight_bits for k in arch.kernel_sizes]
        config["activation_bits"] = [None if k is None else activation_bits for k in arch.kernel_sizes]
        return self.parse(config)

    def size(self, per_resolution: bool = False) -> int:
        per_block = self.choices_per_block
        per_stage = sum(per_block**d for d in self.depths)
        total = per_stage**self.num_stages
        return total if per_resolution else total * len(self.resolutions)

    # --- blocks ----------------------------------------------------------------------------------------
    def blocks(self, arch) -> list[tuple[str, BlockSpec]]:
        """``(name, block spec)`` of every block the network runs, in order, stem and head included."""
        arch = self.parse(arch)
        size = arch.resolution
        stem = StemBlock(size, self.in_channels, self.stem_width, 3, self.stem_stride, "h_swish")
        size = stem.out_resolution
        first = MBConvBlock(size, self.stem_width, self.first_block_width, self.stem_width, 3, 1, 0, "relu",
                            expand=False)
        out: list[tuple[str, BlockSpec]] = [("stem", stem), ("first_block", first)]
        for stage, i, k, e in arch.active_blocks():
            block = self.block_spec(stage, i, k, e, size, *arch.block_bits(stage * self.max_depth + i))
            out.append((f"stages.{stage}.{i}", block))
            size = block.out_resolution
        out.append(("head", ClassifierHeadBlock(size, self.stage_widths[-1], self.final_expand_width,
                                                self.feature_mix_width, self.num_classes, "h_swish")))
        return out

    def block_spec(self, stage: int, index: int, kernel: int, expand_ratio: float, resolution: int,
                   weight_bits: int = FLOAT_BITS, activation_bits: int = FLOAT_BITS) -> MBConvBlock:
        """The elastic block at ``(stage, index)`` with this kernel, expand ratio [and precision], on a
        ``resolution`` x ``resolution`` input."""
        cin = self.block_in_channels(stage, index)
        mid = self.mid_channels(cin, expand_ratio)
        return MBConvBlock(resolution, cin, self.stage_widths[stage], mid, kernel,
                           self.stage_strides[stage] if index == 0 else 1,
                           self.se_channels(mid) if self.stage_use_se[stage] else 0, self.stage_activations[stage],
                           expand=True, expand_ratio=float(expand_ratio), weight_bits=weight_bits,
                           activation_bits=activation_bits)

    def distinct_blocks(self, resolutions=None) -> list[BlockSpec]:
        """Every distinct block any architecture of the space runs (at the given input
        resolutions, default all of the space's): stem, first block, each position x
        kernel x expand ratio [x weight bits x activation bits], head. Blocks of the
        same shape at different positions are one block."""
        seen: dict[str, BlockSpec] = {}
        for resolution in (resolutions or self.resolutions):
            stem = StemBlock(resolution, self.in_channels, self.stem_width, 3, self.stem_stride, "h_swish")
            size = stem.out_resolution
            first = MBConvBlock(size, self.stem_width, self.first_block_width, self.stem_width, 3, 1, 0, "relu",
                                expand=False)
            found = [stem, first]
            for stage in range(self.num_stages):
                for i in range(self.max_depth):
                    found += [self.block_spec(stage, i, k, e, size, *bits)
                              for k in self.kernel_sizes for e in self.expand_ratios for bits in self._precisions()]
                    size = conv_out_size(size, self.stage_strides[stage] if i == 0 else 1)
            found.append(ClassifierHeadBlock(size, self.stage_widths[-1], self.final_expand_width,
                                             self.feature_mix_width, self.num_classes, "h_swish"))
            for block in found:
                seen.setdefault(block.key, block)
        return list(seen.values())

    def _precisions(self) -> list[tuple[int, int]]:
        """Every (weight bits, activation bits) a block may run at."""
        if not self.has_precision:
            return [(FLOAT_BITS, FLOAT_BITS)]
        return [(w, a) for w in self.weight_bits for a in self.activation_bits]

    # --- additive tables (ofa.spaces.tables) ---------------------------------------------------------
    def additive_layout(self) -> TableLayout:
        """A block's layers depend only on its position, kernel, expand ratio and
        the resolution (strides sit at a stage's first block, which always runs)."""
        b, d = self.num_blocks, self.max_depth
        template = np.zeros(self.num_genes, dtype=np.int64)
        template[2 * b:2 * b + self.num_stages] = self.depths.index(self.max_depth)

        def unit_of_layer(name):
            match = re.match(r"^stages\.(\d+)\.(\d+)\.", name)
            return (0, int(match.group(1)) * d + int(match.group(2))) if match else None

        units = [[i, b + i] for i in range(b)]
        if self.has_precision:  # a block's precision is one of its own decisions
            layout = self.gene_layout
            units = [unit + [layout["weight_bits"].start + i, layout["activation_bits"].start + i]
                     for i, unit in enumerate(units)]
        return TableLayout(context_genes=[self.resolution_gene], groups=[units],
                           unit_of_layer=unit_of_layer, template=template)

    # --- analytic cost -------------------------------------------------------------------------------
    def cost(self, arch) -> CostReport:
        layers: list[LayerShape] = []
        for name, block in self.blocks(arch):
            layers.extend(block.layers("" if name == "head" else name))
        return CostReport.from_layers(layers)
