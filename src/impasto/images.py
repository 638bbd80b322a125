"""Reading, converting, resizing and safely writing images.

Inside the library an image is a float32 RGB tensor in [0, 1] of shape (1, 3, H, W); masks are
(1, 1, H, W). This module is the boundary: every problem with a user's file becomes a one-line
:class:`ImpastoError` naming the file and the fix.
"""

from __future__ import annotations

import math
import os
import secrets
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from impasto.errors import ImpastoError

if TYPE_CHECKING:
    import torch
    from typing_extensions import TypeIs

# torch is imported where a tensor is made or changed, not here: the command line reads and checks
# its files (and answers --help) before it pays for importing torch.
ImageSource = Union[str, "os.PathLike[str]", Image.Image, "torch.Tensor"]


def _is_tensor(value: object) -> TypeIs[torch.Tensor]:
    """Whether `value` is a torch tensor (it cannot be one if torch was never imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


IMAGE_EXTENSIONS: dict[str, str] = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
MAX_SIDE = 8192

_READABLE = "JPEG, PNG, WebP, TIFF, BMP"
_SAVE_OPTIONS: dict[str, dict[str, int]] = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}}
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "PA")
_WIDE_GRAY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_WHITE, _BLACK = (255, 255, 255, 255), (0, 0, 0, 255)
_NAME_MAX = 255  # bytes in one file or folder name: the limit of ext4, APFS, NTFS and most others
_TOO_LARGE = (Image.DecompressionBombError, Image.DecompressionBombWarning)


def _error(message: str) -> ImpastoError:
    """An ImpastoError whose message is guaranteed to be one line."""
    return ImpastoError(" ".join(message.splitlines()))


def _reason(exc: BaseException) -> str:
    """A short description of an exception for embedding in a message."""
    return str(exc) or type(exc).__name__


def _is_dir(path: Path) -> bool:
    """Whether `path` is a folder; False where the system cannot say (a name too long, say)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def _tensor_shape_ok(shape: tuple[int, ...], channels: tuple[int, ...]) -> bool:
    """Whether `shape` is (1, C, H, W) or (C, H, W) with C in `channels` ((H, W) if C may be 1)."""
    if len(shape) == 4:
        return shape[0] == 1 and shape[1] in channels
    if len(shape) == 3:
        return shape[0] in channels
    return len(shape) == 2 and 1 in channels


# --- tensors <-> PIL ---------------------------------------------------------------------------


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """An RGB or L image as a float32 tensor in [0, 1] of shape (1, 3, H, W) or (1, 1, H, W)."""
    import torch

    if img.mode not in ("RGB", "L"):
        raise _error(
            f"pil_to_tensor needs an RGB or L image, not mode {img.mode}; load it with read_image or read_mask first"
        )
    pixels = torch.from_numpy(np.array(img, dtype=np.uint8).reshape(img.height, img.width, -1))
    return pixels.permute(2, 0, 1).unsqueeze(0).to(torch.float32).div(255.0)


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """An 8-bit RGB (3 channels) or L (1 channel) image from a float tensor, clamped to [0, 1]."""
    import torch

    if not torch.is_floating_point(t):
        raise _error(f"tensor_to_pil needs a float tensor in [0, 1], not {t.dtype}; divide 8-bit data by 255 first")
    if not _tensor_shape_ok(tuple(t.shape), (1, 3)):
        raise _error(
            f"cannot make an image from a tensor of shape {tuple(t.shape)}; "
            "expected (1, 3, H, W), (3, H, W), (1, 1, H, W) or (H, W)"
        )
    chw = t.detach().reshape(-1, *t.shape[-2:])
    values = torch.nan_to_num(chw.to("cpu", torch.float32)).clamp(0.0, 1.0)
    pixels = values.mul(255.0).round().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)


# --- reading -----------------------------------------------------------------------------------


