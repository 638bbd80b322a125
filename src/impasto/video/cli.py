"""`impasto video`: style a clip without flicker. A thin adapter from argv to the video job.

Its flags come from StyleConfig (every still-image option) and VideoConfig. Bad input is one line
on stderr and exit status 2 before any work; Ctrl-C or SIGTERM keeps the finished frames (and
writes a playable video of them) and exits 130 or 143; rerunning the same command resumes.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shutil
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .. import cli as still
from ..config import IMPROVED, StyleConfig
from ..errors import ImpastoError
from ..images import IMAGE_EXTENSIONS, fit_longest, pil_to_tensor, read_image, read_mask
from .clip import (
    VIDEO_CODECS,
    Clip,
    FrameStore,
    check_video_output,
    image_files,
    is_video_path,
    open_clip,
    video_fingerprint,
    write_video,
)
from .options import LONG_TERM_OFFSETS, VideoConfig

if TYPE_CHECKING:  # the job, the engine and torch are imported once the arguments are read
    import torch
    from tqdm import tqdm

    from .job import ClipJob, ClipResult, FrameProgress

_VIDEO_FLAGS = {f.name: "--" + f.name.replace("_", "-") for f in dataclasses.fields(VideoConfig)}
_VIDEO_FLAGS.update(restart="--restart", fps="--fps")
_VIDEO_NAMES = re.compile(r"(?<![\w-])(%s)(?![\w-])" % "|".join(sorted(_VIDEO_FLAGS, key=len, reverse=True)))


def to_flags(message: str) -> str:
    """A library message with the video job's and the still image's parameter names as flags."""
    return still.to_flags(_VIDEO_NAMES.sub(lambda m: _VIDEO_FLAGS[m.group(1)], message))


def build_parser() -> argparse.ArgumentParser:
    parser = still._Parser(
        prog="impasto video",
        description="Style a video without flicker (Ruder et al.): each frame starts from the previous "
        "stylised frame warped by the optical flow and is held to it where the flow is reliable.",
    )
    parser.add_argument("input", help="a video file, or a folder of frames (sorted by name)")
    parser.add_argument("styles", nargs="+", metavar="style", help="one or more artworks")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help=f"a video file ({' '.join(VIDEO_CODECS)}) or a folder (frames keep their names)",
    )
    parser.add_argument(
        "--style-masks",
        nargs="+",
        metavar="MASK",
        help="one per style: a mask image for every frame, or a folder with one mask per frame",
    )
    parser.add_argument("--improved", action="store_true", help="Novak & Nikulin's preset (see impasto --help)")
    parser.add_argument(
        "--fps", type=float, metavar="X", help="frame rate of a folder of frames (default: 24; a video keeps its own)"
    )
    parser.add_argument(
        "--restart", action="store_true", help="start over instead of resuming after the frames the output already has"
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="also style each frame alone (into OUTPUT.alone) and print the warping errors, style distances and times",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    still._add_config_flags(parser)
    _add_video_flags(parser)
    return parser


def _add_video_flags(parser: argparse.ArgumentParser) -> None:
    defaults = VideoConfig()
    for f in dataclasses.fields(VideoConfig):
        meta, default = f.metadata, getattr(defaults, f.name)
        kwargs = dict(dest=f.name, default=argparse.SUPPRESS, metavar=meta["metavar"])
        if f.name == "long_term":
            kwargs.update(
                nargs="*",
                type=int,
                help="hold each frame also to earlier frames, Ruder et al.'s "
                f"long-term consistency: at these offsets (default with the flag: "
                f"{' '.join(map(str, LONG_TERM_OFFSETS))}; without it: 1)",
            )
        else:
            shown = "" if default is None else f" (default: {default:g})"
            kwargs.update(type=int if f.name == "later_iterations" else float, help=meta["help"] + shown)
        parser.add_argument(_VIDEO_FLAGS[f.name], **kwargs)


def _configs(args: dict) -> tuple[StyleConfig, VideoConfig]:
    video = {f.name: args.pop(f.name) for f in dataclasses.fields(VideoConfig) if f.name in args}
    if "long_term" in video:
        video["long_term"] = tuple(video["long_term"]) or LONG_TERM_OFFSETS
    options = {**(IMPROVED if args.pop("improved") else {}), **args}
    for name in ("content_layers", "style_layers", *still.NUMBER_LISTS):
        if name in options:
            options[name] = tuple(options[name])
    config = StyleConfig(**options)
    still.warn_unused(config)
    return config, VideoConfig(**video)


def _read_masks(paths: Sequence[str] | None) -> list | None:
    """Each mask path as a mask tensor, or (a folder) as its mask files, one per frame."""
    if paths is None:
        return None
    masks: list[list[Path] | torch.Tensor] = []
    for i, path in enumerate(paths):
        where = Path(path)
        if where.is_dir():
            files = image_files(where)
            if not files:
                raise ImpastoError(f"style mask folder {where} has no mask images")
            masks.append(files)
        else:
            masks.append(pil_to_tensor(read_mask(path, f"style mask {i + 1}")))
    return masks


def _store_folder(output: Path, clip: Clip, config: StyleConfig, inputs: Sequence[str]) -> Path:
    """Where finished frames go: the output folder itself, or a folder beside an output video.
    Never a folder that holds an input (a folder of frames or masks, a style image)."""
    kinds = " ".join(VIDEO_CODECS)
    if output.suffix.lower() in IMAGE_EXTENSIONS:
        raise ImpastoError(f"output {output} is an image; give a folder or a video file ({kinds})")
    if output == clip.path:
        raise ImpastoError(f"output {output} is the input; choose another output")
    folder = output
    if is_video_path(output):
        check_video_output(output, fit_longest(*clip.size, config.size), clip.fps)
        folder = output.with_name(output.name + ".frames")
    elif output.suffix and not output.is_dir():
        raise ImpastoError(
            f"output {output} has extension {output.suffix!r}, which impasto does not write (it writes {kinds}); "
            "give one of those, or a folder name without an extension"
        )
    for path in (Path(p).expanduser().resolve() for p in inputs):
        if path == folder or path.parent == folder or path == clip.path:
            raise ImpastoError(
                f"the frames would be written to {folder}, which {'is' if path == folder else 'holds'} the input "
                f"{path}; choose another output"
            )
    return folder


class _Bars:
    """Two progress bars: frames (frame i of n, ETA) and the steps of the frame under way."""

    def __init__(self, count: int, done: int, quiet: bool) -> None:
        self.outer: tqdm | None = None
        self.inner: tqdm | None = None
        if quiet:
            return
        from tqdm import tqdm

        self._tqdm = tqdm
        self.outer = tqdm(
            total=count,
            initial=done,
            unit="frame",
            dynamic_ncols=True,
            file=sys.stderr,
            desc=f"frame {min(done + 1, count)}/{count}",
            position=0,
        )

    def __call__(self, p: FrameProgress) -> None:
        if self.outer is None:
            return
        if p.step is None:
            self.outer.update(1)
            self.outer.set_description(f"frame {min(p.index + 2, p.count)}/{p.count}")
            if self.inner is not None:
                self.inner.close()
                self.inner = None
            return
        if self.inner is None:
            self.inner = self._tqdm(
                total=p.step.total, unit="it", dynamic_ncols=True, file=sys.stderr, leave=False, position=1
            )
        self.inner.total = p.step.total  # less once a coarse scale has ended early
        self.inner.update(p.step.iteration - self.inner.n)
        self.inner.set_description(f"{p.name} {p.step.size[0]}x{p.step.size[1]}", refresh=False)
        self.inner.set_postfix({k: f"{v:.3g}" for k, v in p.step.losses.items()}, refresh=False)

    def close(self) -> None:
        for bar in (self.inner, self.outer):
            if bar is not None:
                bar.close()


def _style(job: ClipJob, store: FrameStore, quiet: bool, video: Path | None = None) -> tuple[ClipResult, list[int]]:
    """Style the clip into the store; then write the frames done to `video`, if given, where no
    signal can interrupt the write. Returns the result and the first signal received, if any."""
    bars = _Bars(job.clip.count, store.done, quiet)
    stop = threading.Event()
    clip = job.clip
    with still._signals_stop(stop) as signals:
        try:
            result = job.run(store, stop, bars)
        finally:
            bars.close()
        signals.saving = True
        if video is not None and store.done:
            finished = _made(store.fingerprint, clip) if store.done == clip.count else None  # only a whole clip
            sound = clip.path if clip.is_video and clip.audio else None
            write_video(video, store.finished(), clip.fps, sound, fingerprint=finished)
    return result, signals.received[:1]


def _made(fingerprint: str, clip: Clip) -> str:
    """What a finished video says made it: its frames' job, and the rate they play at."""
    return f"{fingerprint} {clip.fps}"


