"""The training path of depthwise convs (kernel taps cropped on small maps, weight
gradient tap by tap) gives the plain conv's values and gradients."""

import pytest
import torch
import torch.nn.functional as F

from ofa.models.layers import ConvBNAct, DepthwiseConv2d, _used_taps, depthwise_conv2d


def test_used_taps_by_hand():
    assert _used_taps(7, 2) == (2, 4)  # a 7x7 kernel on a 2x2 map: only the central 3x3 meets the input
    assert _used_taps(7, 3) == (1, 5)
    assert _used_taps(7, 4) == (0, 6)
    assert _used_taps(3, 1) == (1, 1)
    assert _used_taps(5, 16) == (0, 4)


@pytest.mark.parametrize("channels,height,width,kernel,stride", [
    (8, 2, 2, 7, 1), (6, 3, 3, 7, 1), (5, 4, 4, 7, 1), (4, 6, 6, 5, 1), (3, 1, 1, 3, 1), (4, 2, 5, 7, 1),
    (4, 5, 2, 5, 1), (4, 12, 12, 7, 1), (4, 4, 4, 7, 2), (4, 3, 3, 3, 2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_values_and_gradients_match_the_plain_conv(channels, height, width, kernel, stride, channels_last):
    torch.manual_seed(0)
    x = torch.randn(3, channels, height, width, dtype=torch.float64)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    weight = torch.randn(channels, 1, kernel, kernel, dtype=torch.float64)
    grad = torch.randn(F.conv2d(x, weight, None, stride, kernel // 2, 1, channels).shape, dtype=torch.float64)
    outputs, grads = [], []
    for fn in (lambda a, w: F.conv2d(a, w, None, stride, kernel // 2, 1, channels),
               lambda a, w: depthwise_conv2d(a, w, stride)):
        a, w = x.clone().requires_grad_(), weight.clone().requires_grad_()
        out = fn(a, w)
        out.backward(grad)
        outputs.append(out.detach())
        grads.append((a.grad, w.grad))
    torch.testing.assert_close(outputs[1], outputs[0])
    torch.testing.assert_close(grads[1][0], grads[0][0])
    torch.testing.assert_close(grads[1][1], grads[0][1])
    if kernel // 2 >= height and stride == 1:  # taps outside the used window get exactly zero gradient
        assert grads[1][1][:, :, 0].abs().max() == 0


def test_gradcheck_on_a_small_map():
    x = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, 7, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: depthwise_conv2d(a, b, 1), (x, w))


def test_static_depthwise_layer_is_a_conv2d_with_the_same_state():
    block = ConvBNAct(6, 6, 5, 1, groups=6)
    assert isinstance(block[0], DepthwiseConv2d) and isinstance(block[0], torch.nn.Conv2d)
    plain = torch.nn.Conv2d(6, 6, 5, 1, 2, groups=6, bias=False)
    assert block[0].state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(block[0].state_dict())
    x = torch.randn(2, 6, 3, 3)
    for mode in (True, False):
        block[0].train(mode)
        torch.testing.assert_close(block[0](x), plain(x))