def _wide_to_gray(img: Image.Image) -> Image.Image:
    """16/32-bit integer or float gray as 8-bit L, scaled by its true range rather than clipped."""
    values = np.asarray(img, dtype=np.float64)
    if img.mode == "F":
        values = np.nan_to_num(values)
        if values.max(initial=0.0) <= 1.0:
            values = values * 255.0
    else:
        values = values / 65535.0 * 255.0
    return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8))


def _normalized(img: Image.Image) -> Image.Image:
    """The image as a new L, RGB or RGBA image (RGBA only where it has transparency)."""
    if img.mode in _WIDE_GRAY_MODES or img.mode == "F":
        return _wide_to_gray(img)
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        return img.convert("RGBA")
    if img.mode in ("L", "1"):
        return img.convert("L")
    return img.convert("RGB")


def _flatten(img: Image.Image, background: tuple[int, int, int, int], mode: str) -> Image.Image:
    """The normalized image composited over `background` (if it has alpha) in `mode`."""
    if img.mode == "RGBA":
        img = Image.alpha_composite(Image.new("RGBA", img.size, background), img)
    return img.convert(mode)


def _checked(img: Image.Image, label: str) -> Image.Image:
    """A fully decoded, upright, non-empty copy of `img`."""
    # PIL decoders raise many exception types on damaged data; all of them mean "bad file" here.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img.load()
            upright = ImageOps.exif_transpose(img)
    except _TOO_LARGE:
        raise _too_large(label) from None
    except Exception as exc:
        raise _decode_error(label, exc) from exc
    if upright.width == 0 or upright.height == 0:
        raise _error(f"{label} has no pixels ({upright.width}x{upright.height}); use a real image")
    return upright if upright is not img else img.copy()


def _too_large(label: str) -> ImpastoError:
    """The message for an image PIL refuses to decode as a possible decompression bomb."""
    return _error(f"{label} is too large to decode safely (over {Image.MAX_IMAGE_PIXELS} pixels); shrink it first")


def _decode_error(label: str, exc: BaseException) -> ImpastoError:
    """The message for an image that PIL opened but could not decode."""
    if "truncated" in str(exc):
        return _error(f"{label} is truncated or damaged; re-export or re-download it")
    return _error(f"{label} could not be decoded ({_reason(exc)}); re-export it as {_READABLE}")


