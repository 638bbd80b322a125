"""What the studio page runs: one painting job on the shared network, reported in frames.

No Gradio here. The page turns its widgets into a `Job` (file paths, weights, painted masks and a
StyleConfig); `Studio.paint` reads the files, paints on the engine and yields `Frame`s: a preview
about once a second while it works, then the full image and a PNG that carries its settings. A
stop keeps the image so far. Every problem with the input is a one-line ImpastoError that names
the file by the name the user gave it.
"""

from __future__ import annotations

import io
import math
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image
import torch

from ..config import StyleConfig
from ..engine import Painter, Progress, Run, StylizeResult
from ..errors import ImpastoError
from ..images import fit_longest, pil_to_tensor, read_image, read_mask
from ..metadata import InputSource, save_png_with_settings, settings_record
from ..provenance.record import run_facts
from ..vgg import VGG

STYLE_COLOURS = ("#dd2e44", "#1f77b4", "#e8a317", "#8e44ad")  # one per style: brush, regions, legend
EDITOR_CANVAS = (1200, 800)  # the picture masks are painted on: the content fitted in, centred (editor_background)
PREVIEW_SIDE = 384  # longest side of the previews sent while a run works
MASK_OPACITY = 0.6  # how strongly a painted or uploaded mask shows over the photo in the editor
ASPECT_TOLERANCE = 0.02


@dataclass(frozen=True)
class StyleInput:
    """One style: its uploaded file, its blend weight, and where it applies (None: everywhere)."""

    path: str
    weight: float = 1.0
    mask: PIL.Image.Image | None = None  # L, white = this style


@dataclass(frozen=True)
class Job:
    """Everything one run needs, as the page collected it."""

    content: str
    styles: Sequence[StyleInput]
    config: StyleConfig


@dataclass(frozen=True)
class Frame:
    """What the page shows after a step of a job."""

    status: str
    history: list[dict[str, float]] = field(default_factory=list)
    preview: PIL.Image.Image | None = None  # downscaled image so far, while running
    image: PIL.Image.Image | None = None  # the full image, at the end
    download: Path | None = None  # the PNG with its settings, at the end
    masks: tuple[Path, ...] = ()  # the painted masks it names, saved beside it, at the end


def read_upload(path: str | None, what: str) -> PIL.Image.Image:
    """An uploaded image as RGB, or an ImpastoError that names the file as the user knows it."""
    if not path:
        raise ImpastoError(f"no {what} given; upload one")
    try:
        return read_image(path, what)
    except ImpastoError as error:
        raise ImpastoError(str(error).replace(str(path), Path(path).name)) from None


def read_mask_upload(path: str, what: str) -> PIL.Image.Image:
    """An uploaded mask as L (white = the style applies), errors naming the file as above."""
    try:
        return read_mask(path, what)
    except ImpastoError as error:
        raise ImpastoError(str(error).replace(str(path), Path(path).name)) from None


