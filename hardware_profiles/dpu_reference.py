"""Published whole-network DPU figures and the networks they were measured on,
expressed for :mod:`hardware_profiles.dpu`, to check the model against public
numbers (``benchmarks/fpga_models.py``, ``docs/fpga-dpu.md``). Nothing here is
used to set a constant of the model.

The Vitis AI Model Zoo publishes end-to-end (E2E) figures: the DPU time plus
the pre- and post-processing on the board's Arm cores. One thread runs them
one after another (``1 / fps_single`` is an upper bound of the DPU time); with
several threads on a single-core DPU (KV260) the DPU is kept busy, so
``1 / fps_multi`` is close to the DPU time per inference.
"""

from __future__ import annotations

from typing import Callable

from ofa.spaces.blocks import ClassifierHeadBlock, MBConvBlock, StemBlock
from ofa.spaces.mobilenetv3 import make_divisible

from .dpu import DPUConfig, DPUResult, BlockPlan, combine, load_dpu, simulate_block

ZOO_25 = "Vitis AI 2.5 Model Zoo README (github.com/Xilinx/Vitis-AI, model_zoo/README.md)"
ZOO_13 = "Vitis AI 1.3 Model Zoo README (github.com/Xilinx/Vitis-AI, models/AI-Model-Zoo/README.md)"

# (network, board, config, figure, value, source)
PUBLISHED = (
    ("mobilenet_v1_1.0_224", "KV260", "dpu-b4096", "fps_single", 354.19,
     f"{ZOO_25}, 'Performance on Kria KV260 SOM' (1 x B4096F @ 300MHz), row 38 tf_mobilenetv1_1.0_imagenet_224_224_1.14G"),
    ("mobilenet_v1_1.0_224", "KV260", "dpu-b4096", "fps_multi", 425.57, f"{ZOO_25}, same row"),
    ("mobilenet_v2_1.0_224", "KV260", "dpu-b4096", "fps_single", 290.62,
     f"{ZOO_25}, 'Performance on Kria KV260 SOM', row 39 tf_mobilenetv2_1.0_imagenet_224_224_602M"),
    ("mobilenet_v2_1.0_224", "KV260", "dpu-b4096", "fps_multi", 336.82, f"{ZOO_25}, same row"),
    ("mobilenet_v2_1.4_224", "KV260", "dpu-b4096", "fps_single", 206.04,
     f"{ZOO_25}, 'Performance on Kria KV260 SOM', row 40 tf_mobilenetv2_1.4_imagenet_224_224_1.16G"),
    ("mobilenet_v2_1.4_224", "KV260", "dpu-b4096", "fps_multi", 228.2, f"{ZOO_25}, same row"),
    ("mobilenet_v3_small_1.0_224", "KV260", "dpu-b4096", "fps_single", 374.47,
     f"{ZOO_25}, 'Performance on Kria KV260 SOM', row 42 tf2_mobilenetv3_imagenet_224_224_132M"),
    ("mobilenet_v3_small_1.0_224", "KV260", "dpu-b4096", "fps_multi", 453.97, f"{ZOO_25}, same row"),
    ("resnet_v1_50_224", "KV260", "dpu-b4096", "fps_single", 94.21,
     f"{ZOO_25}, 'Performance on Kria KV260 SOM', row 63 tf_resnetv1_50_imagenet_224_224_6.97G"),
    ("resnet_v1_50_224", "KV260", "dpu-b4096", "fps_multi", 99.01, f"{ZOO_25}, same row"),
    ("mobilenet_v1_1.0_224", "ZCU102", "dpu-b4096-zcu102", "e2e_latency_ms", 3.48,
     f"{ZOO_13}, 'Performance on ZCU102 (0432055-05)' (3 x B4096 @ 281MHz), row 50 tf_mobilenetv1_1.0_imagenet_224_224_1.14G"),
    ("mobilenet_v2_1.0_224", "ZCU102", "dpu-b4096-zcu102", "e2e_latency_ms", 4.15,
     f"{ZOO_13}, 'Performance on ZCU102 (0432055-05)', row 51 tf_mobilenetv2_1.0_imagenet_224_224_0.59G"),
    ("mobilenet_v2_1.4_224", "ZCU102", "dpu-b4096-zcu102", "e2e_latency_ms", 5.67,
     f"{ZOO_13}, 'Performance on ZCU102 (0432055-05)', row 52 tf_mobilenetv2_1.4_imagenet_224_224_1.16G"),
    ("resnet_v1_50_224", "ZCU102", "dpu-b4096-zcu102", "e2e_latency_ms", 12.89,
     f"{ZOO_13}, 'Performance on ZCU102 (0432055-05)', row 53 tf_resnetv1_50_imagenet_224_224_6.97G"),
)


