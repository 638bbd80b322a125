"""stylize() and its parts on a tiny random network: behaviour, not just that it runs."""

import numpy as np
import PIL.Image
import pytest
import torch

from impasto import StyleConfig, stylize
from impasto.color import rgb_to_yiq
from impasto.errors import ImpastoError
from impasto.losses import StyleRepresentation
from impasto.terms import StyleLoss
from impasto.tiling import Window
from impasto.transfer import resolve_device, scale_sizes, split_iterations, style_layers_for

from conftest import pattern, stripes, to_tensor

FAST = dict(size=32, iterations=12, scales=1)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_loss_falls(tiny_net, images, optimizer):
    result = stylize(*images, network=tiny_net, optimizer=optimizer, learning_rate=0.05, **FAST)
    assert len(result.history) == 12
    assert result.history[-1]["total"] < 0.5 * result.history[0]["total"]
    assert result.image.size == (32, 21)
    assert 0 <= result.tensor.min() and result.tensor.max() <= 1


def test_same_seed_same_output_and_other_seed_differs(tiny_net, images):
    a = stylize(*images, network=tiny_net, init="noise", seed=3, **FAST).tensor
    b = stylize(*images, network=tiny_net, init="noise", seed=3, **FAST).tensor
    c = stylize(*images, network=tiny_net, init="noise", seed=4, **FAST).tensor
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("init", ["content", "noise", "style", "path"])
def test_init_choices(tiny_net, images, init, tmp_path):
    if init == "path":
        init = tmp_path / "start.png"
        PIL.Image.new("RGB", (10, 10), (0, 255, 0)).save(init)
    result = stylize(*images, network=tiny_net, init=str(init), size=32, iterations=0, scales=1)
    if init == "content":
        expected = to_tensor(PIL.Image.open(images[0]).resize((32, 21), PIL.Image.LANCZOS))
        assert (result.tensor - expected).abs().max() < 2 / 255
    elif str(init).endswith("start.png"):
        assert torch.allclose(result.tensor[0, :, 5, 5], torch.tensor([0.0, 1.0, 0.0]))


def test_progress_callback_and_interrupt_returns_the_image_so_far(tiny_net, images):
    seen = []

    def callback(p):
        seen.append((p.iteration, p.total, p.scale, p.size, set(p.losses)))
        if p.iteration == 3:
            assert p.current().size == p.size
            raise KeyboardInterrupt

    result = stylize(*images, network=tiny_net, callback=callback, **FAST)
    assert result.interrupted
    assert [s[0] for s in seen] == [1, 2, 3]
    assert seen[0][1:4] == (12, 1, (32, 21))
    assert seen[0][4] == {"content", "style", "tv", "total"}
    assert result.image.size == (32, 21)


def test_coarse_to_fine_schedule():
    assert scale_sizes(512, 3, 128) == [128, 256, 512]
    assert scale_sizes(200, 3, 128) == [200]
    assert scale_sizes(512, 1, 128) == [512]
    counts = split_iterations(300, [128, 256, 512])
    assert sum(counts) == 300 and counts[0] > counts[1] > counts[2]


def test_coarse_to_fine_run_reports_each_scale(tiny_net, images):
    scales = []
    stylize(
        *images,
        network=tiny_net,
        size=64,
        scales=2,
        min_size=32,
        iterations=6,
        callback=lambda p: scales.append((p.scale, p.size)),
    )
    assert scales[0] == (1, (32, 21)) and scales[-1] == (2, (64, 43))


def test_all_conv_layers_mode_uses_every_conv(tiny_net):
    assert len(style_layers_for(StyleConfig(all_conv_layers=True), tiny_net)) == 16
    from impasto.vgg import VGG

    assert len(style_layers_for(StyleConfig(all_conv_layers=True), VGG.random("vgg16"))) == 13


def test_style_gradient_is_zero_in_the_masked_out_region(tiny_net):
    torch.manual_seed(0)
    style = torch.rand(1, 3, 32, 32)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :, :8] = 1  # only the left quarter is styled
    layers = ("relu1_1", "relu1_2")
    rep = StyleRepresentation(layers, shift=-1.0)
    whole = Window.whole(32, 32)
    targets = [s / a for s, a in zip(rep.sums(tiny_net(style, layers), whole), rep.areas(32, 32))]
    term = StyleLoss(rep, [targets], [1.0], [mask], (32, 32), 1.0)
    image = torch.rand(1, 3, 32, 32, requires_grad=True)
    grads = {}
    features = tiny_net(image, layers)
    for name, f in features.items():
        f.register_hook(lambda g, n=name: grads.__setitem__(n, g))
    term.loss(term.sums(features, whole)).backward()
    # The deepest style layer gets no gradient in the black area; relu1_1 also feeds relu1_2
    # through a 3x3 conv, so its zero region starts one column later.
    assert grads["relu1_2"][..., :, 8:].abs().max() == 0
    assert grads["relu1_1"][..., :, 9:].abs().max() == 0
    for g in grads.values():
        assert g[..., :, :8].abs().max() > 0
    # Two 3x3 convs see 2 pixels to each side: the image gets no style gradient beyond column 9.
    assert image.grad[..., :, 10:].abs().max() == 0
    assert image.grad[..., :, :8].abs().max() > 0


