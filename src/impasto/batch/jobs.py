"""The jobs of a batch: every content in every style, and the checks of a batch's jobs.

A `Job` is one picture to make: a content, its styles (and masks), its options and its output
file. Problems with one job (an option out of range) stay with that job (`Job.error`), so the
others still run; problems with the whole batch (a folder that does not exist, two jobs writing one
file, a job writing over an input of the batch) are an ImpastoError. `jobs_file` reads the jobs of
a TOML file.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import INITS, StyleConfig
from ..errors import ImpastoError
from ..images import IMAGE_EXTENSIONS, as_path, ensure_folder
from ..metadata import SETTINGS_SUFFIXES

__all__ = [
    "Job",
    "OUTPUT_FORMATS",
    "as_path",
    "as_paths",
    "check_outputs",
    "cross_jobs",
    "image_files",
    "output_folder",
    "output_name",
    "output_suffix",
]

OUTPUT_FORMATS = tuple(s.lstrip(".") for s in SETTINGS_SUFFIXES)
"""Formats a batch writes: those that carry their settings, which resuming needs (not BMP)."""

_LONGEST_NAME = 120


@dataclass(frozen=True)
class Job:
    """One picture of a batch. `config` is None when the job's options are bad; `error` says why."""

    name: str
    content: Path
    styles: tuple[Path, ...]
    output: Path
    config: StyleConfig | None
    masks: tuple[Path | None, ...] = ()
    error: str | None = None

    @property
    def start_image(self) -> Path | None:
        """The start image, when the job's init is a path."""
        if self.config is None or self.config.init in INITS:
            return None
        return Path(self.config.init).expanduser()


def as_paths(value: Any, name: str, none: bool = False) -> list[Path | None]:
    """`value`, one path or a sequence of them, as a list of Paths: one str or os.PathLike is one
    path (never its characters); `none` lets items be None. An ImpastoError naming the parameter
    `name` for anything else."""
    if isinstance(value, (str, os.PathLike)):
        return [as_path(value, name)]
    if isinstance(value, (bytes, bytearray)) or not isinstance(value, Iterable):
        raise ImpastoError(
            f"{name} must be a path or a list of paths (str or Path), got {type(value).__name__} {value!r:.60}"
        )
    paths: list[Path | None] = []
    for item in value:
        if item is None and none:
            paths.append(None)
        elif isinstance(item, (str, os.PathLike)):
            paths.append(as_path(item, name))
        else:
            raise ImpastoError(
                f"{name} must be a path or a list of paths (str or Path), but holds {type(item).__name__} {item!r:.60}"
            )
    return paths


def _some_paths(value: Any, name: str) -> list[Path]:
    """`as_paths` where no item may be None."""
    return [p for p in as_paths(value, name) if p is not None]


def image_files(sources: str | os.PathLike | Sequence[str | os.PathLike], what: str) -> list[Path]:
    """The files named, and the image files in the folders named (sorted by name, not recursive).

    `sources` is one file or folder, or a sequence of them; `what` ("content", "style") names
    them in messages."""
    found: list[Path] = []
    for source in _some_paths(sources, "sources"):
        path = source.expanduser()
        if path.is_dir():
            inside = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
            )
            if not inside:
                raise ImpastoError(f"{what} folder {path} has no images ({', '.join(IMAGE_EXTENSIONS)})")
            found.extend(inside)
        elif path.exists():
            found.append(path)
        else:
            raise ImpastoError(f"{what} {path} does not exist; check the path")
    if not found:
        raise ImpastoError(f"no {what} given; name files or folders")
    return found


def output_name(content: Path, styles: Sequence[Path], suffix: str) -> str:
    """`content-style.png`, `content-style1+style2.png` for blended styles; safe and not too long."""
    stem = f"{content.stem}-{'+'.join(s.stem for s in styles)}"
    stem = re.sub(r"[^\w.+-]+", "_", stem).strip("._") or "impasto"
    if len(stem) > _LONGEST_NAME:
        digest = hashlib.sha256(stem.encode()).hexdigest()[:8]
        stem = f"{stem[: _LONGEST_NAME - 9]}~{digest}"
    return stem + suffix


def output_suffix(fmt: str) -> str:
    """The file suffix of an output format (`png` -> `.png`); an ImpastoError for one a batch cannot write."""
    if not isinstance(fmt, str):
        raise ImpastoError(f"fmt must be one of: {', '.join(OUTPUT_FORMATS)} (a str), got {type(fmt).__name__}")
    fmt = fmt.lower().lstrip(".")
    if fmt not in OUTPUT_FORMATS:
        raise ImpastoError(
            f"format {fmt!r} is not one of: {', '.join(OUTPUT_FORMATS)} "
            "(a batch's outputs carry their settings, which resuming needs)"
        )
    return "." + fmt


