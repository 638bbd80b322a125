import pytest
import torch

from impasto.errors import ImpastoError
from impasto.vgg import VGG, layer_names
from impasto.weights import VGGWeights


def test_layer_names_follow_the_architecture():
    names = layer_names("vgg19")
    assert names[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert sum(n.startswith("conv") for n in names) == 16
    assert sum(n.startswith("conv") for n in layer_names("vgg16")) == 13
    assert names[-1] == "pool5"


def test_forward_returns_named_layers_with_expected_shapes(tiny_net):
    out = tiny_net(torch.rand(1, 3, 32, 48), ["relu1_1", "conv2_1", "relu3_1", "pool3"])
    assert out["relu1_1"].shape == (1, 4, 32, 48)
    assert out["conv2_1"].shape == (1, 6, 16, 24)
    assert out["relu3_1"].shape == (1, 8, 8, 12)
    assert out["pool3"].shape == (1, 8, 4, 6)
    assert (out["relu1_1"] >= 0).all()
    assert (out["conv2_1"] < 0).any(), "a conv output asked for must not be overwritten by its ReLU"


def test_forward_stops_at_the_deepest_layer_asked_for(tiny_net):
    called = []
    hooks = [
        conv.register_forward_hook(lambda m, i, o, n=name: called.append(n)) for name, conv in tiny_net.convs.items()
    ]
    try:
        tiny_net(torch.rand(1, 3, 16, 16), ["relu2_1"])
    finally:
        for h in hooks:
            h.remove()
    assert called == ["conv1_1", "conv1_2", "conv2_1"]


def test_unknown_layer_suggests_the_nearest(tiny_net):
    with pytest.raises(ImpastoError, match="did you mean relu4_2"):
        tiny_net(torch.rand(1, 3, 16, 16), ["relu4_22"])


def test_weights_are_frozen(tiny_net):
    assert not any(p.requires_grad for p in tiny_net.parameters())


def test_caffe_preprocessing_maps_the_mean_colour_to_zero():
    convs = {
        f"conv{b}_{i}": (torch.zeros(2, 3 if (b, i) == (1, 1) else 2, 3, 3), torch.zeros(2))
        for b, n in zip(range(1, 6), (2, 2, 4, 4, 4))
        for i in range(1, n + 1)
    }
    net = VGG(VGGWeights("vgg19", convs, "caffe", "test"))
    mean_rgb = torch.tensor([123.68, 116.779, 103.939]).view(1, 3, 1, 1) / 255
    assert net.preprocess(mean_rgb).abs().max() < 1e-4
    red = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    # Caffe order is BGR: red lands in the last channel, at 255 - 123.68.
    assert net.preprocess(red).flatten().tolist() == pytest.approx([-103.939, -116.779, 255 - 123.68], abs=1e-3)


def test_avg_pooling_differs_from_max(tiny_net):
    avg = VGG.random("vgg19", pooling="avg")
    x = torch.rand(1, 3, 16, 16)
    assert not torch.allclose(avg(x, ["pool1"])["pool1"], tiny_net(x, ["pool1"])["pool1"])
    with pytest.raises(ImpastoError, match="pooling"):
        VGG.random("vgg19", pooling="min")


@pytest.mark.weights
def test_real_network_activations_are_sane(real_net):
    out = real_net(torch.rand(1, 3, 64, 64), ["relu5_1"])["relu5_1"]
    assert out.shape == (1, 512, 4, 4)
    assert torch.isfinite(out).all() and out.max() > 0


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda: VGG.random("vgg20"), "unknown VGG architecture 'vgg20'; arch must be one of: vgg16, vgg19"),
        (lambda: layer_names("VGG19"), "arch must be one of: vgg16, vgg19"),
        (lambda: VGG.random(widths=(4, 4)), r"widths must be 5 whole numbers of at least 1"),
        (lambda: VGG.random(widths=(4, 6, 8, 8, 0)), r"widths must be 5 whole numbers"),
        (lambda: VGG.random(seed="0"), "seed must be a whole number"),
        (lambda: VGG.load(5), r"weights must be a path \(a str or Path to a weights file\), or None"),
    ],
)
def test_bad_network_arguments_name_the_parameter(make, needle):
    with pytest.raises(ImpastoError, match=needle) as info:
        make()
    assert "\n" not in str(info.value)


def test_a_random_vgg16_has_its_own_layers():
    net = VGG.random("vgg16")
    assert net.conv_layers[-1] == "conv5_3" and len(net.conv_layers) == 13
