"""The elastic MobileNetV3 supernet run as a weighted mixture of all its subnets.

A differentiable search gives every gene a weight vector over its choices
(softmax probabilities, Gumbel-softmax samples, or YOSO scale factors), and the
network runs every choice at once on the supernet's shared weights:

* **kernel size**: each candidate kernel (the shared 7x7 weight, centre-cropped
  and transformed as in Once-for-All) runs as its own depthwise branch with its
  own BatchNorm and activation, and the branches' outputs are mixed (DARTS's
  mixed operation, Liu et al. 2019): exact, three cheap depthwise convs per block;
* **expand ratio**: the expand ratio only decides how many of the (importance
  sorted) middle channels the block uses, and every layer before the projection
  works channel by channel, so the mixture is a soft channel mask on one full-width
  pass: ``project(h * sum_e w_e * mask_e)``. The 1x1 projection is linear, so this
  equals the mixture of the candidates' projections; the squeeze-and-excitation
  gate, which does depend on the width, is computed per expand ratio and folded
  into each mask. One expand conv and one projection per block instead of one per
  candidate (the weight-sharing trick of FBNetV2 / Single-Path NAS);
* **depth**: a stage's output is the mixture of its outputs after each candidate
  depth (the blocks run once, the mixture taps them);
* **resolution**: the network runs at each candidate resolution (choices of weight
  zero are not run) and either the logits are mixed, or the task loss is the
  expectation of each resolution's own loss (``RelaxedImageTask.loss``).

With BatchNorm in eval mode, and weights summing to one per decision, the
mixture of the kernel / expand choices is the mixture of the candidate
blocks' outputs exactly (the projection's BN is affine then). With batch statistics
(what the search uses: the supernet's running statistics belong to no one
subnet) the projection's BN normalises the mixed output. With one-hot weights
the mixture is exactly the subnet, in either mode (``tests/test_differentiable_search.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.mobilenetv3 import check_image_batch


class RelaxedMobileNetV3(nn.Module):
    """The mixture forward of an :class:`~ofa.supernets.mobilenetv3.OFAMobileNetV3` (its weights, shared)."""

    def __init__(self, supernet: nn.Module):
        super().__init__()
        self.supernet = supernet
        self.space = supernet.space

    def forward(self, inputs: list[torch.Tensor], weights: list[torch.Tensor]) -> torch.Tensor:
        """``inputs[r]``: the batch at the space's r-th resolution (None where its weight is 0);
        ``weights[g]``: the weight of each choice of gene g. Returns the mixed logits."""
        return sum(weight * logits for weight, logits in self.logits_per_resolution(inputs, weights))

    def logits_per_resolution(self, inputs: list[torch.Tensor],
                              weights: list[torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(weight, logits)`` of every resolution of nonzero weight (the others are not run)."""
        resolution = weights[-1]
        out = []
        for r, x in enumerate(inputs):
            if float(resolution[r].detach()) == 0.0:  # a resolution not drawn this step (one pass each)
                continue
            if x is None:
                raise ValueError(f"the batch at resolution {self.space.resolutions[r]} is missing")
            out.append((resolution[r], self._logits(x, weights)))
        return out

    def _logits(self, x: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
        net, space = self.supernet, self.space
        check_image_batch(x, space.in_channels)
        b, d = space.num_blocks, space.max_depth
        x = net.first_block(net.stem(x))
        for stage, blocks in enumerate(net.stages):
            depth_weights = weights[2 * b + stage]
            deepest = max(space.depths[j] for j in range(len(space.depths)) if not _off(depth_weights[j]))
            taps = {}
            for i in range(deepest):
                index = stage * d + i
                x = mixed_block(blocks[i], x, weights[index], weights[b + index])
                taps[i + 1] = x
            x = sum(depth_weights[j] * taps[depth] for j, depth in enumerate(space.depths)
                    if not _off(depth_weights[j]))
        x = net.final_expand(x).mean((2, 3), keepdim=True)
        x = F.hardswish(net.feature_mix(x)).flatten(1)
        return net.classifier(net.dropout(x))


def _off(weight: torch.Tensor) -> bool:
    """A choice of weight exactly zero that no gradient asks about is not run (one-hot or pruned weights);
    a straight-through weight is zero in value but carries a gradient, so its choice runs."""
    return not weight.requires_grad and float(weight) == 0.0


def mixed_block(block: nn.Module, x: torch.Tensor, kernel_weights: torch.Tensor,
                expand_weights: torch.Tensor) -> torch.Tensor:
    """The mixture of an elastic inverted-residual block over its kernel sizes and expand ratios."""
    space = block.space
    full = block.mid_channels(max(space.expand_ratios))
    h = block.act(block.expand_bn(F.conv2d(x, block.expand_conv.weight[:full])))
    widths = [block.mid_channels(e) for e in space.expand_ratios]
    channel = torch.arange(full, device=x.device)
    masks = [(channel < m).to(h.dtype).reshape(1, full, 1, 1) for m in widths]
    mixed = 0.0
    for k, kernel in enumerate(space.kernel_sizes):
        if _off(kernel_weights[k]):
            continue
        branch = block.act(block.depthwise_bn(block.depthwise(h, kernel)))
        gate = 0.0
        for e, mid in enumerate(widths):
            if _off(expand_weights[e]):
                continue
            if block.se_reduce is not None:
                se = space.se_channels(mid)
                s = branch[:, :mid].mean((2, 3), keepdim=True)
                s = torch.relu(F.conv2d(s, block.se_reduce.weight[:se, :mid], block.se_reduce.bias[:se]))
                s = F.hardsigmoid(F.conv2d(s, block.se_expand.weight[:mid, :se], block.se_expand.bias[:mid]))
                gate = gate + expand_weights[e] * F.pad(s, (0, 0, 0, 0, 0, full - mid))
            else:
                gate = gate + expand_weights[e] * masks[e]
        mixed = mixed + kernel_weights[k] * branch * gate
    out = block.project_bn(F.conv2d(mixed, block.project_conv.weight[:, :full]))
    return out + x if block.use_shortcut else out


class RelaxedImageTask:
    """The task loss of the mixture on an image data set's splits (:class:`ofa.data.DataSplits`),
    with batches drawn by a seeded generator (the same batch at every resolution)."""

    def __init__(self, supernet: nn.Module, data, batch_size: int = 64, seed: int = 0):
        import numpy as np

        self.model = RelaxedMobileNetV3(supernet)
        self.data, self.batch_size = data, int(batch_size)
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: int) -> None:
        """Draw the batches from a fresh generator: a search is then the same whatever ran before it."""
        import numpy as np

        self.rng = np.random.default_rng(seed)

    def batch(self, split: str, weights: list[torch.Tensor] | None = None):
        dataset = getattr(self.data, split)
        positions = self.rng.choice(len(dataset), size=min(self.batch_size, len(dataset)), replace=False)
        inputs, labels = [], None
        for r, resolution in enumerate(self.model.space.resolutions):
            if weights is not None and float(weights[-1][r].detach()) == 0.0:
                inputs.append(None)
                continue
            images, labels = dataset.get_batch(positions, resolution)
            inputs.append(images)
        return inputs, labels

    def loss(self, weights: list[torch.Tensor], batch, over_resolutions: str = "mix") -> torch.Tensor:
        """Cross-entropy of the mixture. ``over_resolutions="mix"``: of the resolutions' mixed logits;
        ``"expected"``: each resolution's own cross-entropy, weighted by its weight (its probability)."""
        inputs, labels = batch
        if over_resolutions == "expected":
            return sum(weight * F.cross_entropy(logits, labels)
                       for weight, logits in self.model.logits_per_resolution(inputs, weights))
        if over_resolutions != "mix":
            raise ValueError(f"over_resolutions={over_resolutions!r}; allowed: 'mix', 'expected'")
        return F.cross_entropy(self.model(inputs, weights), labels)

    def copy(self) -> "RelaxedImageTask":
        """The same task on a deep copy of the supernet (for the modes that train weights)."""
        import copy

        task = copy.copy(self)
        task.model = RelaxedMobileNetV3(copy.deepcopy(self.model.supernet))
        return task