def test_all_black_mask_warns(tiny_net, images, tmp_path):
    black = tmp_path / "black.png"
    PIL.Image.new("L", (48, 32), 0).save(black)
    with pytest.warns(UserWarning, match="all black"):
        stylize(images[0], [images[1]], masks=[black], network=tiny_net, **FAST)


def test_mask_count_must_match_styles(tiny_net, images, tmp_path):
    with pytest.raises(ImpastoError, match="2 style masks for 1 style"):
        stylize(images[0], [images[1]], masks=[images[0], images[0]], network=tiny_net, **FAST)


def test_explicit_layer_weights_count_must_match(tiny_net, images):
    with pytest.raises(ImpastoError, match="2 style_layer_weights for 5 style terms"):
        stylize(*images, style_layer_weights=(1.0, 2.0), network=tiny_net, **FAST)


def test_style_weight_count_must_match(tiny_net, images):
    with pytest.raises(ImpastoError, match="3 style_blend for 2 style"):
        stylize(images[0], [images[1], images[1]], style_blend=(1, 1, 1), network=tiny_net, **FAST)


def test_blend_weights_pick_the_style(tiny_net, images, tmp_path):
    """With all weight on one style the result equals a run with that style alone."""
    other = tmp_path / "other.png"
    pattern(40, 40, 7).save(other)
    only_first = stylize(images[0], [images[1], other], style_blend=(1, 0), network=tiny_net, **FAST).tensor
    alone = stylize(images[0], images[1], network=tiny_net, **FAST).tensor
    assert torch.allclose(only_first, alone, atol=1e-6)


def test_luminance_mode_keeps_the_content_chroma(tiny_net, tmp_path):
    content = tmp_path / "c.png"
    # Mid-tone colours so recombination never clips.
    arr = (np.asarray(pattern(32, 32, 2), dtype=np.float32) * 0.4 + 70).astype(np.uint8)
    PIL.Image.fromarray(arr).save(content)
    style = tmp_path / "s.png"
    stripes(32, 32).save(style)
    result = stylize(content, style, network=tiny_net, preserve_color="luminance", **FAST)
    want = rgb_to_yiq(to_tensor(PIL.Image.open(content)))[:, 1:]
    got = rgb_to_yiq(result.tensor)[:, 1:]
    assert (got - want).abs().max() < 1 / 255


def test_histogram_mode_changes_the_result(tiny_net, images):
    plain = stylize(*images, network=tiny_net, **FAST).tensor
    matched = stylize(*images, network=tiny_net, preserve_color="histogram", **FAST).tensor
    assert not torch.allclose(plain, matched)


def test_device_selection(monkeypatch):
    assert resolve_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type in ("cpu", "mps")
    with pytest.raises(ImpastoError, match="no CUDA GPU"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cuda").type == "cuda"


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("content_weight", float("nan"), "finite"),
        ("style_weight", -1.0, "at least 0"),
        ("size", 0, "between 1"),
        ("size", 100000, "between 1"),
        ("iterations", -3, "at least 0"),
        ("optimizer", "sgd", "lbfgs, adam"),
        ("style_layers", ("relu9_1",), "unknown layer"),
        ("content_layers", ("rleu4_2",), "did you mean relu4_2"),
    ],
)
def test_bad_options_are_one_line_errors(tiny_net, images, option, value, message):
    with pytest.raises(ImpastoError, match=message) as info:
        stylize(*images, network=tiny_net, **{**FAST, option: value})
    assert "\n" not in str(info.value)


