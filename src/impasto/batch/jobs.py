"""The jobs of a batch: every content in every style, or the `[[job]]` tables of a TOML file.

A `Job` is one picture to make: a content, its styles (and masks), its options and its output
file. Problems with one job (an option out of range, an unknown option in its table) stay with
that job (`Job.error`), so the others still run; problems with the whole batch (a folder that
does not exist, two jobs writing one file, a file that is not TOML) are an ImpastoError.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import IMPROVED, INITS, StyleConfig
from ..errors import ImpastoError
from ..images import IMAGE_EXTENSIONS
from ..metadata import SETTINGS_SUFFIXES

__all__ = [
    "Job",
    "OUTPUT_FORMATS",
    "check_outputs",
    "cross_jobs",
    "image_files",
    "jobs_folder",
    "output_name",
    "read_jobs_file",
]

OUTPUT_FORMATS = tuple(s.lstrip(".") for s in SETTINGS_SUFFIXES)
"""Formats a batch writes: those that carry their settings, which resuming needs (not BMP)."""

_CONFIG_FIELDS = {f.name: f for f in dataclasses.fields(StyleConfig)}
_JOB_KEYS = ("content", "styles", "masks", "output", "improved")
_SHARED_KEYS = ("styles", "masks", "improved", "output_dir", "format")
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


def image_files(sources: Sequence[str | Path], what: str) -> list[Path]:
    """The files named, and the image files in the folders named (sorted by name, not recursive)."""
    found: list[Path] = []
    for source in sources:
        path = Path(source).expanduser()
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


def _suffix(fmt: str) -> str:
    fmt = fmt.lower().lstrip(".")
    if fmt not in OUTPUT_FORMATS:
        raise ImpastoError(
            f"format {fmt!r} is not one of: {', '.join(OUTPUT_FORMATS)} "
            "(a batch's outputs carry their settings, which resuming needs)"
        )
    return "." + fmt


def cross_jobs(
    contents: Sequence[Path],
    styles: Sequence[Path],
    output_dir: Path,
    config: StyleConfig,
    *,
    together: bool = False,
    masks: Sequence[Path] | None = None,
    fmt: str = "png",
) -> list[Job]:
    """Every content in every style alone, or (`together`) in all the styles blended.

    `masks`, one per style, go with their style in either case. `config.style_blend` needs
    `together` (it weighs the styles of one picture)."""
    suffix = _suffix(fmt)
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


def _load_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ImpastoError(f"jobs file {path} does not exist; check the path") from None
    except OSError as exc:
        raise ImpastoError(f"jobs file {path} cannot be read ({exc.strerror or exc}); check the file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ImpastoError(f"jobs file {path} is not valid TOML ({exc}); fix it") from None


def _paths(value: Any, base: Path, key: str) -> tuple[Path, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ImpastoError(f"{key} must be a file name or a list of file names, got {value!r}")
    return tuple(base / Path(i).expanduser() for i in items)


def _options(table: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """The StyleConfig options of a table, lists as tuples, whole numbers as floats where the
    option is a float (so `style_weight = 300` and `300.0` are the same settings)."""
    options: dict[str, Any] = dict(IMPROVED) if table.get("improved") else {}
    for key, value in table.items():
        if key not in _CONFIG_FIELDS:
            continue
        kind = str(_CONFIG_FIELDS[key].type)
        if isinstance(value, list):
            value = tuple(float(v) if "float" in kind and isinstance(v, int) else v for v in value)
        elif kind.startswith("float") and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if key in ("weights", "init") and isinstance(value, str) and (key == "weights" or value not in INITS):
            value = str(base / Path(value).expanduser())
        options[key] = value
    return options


def _unknown(table: Mapping[str, Any], allowed: Sequence[str]) -> list[str]:
    return sorted(k for k in table if k not in _CONFIG_FIELDS and k not in allowed)


def read_jobs_file(
    path: str | Path, overrides: Mapping[str, Any] | None = None, output_dir: str | Path | None = None
) -> list[Job]:
    """The jobs of a TOML file: top-level keys are shared defaults (any StyleConfig option, and
    `styles`, `masks`, `improved`, `output_dir`, `format`); each `[[job]]` table has a `content`
    and may set `styles`, `masks`, `output` and any option. Paths are relative to the file's folder,
    outputs to the output folder (`output_dir`, else the file's folder). `overrides` (options given
    on the command line) win over both."""
    path = Path(path).expanduser()
    data = _load_toml(path)
    base = path.resolve().parent
    unknown = _unknown({k: v for k, v in data.items() if k != "job"}, _SHARED_KEYS)
    if unknown:
        raise ImpastoError(
            f"jobs file {path}: unknown setting {unknown[0]!r}; use StyleConfig option names "
            f"or {', '.join(_SHARED_KEYS)}"
        )
    tables = data.get("job")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise ImpastoError(f"jobs file {path} has no [[job]] tables; add one per picture")
    folder = _folder(data, base, output_dir)
    suffix = _suffix(str(data.get("format", "png")))
    shared = _options(data, base)
    jobs = [
        _job(i, table, data, shared, dict(overrides or {}), base, folder, suffix)
        for i, table in enumerate(tables, start=1)
    ]
    check_outputs(jobs)
    return jobs


def _folder(data: Mapping[str, Any], base: Path, output_dir: str | Path | None) -> Path:
    if output_dir is not None:
        return Path(output_dir).expanduser()
    return base / Path(str(data.get("output_dir", "."))).expanduser()


def jobs_folder(path: str | Path, output_dir: str | Path | None = None) -> Path:
    """The output folder of a jobs file: `output_dir` if given, else the file's, else its folder."""
    path = Path(path).expanduser()
    return _folder(_load_toml(path), path.resolve().parent, output_dir)


