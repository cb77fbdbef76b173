"""The elastic MobileNetV3 supernet: extraction parity, width re-ordering,
analytic cost equals measured cost, ONNX export."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from conftest import randomize_batchnorm
from ofa import ConfigError, SpaceMismatchError, create_supernet, get_space
from ofa.export import export_model, onnx_parity
from ofa.supernets.elastic import ElasticBatchNorm2d, sort_segments


def make_supernet(space, seed=0):
    torch.manual_seed(seed)
    net = create_supernet(space)
    randomize_batchnorm(net, seed)
    with torch.no_grad():  # non-identity kernel transforms, as after training
        for stage in net.stages:
            for block in stage:
                for matrix in block.depthwise.transforms.values():
                    matrix.add_(0.05 * torch.randn_like(matrix))
    return net.eval()


def inputs_for(arch, batch=2, seed=0):
    return torch.randn(batch, 3, arch.resolution, arch.resolution, generator=torch.Generator().manual_seed(seed))


def assert_parity(net, arch):
    x = inputs_for(arch)
    net.set_active(arch)
    static = net.extract(arch).eval()
    with torch.no_grad():
        difference = (net(x) - static(x)).abs().max().item()
    assert difference <= 1e-5, (arch, difference)
    return static


def test_extraction_parity_small_preset(small_space):
    net = make_supernet(small_space)
    archs = [small_space.largest(), small_space.smallest()] + small_space.sample(rng=0, n=20)
    for arch in archs:
        assert_parity(net, arch)


def test_extraction_parity_imagenet_preset():
    space = get_space("ofa-mbv3-w1.0", num_classes=10, resolutions=(128, 160))
    net = make_supernet(space, seed=1)
    for arch in [space.largest(), space.smallest()] + space.sample(rng=1, n=2):
        assert_parity(net, arch)


def test_extracted_module_is_plain(small_space):
    net = make_supernet(small_space)
    static = net.extract(small_space.sample(rng=5))
    kinds = {type(m).__name__ for m in static.modules()}
    assert not any("Elastic" in kind for kind in kinds)
    assert static.arch == small_space.sample(rng=5)


def test_active_subnet_is_per_instance(small_space):
    a, b = make_supernet(small_space), make_supernet(small_space)
    a.set_active(small_space.smallest())
    assert b.active_arch == small_space.largest()
    assert a.set_active(small_space.largest().to_dict()) == small_space.largest()
    with pytest.raises(SpaceMismatchError):
        a.set_active(get_space("ofa-mbv3-w1.0").largest())
    with pytest.raises(ConfigError):
        a.set_active({"kernel_sizes": [4]})


def test_sort_channels_preserves_function(small_space):
    net = make_supernet(small_space)
    with torch.no_grad():  # make importance order non-trivial
        for stage in net.stages:
            for block in stage:
                block.project_conv.weight.mul_(torch.rand_like(block.project_conv.weight) * 2)
    x = inputs_for(small_space.largest())
    net.set_active(small_space.largest())
    with torch.no_grad():
        before = net(x)
        net.sort_channels()
        after = net(x)
    assert (before - after).abs().max().item() <= 1e-5
    block = net.stages[0][0]
    importance = block.project_conv.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(importance[:-1] >= importance[1:])


def test_staged_sort_keeps_trained_prefixes(small_space):
    net = make_supernet(small_space, seed=3)
    b = small_space.num_blocks
    e4 = small_space.parse({"kernel_sizes": [5] * b, "expand_ratios": [4] * b, "depths": [3] * 4,
                            "resolution": 28})
    x = inputs_for(e4)
    for arch in (e4, small_space.largest()):
        net.set_active(arch)
        with torch.no_grad():
            before = net(x if arch is e4 else inputs_for(arch))
            net.sort_channels(keep_expand_ratios=(4, 6))
            after = net(x if arch is e4 else inputs_for(arch))
        assert (before - after).abs().max().item() <= 1e-5
    block = net.stages[1][0]
    mid3, mid4 = block.mid_channels(3), block.mid_channels(4)
    importance = block.project_conv.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(importance[:mid3 - 1] >= importance[1:mid3])  # the new 3x prefix is the best of the 4x
    assert torch.all(importance[mid4:-1] >= importance[mid4 + 1:])


def test_sort_segments():
    importance = torch.tensor([1.0, 3.0, 2.0, 0.0, 5.0, 4.0])
    assert sort_segments(importance, []).tolist() == [4, 5, 1, 2, 0, 3]
    assert sort_segments(importance, [3]).tolist() == [1, 2, 0, 4, 5, 3]


def count_macs(model, x):
    with FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() // 2


def test_analytic_macs_and_params_equal_measured(small_space):
    net = make_supernet(small_space)
    for arch in small_space.sample(rng=11, n=20) + [small_space.largest(), small_space.smallest()]:
        static = net.extract(arch).eval()
        cost = small_space.cost(arch)
        with torch.no_grad():
            assert count_macs(static, inputs_for(arch, batch=1)) == cost.macs
        assert sum(p.numel() for p in static.parameters()) == cost.params


def test_analytic_cost_imagenet_preset():
    space = get_space("ofa-mbv3-w1.0")
    net = create_supernet(space).eval()
    for arch in [space.largest(), space.sample(rng=2)]:
        static = net.extract(arch)
        with torch.no_grad():
            assert count_macs(static, inputs_for(arch, batch=1)) == space.cost(arch).macs
        assert sum(p.numel() for p in static.parameters()) == space.cost(arch).params
    assert 7.5e6 < space.cost(space.largest()).params < 7.8e6  # OFA-MobileNetV3 w1.0: 7.7M


def test_kernel_transform_cache_follows_weight_updates(small_space):
    net = make_supernet(small_space)
    arch = small_space.smallest()  # 3x3 kernels: derived through both transforms
    net.set_active(arch)
    x = inputs_for(arch)
    with torch.no_grad():
        first = net(x)
        assert torch.equal(first, net(x))
        for stage in net.stages:
            for block in stage:
                block.depthwise.transforms["5to3"].mul_(1.5)
        second = net(x)
    assert not torch.allclose(first, second)
    assert (second - net.extract(arch).eval()(x)).abs().max().item() <= 1e-5


def test_gradients_reach_kernel_transforms(small_space):
    net = create_supernet(small_space).train()
    net.set_active(small_space.smallest())
    net(inputs_for(small_space.smallest(), batch=4)).sum().backward()
    block = net.stages[0][0]
    assert block.depthwise.transforms["5to3"].grad is not None
    assert block.depthwise.transforms["7to5"].grad is not None
    assert net.stages[0][3].expand_conv.weight.grad is None  # skipped by depth 2


def test_elastic_batchnorm_cumulative_average_on_a_slice():
    bn = ElasticBatchNorm2d(8, momentum=None).train()
    batches = [torch.randn(4, 5, 3, 3) * (i + 1) + i for i in range(3)]
    for batch in batches:
        bn(batch)
    means = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches]).mean(0)
    variances = torch.stack([b.var(dim=(0, 2, 3), unbiased=True) for b in batches]).mean(0)
    assert torch.allclose(bn.running_mean[:5], means, atol=1e-6)
    assert torch.allclose(bn.running_var[:5], variances, atol=1e-5)
    assert torch.equal(bn.running_mean[5:], torch.zeros(3))


def test_onnx_export_parity(tmp_path, small_space):
    net = make_supernet(small_space)
    static = net.extract(small_space.sample(rng=4)).eval()
    path = export_model(static, tmp_path / "subnet.onnx")
    x = static.example_inputs(batch_size=3)  # dynamic batch axis: export used batch 1
    assert onnx_parity(static, path, x) <= 1e-4
