"""The jobs of a TOML file: shared defaults at the top, one `[[job]]` table per picture.

Every value is checked to be of the TOML type its setting takes (`improved = "no"` and
`iterations = true` are refused, never read as another value). A problem with one job's table (an
unknown option, an option out of range or of the wrong type) stays with that job (`Job.error`), so
the others still run; a problem with the whole file (not UTF-8, not TOML, a job without content, a
shared setting of the wrong type) is an ImpastoError.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..config import IMPROVED, INITS, StyleConfig
from ..errors import ImpastoError
from .jobs import Job, as_path, check_outputs, output_name, output_suffix

__all__ = ["jobs_folder", "read_jobs_file"]

_CONFIG_FIELDS = {f.name: f for f in dataclasses.fields(StyleConfig)}
_CONFIG_TYPES = typing.get_type_hints(StyleConfig)
_TOML_TYPES: dict[Any, tuple[str, str]] = {  # a type: how to say one value of it, and a list of them
    bool: ("true or false", "true or false"),
    int: ("a whole number", "whole numbers"),
    float: ("a number", "numbers"),
    str: ("a string", "strings"),
}
_A_PATH = "a path (a string)"
_WRONG = object()
_JOB_KEYS = ("content", "styles", "masks", "output", "improved")
_SHARED_KEYS = ("styles", "masks", "improved", "output_dir", "format")


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
    except UnicodeDecodeError as exc:
        raise ImpastoError(
            f"jobs file {path} is not UTF-8 text (byte {exc.start} cannot be read); save it as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ImpastoError(f"jobs file {path} is not valid TOML ({exc}); fix it") from None


@contextmanager
def _about(label: str) -> Iterator[None]:
    """ImpastoErrors raised inside, with `label: ` in front (which job, which file)."""
    try:
        yield
    except ImpastoError as error:
        raise ImpastoError(f"{label}: {error}") from None


def _shown(value: Any) -> str:
    """A value as TOML writes it (true, "no", [1, 2]), for a message."""
    return json.dumps(value, default=str, ensure_ascii=False)


def _convert(kind: Any, value: Any) -> Any:
    """`value` as a field of type `kind` takes it, or _WRONG. TOML's types only, no coercion
    (true is not 1, "no" is not false); a whole number is a float where a float is expected."""
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, list):
            return _WRONG
        items = tuple(_convert(typing.get_args(kind)[0], item) for item in value)
        return _WRONG if any(i is _WRONG for i in items) else items
    if kind is float and type(value) in (int, float):
        return float(value)
    if kind in _TOML_TYPES:
        return value if type(value) is kind else _WRONG
    return value  # a type TOML does not have: StyleConfig checks the value


def _describe(kind: Any) -> str:
    if typing.get_origin(kind) is tuple:
        return f"a list of {_TOML_TYPES.get(typing.get_args(kind)[0], ('', 'values'))[1]}"
    return _TOML_TYPES.get(kind, ("a value",))[0]


def _typed(key: str, value: Any, kind: Any, what: str | None = None) -> Any:
    """`value` as the type `kind` (a union, perhaps) takes it; else an ImpastoError naming `key`
    and the TOML type expected (`what`, or said from `kind`)."""
    union = typing.get_origin(kind) in (typing.Union, types.UnionType)
    # TOML has no null: an option that may be None is left out of the file instead.
    kinds = [k for k in (typing.get_args(kind) if union else (kind,)) if k is not type(None)]
    for one in kinds:
        converted = _convert(one, value)
        if converted is not _WRONG:
            return converted
    raise ImpastoError(f"{key} must be {what or ' or '.join(map(_describe, kinds))}, got {_shown(value)}")


def _setting(table: Mapping[str, Any], key: str, kind: Any, what: str | None = None) -> Any:
    """`table[key]` checked to be of the type `kind`, or None where the table does not set it."""
    return _typed(key, table[key], kind, what) if key in table else None


def _paths(value: Any, base: Path, key: str) -> tuple[Path, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ImpastoError(f"{key} must be a file name or a list of file names (strings), got {_shown(value)}")
    return tuple(base / Path(i).expanduser() for i in items)


def _options(table: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """The StyleConfig options of a table, each of the TOML type its field takes (an ImpastoError
    naming the option otherwise: `improved = "no"` and `iterations = true` are refused), lists as
    tuples, whole numbers as floats where the option is a float (so `style_weight = 300` and
    `300.0` are the same settings)."""
    options: dict[str, Any] = dict(IMPROVED) if _setting(table, "improved", bool) else {}
    for key, value in table.items():
        if key not in _CONFIG_TYPES:
            continue
        value = _typed(key, value, _CONFIG_TYPES[key])
        if key in ("weights", "init") and (key == "weights" or value not in INITS):
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
    path = as_path(path, "path").expanduser()
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ImpastoError(f"overrides must be a dict of StyleConfig options, got {type(overrides).__name__}")
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
    with _about(f"jobs file {path}"):
        folder = _folder(data, base, output_dir)
        fmt = _setting(data, "format", str)
        suffix = output_suffix("png" if fmt is None else fmt)
        shared = _options(data, base)
    jobs = [
        _job(i, table, data, shared, dict(overrides or {}), base, folder, suffix)
        for i, table in enumerate(tables, start=1)
    ]
    check_outputs(jobs)
    return jobs


def _folder(data: Mapping[str, Any], base: Path, output_dir: str | Path | None) -> Path:
    if output_dir is not None:
        return as_path(output_dir, "output_dir").expanduser()
    name = _setting(data, "output_dir", str, _A_PATH)
    return base / Path("." if name is None else name).expanduser()


def jobs_folder(path: str | Path, output_dir: str | Path | None = None) -> Path:
    """The output folder of a jobs file: `output_dir` if given, else the file's, else its folder."""
    path = as_path(path, "path").expanduser()
    with _about(f"jobs file {path}"):
        return _folder(_load_toml(path), path.resolve().parent, output_dir)


