"""The video job: a clip styled frame by frame on shared style targets, without flicker.

Ruder, Dosovitskiy & Brox, "Artistic style transfer for videos" (GCPR 2016): the first frame is
painted in full; each later frame starts from the previous stylised frame warped into it along
the optical flow (pixels the flow cannot vouch for start from the content frame), and adds a
temporal loss that keeps it close to that warped frame where the flow is reliable. Later frames
start almost finished, so they get far fewer iterations, at the full size only.

Departures from the paper: DIS flow (OpenCV) instead of DeepFlow/EpicFlow, so nothing is
downloaded and a frame's flow takes milliseconds; the later frames' steps default to a fifth of
the first frame's work instead of a fixed 1000 (the warped start is already stylised); and the
temporal loss is computed at each coarse-to-fine scale of the frame, on flows scaled to it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import PIL.Image
import torch

from .. import color
from ..config import StyleConfig
from ..engine import Painter, Progress, StylizeResult, check_image_tensor, scale_sizes, split_iterations
from ..errors import ImpastoError
from ..images import fit_longest, pil_to_tensor, read_image, read_mask, resize_image, tensor_to_pil
from ..metadata import sha256_of
from ..vgg import VGG
from .clip import Clip, FrameStore
from .flow import opencv, optical_flow, reliability, warp
from .options import VideoConfig
from .temporal import Constraint, TemporalLoss, long_term_weights

MaskInput = torch.Tensor | Sequence[os.PathLike | str] | None
"""A style's mask: one (1, 1, H, W) tensor for every frame, one mask file per frame, or none."""

# Options that change how fast a run is, not what it paints: a resumed job may change them.
_RUNTIME_OPTIONS = ("device", "threads", "tile", "max_memory", "winograd")


def later_iterations(config: StyleConfig) -> int:
    """A fifth of the first frame's work, counted in steps at the full size (a coarse step at half
    the size costs a quarter of one): a later frame then takes about a quarter of the first's time,
    with its flows and set-up."""
    sizes = scale_sizes(config.size, config.scales, config.min_size)
    counts = split_iterations(config.iterations, sizes)
    work = sum(n * (s / config.size) ** 2 for n, s in zip(counts, sizes))
    return max(1, round(work / 5))


@dataclass(frozen=True)
class FrameProgress:
    """What the job reports: a step of frame `index` (0-based), or (step None) that frame done."""

    index: int
    count: int
    name: str
    step: Progress | None
    seconds: float | None = None  # the frame's time, once it is done


@dataclass
class ClipResult:
    """How far the clip got and what each frame painted in this run took (seconds, by index)."""

    done: int
    count: int
    seconds: dict[int, float]
    interrupted: bool

    @property
    def first_seconds(self) -> float | None:
        return self.seconds.get(0)

    @property
    def later_seconds(self) -> list[float]:
        return [s for i, s in sorted(self.seconds.items()) if i > 0]


FrameCallback = Callable[[FrameProgress], object]


def _check_parts(clip: object, config: object, video: object, network: object) -> None:
    """An ImpastoError naming the first of a job's parts that is not of the kind ClipJob takes."""
    if not isinstance(clip, Clip):
        raise ImpastoError(f"clip must be a Clip, got {type(clip).__name__}; open one with open_clip(path)")
    if config is not None and not isinstance(config, StyleConfig):
        raise ImpastoError(f"config must be a StyleConfig, got {type(config).__name__}; use StyleConfig(**options)")
    if video is not None and not isinstance(video, VideoConfig):
        raise ImpastoError(f"video must be a VideoConfig, got {type(video).__name__}; use VideoConfig(**options)")
    if network is not None and not isinstance(network, VGG):
        raise ImpastoError(f"network must be an impasto VGG (VGG.load() or VGG.random()), got {type(network).__name__}")