def cross_jobs(
    contents: str | os.PathLike | Sequence[str | os.PathLike],
    styles: str | os.PathLike | Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    config: StyleConfig | None = None,
    *,
    together: bool = False,
    masks: Sequence[str | os.PathLike | None] | None = None,
    fmt: str = "png",
) -> list[Job]:
    """Every content in every style alone, or (`together`) in all the styles blended.

    `contents` and `styles` are image files (one, or a sequence; `image_files` finds those of
    folders); `config` is the options of every job (default: StyleConfig()). `masks`, one per
    style (None: that style unmasked), go with their style in either case. `config.style_blend`
    needs `together` (it weighs the styles of one picture)."""
    contents, styles = _some_paths(contents, "contents"), _some_paths(styles, "styles")
    output_dir = as_path(output_dir, "output_dir").expanduser()
    if config is None:
        config = StyleConfig()
    elif not isinstance(config, StyleConfig):
        raise ImpastoError(f"config must be a StyleConfig, got {type(config).__name__}; use StyleConfig(**options)")
    masks = None if masks is None else as_paths(masks, "masks", none=True)
    suffix = output_suffix(fmt)
    if not contents or not styles:
        raise ImpastoError(f"no {'contents' if not contents else 'styles'} given; name at least one image file")
    if masks is not None and len(masks) != len(styles):
        raise ImpastoError(
            f"got {len(masks)} style masks for {len(styles)} style images; give one mask per style, in the same order"
        )
    if config.style_blend is not None and not together:
        raise ImpastoError("style_blend weighs the styles of one picture; use it with together")
    groups = (
        [(tuple(styles), tuple(masks or ()))]
        if together
        else [((s,), (masks[i],) if masks else ()) for i, s in enumerate(styles)]
    )
    jobs = []
    for content in contents:
        for group, group_masks in groups:
            name = output_name(content, group, suffix)
            jobs.append(Job(name[: -len(suffix)], content, group, output_dir / name, config, group_masks))
    check_outputs(jobs)
    return jobs


def _file_key(path: Path) -> object:
    """What tells files apart: device and inode where the file exists (so a hard link, or another
    spelling on a disk that ignores case, is the same file), else the path with links resolved."""
    path = path.expanduser()
    try:
        info = path.stat()
    except (OSError, ValueError):
        return Path(os.path.realpath(path))
    return (info.st_dev, info.st_ino)


def _inputs(job: Job) -> Iterator[tuple[str, Path]]:
    """The files a job reads, each with its role."""
    yield "content image", job.content
    for i, style in enumerate(job.styles, start=1):
        yield f"style image {i}", style
    for i, mask in enumerate(job.masks, start=1):
        if mask is not None:
            yield f"style mask {i}", mask
    if job.start_image is not None:
        yield "start image", job.start_image


def check_outputs(jobs: Sequence[Job]) -> None:
    """An ImpastoError if two jobs would write the same file, or a job would write over a file
    that a job of the batch reads (its content, styles, masks, start image). Files, not spellings,
    are compared: a link to a file or another path to it is that file."""
    read: dict[object, tuple[str, Job]] = {}
    for job in jobs:
        for role, path in _inputs(job):
            read.setdefault(_file_key(path), (role, job))
    written: dict[object, Job] = {}
    for job in jobs:
        key = _file_key(job.output)
        if key in read:
            role, reader = read[key]
            whose = f"its own {role}" if reader is job else f"the {role} of job {reader.name}"
            raise ImpastoError(
                f"job {job.name} would write {job.output}, which is {whose}; "
                "give another output folder (-o) so that no input is overwritten"
            )
        if key in written:
            other = written[key]
            same = (other.styles, other.masks, other.config) == (job.styles, job.masks, job.config)
            if same and _file_key(other.content) == _file_key(job.content):
                raise ImpastoError(
                    f"two jobs would paint {job.content} in the same styles into {job.output}: "
                    "the content is given twice; give it once"
                )
            raise ImpastoError(
                f"two jobs would write {job.output} ({other.content} and {job.content}); "
                "rename one of the inputs or give the jobs their own output names"
            )
        written[key] = job


def output_folder(path: str | os.PathLike, sources: str | os.PathLike | Sequence[str | os.PathLike] = ()) -> Path:
    """The output folder, created if missing, once it is known to be a writable folder and none of
    the folders `sources` (whose images are the inputs: a rerun would take the pictures for more)."""
    folder = as_path(path, "path").expanduser()
    for source in _some_paths(sources, "sources"):
        if source.expanduser().is_dir() and _file_key(source) == _file_key(folder):
            raise ImpastoError(
                f"output folder {folder} is the input folder {source}: a rerun would take the pictures "
                "for inputs; give another output folder (-o)"
            )
    ensure_folder(folder, f"output folder {folder}")
    return folder