def editor_background(content: PIL.Image.Image) -> PIL.Image.Image:
    """The content as the mask editors show it: fitted into EDITOR_CANVAS, centred, clear around it.

    Every editor picture has that one size, at least the editor's canvas_size (800×800) both
    ways. Gradio 6.31's editor centres a layer it is sent on the area its picture and its brush
    cover, and the brush keeps the size of the canvas, or of an earlier larger picture, until a
    stroke; so a layer lands on the picture only if nothing was ever larger than the picture.
    """
    (width, height), (canvas_width, canvas_height) = content.size, EDITOR_CANVAS
    scale = min(canvas_width / width, canvas_height / height)
    size = min(canvas_width, max(1, round(width * scale))), min(canvas_height, max(1, round(height * scale)))
    picture = PIL.Image.new("RGBA", EDITOR_CANVAS)
    picture.paste(
        content.convert("RGB").resize(size, PIL.Image.Resampling.LANCZOS),
        ((canvas_width - size[0]) // 2, (canvas_height - size[1]) // 2),
    )
    return picture


def picture_layers(layers: Sequence[np.ndarray], background: np.ndarray | None) -> list[np.ndarray]:
    """An editor's layers cut to its picture: the opaque part of its background (RGBA arrays).

    A layer of another size than the background is left as it is (an API client's mask).
    """
    if background is None:
        return list(layers)
    top, bottom, left, right = _picture_box(background)
    return [
        layer[top:bottom, left:right] if layer is not None and layer.shape[:2] == background.shape[:2] else layer
        for layer in layers
    ]


def _picture_box(background: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the opaque part of an editor's background: all of it if none is clear."""
    alpha = background[..., 3] if background.ndim == 3 and background.shape[2] == 4 else None
    box = None if alpha is None else PIL.Image.fromarray(alpha).getbbox()
    left, top, right, bottom = box or (0, 0, background.shape[1], background.shape[0])
    return top, bottom, left, right


def painted_mask(layers: Sequence[np.ndarray] | None) -> PIL.Image.Image | None:
    """The area painted in an editor's layers (RGBA arrays) as an L mask, or None if none is."""
    painted = None
    for layer in layers or ():
        if layer is None or layer.ndim != 3 or layer.shape[2] != 4:
            continue
        alpha = layer[..., 3] > 0
        painted = alpha if painted is None or painted.shape != alpha.shape else painted | alpha
    if painted is None or not painted.any():
        return None
    return PIL.Image.fromarray(np.where(painted, 255, 0).astype(np.uint8))


def check_mask_shape(mask: PIL.Image.Image, content_size: tuple[int, int], what: str) -> None:
    """An ImpastoError unless the mask has the content's shape (it may differ in size)."""
    (w, h), (cw, ch) = mask.size, content_size
    if abs((w / h) / (cw / ch) - 1) > ASPECT_TOLERANCE:
        raise ImpastoError(
            f"{what} is {w}x{h} but the content is {cw}x{ch}; "
            "use a mask of the content's shape, or clear it and paint it again"
        )


def mask_layer(mask: PIL.Image.Image, background: PIL.Image.Image, colour: str) -> np.ndarray:
    """An uploaded mask as a layer over an editor's `background`: the style's colour where the
    mask is white, on the picture (see editor_background)."""
    top, bottom, left, right = _picture_box(np.asarray(background.convert("RGBA")))
    white = np.asarray(mask.resize((right - left, bottom - top), PIL.Image.Resampling.BILINEAR)) >= 128
    layer = np.zeros((background.height, background.width, 4), np.uint8)
    layer[top:bottom, left:right][white] = (*_rgb(colour), round(255 * MASK_OPACITY))
    return layer


def regions(content: PIL.Image.Image, masks: Sequence[PIL.Image.Image | None], side: int = 320) -> PIL.Image.Image:
    """Which style goes where: the content in grey, each style's area tinted with its colour.

    `masks` has one entry per style in use, None for a style that applies everywhere; an area
    no style covers keeps the content and stays grey.
    """
    size = fit_longest(*content.size, side)
    grey = np.asarray(content.convert("L").resize(size, PIL.Image.Resampling.BILINEAR), np.float32)
    base = np.repeat((110 + 0.45 * grey)[..., None], 3, axis=2)
    tint, count = np.zeros_like(base), np.zeros(base.shape[:2], np.float32)
    for mask, colour in zip(masks, STYLE_COLOURS):
        area = (
            np.ones(base.shape[:2], bool)
            if mask is None
            else np.asarray(mask.resize(size, PIL.Image.Resampling.BILINEAR)) >= 128
        )
        tint[area] += _rgb(colour)
        count[area] += 1
    covered = count > 0
    tint[covered] /= count[covered][:, None]
    out = np.where(covered[..., None], 0.35 * base + 0.65 * tint, base)
    return PIL.Image.fromarray(out.clip(0, 255).astype(np.uint8))


def _rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


class TimeLeft:
    """Time to the end of a run, fed every step.

    Within a scale it measures the time per step (after the scale's first step, which also
    computes that scale's targets); the scales still to come cost that time per step, scaled by
    their pixels. Before a scale's second step it falls back to the time per pixel so far. A
    scale that ended early (converged) counts with the steps it took.
    """

    def __init__(self, run: Run) -> None:
        self.pixels = [math.prod(run.size_at(longest)) for longest in run.sizes]
        self.counts = list(run.counts)
        self._scale: int | None = None
        self._first = (0, 0.0)  # (iteration, elapsed) at the current scale's first step
        self._work = 0  # steps times pixels of the scales before the current one

    def update(self, progress: Progress) -> float | None:
        """Seconds left after this step, or None before there is anything to go by."""
        p, index = progress, progress.scale - 1
        if p.scale != self._scale:
            if self._scale is not None:
                self._work += (p.iteration - self._first[0]) * self.pixels[self._scale - 1]
            self._scale, self._first = p.scale, (p.iteration, p.elapsed)
        taken = p.iteration - self._first[0] + 1  # steps of this scale so far
        here = max(0, self.counts[index] - taken)
        later = sum(self.counts[i] * self.pixels[i] for i in range(index + 1, len(self.counts)))
        steps, seconds = p.iteration - self._first[0], p.elapsed - self._first[1]
        if steps > 0 and seconds > 0:
            return seconds / steps * (here + later / self.pixels[index])
        done = self._work + taken * self.pixels[index]
        if p.elapsed <= 0:
            return None
        return p.elapsed / done * (here * self.pixels[index] + later)


def progress_line(progress: Progress, left: float | None) -> str:
    """Scale, size, iteration, time so far and time left, in one line."""
    p = progress
    tiles = f" in {p.tiles} tiles" if p.tiles > 1 else ""
    eta = f" · about {_duration(left)} left" if left is not None else ""
    return (
        f"Scale {p.scale} of {p.scales} · {p.size[0]}×{p.size[1]} px{tiles} · "
        f"iteration {p.iteration} of {p.total} · {_duration(p.elapsed)}{eta}"
    )


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds} s" if seconds < 90 else f"{seconds // 60} min {seconds % 60:02d} s"


def _preview(image: PIL.Image.Image) -> PIL.Image.Image:
    if max(image.size) <= PREVIEW_SIDE:
        return image
    return image.resize(fit_longest(*image.size, PREVIEW_SIDE), PIL.Image.Resampling.BILINEAR)


def _png(image: PIL.Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class Studio:
    """Paints the page's jobs on one network, loaded once per process.

    `folder` receives each result's PNG (in a folder of its own, so the file keeps a readable
    name); `preview_every` is the least time in seconds between two previews.
    """

    def __init__(
        self,
        network: VGG,
        folder: str | Path | None = None,
        *,
        preview_every: float = 1.0,
        weights_sha256: str | None = None,
    ) -> None:
        self.network = network
        self.folder = Path(folder) if folder is not None else Path(tempfile.gettempdir()) / "impasto-web"
        self.preview_every = preview_every
        self.weights_sha256 = weights_sha256
        self.device = next(network.parameters()).device.type

    def paint(self, job: Job, stop: threading.Event) -> Iterator[Frame]:
        """Frames of the job: a preview about every `preview_every` seconds, then the result."""
        content, painter = self._painter(job)
        run = painter.run(content, stop=stop)
        if stop.is_set():
            yield Frame("Stopped before it started; nothing was painted.")
            return
        width, height = run.final
        scales = f"{len(run.sizes)} scales, up to" if len(run.sizes) > 1 else "one scale,"
        yield Frame(f"Starting: {painter.config.iterations} iterations in {scales} {width}×{height} px.")
        last, time_left = -math.inf, TimeLeft(run)
        for progress in run:
            left = time_left.update(progress)
            if time.monotonic() - last >= self.preview_every:
                last = time.monotonic()
                yield Frame(progress_line(progress, left), list(run.history), preview=_preview(progress.current()))
        result = run.result()
        try:
            download, masks = self._save(job, result, painter)
        except (ImpastoError, OSError) as error:  # the picture is still shown: it is not lost
            reason = str(error) if isinstance(error, ImpastoError) else (error.strerror or str(error))
            status = f"{_closing_line(result, saved=False)} It could not be saved for download ({reason})."
            yield Frame(status, list(result.history), image=result.image)
            return
        yield Frame(_closing_line(result), list(result.history), image=result.image, download=download, masks=masks)

    def _painter(self, job: Job) -> tuple[torch.Tensor, Painter]:
        """The content as a tensor, and a Painter of the job's styles on the shared network."""
        if not job.styles:
            raise ImpastoError("no style image given; upload at least one")
        content = read_upload(job.content, "content image")
        styles = [read_upload(s.path, f"style image {i}") for i, s in enumerate(job.styles, start=1)]
        for i, s in enumerate(job.styles, start=1):
            if s.mask is not None:
                check_mask_shape(s.mask, content.size, f"style mask {i}")
        blend = tuple(s.weight for s in job.styles) if len(job.styles) > 1 else None
        content_t = pil_to_tensor(content)
        painter = Painter(
            [pil_to_tensor(s) for s in styles],
            config=job.config.replace(style_blend=blend),
            masks=[None if s.mask is None else pil_to_tensor(s.mask) for s in job.styles],
            network=self.network,
            color_reference=content_t,
        )
        return content_t, painter

    def _save(self, job: Job, result: StylizeResult, painter: Painter) -> tuple[Path, tuple[Path, ...]]:
        """The result as a PNG with its settings, and the painted masks it names beside it (so
        `impasto reproduce` finds them there), in a folder of this run's own."""
        stems = [Path(job.content).stem, *(Path(s.path).stem for s in job.styles)]
        name = re.sub(r"[^\w.-]+", "_", "-".join(stems))[:120] or "impasto"
        inputs: dict[str, InputSource] = {"content image": job.content}
        masks: list[tuple[str, bytes]] = []  # (file name, PNG bytes)
        for i, s in enumerate(job.styles, start=1):
            inputs[f"style image {i}"] = s.path
            if s.mask is not None:
                masks.append((f"{name}.mask{i}.png", _png(s.mask)))
                inputs[f"style mask {i}"] = masks[-1]
        record = settings_record(
            result.config, inputs, self.weights_sha256, device=self.device, run=run_facts(result, painter=painter)
        )
        png = save_png_with_settings(result.image, self.folder / uuid.uuid4().hex[:12] / f"{name}.png", record)
        for mask_name, data in masks:
            png.with_name(mask_name).write_bytes(data)
        return png, tuple(png.with_name(mask_name) for mask_name, _ in masks)


def _closing_line(result: StylizeResult, saved: bool = True) -> str:
    n, seconds = len(result.history), _duration(result.seconds)
    if not result.interrupted:
        return f"Done: {n} iterations in {seconds}." + (" The PNG download carries its settings." if saved else "")
    coarse = ""
    if result.upscaled and result.painted_size is not None:
        w, h = result.painted_size
        coarse = f", enlarged from {w}×{h} px, the coarse scale it had reached"
    return f"Stopped after {n} of {result.config.iterations} iterations ({seconds}); kept the image so far{coarse}."


class StopSwitches:
    """Stop switches per browser session: one for each of its runs, queued or under way.

    The page arms a switch when Run is pressed (before the job waits in the queue), so a Stop
    pressed while it waits ends it as soon as it starts, even if Run was pressed again since. A
    caller that did not arm one (an API client) gets a fresh switch when its job starts. Stop
    stops every run of its session. A session is Gradio's session hash, which may be None.
    """

    def __init__(self) -> None:
        # session -> ticket -> (switch, whether its run has started)
        self._switches: dict[str | None, dict[str, tuple[threading.Event, bool]]] = {}
        self._lock = threading.Lock()

    def arm(self, session: str | None) -> str:
        """A new switch for the session's next run; returns its ticket."""
        ticket = uuid.uuid4().hex
        with self._lock:
            self._switches.setdefault(session, {})[ticket] = (threading.Event(), False)
        return ticket

    def take(self, session: str | None, ticket: str | None) -> threading.Event:
        """The switch armed with `ticket` as its run starts, or a new one for an unknown ticket."""
        with self._lock:
            runs = self._switches.setdefault(session, {})
            if ticket is None or ticket not in runs:
                ticket = uuid.uuid4().hex
                runs[ticket] = (threading.Event(), False)
            event = runs[ticket][0]
            runs[ticket] = (event, True)
            return event

    def stop(self, session: str | None) -> str | None:
        """Stop the session's runs: "running" if one has started, "waiting" if they are all still
        in the queue (they will not start), None if the session has none."""
        with self._lock:
            runs = list(self._switches.get(session, {}).values())
        for event, _ in runs:
            event.set()
        if not runs:
            return None
        return "running" if any(started for _, started in runs) else "waiting"

    def forget(self, session: str | None, event: threading.Event) -> None:
        """Drop a run's switch once the run is over."""
        with self._lock:
            runs = self._switches.get(session, {})
            for ticket in [t for t, (e, _) in runs.items() if e is event]:
                del runs[ticket]
            if not runs:
                self._switches.pop(session, None)
