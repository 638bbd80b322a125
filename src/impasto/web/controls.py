"""The page's options, built from StyleConfig's fields: one source of defaults and help texts.

Each field becomes a widget of its kind (a choice, a switch, a number, a list of layers) with the
field's default as its value and its help as the widget's hint; the values come back through
`config_from_values`, and StyleConfig itself checks them. The page names an option by its
label, so `to_labels` rewrites the library's parameter names in its messages.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from ..cli import parse_bytes, parse_tile
from ..config import IMPROVED, INITS, StyleConfig
from ..errors import ImpastoError

UP_FRONT = ("size", "iterations", "style_weight", "preserve_color", "seed")
# Fixed when the server starts: the network is loaded once per process.
SERVER = ("weights", "weights_format", "pooling", "device", "threads", "winograd")
PER_STYLE = ("style_blend",)  # each style's blend weight, beside the style
FIELDS = {f.name: f for f in dataclasses.fields(StyleConfig)}
ADVANCED = tuple(n for n in FIELDS if n not in UP_FRONT + SERVER + PER_STYLE)
LABELS = {"style_weight": "style strength", "tv_weight": "total-variation weight", "style_blend": "blend weight"}
PRESETS = {"Gatys et al.": {name: FIELDS[name].default for name in IMPROVED}, "Novak & Nikulin": dict(IMPROVED)}
LAYER_LISTS = ("content_layers", "style_layers")
NUMBER_LISTS = ("style_layer_weights",)
TEXT_FIELDS = ("tile", "max_memory")


def label(name: str) -> str:
    """How the page names an option: 'style strength' for style_weight, 'min size' for min_size."""
    return LABELS.get(name, name.replace("_", " "))


_NAMES = re.compile(r"\b(%s)\b" % "|".join(sorted(FIELDS, key=len, reverse=True)))


def to_labels(message: str) -> str:
    """A library message with each option named as the page labels it (the page's `to_flags`)."""
    return _NAMES.sub(lambda m: label(m.group(1)) if "_" in m.group(1) or m.group(1) in LABELS else m.group(1), message)


def hint(name: str) -> str:
    """The field's help text and default, in the page's names."""
    default = FIELDS[name].default
    shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
    text = FIELDS[name].metadata["help"]
    return to_labels(f"{text} (default: {shown})" if default not in (None, "") else text)


def build(gr: ModuleType, name: str, layer_names: Sequence[str], **extra: Any) -> Any:
    """The widget for one StyleConfig field, holding its default."""
    f, default = FIELDS[name], FIELDS[name].default
    common = dict(label=label(name).capitalize(), info=hint(name), elem_id=f"opt-{name}", **extra)
    choices = f.metadata.get("choices") or (INITS if name == "init" else None)
    if choices:
        return gr.Radio(list(choices), value=default, **common)
    if isinstance(default, bool):
        return gr.Checkbox(value=default, **common)
    if name in LAYER_LISTS:
        assert isinstance(default, tuple)  # the layer lists default to tuples of names
        return gr.Dropdown(list(layer_names), value=list(default), multiselect=True, **common)
    if name in NUMBER_LISTS + TEXT_FIELDS:
        return gr.Textbox(value="" if default is None else str(default), **common)
    return gr.Number(value=default, precision=0 if f.type == "int" else None, **common)


def _number(name: str, value: Any, whole: bool) -> int | float:
    if value is None or value == "":
        raise ImpastoError(f"{name} is empty; enter a number")
    number = float(value)
    if whole:
        if not number.is_integer():
            raise ImpastoError(f"{name} must be a whole number, got {value!r}")
        return int(number)
    return number


def _numbers(name: str, text: Any) -> tuple[float, ...] | None:
    if isinstance(text, (list, tuple)):
        return tuple(float(v) for v in text) or None
    words = str(text or "").replace(",", " ").split()
    try:
        return tuple(float(w) for w in words) or None
    except ValueError:
        raise ImpastoError(f"{name} {text!r} must be numbers separated by spaces") from None


def _text_field(name: str, text: Any) -> int | str | None:
    text = str(text if text is not None else "").strip()
    if name == "tile":
        return parse_tile(text or "auto")
    if not text:
        return None
    try:
        return parse_bytes(text)
    except argparse.ArgumentTypeError as error:
        raise ImpastoError(f"max_memory {error}") from None


def parse(name: str, value: Any) -> Any:
    """A widget's value as the StyleConfig field wants it."""
    f, default = FIELDS[name], FIELDS[name].default
    if name in LAYER_LISTS:
        return tuple(value or ())
    if name in NUMBER_LISTS:
        return _numbers(name, value)
    if name in TEXT_FIELDS:
        return _text_field(name, value)
    if isinstance(default, bool):
        return bool(value)
    if isinstance(default, str):
        return str(value)
    return _number(name, value, whole=f.type == "int")


def config_from_values(values: Mapping[str, Any], base: StyleConfig) -> StyleConfig:
    """`base` with the page's options; every problem a one-line ImpastoError naming the option."""
    return base.replace(**{name: parse(name, value) for name, value in values.items()})
