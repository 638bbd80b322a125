"""The video job's options beyond a still image's, and the long-term offsets of the paper: kept
apart from the job so that `impasto video --help` answers without importing torch."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ..errors import ImpastoError

LONG_TERM_OFFSETS = (1, 10, 20, 40)
"""Ruder et al.'s long-term consistency: each frame is held to the frames this many before it."""


@dataclass(frozen=True)
class VideoConfig:
    """Options of the video job beyond a still image's. `help` is what `impasto video --help` prints."""

    temporal_weight: float = field(
        default=200.0,
        metadata={
            "metavar": "X",
            "help": "weight of the temporal loss that holds each frame to "
            "the previous stylised frame warped into it (0 = none)",
        },
    )
    long_term: tuple[int, ...] = field(
        default=(1,),
        metadata={
            "metavar": "OFFSET",
            "help": "earlier frames each frame is held to, as offsets (1 = the previous frame)",
        },
    )
    later_iterations: int | None = field(
        default=None,
        metadata={
            "metavar": "N",
            "help": "optimiser steps of each later frame, at the full size "
            "(default: a fifth of the first frame's work)",
        },
    )
    later_tolerance: float = field(
        default=2e-3,
        metadata={
            "metavar": "X",
            "help": "end a later frame early when its loss improves by less "
            "than this fraction over 10 steps (0 = never)",
        },
    )

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temporal_weight) and self.temporal_weight >= 0):
            raise ImpastoError(f"temporal_weight must be a finite number of at least 0, got {self.temporal_weight!r}")
        if not (math.isfinite(self.later_tolerance) and self.later_tolerance >= 0):
            raise ImpastoError(f"later_tolerance must be a finite number of at least 0, got {self.later_tolerance!r}")
        if self.later_iterations is not None and not (
            isinstance(self.later_iterations, int) and self.later_iterations >= 0
        ):
            raise ImpastoError(f"later_iterations must be a whole number of at least 0, got {self.later_iterations!r}")
        offsets = self.long_term
        if not offsets or any(not isinstance(o, int) or isinstance(o, bool) or o < 1 for o in offsets):
            raise ImpastoError(
                f"long_term offsets {' '.join(map(str, offsets))} must be whole numbers of at least 1, "
                "including 1 (the previous frame)"
            )
        if 1 not in offsets:
            raise ImpastoError(
                f"long_term offsets {' '.join(map(str, offsets))} must include 1 (the previous frame), "
                f"e.g. 1 {' '.join(map(str, offsets))}"
            )
        object.__setattr__(self, "long_term", tuple(sorted(set(offsets))))

    def replace(self, **changes) -> VideoConfig:
        return dataclasses.replace(self, **changes)
