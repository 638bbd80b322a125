"""Making a picture again from the settings it carries.

A record names each input by file name and SHA-256, never by folder. `find_inputs` looks for each
one next to the picture, in the current folder and in the folders it is given (by name first,
then by contents, so a renamed file is found too) and accepts only a file with the recorded
SHA-256. `differences` lists what differs from the machine that made the picture (versions,
device, weights), each a reason the new picture may not be bit-identical.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..config import StyleConfig
from ..errors import ImpastoError
from ..images import IMAGE_EXTENSIONS
from ..metadata import sha256_of
from .record import weights_file
from .settings import settings_config

__all__ = ["differences", "find_file", "find_inputs", "recorded_config"]

_MAX_FILES = 100_000  # files looked at when searching folders by contents


def _version(package: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _by_name(name: str, near: Sequence[Path], folders: Sequence[Path]) -> Iterator[Path]:
    for folder in (*near, *folders):
        candidate = folder / name
        if candidate.is_file():
            yield candidate
    for folder in folders:
        yield from (p for p in folder.rglob(name) if p.is_file())


def _by_contents(folders: Sequence[Path], images_only: bool) -> Iterator[Path]:
    seen = 0
    for folder in folders:
        for path in folder.rglob("*"):
            seen += 1
            if seen > _MAX_FILES:
                return
            if path.is_file() and (not images_only or path.suffix.lower() in IMAGE_EXTENSIONS):
                yield path


def find_file(
    name: str | None,
    sha256: str,
    folders: Sequence[Path],
    what: str,
    images_only: bool = True,
    near: Sequence[Path] = (),
) -> Path:
    """The file with this SHA-256: first among files of this name (in `near` folders, then in
    `folders` and below), then among all files in `folders` and below. An ImpastoError naming the
    file and the fix if there is none."""
    hashes: dict[Path, str] = {}

    def matches(path: Path) -> bool:
        key = path.resolve()
        if key not in hashes:
            try:
                hashes[key] = sha256_of(key)
            except ImpastoError:
                return False
        return hashes[key] == sha256

    differing = None
    if name:
        for path in _by_name(name, near, folders):
            if matches(path):
                return path
            differing = differing or path
    for path in _by_contents(folders, images_only):
        if matches(path):
            return path
    where = ", ".join(str(f) for f in (*near, *folders))
    if differing is not None:
        raise ImpastoError(
            f"the {what} {name} in {differing.parent} is not the one recorded (its SHA-256 "
            f"differs from {sha256[:12]}…); pass --search with the folder of the original"
        )
    label = f"{what} {name}" if name else f"{what} with SHA-256 {sha256[:12]}…"
    raise ImpastoError(f"cannot find the {label} in {where}; pass --search DIR with the folder that holds it")


def find_inputs(
    record: Mapping[str, Any], image: str | os.PathLike, search: Sequence[str | os.PathLike] = ()
) -> dict[str, Path]:
    """Each recorded input's file, by role: looked for by name next to `image` and in the current
    folder, then in `search` folders and below, by name and then by contents; each must have the
    recorded SHA-256."""
    folders = list(dict.fromkeys(Path(p).expanduser().resolve() for p in search))
    for folder in folders:
        if folder.is_file():
            raise ImpastoError(
                f"search folder {folder} is a file, not a folder; pass a folder, such as {folder.parent}"
            )
        if not folder.is_dir():
            raise ImpastoError(f"search folder {folder} does not exist; check the path")
    near = list(dict.fromkeys((Path(image).expanduser().resolve().parent, Path.cwd().resolve())))
    found = {}
    for role, info in (record.get("inputs") or {}).items():
        if not isinstance(info, Mapping) or not info.get("sha256"):
            raise ImpastoError(f"the record's {role} has no SHA-256, so it cannot be found again")
        found[role] = find_file(info.get("file"), info["sha256"], folders, role, near=near)
    return found


def recorded_config(
    record: Mapping[str, Any],
    found: Mapping[str, Path],
    search: Sequence[str | os.PathLike] = (),
    image: str | os.PathLike | None = None,
) -> StyleConfig:
    """The record's StyleConfig, its paths pointing at the files found: the start image, and the
    weights file (found by name and SHA-256 when it is not where it was)."""
    config = settings_config(record, image or "the picture")
    if "start image" in found:
        config = config.replace(init=str(found["start image"]))
    recorded = record.get("weights_sha256")
    if config.weights and recorded and not Path(config.weights).expanduser().is_file():
        folders = [Path(p).expanduser().resolve() for p in search]
        near = [Path(image).expanduser().resolve().parent] if image else []
        config = config.replace(
            weights=str(
                find_file(Path(config.weights).name, recorded, folders, "weights file", images_only=False, near=near)
            )
        )
    return config


def device_available(name: str) -> bool:
    if name == "cuda":
        return torch.cuda.is_available()
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        return bool(mps is not None and mps.is_available())
    return name == "cpu"


def differences(record: Mapping[str, Any], config: StyleConfig) -> list[str]:
    """What differs from the machine and software that made the picture, one line each."""
    from .. import __version__

    notes = []
    for package, now in (("impasto", __version__), ("torch", _version("torch")), ("pillow", _version("pillow"))):
        then = record.get(package)
        if then and now and then != now:
            notes.append(f"the picture was made with {package} {then}, this is {now}; the result may differ slightly")
    device = record.get("device")
    if device and device != "auto" and not device_available(device):  # auto: it does not say where
        notes.append(
            f"the picture was made on {device}, which is not available here; painting on the CPU "
            "gives a slightly different result"
        )
    recorded = record.get("weights_sha256")
    if recorded:
        try:
            current = sha256_of(weights_file(config))
        except ImpastoError:
            current = None
        if current and current != recorded:
            notes.append(
                f"the weights file {weights_file(config).name} is not the one recorded "
                f"(SHA-256 {current[:12]}…, recorded {recorded[:12]}…); the result will differ"
            )
    threads = (record.get("run") or {}).get("threads")
    cores = os.cpu_count() or 1
    if isinstance(threads, int) and threads > cores:
        notes.append(f"the picture was painted with {threads} CPU threads and this machine has {cores}; it runs slower")
    return notes