def _job_files(
    number: int, table: Mapping[str, Any], shared_table: Mapping[str, Any], base: Path, folder: Path, suffix: str
) -> tuple[Path, tuple[Path, ...], tuple[Path, ...], Path]:
    """The content, styles, masks and output of a job table; an ImpastoError if one is missing or
    not a path."""
    if "content" not in table:
        raise ImpastoError(f'job {number} has no content; give it content = "photo.jpg"')
    with _about(f"job {number}"):
        content = base / Path(_setting(table, "content", str, _A_PATH)).expanduser()
    label = f"job {number} ({content.name})"
    styles_value = table.get("styles", shared_table.get("styles"))
    if styles_value is None:
        raise ImpastoError(f'{label} has no styles; give it styles = ["art.jpg"] or set styles for all jobs')
    masks_value = table.get("masks", shared_table.get("masks"))
    with _about(label):
        styles = _paths(styles_value, base, "styles")
        masks = _paths(masks_value, base, "masks") if masks_value is not None else ()
        name = _setting(table, "output", str, _A_PATH)
    output = folder / (Path(name).expanduser() if name is not None else output_name(content, styles, suffix))
    return content, styles, masks, output


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
    content, styles, masks, output = _job_files(number, table, shared_table, base, folder, suffix)
    unknown = _unknown(table, _JOB_KEYS)
    config = None
    if unknown:
        problem = f"unknown option {unknown[0]!r}; valid options: {', '.join(sorted(_CONFIG_FIELDS))}"
    elif masks and len(masks) != len(styles):
        problem = f"{len(masks)} masks for {len(styles)} styles; give one mask per style"
    else:
        try:
            config = StyleConfig(**{**shared, **_options(table, base), **overrides})
        except (ImpastoError, TypeError) as error:
            problem = str(error)
    if config is None:
        return Job(output.stem, content, styles, output, None, masks, f"job {number} ({content.name}): {problem}")
    return Job(output.stem, content, styles, output, config, masks)