def _job(
    number: int,
    table: dict[str, Any],
    shared_table: Mapping[str, Any],
    shared: dict[str, Any],
    overrides: dict[str, Any],
    base: Path,
    folder: Path,
    suffix: str,
) -> Job:
    if not isinstance(table.get("content"), str):
        raise ImpastoError(f'job {number} has no content; give it content = "photo.jpg"')
    content = base / Path(table["content"]).expanduser()
    label = f"job {number} ({content.name})"
    styles_value = table.get("styles", shared_table.get("styles"))
    if styles_value is None:
        raise ImpastoError(f'{label} has no styles; give it styles = ["art.jpg"] or set styles for all jobs')
    styles = _paths(styles_value, base, "styles")
    masks_value = table.get("masks", shared_table.get("masks"))
    masks = _paths(masks_value, base, "masks") if masks_value is not None else ()
    if "output" in table:
        output = folder / Path(str(table["output"])).expanduser()
    else:
        output = folder / output_name(content, styles, suffix)
    name = output.stem
    unknown = _unknown(table, _JOB_KEYS)
    if unknown:
        problem = f"unknown option {unknown[0]!r}; valid options: {', '.join(sorted(_CONFIG_FIELDS))}"
    elif masks and len(masks) != len(styles):
        problem = f"{len(masks)} masks for {len(styles)} styles; give one mask per style"
    else:
        try:
            config = StyleConfig(**{**shared, **_options(table, base), **overrides})
        except (ImpastoError, TypeError) as error:
            problem = str(error)
        else:
            problem = None
    if problem is not None:
        return Job(name, content, styles, output, None, masks, f"{label}: {problem}")
    return Job(name, content, styles, output, config, masks)


def check_outputs(jobs: Sequence[Job]) -> None:
    """An ImpastoError if two jobs would write the same file."""
    seen: dict[Path, Job] = {}
    for job in jobs:
        key = job.output.expanduser().resolve()
        if key in seen:
            other = seen[key]
            raise ImpastoError(
                f"two jobs would write {job.output} ({other.content} and {job.content}); "
                "rename one of the inputs or give the jobs their own output names"
            )
        seen[key] = job
