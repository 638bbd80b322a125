"""Tests for image reading, conversion, resizing and safe writing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from impasto import images
from impasto.errors import ImpastoError
from impasto.images import (
    IMAGE_EXTENSIONS,
    MAX_SIDE,
    check_output_path,
    check_size,
    pil_to_tensor,
    read_image,
    read_mask,
    resize_longest,
    resize_to,
    save_image,
    tensor_to_pil,
)

from conftest import EXAMPLES

# The repository's example images (see examples/SOURCES.md) and their sizes in pixels.
SAMPLE_SIZES = {
    "chelsea.png": (451, 300),
    "rocket.jpg": (640, 427),
    "rocket_sky.png": (640, 427),
    "great_wave_hokusai.jpg": (928, 514),
    "starry_night_van_gogh.jpg": (1024, 640),
    "raccoon.jpg": (1024, 768),
}
RED, BLUE, WHITE, BLACK = (255, 0, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def expect_error(call, *needles: str) -> str:
    """Run `call`, check it raises a one-line ImpastoError containing each needle; return it."""
    with pytest.raises(ImpastoError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    for needle in needles:
        assert needle in message
    return message


def pixels(img: Image.Image) -> np.ndarray:
    """The image's pixels as an int array, for comparisons."""
    return np.asarray(img).astype(int)