def _open_path(source: str | os.PathLike, what: str) -> Image.Image:
    """The decoded, upright image stored at a path."""
    if not isinstance(source, (str, os.PathLike)):
        raise _error(f"{what} must be a file path, PIL image or tensor, not {type(source).__name__}; pass a path")
    label, path = f"{what} {os.fspath(source)}", Path(source).expanduser()
    if _is_dir(path):
        raise _error(f"{label} is a folder, not an image file; give the path of an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open(path, "rb") as fh, Image.open(fh) as img:
                return _checked(img, label)
    except ImpastoError:  # a ValueError too, but already the message to show
        raise
    except FileNotFoundError:
        raise _error(f"{label} does not exist; check the path") from None
    except PermissionError:
        raise _error(f"{label} cannot be read (permission denied); check its permissions") from None
    except UnidentifiedImageError:
        raise _error(f"{label} is not an image PIL can read ({_READABLE})") from None
    except _TOO_LARGE:
        raise _too_large(label) from None
    except (OSError, ValueError) as exc:
        raise _error(f"{label} cannot be read ({_reason(exc)}); check the file") from None


def _from_tensor(t: torch.Tensor, what: str, channels: tuple[int, ...]) -> Image.Image:
    """A PIL image from a library-convention tensor, rejecting other shapes and ranges."""
    _check_tensor(t, what, channels)
    return tensor_to_pil(t)


def _check_tensor(t: torch.Tensor, what: str, channels: tuple[int, ...]) -> None:
    """An ImpastoError unless `t` is a library-convention image tensor: its shape, float, values in [0, 1]."""
    shape = tuple(t.shape)
    if not _tensor_shape_ok(shape, channels) or not t.is_floating_point():
        count = " or ".join(map(str, channels))
        raise _error(
            f"{what} tensor has shape {shape} and dtype {t.dtype}; expected a float "
            f"tensor shaped (1, C, H, W) or (C, H, W) with C = {count}, values in [0, 1]"
        )
    if t.numel() == 0:
        raise _error(f"{what} tensor of shape {shape} has no pixels; use a real image")
    low, high = float(t.detach().min()), float(t.detach().max())
    if not (math.isfinite(low) and math.isfinite(high)):
        raise _error(f"{what} tensor holds values that are not finite (NaN or infinity); expected [0, 1]")
    if not -1e-3 <= low <= high <= 1.0 + 1e-3:
        raise _error(f"{what} tensor has values in [{low:g}, {high:g}]; expected [0, 1] (divide 8-bit data by 255)")


def _load(source: ImageSource, what: str, channels: tuple[int, ...]) -> Image.Image:
    """A decoded, upright, normalized (L, RGB or RGBA) copy of any supported source."""
    if _is_tensor(source):
        img = _from_tensor(source, what, channels)
    elif isinstance(source, Image.Image):
        img = _checked(source, f"{what} (PIL image)")
    else:
        img = _open_path(source, what)
    try:
        return _normalized(img)
    except ValueError:
        raise _error(
            f"{what} has pixel mode {img.mode}, which impasto cannot convert; save it as an RGB image first"
        ) from None


def read_image(source: ImageSource, what: str = "image") -> Image.Image:
    """A new 8-bit RGB image from a path, PIL image or (1, 3, H, W) / (3, H, W) tensor.

    Transparent areas become white; EXIF orientation is applied; `what` names the image's role
    in error messages (``"content image"``, ``"style image 2"``).
    """
    return _flatten(_load(source, what, (3,)), _WHITE, "RGB")


def read_mask(source: ImageSource, what: str = "mask") -> Image.Image:
    """A new 8-bit single-channel ("L") mask: colour masks become luminance, transparency black."""
    return _flatten(_load(source, what, (1, 3)), _BLACK, "L")


_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as PIL's "L"


def read_image_tensor(source: ImageSource, what: str = "image") -> torch.Tensor:
    """A float (1, 3, H, W) tensor in [0, 1] from any source read_image takes. A tensor keeps its
    values (checked, not rounded to 8 bits); other sources are read as read_image reads them."""
    if not _is_tensor(source):
        return pil_to_tensor(read_image(source, what))
    _check_tensor(source, what, (3,))
    return source.detach().float().cpu().reshape(1, 3, *source.shape[-2:]).clamp(0, 1)


def read_mask_tensor(source: ImageSource, what: str = "mask") -> torch.Tensor:
    """A float (1, 1, H, W) mask in [0, 1] from any source read_mask takes; a tensor keeps its
    values (a colour one becomes its luminance)."""
    if not _is_tensor(source):
        return pil_to_tensor(read_mask(source, what))
    _check_tensor(source, what, (1, 3))
    t = source.detach().float().cpu()
    t = t.reshape(1, -1, *t.shape[-2:])
    if t.shape[1] == 3:
        t = _LUMA[0] * t[:, 0:1] + _LUMA[1] * t[:, 1:2] + _LUMA[2] * t[:, 2:3]
    return t.clamp(0, 1)


# --- resizing ----------------------------------------------------------------------------------


def check_size(size: int, what: str = "--size") -> int:
    """`size` if it is an int in [1, MAX_SIDE]; otherwise an ImpastoError naming `what`."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise _error(f"{what} {size!r} must be a whole number between 1 and {MAX_SIDE}")
    if not 1 <= size <= MAX_SIDE:
        raise _error(f"{what} {size} must be between 1 and {MAX_SIDE}")
    return int(size)


def resize_longest(img: Image.Image, longest: int) -> Image.Image:
    """A copy of `img` scaled (up or down) so its longer side is `longest`, aspect ratio kept."""
    longest = check_size(longest, "longest side")
    width, height = img.size
    if width == 0 or height == 0:
        raise _error(f"cannot resize an image with no pixels ({width}x{height}); use a real image")
    scale = longest / max(width, height)
    return resize_to(img, (max(1, round(width * scale)), max(1, round(height * scale))))


def resize_to(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """A copy of `img` resized to exactly `size` = (width, height) with Lanczos filtering."""
    width, height = size
    check_size(width, "width")
    check_size(height, "height")
    return img.resize((int(width), int(height)), Image.Resampling.LANCZOS)


# --- writing -----------------------------------------------------------------------------------


def _same_file(target: Path, other: str | os.PathLike) -> bool:
    """Whether `other` names the file `target` (same resolved path, or a link to it)."""
    try:
        other_path = Path(other).expanduser().resolve()
        return other_path == target or (
            target.exists() and other_path.exists() and os.path.samefile(target, other_path)
        )
    except (OSError, ValueError, TypeError):
        return False


def as_path(value: object, name: str, what: str = "a path") -> Path:
    """`value` (a str or os.PathLike) as a Path; an ImpastoError naming the parameter `name` and
    what it should be (`what`) otherwise."""
    if isinstance(value, (str, os.PathLike)):
        try:
            return Path(value)
        except TypeError:  # a PathLike whose path is bytes
            pass
    raise _error(f"{name} must be {what} (a str or Path), got {type(value).__name__} {value!r:.60}")


def ensure_folder(folder: Path, label: str) -> None:
    """Create `folder` if missing; error if that fails or it cannot be written."""
    try:
        if folder.exists() and not folder.is_dir():
            raise _error(f"{label}: {folder} is a file, not a folder; choose another output path")
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _error(
            f"{label}: cannot create folder {folder} ({_reason(exc)}); check the path and permissions"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _error(f"{label}: folder {folder} is not writable; choose another folder or fix its permissions")


def check_output_path(path: str | os.PathLike, inputs: Sequence[object] = ()) -> Path:
    """The resolved output path, once it is known to be writable and not one of `inputs`.

    Creates a missing parent folder. Call before a long job starts, so it cannot fail at the end.
    """
    try:
        label = f"output {os.fspath(path)}"
    except TypeError:
        raise _error(f"output must be a file path, not {type(path).__name__}") from None
    target = Path(path).expanduser().resolve()
    if _is_dir(target):
        raise _error(f"{label} is a folder; give a file name such as {target / 'result.png'}")
    if target.suffix.lower() not in IMAGE_EXTENSIONS:
        valid = ", ".join(IMAGE_EXTENSIONS)
        found = f"extension '{target.suffix}'" if target.suffix else "no extension"
        raise _error(f"{label} has {found}; use one of {valid}")
    check_name_length(target, label, spare=len(_temp_name(target, "0" * 12)) - len(target.name))
    for other in (p for p in inputs if isinstance(p, (str, os.PathLike))):
        if _same_file(target, other):
            raise _error(
                f"{label} is the input {os.fspath(other)}; choose a different output so the input is not overwritten"
            )
    ensure_folder(target.parent, label)
    return target


def check_name_length(target: Path, label: str, spare: int = 0) -> None:
    """Error if `target`'s name, plus `spare` characters (a temporary file's), is longer than its
    folder allows, or a folder on its path is: caught before the work, not when saving."""
    for part in target.parts:
        if len(part.encode()) > _NAME_MAX:
            raise _error(f"{label}: the name {part[:40]}… is {len(part.encode())} bytes, over {_NAME_MAX}; shorten it")
    allowed = _NAME_MAX - spare
    if len(target.name.encode()) > allowed:
        raise _error(
            f"{label}: the file name is {len(target.name.encode())} bytes; the folder allows {allowed} "
            f"(impasto writes a temporary file with a name {spare} bytes longer first); shorten it"
        )


def _temp_name(target: Path, token: str) -> str:
    return f".{target.stem}.{token}.tmp{target.suffix}"


def _open_temp(target: Path) -> tuple[int, Path]:
    """A new, exclusively created temporary file next to `target`, with the same suffix."""
    # Not mkstemp: that creates mode 0600, and os.replace would give the output those permissions.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temp = target.with_name(_temp_name(target, secrets.token_hex(6)))
        try:
            return os.open(temp, flags, 0o666), temp
        except FileExistsError:
            continue


def _as_savable(img: torch.Tensor | Image.Image) -> Image.Image:
    """An RGB or L image ready for any output format."""
    if _is_tensor(img):
        return tensor_to_pil(img)
    return img if img.mode in ("RGB", "L") else read_image(img, "image to save")


def save_image(img: torch.Tensor | Image.Image, path: str | os.PathLike, **options: object) -> Path:
    """Write `img` atomically to `path` (format from the extension) and return the resolved path.

    `options` go to Pillow's writer beside the format's defaults (e.g. `pnginfo=` for text
    chunks). Either the complete new image replaces the target, or the target is left untouched
    and an ImpastoError is raised; no temporary file is left behind.
    """
    target = check_output_path(path)
    picture = _as_savable(img)
    image_format = IMAGE_EXTENSIONS[target.suffix.lower()]
    try:
        fd, temp = _open_temp(target)
    except OSError as exc:
        raise _error(
            f"cannot write output {os.fspath(path)} ({_reason(exc)}); check the folder's permissions"
        ) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            picture.save(fh, format=image_format, **{**_SAVE_OPTIONS.get(image_format, {}), **options})
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, target)
    except BaseException as exc:
        temp.unlink(missing_ok=True)
        if not isinstance(exc, Exception):
            raise
        raise _error(
            f"cannot write output {os.fspath(path)} ({_reason(exc)}); check free disk space and permissions"
        ) from exc
    return target


# --- resizing tensors --------------------------------------------------------------------------


def fit_longest(width: int, height: int, longest: int) -> tuple[int, int]:
    """(width, height) scaled so the longer side is `longest`, aspect ratio kept, none under 1."""
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize_image(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A new (N, C, height, width) float tensor: antialiased bicubic, clamped to [0, 1]."""
    if tuple(image.shape[-2:]) == (height, width):
        return image.clone()
    import torch

    shrinking = height < image.shape[-2] or width < image.shape[-1]
    resized = torch.nn.functional.interpolate(
        image, size=(height, width), mode="bicubic", align_corners=False, antialias=shrinking
    )
    return resized.clamp_(0.0, 1.0)


def resize_mask_image(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A binary (1, 1, height, width) mask: area-averaged (or bilinear when enlarging), then >= 0.5."""
    import torch

    if tuple(mask.shape[-2:]) != (height, width):
        shrinking = height <= mask.shape[-2] and width <= mask.shape[-1]
        mode = "area" if shrinking else "bilinear"
        mask = torch.nn.functional.interpolate(
            mask, size=(height, width), mode=mode, **({} if shrinking else {"align_corners": False})
        )
    return (mask >= 0.5).float()


def warn_if_stretched(what: str, size: tuple[int, int], target: tuple[int, int], target_what: str) -> None:
    """Warn, with both sizes, when resizing `size` (width, height) to `target` changes the aspect
    ratio by more than 2 %: the image is stretched, which is rarely meant."""
    (w, h), (tw, th) = size, target
    if w and h and tw and th and abs((w / h) / (tw / th) - 1) > 0.02:
        warnings.warn(
            f"{what} is {w}x{h} but the {target_what} is {tw}x{th}; "
            "it is stretched to fit (give it the same aspect ratio to avoid that)"
        )
