"""Exact tiling: a tiled loss, gradient and run equal the untiled ones."""

import dataclasses

import pytest
import torch

from impasto import StyleConfig, stylize
from impasto.losses import StyleRepresentation
from impasto.memory import Need, plan
from impasto.objective import Objective, Stopped
from impasto.terms import ContentLoss, StyleLoss, TotalVariation
from impasto.tiling import Window, largest_window, windows
from impasto.vgg import layer_stride

from conftest import pattern, stripes

GATYS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


@pytest.mark.parametrize(
    "height, width, tile, align", [(203, 259, 64, 16), (97, 33, 32, 8), (16, 300, 64, 16), (1000, 17, 128, 32)]
)
def test_tiles_cover_every_position_once(height, width, tile, align):
    cut = windows(height, width, tile, halo=40, align=align)
    for stride in (1, 2, 4, align):
        owned = torch.zeros(height // stride, width // stride)
        for w in cut:
            w.crop(owned, stride).add_(1)
        assert owned.eq(1).all(), f"stride {stride}"
    for w in cut:
        top, left, bottom, right = w.inner
        assert top % align == 0 and left % align == 0 and w.top % align == 0 and w.left % align == 0
        assert 0 <= w.top <= top < bottom <= w.bottom <= height and 0 <= w.left <= left < right <= w.right <= width
        assert bottom == height or bottom % align == 0
    h, wd, count = largest_window(height, width, tile, 40, align)
    assert count == len(cut) and (h, wd) == max((w.size for w in cut), key=lambda s: s[0] * s[1])


def test_halo_is_what_the_deepest_layer_needs(tiny_net):
    assert tiny_net.halo(["relu5_1"]) == 80 and tiny_net.halo(["relu4_2"]) == 40 and tiny_net.halo(["relu1_1"]) == 1
    torch.manual_seed(0)
    image = torch.rand(1, 3, 208, 240)
    layers = ["relu3_1", "relu5_1"]
    whole = tiny_net(image, layers)
    for halo, equal in ((80, True), (48, False)):
        inner = (96, 96, 112, 128)
        w = Window(inner[0] - halo, inner[1] - halo, inner[2] + halo, inner[3] + halo, inner)
        part = tiny_net(w.pixels(image), layers)
        same = all(
            torch.allclose(w.interior(part[n], layer_stride(n)), w.crop(whole[n], layer_stride(n)), atol=1e-5)
            for n in layers
        )
        assert same == equal, halo


def grams(net, rep, image):
    h, w = image.shape[-2:]
    with torch.no_grad():
        sums = rep.sums(net(image, rep.layers), Window.whole(h, w))
    return [s / a for s, a in zip(sums, rep.areas(h, w))]


def objective_terms(net, rep, size, masks, content_layers=("relu4_2",)):
    torch.manual_seed(1)
    height, width = size
    content = torch.rand(1, 3, height, width)
    styles = [torch.rand(1, 3, 90, 110), torch.rand(1, 3, 70, 70)][: len(masks)]
    with torch.no_grad():
        targets = net(content, content_layers)
    return [
        ContentLoss(targets, 1.0),
        StyleLoss(rep, [grams(net, rep, s) for s in styles], [1.0, 2.0][: len(masks)], masks, size, 50.0),
        TotalVariation(0.1),
    ]


def assert_tiled_equals_whole(net, terms, image, tile):
    layers = tuple({n for t in terms for n in getattr(t, "layers", ())})
    cut = windows(*image.shape[-2:], tile, net.halo(layers), layer_stride(net.deepest(layers)))
    assert len(cut) > 3
    whole, tiled = Objective(net, terms)(image), Objective(net, terms, cut)(image)
    for name, value in whole.terms.items():
        assert tiled.terms[name] == pytest.approx(value, rel=1e-4), name
    error = (tiled.gradient - whole.gradient).norm() / whole.gradient.norm()
    assert error < 1e-4


def half_mask(height, width):
    mask = torch.zeros(1, 1, height, width)
    mask[..., :, : width // 3] = 1
    mask[..., height // 2 :, :] = 1
    return mask


@pytest.mark.parametrize("case", ["plain", "masks", "two_styles", "chain_shift", "all_layers_geometric"])
def test_tiled_loss_and_gradient_equal_untiled(tiny_net, case):
    height, width = 203, 259
    layers = tuple("relu" + n[4:] for n in tiny_net.conv_layers) if case == "all_layers_geometric" else GATYS
    rep = StyleRepresentation(
        layers,
        shift=-1.0 if case != "plain" else 0.0,
        chain=case == "chain_shift",
        weighting="geometric" if case == "all_layers_geometric" else "uniform",
    )
    masks = {
        "plain": [None],
        "masks": [half_mask(height, width)],
        "two_styles": [half_mask(height, width), None],
        "chain_shift": [None, half_mask(height, width)],
        "all_layers_geometric": [None],
    }[case]
    terms = objective_terms(tiny_net, rep, (height, width), masks)
    assert_tiled_equals_whole(tiny_net, terms, torch.rand(1, 3, height, width), tile=64)


@pytest.mark.weights
@pytest.mark.parametrize("chain", [False, True])
def test_tiled_loss_and_gradient_equal_untiled_on_vgg19(real_net, chain):
    height, width = 147, 181
    rep = StyleRepresentation(GATYS, shift=-1.0 if chain else 0.0, chain=chain)
    masks = [half_mask(height, width), None]
    terms = objective_terms(real_net, rep, (height, width), masks)
    assert_tiled_equals_whole(real_net, terms, torch.rand(1, 3, height, width), tile=48)


TILED_RUNS = {
    "gatys": {},
    "improved": dict(layer_weighting="geometric", all_conv_layers=True, activation_shift=-1.0, correlation_chain=True),
    "luminance": dict(preserve_color="luminance"),
    "histogram": dict(preserve_color="histogram"),
    "adam": dict(optimizer="adam", learning_rate=0.05),
}


@pytest.mark.parametrize("case", list(TILED_RUNS))
def test_a_tiled_run_paints_the_same_image(tiny_net, case):
    content, style = pattern(211, 147, 1), stripes(60, 60)
    seen = []
    common = dict(network=tiny_net, size=211, iterations=6, scales=1, style_weight=3e3, **TILED_RUNS[case])
    tiled = stylize(content, style, tile=64, callback=lambda p: seen.append(p.tiles), **common)
    whole = stylize(content, style, tile="off", **common)
    start = stylize(content, style, **{**common, "iterations": 0}).tensor
    assert seen and min(seen) > 3
    assert (tiled.tensor - whole.tensor).abs().mean() < 1 / 255
    assert tiled.history[-1]["total"] == pytest.approx(whole.history[-1]["total"], rel=1e-3)
    # Far closer to each other than either is to where they started.
    assert (tiled.tensor - whole.tensor).abs().mean() < 0.05 * (whole.tensor - start).abs().mean()


def test_two_styles_with_masks_tile_the_same(tiny_net, tmp_path):
    content, styles = pattern(150, 211, 2), [stripes(60, 60), pattern(50, 70, 4)]
    mask = torch.zeros(1, 1, 211, 150)
    mask[..., :100, :] = 1
    common = dict(
        network=tiny_net,
        size=211,
        iterations=5,
        scales=1,
        style_weight=3e3,
        masks=[mask, 1 - mask],
        style_blend=(1.0, 2.0),
    )
    tiled = stylize(content, styles, tile=64, **common)
    whole = stylize(content, styles, tile="off", **common)
    assert (tiled.tensor - whole.tensor).abs().mean() < 1 / 255


def test_coarse_to_fine_tiles_only_the_scales_that_do_not_fit(tiny_net, monkeypatch):
    import impasto.memory as memory

    content, style = pattern(512, 320, 1), stripes(60, 60)
    # A budget between what the 256 px and the 512 px scales need untiled.
    small = memory.estimate_bytes(tiny_net, 256, 160, "relu5_1", content_layers=("relu4_2",))
    large = memory.estimate_bytes(
        tiny_net, 512, 320, "relu5_1", content_layers=("relu4_2",), history=memory.MIN_HISTORY
    )  # untiled even with the shortest history
    layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1", "relu4_2")
    least = memory.least_bytes(memory.Need(tiny_net, layers, ("relu4_2",), torch.device("cpu")), 512, 320)
    assert small < least < large
    tiles = {}
    stylize(
        content,
        style,
        network=tiny_net,
        size=512,
        scales=2,
        min_size=64,
        iterations=4,
        max_memory=max((small + large) // 2, least + 2**20),
        callback=lambda p: tiles.__setitem__(p.size, p.tiles),
    )
    assert tiles[(256, 160)] == 1 and tiles[(512, 320)] > 1


def test_a_stop_between_tiles_abandons_the_evaluation(tiny_net):
    import threading

    stop = threading.Event()
    terms = [TotalVariation(1.0), ContentLoss(tiny_net(torch.rand(1, 3, 160, 160), ["relu2_1"]), 1.0)]
    cut = windows(160, 160, 32, tiny_net.halo(["relu2_1"]), 2)
    calls = []

    class Spy:
        def __call__(self, x, layers, winograd=None, dtype=None):
            calls.append(x.shape)
            if len(calls) == 2:
                stop.set()
            return tiny_net(x, layers, dtype=dtype)

    objective = Objective(Spy(), terms, cut, stop=stop)
    with pytest.raises(Stopped):
        objective(torch.rand(1, 3, 160, 160))
    assert len(calls) == 2 < len(cut)


def test_memory_plan_tiles_only_what_does_not_fit(real_net):
    cpu = torch.device("cpu")
    need = Need(real_net, GATYS + ("relu4_2",), ("relu4_2",), cpu, budget=64 * 2**30)
    assert plan(need, 512, 384).windows is None  # fits: untiled
    small = Need(real_net, GATYS + ("relu4_2",), ("relu4_2",), cpu, budget=4 * 2**30)
    tight = plan(small, 2048, 1536)
    assert tight.windows is not None and tight.estimate <= 4 * 2**30 and tight.history == 20
    assert plan(Need(real_net, GATYS, (), cpu, tile=256, budget=None), 1024, 768).tile == 256
    assert plan(Need(real_net, GATYS, (), cpu, tile="off", budget=3 * 2**30), 2048, 1536) is None
    # Less room: the history shrinks before the tiles fall below 4 halos (320 px to relu5_1) ...
    squeezed = plan(dataclasses.replace(small, budget=3 * 2**30), 2048, 1536)
    assert squeezed is not None and squeezed.history < 20 and squeezed.tile >= 320
    # ... and only then do the tiles shrink further
    least = plan(dataclasses.replace(small, budget=int(2.3 * 2**30)), 2048, 1536)
    assert least is not None and least.history == 5 and least.tile < 320


def test_config_checks_tile_and_memory():
    from impasto.errors import ImpastoError

    assert StyleConfig(tile=512).tile == 512 and StyleConfig(tile="off").tile == "off"
    for bad in ("huge", 8, True, 2.5):
        with pytest.raises(ImpastoError, match="tile"):
            StyleConfig(tile=bad)
    with pytest.raises(ImpastoError, match="max_memory"):
        StyleConfig(max_memory=0)
