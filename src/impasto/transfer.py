"""`stylize()`: paint one content image in the style of one or more artworks.

The job for a still image: read the inputs once (paths, PIL images or tensors become float
tensors here), hand them to the engine's Painter, and return its result.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any, Union

import PIL.Image
import torch

from .config import INITS, StyleConfig, start_image_label, unused_options
from .engine import (
    Painter,
    Progress,
    ProgressCallback,
    Run,
    StylizeResult,
    build_network,
    check_options,
    resolve_device,
    scale_sizes,
    split_iterations,
    style_layers_for,
)
from .errors import ImpastoError
from .images import read_image_tensor, read_mask_tensor
from .vgg import VGG

ImageLike = Union[str, os.PathLike, PIL.Image.Image, torch.Tensor]  # noqa: UP007 (a runtime alias)

__all__ = [
    "ImageLike",
    "Progress",
    "ProgressCallback",
    "StylizeResult",
    "build_network",
    "read_inputs",
    "prepare",
    "resolve_device",
    "scale_sizes",
    "split_iterations",
    "style_layers_for",
    "stylize",
]


def read_inputs(
    content: ImageLike,
    style: ImageLike | list[ImageLike] | tuple[ImageLike, ...],
    masks: Sequence[ImageLike | None] | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor | None]]:
    """Content, styles and masks as float tensors, each problem a one-line ImpastoError."""
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    if not styles:
        raise ImpastoError("no style image given; pass at least one")
    content_t = read_image_tensor(content, "content image")
    style_ts = [
        read_image_tensor(s, "style image" if len(styles) == 1 else f"style image {i + 1}")
        for i, s in enumerate(styles)
    ]
    if masks is None:
        return content_t, style_ts, [None] * len(styles)
    if isinstance(masks, (str, os.PathLike, torch.Tensor, PIL.Image.Image)):
        raise ImpastoError("masks must be a list with one mask (or None) per style; for one style: masks=[mask]")
    masks = list(masks)
    if len(masks) != len(styles):
        raise ImpastoError(
            f"got {len(masks)} style masks for {len(styles)} style images; give one mask per style, in the same order"
        )
    mask_ts = [None if m is None else read_mask_tensor(m, f"style mask {i + 1}") for i, m in enumerate(masks)]
    return content_t, style_ts, mask_ts


def prepare(
    content: ImageLike,
    style: ImageLike | list[ImageLike] | tuple[ImageLike, ...],
    *,
    masks: Sequence[ImageLike | None] | None = None,
    config: StyleConfig | None = None,
    network: VGG | None = None,
    stop: Any = None,
    **options: Any,
) -> Run:
    """The run stylize() makes, not yet started: its inputs read and checked, its scales
    planned (`Run.plans`, `Run.tiled`). `Run.finish(callback)` runs it."""
    config = (StyleConfig() if config is None else check_options(config)).replace(**options)
    content_t, style_ts, mask_ts = read_inputs(content, style, masks)
    init = None
    if config.init not in INITS:
        init = read_image_tensor(config.init, start_image_label(config.init))
    painter = Painter(style_ts, masks=mask_ts, config=config, network=network, color_reference=content_t)
    return painter.run(content_t, init=init, stop=stop)


def stylize(
    content: ImageLike,
    style: ImageLike | list[ImageLike] | tuple[ImageLike, ...],
    *,
    masks: Sequence[ImageLike | None] | None = None,
    config: StyleConfig | None = None,
    network: VGG | None = None,
    callback: ProgressCallback | None = None,
    stop: Any = None,
    **options: Any,
) -> StylizeResult:
    """Paint `content` in the style of `style` (one image or a list).

    Images may be paths, PIL images or (1, 3, H, W) tensors in [0, 1]. `options` override fields
    of `config` (see StyleConfig). `masks`, one per style, limit each style to the mask's white
    area. `network` replaces the VGG the config names. The run stops early, keeping the image so
    far (`interrupted=True`), when `stop` (a threading.Event) is set, when `callback` returns
    False, or on Ctrl-C. Options that this run would not use (Adam's learning_rate with L-BFGS,
    `threads`, which only the commands read) give a warning each, as the command does.
    """
    run = prepare(content, style, masks=masks, config=config, network=network, stop=stop, **options)
    for text in _unused_here(run.config):
        warnings.warn(text, stacklevel=2)
    return run.finish(callback)


def _unused_here(config: StyleConfig) -> list[str]:
    """What the command's warnings say of `config` (config.unused_options), and `threads`, which
    the library leaves to the caller."""
    notes = unused_options(config)
    if config.threads:
        notes.append(
            f"threads {config.threads} is read by the impasto commands only; the library leaves torch's "
            "thread count as you set it (torch.set_num_threads)"
        )
    return notes