def noise_image(width: int = 64, height: int = 48, seed: int = 0) -> Image.Image:
    """An RGB image of random pixels."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def gradient_tensor(height: int = 24, width: int = 32) -> torch.Tensor:
    """A smooth (1, 3, H, W) image that lossy formats keep close."""
    ys = torch.linspace(0, 1, height).view(height, 1).expand(height, width)
    xs = torch.linspace(0, 1, width).view(1, width).expand(height, width)
    return torch.stack([ys, xs, (ys + xs) / 2]).unsqueeze(0)


# --- modes -------------------------------------------------------------------------------------


def test_gray_becomes_three_equal_channels(tmp_path: Path) -> None:
    path = tmp_path / "gray.png"
    Image.fromarray(np.array([[0, 100], [200, 255]], dtype=np.uint8)).save(path)
    img = read_image(path)
    assert img.mode == "RGB"
    assert pixels(img).tolist() == [[[0] * 3, [100] * 3], [[200] * 3, [255] * 3]]


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparent_pixel_becomes_white(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"{mode}.png"
    img = Image.new(mode, (2, 1), (0, 255) if mode == "LA" else (0, 0, 0, 255))
    img.putpixel((1, 0), (0, 0) if mode == "LA" else (0, 0, 0, 0))
    img.save(path)
    out = read_image(path)
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == BLACK and out.getpixel((1, 0)) == WHITE


def palette_image(transparent_index: int | None = None) -> Image.Image:
    """A 3x1 palette image: red, green, blue."""
    img = Image.new("P", (3, 1))
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    for x in range(3):
        img.putpixel((x, 0), x)
    if transparent_index is not None:
        img.info["transparency"] = transparent_index
    return img


def test_palette_keeps_its_colours(tmp_path: Path) -> None:
    path = tmp_path / "palette.png"
    palette_image().save(path)
    out = read_image(path)
    assert [out.getpixel((x, 0)) for x in range(3)] == [RED, (0, 255, 0), BLUE]


def test_palette_transparency_becomes_white(tmp_path: Path) -> None:
    path = tmp_path / "palette.png"
    palette_image(transparent_index=1).save(path, transparency=1)
    out = read_image(path)
    assert [out.getpixel((x, 0)) for x in range(3)] == [RED, WHITE, BLUE]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_gray_uses_the_full_16bit_range(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"deep{suffix}"
    Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16)).save(path)
    out = read_image(path)
    values = [out.getpixel((x, 0))[0] for x in range(3)]
    assert values[0] == 0 and values[2] == 255
    assert abs(values[1] - 128) <= 1  # a plain PIL convert would clip this to 255


@pytest.mark.parametrize("mode", ["I;16B", "I"])
def test_other_wide_gray_modes_scale_too(mode: str) -> None:
    if mode == "I;16B":
        img = Image.frombytes(mode, (2, 1), bytes([0x80, 0x00, 0xFF, 0xFF]))
    else:
        img = Image.fromarray(np.array([[32768, 65535]], dtype=np.int32))
    assert img.mode == mode
    out = read_image(img)
    assert [out.getpixel((x, 0)) for x in range(2)] == [(128,) * 3, (255,) * 3]


def test_float_images_in_unit_and_byte_ranges() -> None:
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    byte = Image.fromarray(np.array([[0.0, 100.0, 255.0]], dtype=np.float32))
    assert unit.mode == "F"
    assert [read_image(unit).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]
    assert [read_image(byte).getpixel((x, 0))[0] for x in range(3)] == [0, 100, 255]


def test_one_bit_image(tmp_path: Path) -> None:
    path = tmp_path / "bits.bmp"
    img = Image.new("1", (2, 1), 0)
    img.putpixel((1, 0), 1)
    img.save(path)
    out = read_image(path)
    assert [out.getpixel((x, 0)) for x in range(2)] == [BLACK, WHITE]


@pytest.mark.parametrize("suffix", [".jpg", ".tif"])
def test_cmyk_becomes_rgb(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"cmyk{suffix}"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path)
    red, green, blue = read_image(path).getpixel((4, 4))
    assert red > 230 and green < 25 and blue < 25


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "portrait.jpg"
    stored = Image.new("RGB", (40, 20), BLUE)
    stored.paste(RED, (0, 0, 8, 8))  # mark the stored top-left corner
    exif = stored.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    stored.save(path, exif=exif, quality=95)
    out = read_image(path)
    assert out.size == (20, 40)
    red, _, blue = out.getpixel((16, 3))  # stored top-left is now the top-right corner
    assert red > 200 and blue < 60
    red, _, blue = out.getpixel((3, 3))
    assert red < 60 and blue > 200


# --- sources -----------------------------------------------------------------------------------


def test_pil_source_is_copied_not_shared() -> None:
    source = Image.new("RGB", (4, 4), RED)
    out = read_image(source)
    assert out is not source
    out.putpixel((0, 0), BLUE)
    assert source.getpixel((0, 0)) == RED


def test_rgba_pil_source_is_left_as_it_was() -> None:
    source = Image.new("RGBA", (2, 2), (0, 0, 0, 0))
    assert read_image(source).getpixel((0, 0)) == WHITE
    assert source.mode == "RGBA" and source.getpixel((0, 0)) == (0, 0, 0, 0)


@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (3, 5, 7)])
def test_tensor_source(shape: tuple[int, ...]) -> None:
    t = torch.rand(shape)
    before = t.clone()
    out = read_image(t)
    assert out.mode == "RGB" and out.size == (7, 5)
    assert torch.equal(t, before)
    assert np.array_equal(pixels(out), pixels(tensor_to_pil(t)))


@pytest.mark.parametrize(
    "tensor, needle",
    [
        (torch.rand(1, 4, 5, 5), "(1, 4, 5, 5)"),
        (torch.rand(2, 3, 5, 5), "(2, 3, 5, 5)"),
        (torch.rand(5, 5), "(5, 5)"),
        (torch.zeros(1, 3, 5, 5, dtype=torch.uint8), "uint8"),
        (torch.full((1, 3, 2, 2), 255.0), "[0, 1]"),
        (torch.zeros(1, 3, 0, 4), "no pixels"),
    ],
)
def test_bad_tensor_sources(tensor: torch.Tensor, needle: str) -> None:
    expect_error(lambda: read_image(tensor, "style image 2"), "style image 2", needle)


def test_unsupported_source_type() -> None:
    expect_error(lambda: read_image(42, "content image"), "content image", "int")


# --- masks -------------------------------------------------------------------------------------


def test_mask_from_colour_image_is_luminance(tmp_path: Path) -> None:
    path = tmp_path / "mask.png"
    img = Image.new("RGB", (3, 1), WHITE)
    img.putpixel((1, 0), BLACK)
    img.putpixel((2, 0), RED)
    img.save(path)
    mask = read_mask(path)
    assert mask.mode == "L"
    assert [mask.getpixel((x, 0)) for x in range(2)] == [255, 0]
    assert 60 < mask.getpixel((2, 0)) < 90  # red is dark in luminance (0.299 * 255)


def test_mask_transparency_becomes_black() -> None:
    img = Image.new("RGBA", (2, 1), (255, 255, 255, 255))
    img.putpixel((1, 0), (255, 255, 255, 0))
    mask = read_mask(img, "mask 1")
    assert [mask.getpixel((x, 0)) for x in range(2)] == [255, 0]


def test_mask_from_tensor_and_16bit_gray() -> None:
    t = torch.tensor([[[[0.0, 1.0]]]])
    assert [read_mask(t).getpixel((x, 0)) for x in range(2)] == [0, 255]
    deep = Image.fromarray(np.array([[32768, 65535]], dtype=np.uint16))
    assert [read_mask(deep).getpixel((x, 0)) for x in range(2)] == [128, 255]


# --- tensors <-> PIL ---------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [3, 1])
def test_pil_tensor_round_trip_is_exact(channels: int) -> None:
    rng = np.random.default_rng(1)
    shape = (9, 11, 3) if channels == 3 else (9, 11)
    img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
    t = pil_to_tensor(img)
    assert t.shape == (1, channels, 9, 11) and t.dtype == torch.float32
    assert 0.0 <= t.min() and t.max() <= 1.0
    assert np.array_equal(pixels(tensor_to_pil(t)), pixels(img))


def test_pil_to_tensor_rejects_other_modes() -> None:
    expect_error(lambda: pil_to_tensor(Image.new("RGBA", (2, 2))), "RGBA", "read_image")


def test_tensor_to_pil_clamps_and_leaves_input_alone() -> None:
    t = torch.tensor([-0.5, 0.2, 1.7]).view(1, 3, 1, 1).requires_grad_()
    before = t.detach().clone()
    out = tensor_to_pil(t)
    assert out.getpixel((0, 0)) == (0, 51, 255)
    assert torch.equal(t.detach(), before)


@pytest.mark.parametrize("shape, mode", [((1, 3, 4, 5), "RGB"), ((3, 4, 5), "RGB"), ((1, 1, 4, 5), "L"), ((4, 5), "L")])
def test_tensor_to_pil_shapes(shape: tuple[int, ...], mode: str) -> None:
    out = tensor_to_pil(torch.rand(shape))
    assert out.mode == mode and out.size == (5, 4)


def test_tensor_to_pil_rejects_other_shapes() -> None:
    expect_error(lambda: tensor_to_pil(torch.rand(2, 3, 4, 5)), "(2, 3, 4, 5)")


# --- resizing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, longest, expected",
    [
        ((300, 200), 150, (150, 100)),
        ((200, 300), 150, (100, 150)),
        ((30, 20), 60, (60, 40)),
        ((1, 1000), 512, (1, 512)),
        ((1000, 1), 10, (10, 1)),
    ],
)
def test_resize_longest_keeps_aspect(size: tuple[int, int], longest: int, expected: tuple[int, int]) -> None:
    source = Image.new("RGB", size, RED)
    out = resize_longest(source, longest)
    assert out.size == expected and out.mode == "RGB"
    assert source.size == size
    assert out.getpixel((0, 0)) == RED


def test_resize_longest_rejects_bad_sizes() -> None:
    expect_error(lambda: resize_longest(Image.new("RGB", (4, 4)), 0), "0", str(MAX_SIDE))


def test_resize_to_exact_size_and_new_object() -> None:
    source = Image.new("L", (10, 10), 7)
    out = resize_to(source, (3, 8))
    assert out.size == (3, 8) and out.mode == "L" and out is not source
    assert resize_to(source, (10, 10)) is not source


# --- bad files ---------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    expect_error(lambda: read_image(path, "content image"), "content image", str(path), "does not exist")


def test_directory(tmp_path: Path) -> None:
    expect_error(lambda: read_image(tmp_path), str(tmp_path), "folder")


def test_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("hello, not a picture\n")
    expect_error(lambda: read_image(path), str(path), "is not an image PIL can read")


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_image(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"cut{suffix}"
    noise_image().save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with Image.open(path) as header_only:  # the header still opens; only decoding fails
        assert header_only.size == (64, 48)
    expect_error(lambda: read_image(path), str(path))


def test_truncated_jpeg_says_truncated(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    noise_image().save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = expect_error(lambda: read_image(path, "style image 1"), "style image 1", str(path), "truncated")
    assert message.count(str(path)) == 1  # not wrapped in a second "cannot be read (...)"


def test_zero_size_header(tmp_path: Path) -> None:
    path = tmp_path / "empty.pgm"
    path.write_bytes(b"P5\n0 0\n255\n")
    expect_error(lambda: read_image(path), str(path))


def test_zero_pixel_pil_image() -> None:
    expect_error(lambda: read_image(Image.new("RGB", (0, 3)), "content image"), "no pixels")


# 400 pixels: PIL raises an error above twice the limit and a warning above the limit.
@pytest.mark.parametrize("limit", [100, 300])
def test_decompression_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    path = tmp_path / "bomb.png"
    Image.new("RGB", (20, 20)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
    expect_error(lambda: read_image(path), str(path), "too large")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.png"
    Image.new("RGB", (2, 2)).save(path)
    path.chmod(0)
    try:
        expect_error(lambda: read_image(path), str(path), "permission")
    finally:
        path.chmod(0o600)


def test_permission_error_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.png"
    Image.new("RGB", (2, 2)).save(path)

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Image, "open", refuse)
    monkeypatch.setattr(images, "open", refuse, raising=False)
    expect_error(lambda: read_image(path), str(path), "permission")


# --- writing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", sorted(IMAGE_EXTENSIONS))
def test_each_format_round_trips(tmp_path: Path, suffix: str) -> None:
    t = gradient_tensor()
    path = save_image(t, tmp_path / f"out{suffix}")
    assert path == (tmp_path / f"out{suffix}").resolve()
    with Image.open(path) as written:
        assert written.format == IMAGE_EXTENSIONS[suffix]
    back, expected = pixels(read_image(path)), pixels(tensor_to_pil(t))
    if IMAGE_EXTENSIONS[suffix] in ("JPEG", "WEBP"):
        assert np.abs(back - expected).mean() < 3
    else:
        assert np.array_equal(back, expected)


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif", ".bmp"])
def test_read_image_reads_each_format_from_pil(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"noise{suffix}"
    source = noise_image()
    source.save(path)
    out = read_image(path)
    assert out.mode == "RGB" and out.size == source.size


def test_save_rgba_as_jpeg_and_gray_as_png(tmp_path: Path) -> None:
    save_image(Image.new("RGBA", (4, 4), (0, 0, 0, 0)), tmp_path / "flat.jpg")
    assert read_image(tmp_path / "flat.jpg").getpixel((1, 1)) == WHITE
    save_image(torch.full((1, 1, 3, 3), 0.5), tmp_path / "mask.png")
    with Image.open(tmp_path / "mask.png") as written:
        assert written.mode == "L" and written.getpixel((1, 1)) == 128


def test_save_does_not_modify_its_input(tmp_path: Path) -> None:
    t = torch.tensor([-1.0, 0.5, 2.0]).view(1, 3, 1, 1)
    before = t.clone()
    save_image(t, tmp_path / "out.png")
    assert torch.equal(t, before)


def test_saved_file_gets_normal_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = save_image(gradient_tensor(), tmp_path / "out.png")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"the previous result")

    def fail_midway(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        if isinstance(fp, (str, os.PathLike)):
            with open(fp, "wb") as fh:
                fh.write(b"\x89PNG half an image")
        else:
            fp.write(b"\x89PNG half an image")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", fail_midway)
    expect_error(lambda: save_image(gradient_tensor(), target), str(target), "No space left")
    assert target.read_bytes() == b"the previous result"
    assert os.listdir(tmp_path) == ["out.png"]


def test_interrupted_save_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupt(self: Image.Image, *args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_image(gradient_tensor(), tmp_path / "out.png")
    assert os.listdir(tmp_path) == []


# --- output paths ------------------------------------------------------------------------------


def test_output_equal_to_an_input(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    Image.new("RGB", (2, 2)).save(source)
    roundabout = tmp_path / "sub" / ".." / "in.png"
    inputs = [torch.rand(1, 3, 2, 2), Image.new("RGB", (1, 1)), None, str(source)]
    expect_error(lambda: check_output_path(roundabout, inputs), str(roundabout), str(source))


def test_output_linked_to_an_input(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    Image.new("RGB", (2, 2)).save(source)
    link = tmp_path / "link.png"
    os.link(source, link)
    expect_error(lambda: check_output_path(link, [source]), str(link))


def test_non_path_inputs_are_skipped(tmp_path: Path) -> None:
    inputs = [torch.rand(1, 3, 2, 2), Image.new("RGB", (1, 1)), None, 3, tmp_path / "other.png"]
    assert check_output_path(tmp_path / "out.png", inputs) == (tmp_path / "out.png").resolve()


def test_output_is_a_directory(tmp_path: Path) -> None:
    folder = tmp_path / "results.png"
    folder.mkdir()
    expect_error(lambda: check_output_path(folder), str(folder), "folder")


@pytest.mark.parametrize("name", ["out.gif", "out.PDF", "out"])
def test_bad_extension_lists_valid_ones(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    message = expect_error(lambda: check_output_path(path), str(path))
    assert all(suffix in message for suffix in IMAGE_EXTENSIONS)


def test_upper_case_extension_is_fine(tmp_path: Path) -> None:
    path = save_image(gradient_tensor(), tmp_path / "OUT.JPG")
    with Image.open(path) as written:
        assert written.format == "JPEG"


def test_missing_parent_folder_is_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "out.png"
    assert check_output_path(path) == path.resolve()
    assert path.parent.is_dir() and not path.exists()


def test_parent_that_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "a"
    blocker.write_text("not a folder")
    path = tmp_path / "a" / "b" / "out.png"
    expect_error(lambda: check_output_path(path), str(path))
    expect_error(lambda: save_image(gradient_tensor(), blocker / "out.png"), str(blocker))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_unwritable_folder(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        path = folder / "out.png"
        expect_error(lambda: check_output_path(path), str(path), "writable")
        expect_error(lambda: check_output_path(folder / "new" / "out.png"), str(folder))
    finally:
        folder.chmod(0o700)


def test_folder_reported_unwritable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images.os, "access", lambda *args, **kwargs: False)
    path = tmp_path / "out.png"
    expect_error(lambda: check_output_path(path), str(path), "not writable")
    expect_error(lambda: save_image(gradient_tensor(), path), str(path), "not writable")
    assert os.listdir(tmp_path) == []


def test_folder_that_cannot_be_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    path = tmp_path / "new" / "out.png"
    expect_error(lambda: check_output_path(path), str(path), "cannot create folder")


# --- sizes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, -5, 100000, MAX_SIDE + 1])
def test_check_size_rejects_out_of_range(size: int) -> None:
    message = expect_error(lambda: check_size(size))
    assert message == f"--size {size} must be between 1 and {MAX_SIDE}"


@pytest.mark.parametrize("size", [2.5, "512", True, None])
def test_check_size_rejects_non_integers(size: object) -> None:
    expect_error(lambda: check_size(size, "--style-size"), "--style-size")  # type: ignore[arg-type]


def test_check_size_accepts_the_range() -> None:
    assert check_size(1) == 1 and check_size(MAX_SIDE) == MAX_SIDE and check_size(np.int64(5)) == 5


# --- the project's sample images ---------------------------------------------------------------


EXAMPLE_FILES = sorted(p for p in EXAMPLES.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def test_known_examples_are_present() -> None:
    assert set(SAMPLE_SIZES) <= {p.name for p in EXAMPLE_FILES}


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_example_reads_as_image_and_mask(path: Path) -> None:
    img = read_image(path, "content image")
    assert img.mode == "RGB" and min(img.size) > 0
    assert pil_to_tensor(img).shape == (1, 3, img.height, img.width)
    mask = read_mask(path, "style mask 1")
    assert mask.mode == "L" and mask.size == img.size


@pytest.mark.parametrize("name", sorted(SAMPLE_SIZES))
def test_example_sizes(name: str) -> None:
    assert read_image(EXAMPLES / name).size == SAMPLE_SIZES[name]


def test_example_mask_is_binary_and_marks_the_sky() -> None:
    """rocket_sky.png: white sky at the top, black ground at the bottom (examples/SOURCES.md)."""
    mask = np.asarray(read_mask(EXAMPLES / "rocket_sky.png"))
    assert set(np.unique(mask).tolist()) <= {0, 255}
    assert 0.55 < (mask == 255).mean() < 0.75
    assert (mask[5:40, 5:-5] == 255).mean() > 0.8 and (mask[-60:] == 0).mean() > 0.95


def test_a_home_relative_path_is_expanded_and_a_nan_tensor_is_named_as_such(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    Image.new("RGB", (20, 10), (200, 30, 30)).save(tmp_path / "photo.png")
    assert read_image("~/photo.png").size == (20, 10)
    with pytest.raises(ImpastoError, match="not finite .NaN or infinity.; expected"):
        read_image(torch.full((1, 3, 4, 4), float("nan")), "content image")
