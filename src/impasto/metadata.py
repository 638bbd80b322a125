"""Settings carried inside a PNG: what made a picture, readable back from the file.

A picture's settings record names the software (impasto, torch and Pillow versions), the device,
every option of the run (the whole StyleConfig), the seed, and each input by file name and SHA-256.
`save_png_with_settings` writes it as an iTXt chunk ``impasto`` holding compact JSON, plus a short
readable ``parameters`` text chunk that image viewers show; `read_settings` gives the record back.
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
KEY = "impasto"          # iTXt chunk: the record as compact JSON
SUMMARY_KEY = "parameters"  # text chunk: one readable line

InputSource = Union[bytes, str, "os.PathLike[str]", tuple[str, bytes]]
"""An input to record: a file path, its bytes, or (file name, bytes) for data that has no path."""

__all__ = ["KEY", "SCHEMA", "SUMMARY_KEY", "config_from_settings", "read_settings", "save_png_with_settings",
           "settings_record", "sha256_of", "summary"]


def sha256_of(source: bytes | str | os.PathLike) -> str:
    """The SHA-256 of some bytes or of a file's contents, as 64 hex digits."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return hashlib.sha256(source).hexdigest()
    digest = hashlib.sha256()
    try:
        with open(source, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ImpastoError(f"cannot read {os.fspath(source)} to record it ({exc.strerror or exc}); "
                           "check the path") from None
    return digest.hexdigest()


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _describe_input(source: InputSource) -> dict[str, str | None]:
    if isinstance(source, tuple):
        name, data = source
        return {"file": name, "sha256": sha256_of(data)}
    if isinstance(source, (bytes, bytearray, memoryview)):
        return {"file": None, "sha256": sha256_of(source)}
    return {"file": Path(source).name, "sha256": sha256_of(source)}


def settings_record(config: Any, inputs: Mapping[str, InputSource], weights_sha256: str | None = None, *,
                    device: str | None = None, run: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The settings of a picture, as a dict of plain JSON values.

    `config` is the run's StyleConfig; `inputs` maps each input's role ("content", "style 1",
    "style mask 1") to its file, its bytes, or (file name, bytes); only the file's name, never
    its folder, is recorded. `device` is where the run computed (default: `config.device`);
    `run`, if given, says how the run went (iterations done, whether it was stopped, seconds).
    """
    from . import __version__

    record: dict[str, Any] = {
        "schema": SCHEMA,
        "impasto": __version__,
        "torch": _version("torch"),
        "pillow": _version("pillow"),
        "device": device or config.device,
        "seed": config.seed,
        "config": _plain(dataclasses.asdict(config)),
        "inputs": {role: _describe_input(source) for role, source in inputs.items()},
        "weights_sha256": weights_sha256,
    }
    if run is not None:
        record["run"] = _plain(dict(run))
    return record


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
        raise ImpastoError(f"output {os.fspath(path)} must be a .png file to carry its settings; "
                           "use a .png name")
    if not isinstance(image, Image.Image):
        raise ImpastoError(f"save_png_with_settings needs a PIL image, not {type(image).__name__}")
    info = PngImagePlugin.PngInfo()
    info.add_itxt(KEY, json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False))
    info.add_itxt(SUMMARY_KEY, summary(record))
    return save_image(image, target, pnginfo=info)


def read_settings(source: str | os.PathLike | IO[bytes]) -> dict[str, Any] | None:
    """The settings record a PNG carries, or None if the image has none.

    A missing file, a file that is not an image, or a damaged record is a one-line ImpastoError.
    """
    label = f"image {os.fspath(source)}" if isinstance(source, (str, os.PathLike)) else "image"
    try:
        with Image.open(source) as img:
            text = img.info.get(KEY)
            if text is None and img.format == "PNG":
                text = img.text.get(KEY)  # a chunk after the pixels: read to the end
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
    if not isinstance(record, dict) or "config" not in record:
        raise ImpastoError(f"{label} has an {KEY} chunk that is not a settings record")
    return record


def config_from_settings(record: Mapping[str, Any]) -> Any:
    """The StyleConfig a settings record describes (lists become tuples again).

    Options this version does not know are an error that names them, so a record from a newer
    impasto is never silently run with different settings.
    """
    from .config import StyleConfig

    fields = {f.name for f in dataclasses.fields(StyleConfig)}
    options = dict(record.get("config") or {})
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ImpastoError(f"the settings name options this impasto does not know: {', '.join(unknown)}; "
                           f"they come from impasto {record.get('impasto')}")
    return StyleConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in options.items()})
