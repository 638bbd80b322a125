"""Runs on an accelerator keep every tensor there and paint what the CPU paints.

With no GPU (here and in CI), device "cuda" is resolved to the stand-in of tests/accelerator.py,
which holds CPU values but checks devices as CUDA does: a tensor the library makes on the CPU and
uses with the image, or a `.numpy()` of a tensor on the device, fails these tests as it would on
a GPU. Where PyTorch has a CUDA GPU, the same tests run on it.
"""

import contextlib

import pytest
import torch

import impasto.batch.worker
import impasto.engine
from impasto import StyleConfig, stylize
from impasto.images import fit_longest
from impasto.memory import available_bytes, peak_bytes
from impasto.objective import Objective
from impasto.tiling import windows
from impasto.vgg import VGG, layer_stride

import accelerator as standin
from accelerator import on_the_cpu
from conftest import pattern, stripes, to_tensor
from test_tiling import GATYS, half_mask, objective_terms

GPU = torch.cuda.is_available()
DEVICE = torch.device("cuda") if GPU else standin.DEVICE
# How far a result may be from the CPU's: on a GPU, cuDNN's convolutions sum in another order,
# even without TF32 (a guess: no GPU has run these yet).
TOLERANCE = 1e-3 if GPU else 1e-4
RUN = dict(size=150, iterations=3, scales=1, style_weight=3e3, precision="fp32")


def fresh_net() -> VGG:
    """The tiny network, a new copy: a run moves the network it is given to its device."""
    net = VGG.random("vgg19")
    net.winograd_plan = None
    return net


def on_device(tensor: torch.Tensor) -> bool:
    return tensor.device.type == DEVICE.type


@contextlib.contextmanager
def device_checks():
    """The device's own checks: the stand-in's, or a GPU's in float32 (no TF32: CPU-like sums)."""
    if not GPU:
        with standin.accelerator():
            yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.backends.cudnn, "allow_tf32", False)
        patch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
        yield


@pytest.fixture
def cuda(monkeypatch):
    """Device "cuda" is the GPU, or else the stand-in accelerator in every front end."""
    if GPU:
        with device_checks():
            yield
        return
    real = impasto.engine.resolve_device

    def resolve(name):
        return DEVICE if name == "cuda" else real(name)

    for module in (impasto.engine, impasto.batch.worker):
        monkeypatch.setattr(module, "resolve_device", resolve)
    with device_checks():
        yield


def test_the_device_fails_where_cuda_would():
    with device_checks():
        image = torch.rand(1, 3, 8, 8).to(DEVICE)
        assert on_device(image)
        with pytest.raises(RuntimeError, match="same device"):
            image * torch.ones(1, 3, 1, 1)  # made on the CPU: CUDA refuses it
        with pytest.raises(TypeError, match="cpu"):
            image.numpy()
        with pytest.raises(RuntimeError, match="same"):
            torch.nn.Conv2d(3, 4, 3)(image)  # a layer left on the CPU
        assert (image * torch.tensor(2.0)).device == image.device  # a 0-dim CPU tensor is a number
        x = image.clone().requires_grad_(True)
        gradient = torch.autograd.grad((x * x).sum(), x)[0]
        assert on_device(gradient) and torch.allclose(gradient.cpu(), 2 * image.cpu())
        assert type(image.cpu()) is torch.Tensor


def test_the_tiled_loss_and_gradient_on_the_device_are_the_cpus():
    height, width = 147, 181
    net = fresh_net()
    terms = objective_terms(net, _rep(), (height, width), [half_mask(height, width), None])
    image = torch.rand(1, 3, height, width)
    cut = windows(height, width, 48, net.halo(GATYS + ("relu4_2",)), layer_stride("relu5_1"))
    assert len(cut) > 3
    whole = Objective(net, terms)(image)
    with device_checks():
        moved = [_moved(t) for t in terms]
        tiled = Objective(fresh_net().to_device(DEVICE), moved, cut)(image.to(DEVICE))
    assert on_device(tiled.gradient)
    for name, value in whole.terms.items():
        assert tiled.terms[name] == pytest.approx(value, rel=1e-4), name
    assert (tiled.gradient.cpu() - whole.gradient).norm() < 1e-4 * whole.gradient.norm()