def run_video(argv: Sequence[str]) -> int:
    args = vars(build_parser().parse_args(argv))
    source, style_paths, mask_paths = args.pop("input"), args.pop("styles"), args.pop("style_masks")
    output, fps, restart = Path(args.pop("output")).expanduser().resolve(), args.pop("fps"), args.pop("restart")
    report, quiet = args.pop("report"), args.pop("quiet")
    config, video = _configs(args)
    import torch

    from ..engine import build_network, resolve_device
    from ..memory import reuse_freed_memory
    from .job import ClipJob

    if Path(source).suffix.lower() in IMAGE_EXTENSIONS and Path(source).is_file():
        raise ImpastoError(
            f"input {source} is a still image, not a video; paint it with `impasto {source} STYLE -o OUT`, "
            "or give a video or a folder of frames"
        )
    if fps is not None and Path(source).expanduser().is_file():
        raise ImpastoError(
            f"--fps sets the frame rate of a folder of frames; the video {source} keeps its own rate "
            "(and its sound in step with it); leave --fps out"
        )
    clip = open_clip(source, fps)
    styles = [
        pil_to_tensor(read_image(p, "style image" if len(style_paths) == 1 else f"style image {i + 1}"))
        for i, p in enumerate(style_paths)
    ]
    masks = _read_masks(mask_paths)
    folder = _store_folder(output, clip, config, [*style_paths, *(mask_paths or [])])
    network = build_network(config, resolve_device(config.device))
    job = ClipJob(clip, styles, masks=masks, config=config, video=video, network=network)
    fingerprint = job.fingerprint()
    if is_video_path(output) and not (restart or report) and video_fingerprint(output) == _made(fingerprint, clip):
        if not quiet:
            print(
                f"impasto: {output} is already made from this input with these styles and options; "
                "nothing to do (--restart paints it again)",
                file=sys.stderr,
            )
        return 0
    store = FrameStore(folder, clip.names, fingerprint, restart)
    if report:  # checked now, so a problem shows before the work
        alone = ClipJob(clip, styles, masks=masks, config=config, video=video, network=network, independent=True)
        alone_store = FrameStore(output.with_name(output.name + ".alone"), clip.names, alone.fingerprint(), restart)
    if config.threads:
        torch.set_num_threads(config.threads)
    reuse_freed_memory()
    if store.done and not quiet:
        print(f"impasto: resuming after frame {store.done} of {clip.count} in {folder}", file=sys.stderr)
    try:
        result, received = _style(job, store, quiet, output if is_video_path(output) else None)
    except ImpastoError as error:  # a frame found damaged when its turn came: what is done stays
        if not store.done:
            raise
        raise ImpastoError(
            f"{error}; the {store.done} frames done are kept in {folder}, and the same command resumes after them"
        ) from None
    status = _finish(output, folder, clip, store, result, received, keep_frames=report, quiet=quiet)
    if status or not report:
        return status
    alone_result, received = _style(alone, alone_store, quiet)
    if alone_result.interrupted:
        kept = f"the frames alone are kept in {alone_store.folder}"
        return _interrupted(received, alone_store.done, clip.count, kept)
    print("\n".join(_report(job, store, alone_store, result)))
    return 0


