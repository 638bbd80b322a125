"""Reading a picture's settings back: whether its record is one this impasto can use.

`impasto info` and `impasto reproduce` read a record through `read_record`, which checks its
shape (the schema, the parts `settings_record` writes and their types), and turn its options into
a StyleConfig through `settings_config`, which checks each option's type and value. A record that
fails is a one-line ImpastoError that says the problem lies in the picture's recorded settings,
never in the user's flags. Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

from ..config import PRECISIONS, StyleConfig
from ..errors import ImpastoError
from ..metadata import HASH_KEY, SCHEMA, config_from_settings, read_settings

__all__ = ["check_record", "read_record", "settings_config"]

_TEXTS = ("impasto", "torch", "pillow", "device", "weights_sha256", HASH_KEY)  # each text or null
_RUN = {"iterations": int, "threads": int, "seconds": float, "interrupted": bool, "precision": str}
_SHA256 = re.compile(r"[0-9a-f]{64}")


def read_record(image: str | os.PathLike, check: bool = True) -> dict[str, Any]:
    """The settings record IMAGE carries, checked unless `check` is false; a one-line
    ImpastoError if it carries none."""
    record = read_settings(image)
    if record is None:
        raise ImpastoError(
            f"{os.fspath(image)} carries no impasto settings: it was not made by impasto, or its "
            "metadata was stripped (saved as BMP, with --no-metadata, or by a program that drops it)"
        )
    if check:
        check_record(record, image)
    return record


def check_record(record: Mapping[str, Any], image: str | os.PathLike) -> None:
    """A one-line ImpastoError unless `record` has the schema this impasto reads and every part
    it relies on (config, inputs with their SHA-256, versions, run) with the right type."""
    from .. import __version__

    schema = record.get("schema")
    if type(schema) is not int or schema != SCHEMA:
        found = "no schema" if schema is None else f"schema {schema!r}"
        raise ImpastoError(
            f"{os.fspath(image)} carries impasto settings of {found}, and impasto {__version__} reads "
            f"schema {SCHEMA} only; {_fix(record)}"
        )
    problem = _shape_problem(record)
    if problem:
        raise ImpastoError(
            f"{os.fspath(image)} carries impasto settings this impasto cannot read: {problem}; {_fix(record)}"
        )


def _fix(record: Mapping[str, Any]) -> str:
    """What to do about settings this impasto cannot read: use the version that wrote them, or,
    where that is this one, know that the record was changed since."""
    from .. import __version__

    made = record.get("impasto")
    if isinstance(made, str) and made != __version__:
        return f"read them with impasto {made}, which made the picture"
    return "the record was edited or damaged"


def _shape_problem(record: Mapping[str, Any]) -> str | None:
    """What in `record` is missing or of the wrong type, in words, or None."""
    if "config" not in record:
        return "they have no config (the options)"
    if not isinstance(record["config"], dict):
        return f"config is {_kind(record['config'])}, not a table of options"
    if type(record.get("seed", 0)) is not int:
        return f"seed is {_kind(record['seed'])}, not a whole number"
    for key in _TEXTS:
        if not isinstance(record.get(key), (str, type(None))):
            return f"{key} is {_kind(record[key])}, not text"
    run = record.get("run", {})
    if not isinstance(run, dict):
        return f"run is {_kind(run)}, not a table"
    for key, kind in _RUN.items():
        if run.get(key) is not None and not _fits(run[key], kind):
            return f"run {key} is {_kind(run[key])}, not {_expected(kind)}"
    if run.get("precision") not in (None, *PRECISIONS):
        return f"run precision {run['precision']!r} is not one of: {', '.join(PRECISIONS)}"
    return _inputs_problem(record.get("inputs"))


def _inputs_problem(inputs: Any) -> str | None:
    if inputs is None:
        return "they name no inputs"
    if not isinstance(inputs, dict):
        return f"inputs is {_kind(inputs)}, not a table of files by role"
    for role in ("content image", "style image 1"):
        if role not in inputs:
            return f"they name no {role.removesuffix(' 1')}"
    for role, info in inputs.items():
        if not isinstance(info, dict):
            return f"the {role} is {_kind(info)}, not a file name and SHA-256"
        if not isinstance(info.get("sha256"), str) or not _SHA256.fullmatch(info["sha256"]):
            return f"the {role} has no SHA-256 (64 hex digits)"
        if not isinstance(info.get("file"), (str, type(None))):
            return f"the {role}'s file is {_kind(info['file'])}, not a name"
    return None


def settings_config(record: Mapping[str, Any], image: str | os.PathLike) -> StyleConfig:
    """The StyleConfig `record` describes: a one-line ImpastoError naming a recorded option this
    impasto does not know, or one of the wrong type or value, as the picture's, not a flag's."""
    from .. import __version__

    hints = typing.get_type_hints(StyleConfig)
    names = {f.name for f in dataclasses.fields(StyleConfig)}
    options = record.get("config") or {}
    unknown = sorted(set(options) - names)
    if unknown:
        raise ImpastoError(
            f"the settings recorded in {os.fspath(image)} name options impasto {__version__} does not "
            f"know: {', '.join(unknown)}; {_fix(record)}"
        )
    where = f"the settings recorded in {os.fspath(image)} are not valid"
    for name, value in options.items():
        if not _fits(value, hints[name]):
            raise ImpastoError(f"{where}: {name} is {_kind(value)}, not {_expected(hints[name])}")
    try:
        return config_from_settings(record)
    except ImpastoError as error:
        raise ImpastoError(f"{where}: {error}") from None


def _fits(value: Any, kind: Any) -> bool:
    """Whether a JSON value has the type a StyleConfig field (or a run fact) is annotated with."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return any(_fits(value, k) for k in typing.get_args(kind))
    if typing.get_origin(kind) is tuple:  # tuple[X, ...]: JSON gives a list
        return isinstance(value, list) and all(_fits(v, typing.get_args(kind)[0]) for v in value)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _expected(kind: Any) -> str:
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        return " or ".join(_expected(k) for k in typing.get_args(kind))
    if typing.get_origin(kind) is tuple:
        plural = {int: "whole numbers", float: "numbers", str: "names"}
        return f"a list of {plural.get(typing.get_args(kind)[0], 'values')}"
    words = {int: "a whole number", float: "a number", str: "text", bool: "true or false", type(None): "null"}
    return words.get(kind, kind.__name__)


def _kind(value: Any) -> str:
    """A JSON value's type, in words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value!r}"
    return "a list" if isinstance(value, list) else "a table"