def _styles(styles: object) -> list[torch.Tensor]:
    """The style images as a list (one tensor is one style), checked before any frame is painted."""
    if isinstance(styles, torch.Tensor):
        styles = [styles]
    if not isinstance(styles, Sequence) or isinstance(styles, str):
        raise ImpastoError(f"styles must be a list of (1, 3, H, W) image tensors, got {type(styles).__name__}")
    if not styles:
        raise ImpastoError("styles is empty; give at least one style image")
    for i, style in enumerate(styles, start=1):
        check_image_tensor(style, f"style {i}")
    return list(styles)


def _masks(masks: object, count: int, frames: int) -> list[MaskInput]:
    """One mask input per style, each a (1, 1, H, W) tensor, one mask file per frame, or None."""
    if masks is None:
        return [None] * count
    if isinstance(masks, (str, bytes, torch.Tensor)) or not isinstance(masks, Sequence):
        raise ImpastoError(f"masks must be a list with one mask (or None) per style, got {type(masks).__name__}")
    if len(masks) != count:
        raise ImpastoError(
            f"got {len(masks)} style masks for {count} style images; "
            "give one mask (or one folder of masks) per style, in the same order"
        )
    for i, mask in enumerate(masks, start=1):
        if mask is None:
            continue
        if isinstance(mask, torch.Tensor):
            check_image_tensor(mask, f"style mask {i}", channels=1)
        elif isinstance(mask, (str, bytes, os.PathLike)) or not isinstance(mask, Sequence):
            raise ImpastoError(
                f"style mask {i} must be a (1, 1, H, W) tensor, a list of one mask file per frame, or None; "
                f"got {type(mask).__name__} (list a folder's masks with impasto.video.clip.image_files)"
            )
        elif len(mask) != frames:
            folders = {Path(p).parent for p in mask}
            where = f"folder {folders.pop()}" if len(folders) == 1 else f"{i}"
            raise ImpastoError(f"style mask {where} has {len(mask)} masks for {frames} frames; give one mask per frame")
        elif any(not isinstance(p, (str, os.PathLike)) for p in mask):
            raise ImpastoError(f"style mask {i} must list mask files (str or Path), one per frame")
    return list(masks)