def _finish(
    output: Path,
    folder: Path,
    clip: Clip,
    store: FrameStore,
    result: ClipResult,
    received: list[int],
    keep_frames: bool,
    quiet: bool,
) -> int:
    video_out = is_video_path(output)
    if result.interrupted:
        wrote = f"wrote them to {output}; " if video_out and store.done else ""
        return _interrupted(received, store.done, clip.count, f"{wrote}they are kept in {folder}")
    if video_out and not keep_frames:
        shutil.rmtree(folder, ignore_errors=True)
    if not quiet:
        print(f"impasto: wrote {output} ({clip.count} frames)", file=sys.stderr)
    return 0


def _interrupted(received: list[int], done: int, count: int, where: str) -> int:
    how = "terminated" if received == [signal.SIGTERM] else "interrupted"
    print(
        f"impasto: {how} after {done} of {count} frames; {where}; run the same command again to resume", file=sys.stderr
    )
    return still.EXIT_TERMINATED if received == [signal.SIGTERM] else still.EXIT_INTERRUPTED


def _report(job: ClipJob, store: FrameStore, alone: FrameStore, result: ClipResult) -> list[str]:
    from .report import clip_report

    inputs = [job.frame(image) for image in job.clip.frames()]
    ours = [pil_to_tensor(image) for image in store.finished()]
    alones = [pil_to_tensor(image) for image in alone.finished()]
    figures = clip_report(inputs, ours, alones, job.painter(), result.first_seconds, result.later_seconds)
    return figures.lines()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `impasto video` (called by `impasto video ...`); returns the exit status."""
    return still.run_front_end(
        run_video, argv, "interrupted before the first frame was finished; nothing was written", to_flags
    )
