"""Style a video without flicker (Ruder, Dosovitskiy & Brox, "Artistic style transfer for videos").

    from impasto.video import ClipJob, FrameStore, VideoConfig, open_clip

    clip = open_clip("clip.mp4")                       # or a folder of frames
    job = ClipJob(clip, [style], config=impasto.StyleConfig(size=384))
    job.run(FrameStore(Path("out"), clip.names, job.fingerprint()))

Needs the `video` extra (PyAV and OpenCV), imported only when a clip or a flow is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

# Imported on first use (PEP 562), so that `impasto video --help` does not import torch.
_EXPORTS = {
    "Clip": "clip",
    "FrameStore": "clip",
    "open_clip": "clip",
    "write_video": "clip",
    "ClipJob": "job",
    "ClipResult": "job",
    "FrameProgress": "job",
    "later_iterations": "job",
    "LONG_TERM_OFFSETS": "options",
    "VideoConfig": "options",
    "ClipReport": "report",
    "clip_report": "report",
    "warping_error": "report",
    "TemporalLoss": "temporal",
}

if TYPE_CHECKING:
    from .clip import Clip, FrameStore, open_clip, write_video
    from .job import ClipJob, ClipResult, FrameProgress, later_iterations
    from .options import LONG_TERM_OFFSETS, VideoConfig
    from .report import ClipReport, clip_report, warping_error
    from .temporal import TemporalLoss

__all__ = [
    "Clip",
    "ClipJob",
    "ClipReport",
    "ClipResult",
    "FrameProgress",
    "FrameStore",
    "LONG_TERM_OFFSETS",
    "TemporalLoss",
    "VideoConfig",
    "clip_report",
    "later_iterations",
    "open_clip",
    "warping_error",
    "write_video",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
