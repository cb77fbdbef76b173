"""The reference network: a fixed model timed beside every measurement, so that
a profile sees the host change speed.

Machines do not keep one speed: CPUs change clock with temperature and
power limits, phones throttle, a virtual machine shares its cores with other
tenants, and on this project's 2-core build machine the host runs about 0.7x
or 1.4x its usual speed for tens of seconds at a time. A measurement taken in
such a stretch is off by that factor whatever the protocol's repeats, and
shuffling the architectures inside a chunk cannot see a change that outlasts
the chunk. Benchmarking tools pin the machine where they can (Google
Benchmark's "Reducing Variance" guide: the ``performance`` governor, warned
about when CPU scaling is on; pyperf's ``system tune`` and isolated CPUs, in
V. Stinner, "How to run stable benchmarks", FOSDEM 2017, where a busy system
ran the same code 1.6x slower) and interleave what they compare so that a
slow stretch hits every candidate alike (Google Benchmark's random
interleaving, which it reports lowers run-to-run variance by 40%; the
A B C A' B' C' order proposed in asv's benchmark-statistics pull request
#493). Pinning is impossible on a phone or a shared VM, and interleaving
alone still leaves each chunk at its own speed, so the protocol also times
this fixed network in every pass of every chunk and derives a
drift-corrected label (:mod:`hardware_profiles.labels`).

The network is a plain convolutional stack on a 32x32 image: every runtime
the package measures runs it (onnxruntime, ncnn via pnnx, CUDA, TensorRT),
its cost is close to the small subnets' (a few MMACs), and it never changes:
:data:`REFERENCE_NAME` names this exact definition, and a profile records it,
so drift-corrected labels are only compared between measurements timed
against the same reference.
"""

from __future__ import annotations

import torch
from torch import nn

# bump the version whenever the definition below changes: corrected labels are
# ratios to this network's time, so another network would rescale them
REFERENCE_NAME = "ofa-hw-reference-cnn-v1"
INPUT_SHAPE = (3, 32, 32)
_CHANNELS = (16, 32, 48, 64)


class ReferenceNetwork(nn.Module):
    """Four stages of two 3x3 convolutions with ReLU (the first of each with
    stride 2), global pooling and a linear classifier; weights from a fixed seed (the values do not change the time,
    but a fixed network makes runs byte-identical)."""

    input_names = ("input",)
    output_names = ("logits",)

    def __init__(self):
        super().__init__()
        layers, width = [], INPUT_SHAPE[0]
        for channels in _CHANNELS:
            layers += [nn.Conv2d(width, channels, 3, stride=2, padding=1), nn.ReLU()]
            layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
            width = channels
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, 10)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))

    def example_inputs(self, batch_size: int = 1) -> torch.Tensor:
        return torch.randn(batch_size, *INPUT_SHAPE)


def reference_description() -> dict:
    """What a profile header records about the reference network."""
    network = ReferenceNetwork()
    macs, size = 0, INPUT_SHAPE[1]
    width = INPUT_SHAPE[0]
    for channels in _CHANNELS:
        size = (size + 1) // 2
        macs += size * size * channels * (width * 9 + channels * 9)
        width = channels
    macs += width * 10
    return {"name": REFERENCE_NAME, "input_shape": [1, *INPUT_SHAPE], "macs": int(macs),
            "params": int(sum(p.numel() for p in network.parameters()))}
