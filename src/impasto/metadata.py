"""Settings carried inside a picture: what made it, readable back from the file.

A picture's settings record names the software (impasto, torch and Pillow versions), the device,
every option of the run (the whole StyleConfig), the seed, each input by file name and SHA-256,
and a `settings_hash`: the digest of everything that decides the pixels (options, inputs'
SHA-256, weights' SHA-256; not the versions, the device or how fast it ran), which tells a batch
that an output is already done.

A PNG carries the record as an iTXt chunk ``impasto`` holding compact JSON, plus a short readable
``parameters`` text chunk that image viewers show. JPEG, WebP and TIFF carry the same JSON in the
EXIF UserComment tag, and the readable line as the EXIF ImageDescription (Pillow alone writes and
reads both). BMP has nowhere to put it. `read_settings` gives the record back from any of them.
This module works on PIL images and files; it never touches a tensor.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Union

from PIL import Image, PngImagePlugin, UnidentifiedImageError

from .errors import ImpastoError
from .images import check_output_path, save_image

SCHEMA = 1
KEY = "impasto"  # iTXt chunk: the record as compact JSON
SUMMARY_KEY = "parameters"  # text chunk: one readable line
HASH_KEY = "settings_hash"  # in the record: settings_hash(record)

# EXIF tags (JPEG, WebP, TIFF): UserComment in the Exif sub-IFD holds the JSON (an 8-byte character
# code, then the text), ImageDescription in IFD0 the readable line.
_EXIF_IFD, _USER_COMMENT, _DESCRIPTION = 0x8769, 0x9286, 0x010E
_ASCII_CODE = b"ASCII\0\0\0"
_EXIF_FORMATS = (".jpg", ".jpeg", ".webp", ".tif", ".tiff")
SETTINGS_SUFFIXES = (".png", *_EXIF_FORMATS)
"""Output extensions that can carry a settings record (all but .bmp)."""

# Options that choose how a run computes (where, how fast, in which arithmetic), not what it
# paints: left out of the settings hash, so a batch resumed on another device, thread count or
# precision skips what is done. `weights` and a start image's path are left out too: their
# SHA-256 stand for them.
RUNTIME_OPTIONS = ("device", "threads", "tile", "max_memory", "winograd", "precision")
_PATH_OPTIONS = ("weights",)

InputSource = Union[bytes, str, "os.PathLike[str]", tuple[str, bytes], Mapping[str, Any]]
"""An input to record: a file path, its bytes, (file name, bytes) for data that has no path, or
{"file": name, "sha256": hex} for one already hashed."""

__all__ = [
    "HASH_KEY",
    "KEY",
    "RUNTIME_OPTIONS",
    "SCHEMA",
    "SETTINGS_SUFFIXES",
    "SUMMARY_KEY",
    "can_carry_settings",
    "config_from_settings",
    "describe_inputs",
    "read_settings",
    "save_png_with_settings",
    "save_with_settings",
    "settings_hash",
    "settings_record",
    "sha256_of",
    "summary",
]


def sha256_of(source: bytes | str | os.PathLike) -> str:
    """The SHA-256 of some bytes or of a file's contents, as 64 hex digits."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return hashlib.sha256(source).hexdigest()
    digest = hashlib.sha256()
    try:
        with open(Path(source).expanduser(), "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ImpastoError(
            f"cannot read {os.fspath(source)} to record it ({exc.strerror or exc}); check the path"
        ) from None
    return digest.hexdigest()


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _describe_input(role: str, source: InputSource) -> dict[str, str | None]:
    if not isinstance(source, (Mapping, tuple, bytes, bytearray, memoryview, str, os.PathLike)):
        raise ImpastoError(
            f"input {role!r} must be a file path, its bytes or (file name, bytes), got {type(source).__name__}; "
            "record the files the run read (a PIL image or tensor has no file to name)"
        )
    if isinstance(source, Mapping):
        return {"file": source.get("file"), "sha256": source["sha256"]}
    if isinstance(source, tuple):
        name, data = source
        return {"file": name, "sha256": sha256_of(data)}
    if isinstance(source, (bytes, bytearray, memoryview)):
        return {"file": None, "sha256": sha256_of(source)}
    return {"file": Path(source).name, "sha256": sha256_of(source)}


def describe_inputs(inputs: Mapping[str, InputSource]) -> dict[str, dict[str, str | None]]:
    """Each input by role as {"file": name (no folder), "sha256": hex}, hashed now."""
    if not isinstance(inputs, Mapping):
        raise ImpastoError(
            f"inputs must map each role to its file, e.g. {{'content image': path, 'style image 1': path}}, "
            f"got {type(inputs).__name__}"
        )
    return {role: _describe_input(role, source) for role, source in inputs.items()}