class ClipJob:
    """Styles a clip into a FrameStore, resuming after the frames the store already holds.

    `clip` comes from open_clip; `styles` are (1, 3, H, W) tensors (at least one); `masks`, one
    per style, a mask tensor for every frame, a sequence of one mask file per frame, or None. One
    network serves every frame; the style targets are computed once per size, also with
    per-frame masks (Painter.variant).
    `independent` paints every frame alone, as the first: the flickering baseline the report
    compares with.
    """

    def __init__(
        self,
        clip: Clip,
        styles: Sequence[torch.Tensor],
        *,
        masks: Sequence[MaskInput] | None = None,
        config: StyleConfig | None = None,
        video: VideoConfig | None = None,
        network: VGG | None = None,
        independent: bool = False,
    ) -> None:
        _check_parts(clip, config, video, network)
        self.clip, self.styles = clip, _styles(styles)
        self.independent = independent
        if not independent:
            opencv()  # needed from the second frame on: a missing extra is an error before the work
        self.config, self.video = config or StyleConfig(), video or VideoConfig()
        self.masks = _masks(masks, len(self.styles), clip.count)
        self.size = fit_longest(*clip.size, self.config.size)  # (width, height) of every output frame
        later = self.video.later_iterations
        self.later_config = self.config.replace(
            iterations=later if later is not None else later_iterations(self.config),
            scales=1,
            tolerance=self.video.later_tolerance,
            init="content",
        )
        self.network = network
        self._painters: dict[bool, Painter] = {}
        self._reference: torch.Tensor | None = None

    # --- what a resumed job must match ---------------------------------------------------------

    def fingerprint(self) -> str:
        """A digest of everything that decides the frames: input, styles, masks and options."""
        digest = hashlib.sha256()
        options = {k: v for k, v in dataclasses.asdict(self.config).items() if k not in _RUNTIME_OPTIONS}
        video = None if self.independent else dataclasses.asdict(self.video)  # frames alone ignore it
        identity = [str(self.clip.path), self.clip.count, list(self.clip.size), options, video, self.independent]
        digest.update(json.dumps(identity, sort_keys=True, default=str).encode())
        digest.update(self.clip.digest.encode())  # its bytes, not only its name
        for style in self.styles:
            digest.update(style.detach().float().cpu().contiguous().numpy().tobytes())
        for mask in self.masks:
            if isinstance(mask, torch.Tensor):
                digest.update(mask.detach().float().cpu().contiguous().numpy().tobytes())
            elif mask is not None:
                digest.update(json.dumps([os.fspath(p) for p in mask]).encode())
                digest.update(" ".join(sha256_of(p) for p in mask).encode())
        return digest.hexdigest()[:32]

    # --- painters ------------------------------------------------------------------------------

    def frame(self, image: PIL.Image.Image) -> torch.Tensor:
        """A frame of the clip as a tensor at the output's size."""
        width, height = self.size
        return resize_image(pil_to_tensor(image), height, width)

    def _frame_masks(self, index: int) -> list[torch.Tensor | None]:
        return [
            m
            if m is None or isinstance(m, torch.Tensor)
            else pil_to_tensor(read_mask(m[index], f"style mask {i + 1} of frame {index + 1}"))
            for i, m in enumerate(self.masks)
        ]

    def painter(self, later: bool = False, index: int = 0) -> Painter:
        """The painter of frame `index`: the first frame's, or the later frames' (fewer steps, one
        scale). Every frame's painter shares the first one's network and style targets."""
        if False not in self._painters:
            if self._reference is None and self.config.preserve_color != "none":
                self._reference = self.frame(next(self.clip.frames(0)))  # the whole clip keeps frame 1's colours
            self._painters[False] = Painter(
                self.styles,
                masks=self._frame_masks(0),
                config=self.config,
                network=self.network,
                color_reference=self._reference,
            )
            self.network = self._painters[False].network
        base = self._painters[False]
        if later and True not in self._painters:
            self._painters[True] = base.variant(config=self.later_config)
        painter = self._painters[later]
        if any(m is not None and not isinstance(m, torch.Tensor) for m in self.masks):
            painter = painter.variant(masks=self._frame_masks(index))
        return painter

    def _space(self, image: torch.Tensor) -> torch.Tensor:
        """An image in the pixels the optimiser works on (luminance only, with luminance transfer)."""
        if self.config.preserve_color == "luminance":
            return color.luminance(image).clamp(0, 1).expand(-1, 3, -1, -1).contiguous()
        return image

    # --- one frame -----------------------------------------------------------------------------

    def paint_first(
        self,
        content: torch.Tensor,
        stop: threading.Event | None = None,
        callback: Callable[[Progress], object] | None = None,
        index: int = 0,
    ) -> StylizeResult:
        """The first frame (or any frame alone), painted in full."""
        init = None
        if self.config.init not in ("content", "noise", "style"):
            init = pil_to_tensor(read_image(self.config.init, "start image"))
        return self.painter(False, index).paint(content, init=init, stop=stop, callback=callback)

    def temporal_term(
        self, content: torch.Tensor, earlier: Sequence[tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[TemporalLoss, torch.Tensor]:
        """The temporal loss of a frame and its start image, from (content, stylised) pairs of the
        earlier frames it is held to, nearest first (the first is the previous frame). On the CPU,
        where the flow is computed: the loss moves what it holds to the image's device."""
        content = content.detach().cpu()
        earlier = [(c.detach().cpu(), s.detach().cpu()) for c, s in earlier]
        flows, weights = [], []
        for earlier_content, _ in earlier:
            backward = optical_flow(content, earlier_content)
            forward = optical_flow(earlier_content, content)
            flows.append(backward)
            weights.append(reliability(backward, forward))
        constraints = [
            Constraint(self._space(stylised), flow, w)
            for (_, stylised), flow, w in zip(earlier, flows, long_term_weights(weights))
        ]
        seen = weights[0]
        start = seen * warp(self._space(earlier[0][1]), flows[0], "bicubic") + (1 - seen) * self._space(content)
        return TemporalLoss(constraints, self.video.temporal_weight), start.clamp(0, 1)

    def paint_later(
        self,
        index: int,
        content: torch.Tensor,
        earlier: Sequence[tuple[torch.Tensor, torch.Tensor]],
        stop: threading.Event | None = None,
        callback: Callable[[Progress], object] | None = None,
    ) -> StylizeResult:
        """A later frame: from the previous stylised frame warped into it, held there by the temporal loss."""
        term, start = self.temporal_term(content, earlier)
        return self.painter(True, index).paint(content, init=start, terms=[term], stop=stop, callback=callback)

    # --- the clip ------------------------------------------------------------------------------

    def run(
        self, store: FrameStore, stop: threading.Event | None = None, callback: FrameCallback | None = None
    ) -> ClipResult:
        """Style the frames `store` does not have yet, in order (it should be made with this job's
        fingerprint). Stops between steps when `stop` is set or `callback` returns False: the frame
        under way is dropped, the finished ones are kept."""
        if not isinstance(store, FrameStore):
            raise ImpastoError(
                f"store must be a FrameStore, got {type(store).__name__}; "
                "use FrameStore(folder, clip.names, job.fingerprint())"
            )
        if stop is not None and not callable(getattr(stop, "is_set", None)):
            raise ImpastoError(f"stop must be a threading.Event (or None), got {type(stop).__name__}")
        if callback is not None and not callable(callback):
            raise ImpastoError(
                f"callback must be a function of a FrameProgress (or None), got {type(callback).__name__}"
            )
        stop = stop or threading.Event()
        clip, window = self.clip, max(self.video.long_term)
        begin = store.done
        seconds: dict[int, float] = {}
        contents: dict[int, torch.Tensor] = {}
        outputs: dict[int, torch.Tensor] = {}
        first_read = max(0, begin - window)
        try:
            for index, image in enumerate(clip.frames(first_read), start=first_read):
                if index >= clip.count or stop.is_set():
                    break
                contents[index] = content = self.frame(image)
                for old in [i for i in contents if i < index - window]:
                    contents.pop(old, None)
                    outputs.pop(old, None)
                if index < begin:
                    outputs[index] = pil_to_tensor(store.load(index))
                    continue
                started = time.perf_counter()
                result = self._paint(index, content, contents, outputs, stop, callback)
                if result.interrupted:
                    break
                picture = tensor_to_pil(result.tensor)
                store.save(index, picture)
                outputs[index] = pil_to_tensor(picture)  # what a resumed run reads back
                seconds[index] = time.perf_counter() - started
                if (
                    callback is not None
                    and callback(FrameProgress(index, clip.count, clip.names[index], None, seconds[index])) is False
                ):
                    stop.set()
        except KeyboardInterrupt:
            pass
        return ClipResult(store.done, clip.count, seconds, store.done < clip.count)

    def _paint(
        self,
        index: int,
        content: torch.Tensor,
        contents: dict[int, torch.Tensor],
        outputs: dict[int, torch.Tensor],
        stop: threading.Event,
        callback: FrameCallback | None,
    ) -> StylizeResult:
        def step(progress: Progress) -> object:
            if callback is None:
                return None
            return callback(FrameProgress(index, self.clip.count, self.clip.names[index], progress))

        if index == 0 or self.independent:
            return self.paint_first(content, stop, step, index=index)
        earlier = [(contents[index - o], outputs[index - o]) for o in self.video.long_term if index - o >= 0]
        return self.paint_later(index, content, earlier, stop, step)