def _rep():
    from impasto.losses import StyleRepresentation

    return StyleRepresentation(GATYS, shift=-1.0, chain=True)


def _moved(term):
    """A copy of a term with its tensors on the device."""
    import copy

    def move(value):
        if isinstance(value, torch.Tensor):
            return value.to(DEVICE)
        if isinstance(value, (list, tuple)):
            return type(value)(move(v) for v in value)
        if isinstance(value, dict):
            return {k: move(v) for k, v in value.items()}
        return value

    moved = copy.copy(term)
    for name, value in vars(term).items():
        setattr(moved, name, move(value))
    return moved


MASK = torch.zeros(1, 1, 110, 150)
MASK[..., :60, :] = 1

CASES = {
    "gatys": {},
    "tiled": dict(tile=64),
    "tiled, luminance": dict(tile=64, preserve_color="luminance"),
    "tiled, histogram": dict(tile=64, preserve_color="histogram"),
    "tiled, adam": dict(tile=64, optimizer="adam", learning_rate=0.05),
    "tiled, improved": dict(
        tile=64, layer_weighting="geometric", all_conv_layers=True, activation_shift=-1.0, correlation_chain=True
    ),
    "tiled, two masked styles": dict(tile=64, masks=[MASK, 1 - MASK], style_blend=(1.0, 2.0)),
    "coarse to fine, tiled where it does not fit": dict(size=320, scales=2, min_size=64, max_memory=None),
    "noise to start from": dict(init="noise", seed=7),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_run_on_the_device_paints_what_the_cpu_paints(cuda, case):
    options = {**RUN, **CASES[case]}
    if "max_memory" in options:
        options["max_memory"] = _between_scales(*fit_longest(150, 110, options["size"]))
    styles = [to_tensor(stripes(60, 60))] + ([to_tensor(pattern(50, 70, 4))] if "masks" in options else [])
    content = pattern(150, 110, 1)
    tiles, net = [], fresh_net()
    there = stylize(content, styles, network=net, device="cuda", callback=lambda p: tiles.append(p.tiles), **options)
    assert on_device(next(net.parameters()))  # it ran there
    with on_the_cpu():
        on_cpu = stylize(content, styles, network=fresh_net(), device="cpu", **options)
    assert there.tensor.device.type == "cpu" and type(there.tensor) is torch.Tensor  # back on the CPU
    assert (there.tensor - on_cpu.tensor).abs().max() < TOLERANCE
    assert len(there.history) == len(on_cpu.history)
    assert there.history[-1]["total"] == pytest.approx(on_cpu.history[-1]["total"], rel=TOLERANCE)
    if "tile" in options or "max_memory" in options:
        assert max(tiles) > 1


def test_a_painter_on_the_device_takes_cpu_tensors_and_stops_with_its_image(cuda):
    from impasto.engine import Painter

    config = StyleConfig(**{**RUN, "iterations": 6}, device="cuda", tile=64)
    content, start = to_tensor(pattern(150, 110, 1)), torch.rand(1, 3, 55, 75)
    painter = Painter(
        [to_tensor(stripes(60, 60))], masks=[torch.ones(1, 1, 33, 45)], config=config, network=fresh_net()
    )
    steps = []
    result = painter.paint(content, init=start, callback=lambda p: steps.append(p) or len(steps) < 2)
    assert result.interrupted and len(result.history) == 2 and result.tensor.device.type == "cpu"
    assert steps[-1].current().size == (150, 110)  # the picture so far, from the device


def _between_scales(width, height):
    """A memory budget the half-size scale fits untiled and the full size only tiled."""
    from impasto import memory

    net, layers = fresh_net(), GATYS + ("relu4_2",)
    small = memory.estimate_bytes(net, width // 2, height // 2, "relu5_1", DEVICE, content_layers=("relu4_2",))
    large = memory.estimate_bytes(
        net, width, height, "relu5_1", DEVICE, memory.MIN_HISTORY, content_layers=("relu4_2",)
    )
    least = memory.least_bytes(memory.Need(net, layers, ("relu4_2",), DEVICE), width, height)
    assert small < least < large
    return max((small + large) // 2, least + 2**16)


def test_a_batch_job_on_the_device_writes_what_the_cpu_writes(cuda, tmp_path):
    from PIL import Image

    from impasto.batch import LocalExecutor, Worker, cross_jobs, run_batch

    pattern(60, 44, 1).save(tmp_path / "cat.png")
    stripes(40, 40).save(tmp_path / "stripes.png")
    pictures = {}
    for device in ("cuda", "cpu"):
        config = StyleConfig(size=60, iterations=3, scales=1, winograd=False, precision="fp32", device=device)
        jobs = cross_jobs([tmp_path / "cat.png"], [tmp_path / "stripes.png"], tmp_path / device, config)
        result = run_batch(jobs, LocalExecutor(worker=Worker(networks={config: fresh_net()})))
        assert [r.status for r in result.reports] == ["done"], result.reports
        with Image.open(tmp_path / device / "cat-stripes.png") as picture:
            pictures[device] = to_tensor(picture.convert("RGB"))
    assert (pictures["cuda"] - pictures["cpu"]).abs().max() <= 1 / 255


def test_a_clip_on_the_device_paints_the_cpus_frames(cuda, tmp_path):
    pytest.importorskip("cv2")
    from impasto.video.clip import FrameStore, open_clip
    from impasto.video.job import ClipJob

    from test_video_job import make_clip

    clip = open_clip(make_clip(tmp_path / "in", frames=3))
    style = to_tensor(stripes(40, 40))
    frames = {}
    for device in ("cuda", "cpu"):
        config = StyleConfig(size=48, iterations=8, scales=1, precision="fp32", device=device)
        job = ClipJob(clip, [style], config=config, network=fresh_net())
        store = FrameStore(tmp_path / device, clip.names, job.fingerprint())
        assert job.run(store).done == 3
        frames[device] = [to_tensor(im) for im in store.finished()]
    for a, b in zip(frames["cuda"], frames["cpu"]):
        assert (a - b).abs().max() <= 1 / 255


def test_cuda_memory_is_what_the_caching_allocator_holds_free_or_unused(monkeypatch):
    gib = 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (3 * gib, 80 * gib))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 5 * gib)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 2 * gib)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 4 * gib)
    cuda = torch.device("cuda")
    assert available_bytes(cuda) == 6 * gib  # free, and reserved blocks no tensor uses
    assert peak_bytes(cuda) == 4 * gib


@pytest.mark.weights
def test_the_command_on_the_device_saves_what_it_saves_on_the_cpu(cuda, capsys, tmp_path):
    from PIL import Image

    from impasto.metadata import read_settings

    from conftest import run_main

    content, style = tmp_path / "content.png", tmp_path / "style.png"
    pattern(130, 96, 1).save(content)
    stripes(60, 60).save(style)
    common = ["--size", "130", "--iterations", "2", "--scales", "1", "--tile", "64", "--precision", "fp32"]
    common += ["--no-winograd", "-q"]
    pictures = {}
    for device in ("cuda", "cpu"):
        out = tmp_path / f"{device}.png"
        code, _, err = run_main(capsys, content, style, "-o", out, "--device", device, *common)
        assert code == 0, err
        with Image.open(out) as picture:
            pictures[device] = to_tensor(picture.convert("RGB"))
        assert read_settings(out)["device"] == {"cuda": DEVICE.type}.get(device, device)
    assert (pictures["cuda"] - pictures["cpu"]).abs().max() <= 1 / 255