def settings_record(
    config: Any,
    inputs: Mapping[str, InputSource],
    weights_sha256: str | None = None,
    *,
    device: str | None = None,
    run: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The settings of a picture, as a dict of plain JSON values.

    `config` is the run's StyleConfig; `inputs` maps each input's role to its file, its bytes,
    or (file name, bytes); only the file's name, never its folder, is recorded. The roles that
    `impasto info` and `impasto reproduce` read are "content image", "style image 1", "style
    image 2", ..., "style mask 1", ... and "start image" (impasto.provenance.input_roles makes
    them). `device` is where the run computed (default: `config.device`; give the one it
    resolved to, e.g. "cpu", rather than "auto"); `weights_sha256` is the weights file's
    (impasto.provenance.weights_sha256(config));
    `run`, if given, says how the run went (iterations done, whether it was stopped, seconds,
    threads). The record's `settings_hash` is `settings_hash(record)`.
    """
    from . import __version__
    from .config import StyleConfig

    if not isinstance(config, StyleConfig):
        raise ImpastoError(f"config must be the run's StyleConfig (result.config), got {type(config).__name__}")
    if run is not None and not isinstance(run, Mapping):
        raise ImpastoError(
            f"run must be a mapping of how the run went, got {type(run).__name__}; "
            "impasto.provenance.run_facts(result) makes one"
        )
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "impasto": __version__,
        "torch": _version("torch"),
        "pillow": _version("pillow"),
        "device": device or config.device,
        "seed": config.seed,
        "config": _plain(dataclasses.asdict(config)),
        "inputs": describe_inputs(inputs),
        "weights_sha256": weights_sha256,
    }
    if run is not None:
        record["run"] = _plain(dict(run))
    record[HASH_KEY] = settings_hash(record)
    return record


def settings_hash(record: Mapping[str, Any]) -> str:
    """The SHA-256 of what decides a record's pixels: its options but the runtime ones, the
    inputs' SHA-256 by role, and the weights' SHA-256. Numbers count by value (1500 == 1500.0)."""
    config = dict(record.get("config") or {})
    for name in (*RUNTIME_OPTIONS, *_PATH_OPTIONS):
        config.pop(name, None)
    inputs = record.get("inputs") or {}
    if "start image" in inputs:
        config.pop("init", None)  # a path: the start image's SHA-256 stands for it
    identity = {
        "config": _canonical(config),
        "weights": record.get("weights_sha256"),
        "inputs": {role: (info or {}).get("sha256") for role, info in inputs.items()},
    }
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def _plain(value: Any) -> Any:
    """`value` as JSON gives it back (tuples as lists), so a record equals the one read from a file."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _changed_options(record: Mapping[str, Any]) -> list[str]:
    """'name value' for size, iterations, seed and every option that differs from its default."""
    from .config import StyleConfig

    config = record.get("config") or {}
    defaults = {f.name: f.default for f in dataclasses.fields(StyleConfig)}
    shown = []
    for name, value in config.items():
        default = defaults.get(name, dataclasses.MISSING)
        if isinstance(default, tuple):
            default = list(default)
        if name in ("size", "iterations", "seed") or value != default:
            text = " ".join(map(str, value)) if isinstance(value, list) else str(value)
            shown.append(f"{name} {text}")
    return shown


def summary(record: Mapping[str, Any]) -> str:
    """One readable line: the inputs by name, then the options that matter."""
    inputs = record.get("inputs") or {}
    names = [f"{role} {info.get('file') or info.get('sha256', '')[:12]}" for role, info in inputs.items()]
    parts = [f"impasto {record.get('impasto')}", *names, ", ".join(_changed_options(record))]
    run = record.get("run") or {}
    if run.get("interrupted"):
        parts.append(f"stopped after {run.get('iterations')} iterations")
    return "; ".join(p for p in parts if p)


