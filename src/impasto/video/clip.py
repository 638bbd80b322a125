"""Frames in and out: a folder of images or a video file (PyAV), and a folder of finished frames
that a stopped job resumes from.

A clip is read lazily, one frame at a time, so a long video is never held in memory; what can be
checked before work starts (it is a video, it has frames, they have one size, the output codec
can be written) is checked when the clip or the output is opened. PyAV is imported only here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import numbers
import os
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image

from ..errors import ImpastoError
from ..images import IMAGE_EXTENSIONS, as_path, read_image
from ..metadata import sha256_of

VIDEO_CODECS = {
    ".mp4": "libx264",
    ".m4v": "libx264",
    ".mov": "libx264",
    ".mkv": "libx264",
    ".webm": "libvpx-vp9",
    ".avi": "mpeg4",
    ".gif": "gif",
}
"""Output extension -> the video codec it is written with (GIF: by Pillow, one palette per frame,
which dithers far better than FFmpeg's fixed 8-bit palette)."""
AUDIO_CODECS = {".mp4": "aac", ".m4v": "aac", ".mov": "aac", ".mkv": "aac", ".webm": "libopus", ".avi": "libmp3lame"}
"""Output extension -> the codec its audio track is re-encoded to (GIF has no audio)."""
_CODEC_OPTIONS = {"libx264": {"crf": "18", "preset": "medium"}, "libvpx-vp9": {"crf": "30", "b": "0"}}
_PIXEL_FORMATS = {"libvpx-vp9": "yuv420p", "libx264": "yuv420p", "mpeg4": "yuv420p"}
DEFAULT_FPS = Fraction(24)
MANIFEST = ".impasto-video.json"


def av_module():
    """PyAV, or a one-line error naming the extra to install."""
    try:
        import av
    except ImportError:
        raise ImpastoError(
            "impasto video needs PyAV for video files; install it with: pip install 'impasto[video]'"
        ) from None
    return av


def _check_fps(fps: object) -> None:
    """An ImpastoError unless `fps` is a finite number above 0."""
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not (float(fps) > 0 and math.isfinite(fps)):
        raise ImpastoError(f"fps must be a number greater than 0 (frames a second), got {fps!r:.60}")


def _codec(target: Path, name: str) -> str:
    """The codec a video path's extension is written with; an ImpastoError naming those it can write."""
    codec = VIDEO_CODECS.get(target.suffix.lower())
    if codec is None:
        raise ImpastoError(
            f"{name} {target} does not end in a video extension impasto writes; use one of: {', '.join(VIDEO_CODECS)}"
        )
    return codec


def is_video_path(path: str | os.PathLike) -> bool:
    """Whether a path names a video file by its extension (else it is a folder of frames)."""
    return Path(path).suffix.lower() in VIDEO_CODECS


def _natural_key(name: str) -> list:
    """Sort key that puts frame_2 before frame_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def image_files(folder: Path) -> list[Path]:
    """The image files of a folder, sorted by name (numbers in numeric order)."""
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: _natural_key(p.name))


@dataclass(frozen=True)
class Clip:
    """A clip to style: where it is, its frames' names, count, size and rate, and whether it has sound."""

    path: Path
    names: tuple[str, ...]  # the output file name of each frame
    size: tuple[int, int]  # (width, height) of every frame
    fps: Fraction
    audio: bool = False

    @property
    def count(self) -> int:
        return len(self.names)

    @property
    def is_video(self) -> bool:
        return self.path.is_file()

    @functools.cached_property
    def digest(self) -> str:
        """SHA-256 over the input's bytes (the video file, or every frame file), read once: a clip
        replaced under the same names is another clip."""
        files = [self.path] if self.is_video else [self.path / n for n in self.names]
        return hashlib.sha256(" ".join(sha256_of(f) for f in files).encode()).hexdigest()

    def frames(self, start: int = 0) -> Iterator[PIL.Image.Image]:
        """The RGB frames from index `start` on, read one at a time."""
        if self.is_video:
            yield from _decode(self.path, start)
        else:
            for name in self.names[start:]:
                yield read_image(self.path / name, "frame")


def open_clip(path: str | os.PathLike, fps: float | None = None) -> Clip:
    """A video file or a folder of frames, checked: it exists, has frames, and they have one size.

    `fps` is the rate of a folder's frames (default 24); a video keeps its own rate unless given.
    """
    where = as_path(path, "path", "a video file or a folder of frames").expanduser()
    if fps is not None:
        _check_fps(fps)
    rate = Fraction(fps).limit_denominator(1001) if fps else None
    if where.is_dir():
        return _open_folder(where.resolve(), rate or DEFAULT_FPS)
    if not where.exists():
        raise ImpastoError(f"input {where} does not exist; give a video file or a folder of frames")
    return _open_video(where.resolve(), rate)


def _open_folder(folder: Path, fps: Fraction) -> Clip:
    files = image_files(folder)
    if not files:
        raise ImpastoError(f"input folder {folder} has no frames (no {', '.join(IMAGE_EXTENSIONS)} files)")
    size = None
    for file in files:
        try:
            with PIL.Image.open(file) as img:
                found = img.size
        except (OSError, ValueError) as exc:
            raise ImpastoError(f"frame {file} is not an image PIL can read ({exc})") from None
        if size is None:
            size, first = found, file
        elif found != size:
            raise ImpastoError(
                f"frames differ in size: {first.name} is {size[0]}x{size[1]} but {file.name} is "
                f"{found[0]}x{found[1]}; give frames of one size"
            )
    assert size is not None  # files is not empty, so the loop set it
    return Clip(folder, tuple(f.name for f in files), size, fps)


def _open_video(file: Path, fps: Fraction | None) -> Clip:
    av = av_module()
    try:
        with av.open(str(file)) as container:
            if not container.streams.video:
                raise ImpastoError(f"input {file} has no video stream; give a video file or a folder of frames")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or DEFAULT_FPS
            size = (stream.codec_context.width, stream.codec_context.height)
            audio = bool(container.streams.audio)
            stream.thread_type = "AUTO"
            count = sum(1 for _ in container.decode(stream))  # packets can differ from frames
    except ImpastoError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise ImpastoError(
            f"input {file} is not a video PyAV can read ({_reason(exc)}); give a video file or a folder of frames"
        ) from None
    if count == 0 or 0 in size:
        raise ImpastoError(f"input {file} has no frames")
    names = tuple(f"frame_{i:05d}.png" for i in range(1, count + 1))
    return Clip(file, names, size, fps or Fraction(rate), audio)


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _decode(file: Path, start: int) -> Iterator[PIL.Image.Image]:
    av = av_module()
    with av.open(str(file)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index >= start:
                yield frame.to_image().convert("RGB")


# --- writing ------------------------------------------------------------------------------------


def _temp_next_to(target: Path) -> Path:
    return target.with_name(f".{target.stem}.{secrets.token_hex(4)}.tmp{target.suffix}")


def _even(image: np.ndarray, codec: str) -> np.ndarray:
    """4:2:0 video needs even sides: drop a last odd row or column."""
    if codec == "gif":
        return image
    height, width = image.shape[:2]
    return image[: height - height % 2, : width - width % 2]


def write_video(
    path: str | os.PathLike,
    frames: Iterable[PIL.Image.Image],
    fps: Fraction,
    audio_from: Path | None = None,
    fingerprint: str | None = None,
) -> Path:
    """Encode RGB frames to a video file atomically; with `audio_from`, add that file's sound,
    cut to the frames' duration. Returns the path written. `path` ends in one of VIDEO_CODECS'
    extensions, which says how it is encoded. `fingerprint` (a finished ClipJob's) goes into the
    file's comment, where `video_fingerprint` finds it."""
    target = as_path(path, "path", "a video file name").expanduser().resolve()
    suffix = target.suffix.lower()
    codec = _codec(target, "path")
    _check_fps(fps)
    if audio_from is not None:
        audio_from = as_path(audio_from, "audio_from", "a video file with sound, or None")
    av = av_module()
    temp = _temp_next_to(target)
    try:
        comment = None if fingerprint is None else _FINGERPRINT_MARK + fingerprint
        count = _encode(av, temp, codec, AUDIO_CODECS.get(suffix), frames, fps, audio_from, comment)
        if count == 0:
            raise ImpastoError(f"no frames to write to {target}")
        os.replace(temp, target)
    except BaseException as exc:
        temp.unlink(missing_ok=True)
        if isinstance(exc, (av.FFmpegError, OSError)):
            raise ImpastoError(f"cannot write video {target} ({_reason(exc)})") from None
        raise
    return target


def _encode(
    av,
    path: Path,
    codec: str,
    audio_codec: str | None,
    frames: Iterable[PIL.Image.Image],
    fps: Fraction,
    audio_from: Path | None,
    comment: str | None = None,
) -> int:
    if isinstance(frames, PIL.Image.Image) or not isinstance(frames, Iterable):
        raise ImpastoError(f"frames must be an iterable of PIL images, got {type(frames).__name__}")
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        return 0
    first = _picture(first)
    if codec == "gif":
        return _write_gif(path, first, frames, fps, comment)
    with av.open(str(path), "w") as out:
        if comment is not None:
            out.metadata["comment"] = comment
        video = out.add_stream(codec, rate=fps)
        height, width = _even(np.asarray(first), codec).shape[:2]
        video.width, video.height, video.pix_fmt = width, height, _PIXEL_FORMATS.get(codec, "yuv420p")
        video.options = dict(_CODEC_OPTIONS.get(codec, {}))
        source = av.open(str(audio_from)) if audio_from is not None else None
        try:
            sound = None
            if source is not None and source.streams.audio and audio_codec is not None:
                rate = source.streams.audio[0].rate or 48000
                sound = out.add_stream(audio_codec, rate=48000 if audio_codec == "libopus" else rate)
            count = 0
            for count, image in enumerate(_chain(first, frames), start=1):
                frame = av.VideoFrame.from_ndarray(_even(np.asarray(_picture(image)), codec), format="rgb24")
                frame.pts = count - 1
                out.mux(video.encode(frame))
            out.mux(video.encode())
            if sound is not None:
                _copy_audio(source, sound, out, float(count / fps))
        finally:
            if source is not None:
                source.close()
    return count


def _picture(image: object) -> PIL.Image.Image:
    """A frame to write, in RGB; an ImpastoError for what is not a PIL image."""
    if not isinstance(image, PIL.Image.Image):
        raise ImpastoError(
            f"frames must be PIL images, got a {type(image).__name__}; "
            "convert tensors with impasto.images.tensor_to_pil"
        )
    return image.convert("RGB")


def _write_gif(
    path: Path, first: PIL.Image.Image, rest: Iterator[PIL.Image.Image], fps: Fraction, comment: str | None = None
) -> int:
    frames = [first, *(_picture(image) for image in rest)]
    extra = {} if comment is None else {"comment": comment}
    frames[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=frames[1:],
        loop=0,
        duration=max(20, round(1000 / fps)),
        **extra,
    )
    return len(frames)


_FINGERPRINT_MARK = "impasto video job "


def video_fingerprint(path: str | os.PathLike) -> str | None:
    """The fingerprint of the finished job that wrote this video (see write_video), or None: not
    a video impasto finished, or not readable."""
    path = Path(path)
    if not path.is_file():
        return None
    comment: Any = None
    try:
        if path.suffix.lower() == ".gif":
            with PIL.Image.open(path) as gif:
                comment = gif.info.get("comment")
        else:
            with av_module().open(str(path)) as video:
                comment = next((v for k, v in video.metadata.items() if k.lower() == "comment"), None)
    except Exception:  # a probe: any file that is not such a video (or no PyAV) is None
        return None
    if isinstance(comment, bytes):
        comment = comment.decode("utf-8", "replace")
    if isinstance(comment, str) and comment.startswith(_FINGERPRINT_MARK):
        return comment[len(_FINGERPRINT_MARK) :]
    return None


def _chain(first, rest):
    yield first
    yield from rest


def _copy_audio(source, sound, out, seconds: float) -> None:
    """Re-encode the source's first audio track into `sound`, up to `seconds`."""
    stream = source.streams.audio[0]
    for frame in source.decode(stream):
        if frame.time is not None and frame.time >= seconds:
            break
        frame.pts = None  # the encoder numbers the samples afresh from 0
        out.mux(sound.encode(frame))
    out.mux(sound.encode())


def check_video_output(path: str | os.PathLike, size: tuple[int, int], fps: Fraction) -> Path:
    """The output video's path, once a two-frame test clip of this size and codec was written next
    to it (so a codec PyAV cannot write fails before the work, not after)."""
    target = as_path(path, "path", "a video file name").expanduser().resolve()
    codec = _codec(target, "path")
    if target.is_dir():
        raise ImpastoError(f"output {target} is a folder; give a video file name or a folder without an extension")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImpastoError(f"output {target}: cannot create folder {target.parent} ({_reason(exc)})") from None
    av = av_module()
    probe = _temp_next_to(target)
    black = PIL.Image.new("RGB", size)
    try:
        with open(probe, "xb"):  # the folder first: a codec's errors and the folder's look alike
            pass
    except OSError as exc:
        raise ImpastoError(
            f"output {target}: cannot write in {target.parent} ({_reason(exc)}); choose another folder"
        ) from None
    try:
        _encode(av, probe, codec, None, [black, black], fps, None)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise ImpastoError(
            f"output {target}: PyAV cannot write {codec} video here ({_reason(exc)}); "
            f"use another extension: {', '.join(VIDEO_CODECS)}"
        ) from None
    finally:
        probe.unlink(missing_ok=True)
    return target


# --- finished frames and resuming ---------------------------------------------------------------


def _names(names: object) -> tuple[str, ...]:
    """Frame file names as a tuple (one str is one name); an ImpastoError for anything else."""
    if isinstance(names, str):
        return (names,)
    if not isinstance(names, Iterable) or isinstance(names, bytes):
        raise ImpastoError(f"names must be a sequence of frame file names (Clip.names), got {type(names).__name__}")
    found = tuple(names)
    odd = next((n for n in found if not isinstance(n, str)), None)
    if odd is not None:
        raise ImpastoError(f"names must be frame file names (str, as in Clip.names), but holds {type(odd).__name__}")
    return found


class FrameStore:
    """A folder of finished frames (PNG or the input's format), with a manifest recording which
    job they belong to and how many are done, so a stopped job resumes after the last one."""

    def __init__(
        self, folder: str | os.PathLike, names: Sequence[str], fingerprint: str, restart: bool = False
    ) -> None:
        self.folder = as_path(folder, "folder", "the folder of finished frames").expanduser()
        self.names = _names(names)
        if not isinstance(fingerprint, str):
            raise ImpastoError(f"fingerprint must be a str (ClipJob.fingerprint()), got {type(fingerprint).__name__}")
        self.fingerprint = fingerprint
        self._check_folder()
        if restart:
            self._forget_earlier_job()
        self.done = 0 if restart else self._resumable()

    def _check_folder(self) -> None:
        if self.folder.exists() and not self.folder.is_dir():
            raise ImpastoError(f"output {self.folder} is a file; give a folder or a video file name")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ImpastoError(f"output: cannot create folder {self.folder} ({_reason(exc)})") from None
        if not os.access(self.folder, os.W_OK | os.X_OK):
            raise ImpastoError(f"output folder {self.folder} is not writable; choose another folder")

    def _resumable(self) -> int:
        """Frames already done by this same job; an error if the folder holds another job's frames."""
        manifest = self.folder / MANIFEST
        if manifest.exists():
            try:
                record = json.loads(manifest.read_text())
            except (OSError, ValueError):
                record = {}
            if record.get("fingerprint") != self.fingerprint:
                raise ImpastoError(
                    f"output folder {self.folder} holds frames of another job (other input, styles "
                    "or options); choose another output or pass restart to start over"
                )
            done = int(record.get("done", 0))
            while done and not (self.folder / self.names[done - 1]).exists():
                done -= 1
            return done
        clash = next((n for n in self.names if (self.folder / n).exists()), None)
        if clash is not None:
            raise ImpastoError(
                f"output folder {self.folder} already has {clash}, not written by impasto video; "
                "choose an empty folder or pass restart to overwrite"
            )
        return 0

    def _forget_earlier_job(self) -> None:
        """Remove the frames an earlier job wrote here (its manifest names them), so that a clip
        with other names does not leave them beside the new ones. Nothing else is touched."""
        manifest = self.folder / MANIFEST
        try:
            record = json.loads(manifest.read_text()) if manifest.exists() else {}
            names = record.get("names") if isinstance(record, dict) else None
            done = int(record.get("done", 0))
        except (OSError, ValueError, TypeError):
            return
        if not isinstance(names, list):
            return  # none, or a manifest from before it named its frames
        for name in names[:done]:
            if isinstance(name, str) and name == Path(name).name and name not in self.names:
                (self.folder / name).unlink(missing_ok=True)
        self.done = 0
        self._write_manifest()  # now this job's, with nothing done: the earlier job is gone

    def path(self, index: int) -> Path:
        return self.folder / self.names[index]

    def save(self, index: int, image: PIL.Image.Image) -> None:
        """Write frame `index` and record it done (frames are written in order)."""
        from ..images import save_image

        save_image(image, self.path(index))
        self.done = index + 1
        self._write_manifest()

    def load(self, index: int) -> PIL.Image.Image:
        return read_image(self.path(index), f"finished frame {self.path(index)}")

    def _write_manifest(self) -> None:
        record = {"fingerprint": self.fingerprint, "done": self.done, "frames": len(self.names), "names": self.names}
        temp = self.folder / f"{MANIFEST}.{secrets.token_hex(4)}.tmp"
        temp.write_text(json.dumps(record))
        os.replace(temp, self.folder / MANIFEST)

    def finished(self) -> Iterator[PIL.Image.Image]:
        """The frames done so far, in order."""
        for index in range(self.done):
            yield self.load(index)