def published_latency_ms(figure: str, value: float) -> float:
    """A published figure as milliseconds per inference."""
    return value if figure == "e2e_latency_ms" else 1000.0 / value


# --- the networks ------------------------------------------------------------------------------------------------
def mobilenet_v1(width: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> list:
    """MobileNetV1 (Howard et al., 2017, Table 1): depthwise-separable blocks are mbconv
    blocks without expand conv (ReLU6 runs as ReLU)."""
    c = [make_divisible(v * width) for v in (32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024)]
    strides = (1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1)
    blocks: list = [StemBlock(resolution, 3, c[0], 3, 2, "relu")]
    size = blocks[0].out_resolution
    for i, s in enumerate(strides):
        block = MBConvBlock(size, c[i], c[i + 1], c[i], 3, s, 0, "relu", expand=False)
        blocks.append(block)
        size = block.out_resolution
    return blocks + [_PoolFC(size, c[-1], num_classes)]


def mobilenet_v2(width: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> list:
    """MobileNetV2 (Sandler et al., 2018, Table 2); ReLU6 runs as ReLU on the DPU (fused alike)."""
    settings = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))
    stem = make_divisible(32 * width)
    blocks: list = [StemBlock(resolution, 3, stem, 3, 2, "relu")]
    size, cin = blocks[0].out_resolution, stem
    for t, c, n, s in settings:
        cout = make_divisible(c * width)
        for i in range(n):
            mid = cin * t
            block = MBConvBlock(size, cin, cout, mid, 3, s if i == 0 else 1, 0, "relu", expand=t != 1,
                                expand_ratio=float(t))
            blocks.append(block)
            size, cin = block.out_resolution, cout
    last = make_divisible(1280 * max(1.0, width))
    return blocks + [_ExpandPoolFC(size, cin, last, num_classes)]