def test_too_large_a_size_stops_before_allocating(tiny_net, images, monkeypatch):
    import impasto.memory as memory

    monkeypatch.setattr(memory, "available_bytes", lambda device: 2 * 2**30)
    with pytest.raises(
        ImpastoError, match=r"needs about .* GB of memory even in tiles .* use size \d+ or less"
    ) as info:
        stylize(*images, network=tiny_net, size=8000, iterations=1, scales=1)
    fits = int(str(info.value).split("use size ")[1].split()[0])
    assert 100 < fits < 8000
    # The suggestion is the largest size that passes the same check, whatever size was asked for.
    need = memory.Need(tiny_net, ("relu4_2", "relu5_1"), ("relu4_2",), torch.device("cpu"))
    assert memory.plan(need, fits, fits * 2 // 3) is not None
    assert memory.plan(need, fits + 2, (fits + 2) * 2 // 3) is None
    with pytest.raises(ImpastoError) as other:
        stylize(*images, network=tiny_net, size=4000, iterations=1, scales=1)
    assert f"use size {fits} or less" in str(other.value)


@pytest.mark.weights
def test_memory_estimate_grows_with_pixels(real_net):
    from impasto.memory import estimate_bytes

    small, large = (estimate_bytes(real_net, s, s, "relu5_1") for s in (512, 1024))
    # Measured here (scripts/benchmark.py): a 1024x683 command peaks at 2.9-3.2 GB.
    assert 3.2 * 2**30 < estimate_bytes(real_net, 1024, 683, "relu5_1") < 4.5 * 2**30
    assert 3 < (large - 600 * 2**20) / (small - 600 * 2**20) < 4.5


def test_interrupt_at_a_coarse_scale_still_gives_the_full_size(tiny_net, images):
    def stop(p):
        if p.iteration == 2:
            raise KeyboardInterrupt

    result = stylize(*images, network=tiny_net, size=64, scales=2, min_size=32, iterations=10, callback=stop)
    assert result.interrupted and result.image.size == (64, 43)


FREED_MEMORY_PROBE = """
import resource, sys, torch
from impasto.memory import reuse_freed_memory
if not reuse_freed_memory():
    print("skip"); sys.exit()
for _ in range(8):  # an evaluation's pattern: large buffers allocated, touched, freed, again
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    buffers = [torch.empty(n * 2**20, dtype=torch.uint8).fill_(1) for n in (64, 16, 48)]
    del buffers
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_freed_memory_is_reused_without_page_faults():
    """After reuse_freed_memory(), large buffers freed and allocated again cost no page faults.

    In a fresh process: the test process's own heap, after hundreds of tests, says little. The
    heap may take a few rounds to settle (small blocks can land between the freed large ones and
    keep them apart), so the last rounds are the steady state that every evaluation then sees.
    """
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", FREED_MEMORY_PROBE], capture_output=True, text=True, check=True
    ).stdout.split()
    if out == ["skip"]:
        pytest.skip("the C library is not glibc")
    faults = list(map(int, out))
    pages = 128 * 2**20 // 4096
    assert faults[0] > pages // 2  # the first time every page is new
    assert max(faults[-3:]) < pages // 20, f"{faults} page faults for {pages} pages a round"


def test_a_budget_too_small_for_any_size_says_so_and_how_much_is_needed(tiny_net, images):
    from impasto.cli import to_flags

    with pytest.raises(ImpastoError, match=r"no size fits in that: raise max_memory to \S+ \wB or more") as info:
        stylize(*images, network=tiny_net, size=48, iterations=1, scales=1, max_memory=2**20)
    assert "use size" not in str(info.value)
    assert "raise --max-memory to" in to_flags(str(info.value))
    with pytest.raises(ImpastoError) as off:
        stylize(*images, network=tiny_net, size=8000, iterations=1, scales=1, tile="off", max_memory=2**30)
    assert to_flags(str(off.value)).endswith(", or use --tile auto")


def test_an_overflowing_activation_shift_is_named_as_the_cause(tiny_net, images):
    with pytest.raises(ImpastoError, match=r"style overflowed\); use an activation_shift near -1 \(got 1e\+30\)"):
        stylize(*images, network=tiny_net, size=32, iterations=2, scales=1, activation_shift=1e30)


def test_tensor_inputs_keep_their_values_not_rounded_to_8_bits(tiny_net):
    from impasto.images import read_mask_tensor

    content, style = torch.rand(1, 3, 30, 40), torch.rand(1, 3, 40, 40)
    kept = stylize(content, style, network=tiny_net, size=40, iterations=0, scales=1)
    assert torch.equal(kept.tensor, content)  # 0 steps: the start image, bit for bit
    colour = torch.rand(3, 30, 40)
    luma = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    assert torch.allclose(read_mask_tensor(colour, "mask")[0, 0], luma)
    with pytest.raises(ImpastoError, match=r"content image tensor has values in \[\d+, 2\d\d\]; expected \[0, 1\]"):
        stylize(content.mul(255).round(), style, network=tiny_net, size=40, iterations=0, scales=1)


def test_options_a_run_would_not_use_are_warned_of(tiny_net, images):
    with pytest.warns(UserWarning) as caught:
        stylize(*images, network=tiny_net, size=32, iterations=1, scales=1, threads=1, learning_rate=0.5)
    texts = " ".join(str(w.message) for w in caught)
    assert "threads 1 is read by the impasto commands only" in texts
    assert "learning_rate is Adam's step size; it is not used with optimizer lbfgs" in texts