def save_png_with_settings(image: Image.Image, path: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Write `image` as a PNG carrying `record`, atomically, and return the resolved path.

    Either the complete new file replaces the target, or the target is left untouched and an
    ImpastoError is raised.
    """
    target = check_output_path(path)
    if target.suffix.lower() != ".png":
        raise ImpastoError(f"output {os.fspath(path)} must be a .png file to carry its settings; use a .png name")
    if not isinstance(image, Image.Image):
        raise ImpastoError(f"save_png_with_settings needs a PIL image, not {type(image).__name__}")
    info = PngImagePlugin.PngInfo()
    info.add_itxt(KEY, _json(record))
    info.add_itxt(SUMMARY_KEY, summary(record))
    return save_image(image, target, pnginfo=info)


def can_carry_settings(path: str | os.PathLike) -> bool:
    """Whether an image file of this name can carry a settings record (PNG, JPEG, WebP, TIFF)."""
    return Path(path).suffix.lower() in SETTINGS_SUFFIXES


def _json(record: Mapping[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _exif(record: Mapping[str, Any]) -> bytes:
    """EXIF holding the record (UserComment, ASCII JSON) and its summary (ImageDescription)."""
    exif = Image.Exif()
    exif[_DESCRIPTION] = summary(record).encode("ascii", "replace").decode()
    text = json.dumps(record, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    exif.get_ifd(_EXIF_IFD)[_USER_COMMENT] = _ASCII_CODE + text.encode("ascii")
    return exif.tobytes()


def save_with_settings(image: Image.Image, path: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """Write `image` carrying `record` (PNG chunks, or EXIF for JPEG, WebP and TIFF), atomically,
    and return the resolved path. A .bmp name is an ImpastoError: BMP cannot carry settings."""
    suffix = Path(path).suffix.lower()
    if not isinstance(image, Image.Image):
        raise ImpastoError(
            f"save_with_settings needs a PIL image, not {type(image).__name__}; pass result.image "
            "(or impasto.images.tensor_to_pil(tensor))"
        )
    if suffix == ".png":
        return save_png_with_settings(image, path, record)
    if suffix not in _EXIF_FORMATS:
        raise ImpastoError(
            f"output {os.fspath(path)} cannot carry its settings ({suffix or 'no extension'}); "
            f"use one of {', '.join(SETTINGS_SUFFIXES)}"
        )
    return save_image(image, path, exif=_exif(record))


def _exif_text(img: Image.Image) -> str | None:
    """The JSON an image's EXIF UserComment holds, if it looks like impasto's record."""
    comment = img.getexif().get_ifd(_EXIF_IFD).get(_USER_COMMENT)
    if isinstance(comment, str):
        comment = comment.encode("utf-8", "replace")
    if not isinstance(comment, bytes) or not comment.startswith(_ASCII_CODE):
        return None
    text = comment[len(_ASCII_CODE) :].decode("ascii", "replace").rstrip("\0 ")
    return text if text.startswith("{") and '"schema"' in text else None


def read_settings(source: str | os.PathLike | IO[bytes]) -> dict[str, Any] | None:
    """The settings record a PNG, JPEG, WebP or TIFF carries, or None if the image has none.

    A missing file, a file that is not an image, or a record that is not JSON or not a table is
    a one-line ImpastoError; what a record must hold is checked by those who read it
    (config_from_settings, impasto info and reproduce).
    """
    label = f"image {os.fspath(source)}" if isinstance(source, (str, os.PathLike)) else "image"
    try:
        with Image.open(source) as img:
            text = img.info.get(KEY)
            if text is None and isinstance(img, PngImagePlugin.PngImageFile):
                text = img.text.get(KEY)  # a chunk after the pixels: read to the end
            elif text is None and img.format in ("JPEG", "WEBP", "TIFF", "MPO"):
                text = _exif_text(img)
    except FileNotFoundError:
        raise ImpastoError(f"{label} does not exist; check the path") from None
    except UnidentifiedImageError:
        raise ImpastoError(f"{label} is not an image PIL can read") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImpastoError(f"{label} cannot be read ({exc}); check the file") from None
    if text is None:
        return None
    try:
        record = json.loads(str(text))
    except ValueError:
        raise ImpastoError(f"{label} has a damaged {KEY} settings chunk (not JSON)") from None
    if not isinstance(record, dict):  # a record with parts missing is the reader's to judge
        raise ImpastoError(f"{label} has an {KEY} chunk that is not a settings record")
    return record


def config_from_settings(record: Mapping[str, Any]) -> Any:
    """The StyleConfig a settings record describes (lists become tuples again).

    Options this version does not know are an error that names them, so a record from a newer
    impasto is never silently run with different settings.
    """
    from .config import StyleConfig

    fields = {f.name for f in dataclasses.fields(StyleConfig)}
    if not isinstance(record.get("config"), dict):
        raise ImpastoError("the settings record has no config (the options): it was edited or damaged")
    options = dict(record["config"])
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ImpastoError(
            f"the settings name options this impasto does not know: {', '.join(unknown)}; "
            f"they come from impasto {record.get('impasto')}"
        )
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    return StyleConfig(**values)