def mobilenet_v3_small(resolution: int = 224, num_classes: int = 1000) -> list:
    """MobileNetV3-Small (Howard et al., 2019, Table 2)."""
    rows = ((3, 16, 16, True, "relu", 2), (3, 72, 24, False, "relu", 2), (3, 88, 24, False, "relu", 1),
            (5, 96, 40, True, "h_swish", 2), (5, 240, 40, True, "h_swish", 1), (5, 240, 40, True, "h_swish", 1),
            (5, 120, 48, True, "h_swish", 1), (5, 144, 48, True, "h_swish", 1), (5, 288, 96, True, "h_swish", 2),
            (5, 576, 96, True, "h_swish", 1), (5, 576, 96, True, "h_swish", 1))
    blocks: list = [StemBlock(resolution, 3, 16, 3, 2, "h_swish")]
    size, cin = blocks[0].out_resolution, 16
    for k, exp, cout, se, act, s in rows:
        block = MBConvBlock(size, cin, cout, exp, k, s, make_divisible(exp // 4) if se else 0, act,
                            expand=exp != cin, expand_ratio=exp / cin)
        blocks.append(block)
        size, cin = block.out_resolution, cout
    return blocks + [ClassifierHeadBlock(size, cin, 576, 1024, num_classes, "h_swish")]


def resnet_v1_50(resolution: int = 224, num_classes: int = 1000) -> list:
    """ResNet-50 v1 (He et al., 2016): 7x7 stem, max pool, 3-4-6-3 bottlenecks, stride in the 3x3."""
    out: list = [_ResNetStem(resolution)]
    size, cin = -(-resolution // 4), 64
    for width, depth, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(depth):
            s = stride if i == 0 else 1
            out.append(_Bottleneck(size, cin, width, 4 * width, s))
            size, cin = -(-size // s), 4 * width
    return out + [_PoolFC(size, cin, num_classes)]


NETWORKS: dict[str, Callable[[], list]] = {
    "mobilenet_v1_1.0_224": mobilenet_v1,
    "mobilenet_v2_1.0_224": mobilenet_v2,
    "mobilenet_v2_1.4_224": lambda: mobilenet_v2(1.4),
    "mobilenet_v3_small_1.0_224": mobilenet_v3_small,
    "resnet_v1_50_224": resnet_v1_50,
}


def simulate_reference(name: str, config: "DPUConfig | str") -> DPUResult:
    """One of :data:`NETWORKS` on a DPU config (blocks summed, plus the task overhead)."""
    config = load_dpu(config)
    results = [simulate_block(b, config) if not hasattr(b, "plan") else b.plan(config) for b in NETWORKS[name]()]
    return combine(results, config, extra_cycles=round(config.task_overhead_us * config.clock_mhz))


# --- parts that are not block specs of a search space ------------------------------------------------------------
class _PoolFC:
    """Global average pool + fully connected classifier."""

    def __init__(self, size, channels, classes):
        self.size, self.channels, self.classes = size, channels, classes

    def plan(self, config: DPUConfig) -> DPUResult:
        p = BlockPlan(config)
        x = p.input("input", self.size, self.size, self.channels)
        p.conv("fc", p.pool("pool", x), self.classes, final=True)
        return p.result()


class _ExpandPoolFC(_PoolFC):
    """1x1 conv (ReLU), global average pool, fully connected classifier (MobileNetV2's head)."""

    def __init__(self, size, channels, expand, classes):
        super().__init__(size, channels, classes)
        self.expand = expand

    def plan(self, config: DPUConfig) -> DPUResult:
        p = BlockPlan(config)
        x = p.input("input", self.size, self.size, self.channels)
        h = p.conv("conv_last", x, self.expand, activation="relu")
        p.conv("fc", p.pool("pool", h), self.classes, final=True)
        return p.result()


class _ResNetStem:
    def __init__(self, resolution):
        self.resolution = resolution

    def plan(self, config: DPUConfig) -> DPUResult:
        p = BlockPlan(config)
        x = p.input("input", self.resolution, self.resolution, 3)
        h = p.conv("conv1", x, 64, 7, 2, activation="relu")
        p.pool("maxpool", h, kernel=3, stride=2, final=True)
        return p.result()


class _Bottleneck:
    def __init__(self, size, cin, width, cout, stride):
        self.size, self.cin, self.width, self.cout, self.stride = size, cin, width, cout, stride

    def plan(self, config: DPUConfig) -> DPUResult:
        p = BlockPlan(config)
        x = p.input("input", self.size, self.size, self.cin)
        h = p.conv("conv1", x, self.width, activation="relu")
        h = p.conv("conv2", h, self.width, 3, self.stride, activation="relu")
        h = p.conv("conv3", h, self.cout)
        shortcut = x if self.stride == 1 and self.cin == self.cout else p.conv("shortcut", x, self.cout, 1,
                                                                                 self.stride)
        p.eltwise("add", h, shortcut, final=True)
        return p.result()


__all__ = ["NETWORKS", "PUBLISHED", "mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "published_latency_ms",
           "resnet_v1_50", "simulate_reference"]
