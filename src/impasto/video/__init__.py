"""Style a video without flicker (Ruder, Dosovitskiy & Brox, "Artistic style transfer for videos").

    from impasto.video import ClipJob, FrameStore, VideoConfig, open_clip

    clip = open_clip("clip.mp4")                       # or a folder of frames
    job = ClipJob(clip, [style], config=impasto.StyleConfig(size=384))
    job.run(FrameStore(Path("out"), clip.names, job.fingerprint()))

Needs the `video` extra (PyAV and OpenCV), imported only when a clip or a flow is first used.
"""

from .clip import Clip, FrameStore, open_clip, write_video
from .job import ClipJob, ClipResult, FrameProgress, VideoConfig, later_iterations
from .report import ClipReport, clip_report, warping_error
from .temporal import LONG_TERM_OFFSETS, TemporalLoss

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
