"""Winograd F(4x4, 3x3) convolution: the same numbers as direct convolution, forward and backward."""

import pytest
import torch
import torch.nn.functional as F

from impasto import memory, stylize
from impasto.vgg import VGG
from impasto.winograd import WinogradConv3x3, conv3x3, transform_filters

from conftest import pattern, stripes


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("height,width", [(1, 1), (2, 3), (4, 4), (5, 7), (8, 13), (17, 6)])
def test_matches_direct_convolution_at_any_size(height, width):
    """Sizes that are not multiples of the 4x4 tile, down to a single pixel, batch of 2."""
    generator = torch.Generator().manual_seed(height * 31 + width)
    x = torch.randn(2, 3, height, width, generator=generator)
    weight, bias = torch.randn(5, 3, 3, 3, generator=generator), torch.randn(5, generator=generator)
    expected = F.conv2d(x, weight, bias, padding=1)
    got = conv3x3(x, transform_filters(weight), bias)
    assert got.shape == expected.shape
    assert relative_error(got, expected) < 1e-5


def test_input_gradient_matches_direct_convolution():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 16, 11, 9, generator=generator)
    weight, bias = torch.randn(8, 16, 3, 3, generator=generator), torch.randn(8, generator=generator)
    upstream = torch.randn(1, 8, 11, 9, generator=generator)
    direct = x.clone().requires_grad_()
    F.conv2d(direct, weight, bias, padding=1).backward(upstream)
    fast = x.clone().requires_grad_()
    WinogradConv3x3(weight, bias)(fast).backward(upstream)
    assert relative_error(fast.grad, direct.grad) < 1e-5


def test_output_can_be_rectified_in_place():
    """VGG applies ReLU in place to conv outputs; autograd must still give the right gradient."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, 6, 6, generator=generator)
    weight, bias = torch.randn(4, 4, 3, 3, generator=generator), torch.randn(4, generator=generator)
    direct = x.clone().requires_grad_()
    F.relu(F.conv2d(direct, weight, bias, padding=1)).square().sum().backward()
    fast = x.clone().requires_grad_()
    F.relu(WinogradConv3x3(weight, bias)(fast), inplace=True).square().sum().backward()
    assert relative_error(fast.grad, direct.grad) < 1e-5


def features_and_gradient(net: VGG, image: torch.Tensor, layers, winograd: bool):
    before, net.winograd = net.winograd, winograd
    try:
        x = image.clone().requires_grad_()
        features = net(x, layers)
        sum(f.square().mean() for f in features.values()).backward()
    finally:
        net.winograd = before
    return features, x.grad


def assert_same_either_way(net: VGG, image: torch.Tensor, layers) -> None:
    direct, direct_grad = features_and_gradient(net, image, layers, winograd=False)
    fast, fast_grad = features_and_gradient(net, image, layers, winograd=True)
    for name in layers:
        assert relative_error(fast[name], direct[name]) < 1e-5, name
    assert relative_error(fast_grad, direct_grad) < 1e-5


def test_vgg_gives_the_same_features_and_gradient_either_way():
    net = VGG.random("vgg19", widths=(4, 6, 8, 8, 8))
    net.winograd_min_channels, net.winograd_min_work = 6, 0  # the tiny net's blocks 2-5 take this path
    net.winograd_plan = None
    image = torch.rand(1, 3, 37, 29, generator=torch.Generator().manual_seed(2))
    assert_same_either_way(net, image, ("relu1_1", "relu2_1", "relu3_1", "relu4_2", "relu5_1"))
    assert "conv5_1" in net._winograd and "conv1_1" not in net._winograd


def test_only_wide_layers_on_the_cpu_use_it():
    net = VGG.random("vgg19", widths=(4, 6, 8, 8, 8))
    net.winograd_min_channels = 8
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not net.uses_winograd("conv2_1", cpu)  # 4 input channels
    assert net.uses_winograd("conv3_2", cpu)
    assert not net.uses_winograd("conv3_2", cuda)  # cuDNN does its own
    net.winograd = False
    assert not net.uses_winograd("conv3_2", cpu)


def test_memory_estimate_counts_the_transformed_filters():
    net = VGG.random("vgg19", widths=(4, 6, 8, 8, 8))
    net.winograd_min_channels = 8
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    wide = [w for name, w, _, _ in net.conv_shapes(1, 1, "relu5_1") if w.shape[1] >= 8]
    expected = sum(2 * 36 * w.shape[0] * w.shape[1] * 4 for w in wide)
    assert net.winograd_bytes("relu5_1", cpu) == expected > 0
    assert net.winograd_bytes("relu5_1", cuda) == 0
    with_filters = memory.estimate_bytes(net, 64, 64, "relu5_1", cpu)
    assert with_filters - memory.estimate_bytes(net, 64, 64, "relu5_1", cuda) == expected


def test_stylize_applies_the_setting_to_a_given_network_for_that_run_only():
    net = VGG.random("vgg19", widths=(4, 6, 8, 8, 8))
    net.winograd_min_channels, net.winograd_min_work = 8, 0
    net.winograd_plan = None
    stylize(pattern(24, 16, 1), stripes(16, 16), network=net, size=24, iterations=2, scales=1, winograd=False)
    assert not net._winograd and net.winograd
    result = stylize(pattern(24, 16, 1), stripes(16, 16), network=net, size=24, iterations=2, scales=1)
    assert net._winograd and result.tensor.isfinite().all()


@pytest.mark.weights
def test_real_vgg19_features_and_gradient_agree(real_net):
    """The default network's deep layers (256 and 512 channels) by Winograd, against oneDNN."""
    image = torch.rand(1, 3, 70, 45, generator=torch.Generator().manual_seed(3))
    real_net.winograd_min_work, before = 0, real_net.winograd_min_work  # else this small image is direct
    try:
        assert_same_either_way(real_net, image, ("relu3_3", "relu4_2", "relu5_1"))
    finally:
        real_net.winograd_min_work = before
    assert {"conv3_2", "conv4_2", "conv5_1"} <= set(real_net._winograd)


def test_small_layers_are_convolved_directly():
    """Below MIN_WORK the transforms' fixed cost outweighs the saving."""
    net = VGG.random("vgg19", widths=(4, 6, 8, 8, 8))
    net.winograd_min_channels = 6
    with torch.no_grad():
        net(torch.rand(1, 3, 37, 29), ["relu5_1"])
    assert not net._winograd


@pytest.mark.parametrize("pays", [True, False])
def test_the_machine_plan_decides_per_layer_shape(pays):
    """Past the static gates, the per-machine timing (convplan) has the last word."""
    net = VGG.random("vgg19")
    net.winograd_min_channels, net.winograd_min_work = 6, 0
    asked = []
    net.winograd_plan = lambda *shape: asked.append(shape) or pays
    with torch.no_grad():
        net(torch.rand(1, 3, 32, 32), ["relu5_1"])
    assert asked and all(shape[0] >= 6 for shape in asked)
    assert bool(net._winograd) == pays
