"""The engine every job shares.

A `Painter` holds what does not change from one image to the next: the network, the styles, their
masks and the Gram targets of each style size, computed once and reused by every content, frame
or tile. `Painter.run(content)` starts a `Run`: an iterator of `Progress`, one per optimiser step,
that stops when asked (`Run.stop()`, a `threading.Event`, or leaving the loop) and always has
the image so far (`Run.result()`). The engine knows nothing of files or flags: it takes tensors
(float RGB in [0, 1], (1, 3, H, W)) and a StyleConfig.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import PIL.Image
import torch

from . import color
from .config import StyleConfig
from .errors import ImpastoError
from .images import fit_longest, resize_image, resize_mask_image, tensor_to_pil, warn_if_stretched
from .losses import StyleRepresentation
from .memory import Need, Plan, memory_error, peak_bytes, plan, release_freed_memory
from .objective import Evaluation, Objective, Stopped, feature_windows
from .optim import adam, lbfgs
from .precision import resolve_precision, stalled
from .terms import ContentLoss, FeatureTerm, PixelTerm, StyleLoss, Term, TotalVariation
from .tiling import Window
from .vgg import VGG, check_layers, layer_stride


@dataclass(frozen=True)
class Progress:
    """What a run reports after every optimiser step.

    `iteration` counts the steps taken so far, over all scales, from 1; `total` is the steps
    taken before this scale plus those planned from it on, so it shrinks when a coarse scale
    ends early (converged). `scale` of `scales` is the scale being optimised, at `size`
    (width, height) in `tiles` windows (1: untiled); `losses` are the weighted terms by name and
    "total"; `elapsed` is seconds since the run started; `current()` makes the image so far (a
    PIL image; it costs a copy, so call it only when you want it); `precision` is the network
    pass's arithmetic this step (fp32, bf16 or fp16).
    """

    iteration: int  # 1-based: the steps taken so far, over all scales
    total: int  # the steps taken before this scale plus those planned from it on (less when a scale ends early)
    scale: int  # 1-based index of the current scale
    scales: int
    size: tuple[int, int]  # (width, height) being optimised now
    losses: dict[str, float]  # weighted terms by name, and "total"
    elapsed: float  # seconds since the run started
    current: Callable[[], PIL.Image.Image] = field(repr=False)  # the image so far, on request
    tiles: int = 1  # windows this scale is computed in (1 = untiled)
    precision: str = "fp32"  # of the network pass this step: fp32, bf16 or fp16 (see impasto.precision)


ProgressCallback = Callable[[Progress], Any]
"""Called after every step; returning False stops the run (None or anything else goes on)."""


@dataclass
class StylizeResult:
    """The stylised image, the loss after every step, and how the run ended.

    `tensor` is (1, 3, H, W) RGB in [0, 1] on the CPU, and `image` the same as a PIL image;
    `history` has one dict of weighted loss terms (and "total") per step; `config` is the
    resolved StyleConfig; `seconds` the run's wall time; `interrupted` whether it stopped early
    (the image is then the one so far, `upscaled` if enlarged from a coarser scale);
    `peak_memory` in bytes where it can be told.
    """

    tensor: torch.Tensor  # (1, 3, H, W) RGB in [0, 1], on the CPU
    history: list[dict[str, float]]
    config: StyleConfig
    seconds: float
    interrupted: bool = False
    peak_memory: int | None = None  # bytes: max RSS on the CPU, max allocated on CUDA
    painted_size: tuple[int, int] | None = None  # (width, height) of the last scale reached

    @property
    def image(self) -> PIL.Image.Image:
        """The result as an 8-bit RGB PIL image."""
        return tensor_to_pil(self.tensor)

    @property
    def upscaled(self) -> bool:
        """Whether the run stopped at a coarser scale, so the image is an enlargement of that scale."""
        return self.painted_size is not None and self.painted_size != (self.tensor.shape[-1], self.tensor.shape[-2])


def _picture(image: torch.Tensor) -> PIL.Image.Image:
    return tensor_to_pil(image.cpu())


def resolve_device(name: str) -> torch.device:
    """cpu, cuda, mps, or auto (the first of cuda, mps, cpu that is available)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ImpastoError("device cuda: no CUDA GPU is available to PyTorch; use device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ImpastoError("device mps: Apple's MPS backend is not available; use device cpu or auto")
    if name not in ("cpu", "cuda", "mps"):
        raise ImpastoError(f"device {name!r} is not one of: auto, cpu, cuda, mps")
    return torch.device(name)


def scale_sizes(size: int, scales: int, min_size: int) -> list[int]:
    """Longest sides of the coarse-to-fine schedule: halving from `size`, none below `min_size`."""
    sizes = [size]
    while len(sizes) < scales and sizes[0] // 2 >= min_size:
        sizes.insert(0, sizes[0] // 2)
    return sizes


def split_iterations(total: int, sizes: Sequence[int]) -> list[int]:
    """Iterations per scale: each scale gets half as many as the one below it, most where cheap."""
    shares = [2.0 ** (len(sizes) - 1 - i) for i in range(len(sizes))]
    counts = [math.floor(total * s / sum(shares)) for s in shares]
    counts[0] += total - sum(counts)
    return counts


def style_layers_for(config: StyleConfig, network: VGG) -> tuple[str, ...]:
    """The configured style layers, or every conv layer's ReLU in all-layers mode."""
    if config.all_conv_layers:
        return tuple("relu" + name[4:] for name in network.conv_layers)
    check_layers(config.style_layers, network.layer_names, "style_layers")
    return tuple(sorted(config.style_layers, key=network.layer_names.index))


# The options a style target depends on (besides the style and its size): equal in two configs,
# their painters can share targets.
_TARGET_OPTIONS = (
    "style_layers",
    "all_conv_layers",
    "activation_shift",
    "correlation_chain",
    "layer_weighting",
    "style_layer_weights",
    "style_blend",
    "preserve_color",
    "histogram_method",
    "device",
    "precision",
    "weights",
    "weights_format",
    "pooling",
)


def _target_options(config: StyleConfig) -> tuple[Any, ...]:
    return tuple(getattr(config, name, None) for name in _TARGET_OPTIONS)


def build_network(config: StyleConfig, device: torch.device) -> VGG:
    """The VGG network that config names, on a device."""
    return VGG.load(config.weights, config.weights_format, config.pooling, config.winograd).to_device(device)


def check_image_tensor(image: torch.Tensor, what: str, channels: int = 3) -> None:
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[:2] != (1, channels):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        reader = "read_image_tensor" if channels == 3 else "read_mask_tensor"
        how = "" if isinstance(image, torch.Tensor) else f"; read a path or PIL image with impasto.images.{reader}"
        raise ImpastoError(f"{what} must be a (1, {channels}, H, W) tensor, got {shape}{how}")
    if not image.is_floating_point():
        raise ImpastoError(f"{what} must be a float tensor in [0, 1], got {image.dtype}; divide 8-bit values by 255")
    low, high = image.aminmax()
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ImpastoError(f"{what} holds values that are not finite (NaN or infinity)")
    if low < -1e-3 or high > 1 + 1e-3:
        raise ImpastoError(
            f"{what} must hold values in [0, 1], got {float(low):.3g} to {float(high):.3g}; divide 8-bit values by 255"
        )


def check_options(config: object, network: object = None) -> StyleConfig:
    """`config`, once it and `network` are of the kinds the engine takes; else one ImpastoError."""
    if not isinstance(config, StyleConfig):
        raise ImpastoError(f"config must be a StyleConfig, got {type(config).__name__}; use StyleConfig(**options)")
    if network is not None and not isinstance(network, VGG):
        raise ImpastoError(f"network must be an impasto VGG (VGG.load() or VGG.random()), got {type(network).__name__}")
    return config


def _checked_terms(terms: Sequence[Term]) -> list[Term]:
    """Extra terms as a list, once each is a FeatureTerm or PixelTerm with a name of its own."""
    if isinstance(terms, (FeatureTerm, PixelTerm)):
        terms = [terms]
    if not isinstance(terms, Iterable) or isinstance(terms, (str, bytes)):
        raise ImpastoError(f"terms must be a list of impasto.terms terms, got {type(terms).__name__}")
    taken = {"total", "content", "style", "tv"}  # the built-in terms' names, and the sum's
    out = []
    for term in terms:
        if not isinstance(term, (FeatureTerm, PixelTerm)):
            raise ImpastoError(
                f"terms must be FeatureTerm or PixelTerm objects (impasto.terms), got {type(term).__name__}"
            )
        name = getattr(term, "name", None)
        if not isinstance(name, str) or not name:
            raise ImpastoError(f"a term of type {type(term).__name__} has no name; set its name (a str)")
        if name in taken:
            raise ImpastoError(f"a term may not be named {name!r}, which is taken; give it a name of its own")
        taken.add(name)
        out.append(term)
    return out


class _StopSignal:
    """A run's stop: its own, set by Run.stop(), or the caller's event, which is read, never set
    (so the caller can reuse it)."""

    def __init__(self, caller: Any = None) -> None:
        if caller is not None and not callable(getattr(caller, "is_set", None)):
            raise ImpastoError(f"stop must be a threading.Event (or have is_set()), got {type(caller).__name__}")
        self.own, self.caller = threading.Event(), caller

    def set(self) -> None:
        self.own.set()

    def is_set(self) -> bool:
        return self.own.is_set() or (self.caller is not None and bool(self.caller.is_set()))


class Painter:
    """Paints contents in fixed styles, sharing the network and the style targets between runs.

    `styles` are (1, 3, H, W) tensors in [0, 1]; `masks`, one per style or None, (1, 1, H, W)
    in [0, 1] (white: this style applies), resized to each content. With colour preservation,
    the styles are recoloured once to `color_reference` (the content whose colours to keep).
    `network` replaces the VGG the config names; it is used as given (moved to the config's
    device if it is elsewhere), never changed otherwise. Thread-safe: runs on several threads
    may share one painter.
    """

    def __init__(
        self,
        styles: Sequence[torch.Tensor],
        *,
        masks: Sequence[torch.Tensor | None] | None = None,
        config: StyleConfig | None = None,
        network: VGG | None = None,
        color_reference: torch.Tensor | None = None,
    ) -> None:
        self.config = config = StyleConfig() if config is None else config
        check_options(config, network)
        if isinstance(styles, torch.Tensor):
            styles = [styles]  # one style
        if isinstance(masks, (str, bytes, torch.Tensor)) or (masks is not None and not isinstance(masks, Iterable)):
            raise ImpastoError(
                f"masks must be a sequence with one mask (or None) per style, got {type(masks).__name__}"
            )
        if not styles:
            raise ImpastoError("no style image given; pass at least one")
        for i, s in enumerate(styles):
            check_image_tensor(s, f"style {i + 1}")
        masks = list(masks) if masks is not None else [None] * len(styles)
        if len(masks) != len(styles):
            raise ImpastoError(
                f"got {len(masks)} style masks for {len(styles)} style images; "
                "give one mask per style, in the same order"
            )
        for i, m in enumerate(masks):
            if m is not None:
                check_image_tensor(m, f"style mask {i + 1}", channels=1)
        if config.style_blend is not None and len(config.style_blend) != len(styles):
            raise ImpastoError(
                f"got {len(config.style_blend)} style_blend for {len(styles)} style images; give one weight per style"
            )
        self.device = resolve_device(config.device)
        if network is None:
            network = build_network(config, self.device)
        elif network.pooling != config.pooling:  # the network decides; the settings must say so
            raise ImpastoError(
                f"pooling {config.pooling!r} differs from the network's {network.pooling!r}; "
                f"set pooling {network.pooling!r}, or leave network out to build one with {config.pooling!r}"
            )
        elif next(network.parameters()).device.type != self.device.type:
            network = network.to_device(self.device)
        self.network = network
        self.precision = resolve_precision(config.precision, self.device)
        check_layers(config.content_layers, network.layer_names, "content_layers")
        c = config
        self.representation = StyleRepresentation(
            style_layers_for(c, network),
            c.activation_shift,
            c.correlation_chain,
            c.layer_weighting,
            c.style_layer_weights,
        )
        self.originals = [s.detach().float().cpu() for s in styles]
        self._reference = color_reference
        self.styles = [self._recolour(s, color_reference) for s in self.originals]
        self.masks = [None if m is None else m.detach().float().cpu() for m in masks]
        self.blend = list(c.style_blend) if c.style_blend is not None else [1.0] * len(styles)
        self._targets: dict[tuple[int, torch.dtype], list[list[torch.Tensor]]] = {}
        self._lock = threading.Lock()

    def variant(
        self, *, masks: Sequence[torch.Tensor | None] | None = None, config: StyleConfig | None = None
    ) -> Painter:
        """A painter of the same styles with other masks and/or another config, sharing this
        one's network and, where the config leaves them unchanged, its style targets (a clip
        with a mask per frame, or later frames that run fewer steps, compute them once)."""
        config = self.config if config is None else config
        check_options(config)
        twin = Painter.__new__(Painter)
        twin.__dict__.update(self.__dict__)
        twin.config = config
        twin.masks = list(self.masks)
        if masks is not None:
            if len(masks) != len(self.styles):
                raise ImpastoError(
                    f"got {len(masks)} style masks for {len(self.styles)} style images; "
                    "give one mask per style, in the same order"
                )
            for i, m in enumerate(masks):
                if m is not None:
                    check_image_tensor(m, f"style mask {i + 1}", channels=1)
            twin.masks = [None if m is None else m.detach().float().cpu() for m in masks]
        if config is not self.config and _target_options(config) != _target_options(self.config):
            return Painter(
                self.originals, masks=twin.masks, config=config, network=self.network, color_reference=self._reference
            )
        return twin

    def _recolour(self, style: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
        mode = self.config.preserve_color
        if mode == "none":
            return style
        if reference is None:
            raise ImpastoError(f"preserve_color {mode!r} needs color_reference, the content whose colours to keep")
        reference = reference.detach().float().cpu()
        if mode == "histogram":
            return color.match_histogram(style, reference, self.config.histogram_method).clamp(0, 1)
        y = color.match_luminance(color.luminance(style), color.luminance(reference))
        return y.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()

    @property
    def style_layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n for term in self.representation.terms for n in term if n))

    @property
    def layers(self) -> tuple[str, ...]:
        """Every layer a run reads, in network order."""
        wanted = set(self.style_layers) | (set(self.config.content_layers) if self.config.content_weight else set())
        return tuple(n for n in self.network.layer_names if n in wanted)

    def need(self, budget: int | None = None) -> Need:
        """What a run of this painter asks of memory (see memory.plan)."""
        c = self.config
        content = c.content_layers if c.content_weight else ()
        return Need(
            self.network,
            self.layers,
            tuple(content),
            self.device,
            c.optimizer,
            c.tile,
            c.max_memory if budget is None else budget,
            c.winograd,
        )

    def targets(self, longest: int, dtype: torch.dtype | None = None) -> list[list[torch.Tensor]]:
        """The Gram matrices of every style resized to `longest` pixels on its longer side (cached),
        from a network pass in `dtype` (default: the painter's precision), like the features they meet."""
        dtype = dtype or self.precision.dtype
        with self._lock:
            if (longest, dtype) not in self._targets:
                self._targets[longest, dtype] = [self._grams(s, longest, dtype) for s in self.styles]
            return self._targets[longest, dtype]

    def _grams(self, style: torch.Tensor, longest: int, dtype: torch.dtype | None = None) -> list[torch.Tensor]:
        width, height = fit_longest(style.shape[-1], style.shape[-2], longest)
        deepest = self.network.deepest(self.style_layers)
        if min(width, height) < layer_stride(deepest):
            raise ImpastoError(
                f"a style image scaled to {width}x{height} is too small for {deepest} "
                f"(it needs {layer_stride(deepest)} px on the shorter side); "
                "raise style_scale or size, or use a less elongated style image"
            )
        image = resize_image(style, height, width).to(self.device)
        need = dataclasses.replace(self.need(), layers=self.style_layers, content_layers=(), forward_only=True)
        scale_plan = plan(need, width, height)
        if scale_plan is None:
            raise memory_error(need, width, height)
        windows = scale_plan.windows or [Window.whole(height, width)]
        totals: list[torch.Tensor] | None = None
        for features, window in feature_windows(
            self.network, image, self.style_layers, windows, self.config.winograd, dtype=dtype
        ):
            sums = self.representation.sums(features, window)
            totals = sums if totals is None else [t + s for t, s in zip(totals, sums)]
            del features  # before the next window's pass: two windows' features would not fit the plan
            if len(windows) > 1:
                release_freed_memory(self.device)
        assert totals is not None  # a plan has at least one window
        areas = self.representation.areas(height, width)
        return [t / a for t, a in zip(totals, areas)]

    def run(
        self,
        content: torch.Tensor,
        *,
        init: torch.Tensor | None = None,
        terms: Sequence[Term] = (),
        stop: threading.Event | None = None,
    ) -> Run:
        """A run that paints `content`; iterate it to make progress. See Run."""
        return Run(self, content, init=init, terms=terms, stop=stop)

    def paint(
        self,
        content: torch.Tensor,
        *,
        init: torch.Tensor | None = None,
        terms: Sequence[Term] = (),
        stop: threading.Event | None = None,
        callback: ProgressCallback | None = None,
    ) -> StylizeResult:
        """Run to the end (or until stopped) and return the result.

        `callback` sees every step's Progress; returning False stops the run. A KeyboardInterrupt,
        in the run or the callback, also stops it: the image so far is returned, never lost.
        """
        return self.run(content, init=init, terms=terms, stop=stop).finish(callback)


class Run:
    """One content being painted: an iterator of Progress, one per optimiser step.

    Stop it with `stop()` (or set the `stop` event, or leave the loop); a stop asked for during a
    tiled evaluation takes effect at the next tile. `result()` is the image so far at the full
    size, at any time. Extra `terms` (e.g. a temporal loss) are added to the objective at every
    scale, resized to it.
    """

    def __init__(
        self,
        painter: Painter,
        content: torch.Tensor,
        *,
        init: torch.Tensor | None = None,
        terms: Sequence[Term] = (),
        stop: threading.Event | None = None,
    ) -> None:
        check_image_tensor(content, "content")
        for i, m in enumerate(painter.masks):
            if m is not None:
                warn_if_stretched(
                    f"style mask {i + 1}", (m.shape[-1], m.shape[-2]), (content.shape[-1], content.shape[-2]), "content"
                )
        self.painter, self.config = painter, painter.config
        self.stop_event = _StopSignal(stop)
        self._iterated = False
        self.content = content.detach().float().cpu()
        self.extra_terms = _checked_terms(terms)
        if init is not None:
            check_image_tensor(init, "init")
        elif self.config.init not in ("content", "noise", "style"):
            raise ImpastoError(f"init {self.config.init!r} is a path: read it and pass the image as init")
        self.init = init
        c = self.config
        self.final = fit_longest(self.content.shape[-1], self.content.shape[-2], c.size)
        self.sizes = self._feasible_sizes()
        self.counts = split_iterations(c.iterations, self.sizes)
        # The largest scale first, so that a size that does not fit is named as the size asked for.
        self.plans = [self._plan(longest) for longest in reversed(self.sizes)][::-1]
        self.history: list[dict[str, float]] = []
        self.finished = False
        self._image: torch.Tensor | None = None
        self._painted: tuple[int, int] | None = None  # (width, height) of the latest step's scale
        self._start = time.perf_counter()
        self._seconds: float | None = None

    def _feasible_sizes(self) -> list[int]:
        """The coarse-to-fine sizes whose shorter side, and each style's at that size, the
        deepest layer can still see."""
        c, width, height = self.config, *self.final
        deepest = self.painter.network.deepest(self.painter.layers)
        need = layer_stride(deepest)
        sizes = [s for s in scale_sizes(c.size, c.scales, c.min_size) if self._fits(s, need)]
        if sizes:
            return sizes
        h, w = self.content.shape[-2:]  # the content's own shape, not the rounded output's
        smallest = math.ceil(need * max(w, h) / min(w, h))
        while smallest > need and self._fits(smallest - 1, need):
            smallest -= 1
        while not self._fits(smallest, need) and smallest < 64 * c.size:
            smallest += 1
        if min(width, height) >= need:  # the output is large enough; a style is not
            style = next(
                s
                for s in self.painter.styles
                if min(fit_longest(s.shape[-1], s.shape[-2], self._style_longest(c.size))) < need
            )
            sw, sh = fit_longest(style.shape[-1], style.shape[-2], self._style_longest(c.size))
            raise ImpastoError(
                f"a style image scaled to {sw}x{sh} is too small for {deepest} (it needs {need} px "
                f"on the shorter side); raise style_scale, use size {smallest} or more, "
                "or use a less elongated style image"
            )
        raise ImpastoError(
            f"a {width}x{height} output is too small for the network's deepest layer "
            f"({deepest} needs {need} px on the shorter side); use size {smallest} or more"
        )

    def _style_longest(self, longest: int) -> int:
        return max(1, round(self.config.style_scale * longest))

    def _fits(self, longest: int, need: int) -> bool:
        styles = (fit_longest(s.shape[-1], s.shape[-2], self._style_longest(longest)) for s in self.painter.styles)
        return min(self.size_at(longest)) >= need and all(min(size) >= need for size in styles)

    def size_at(self, longest: int) -> tuple[int, int]:
        """(width, height) of the content scaled to this longest side."""
        return fit_longest(self.content.shape[-1], self.content.shape[-2], longest)

    def _plan(self, longest: int) -> Plan:
        width, height = self.size_at(longest)
        need = self.painter.need()
        found = plan(need, width, height)
        if found is None:
            raise memory_error(need, width, height)
        return found

    def stop(self) -> None:
        """Ask the run to stop; it keeps the image it has."""
        self.stop_event.set()

    @property
    def interrupted(self) -> bool:
        """Whether the run ended before its last step (stopped, interrupted or left)."""
        return not self.finished

    def __iter__(self) -> Iterator[Progress]:
        """The steps, once: a run left (or finished) is over, and iterating it again yields nothing."""
        if self._iterated:
            return
        self._iterated = True
        try:
            yield from self._scales()
        except (KeyboardInterrupt, Stopped):
            pass
        finally:
            if self._seconds is None:
                self._seconds = time.perf_counter() - self._start

    def _scales(self) -> Iterator[Progress]:
        for index, (longest, steps, scale_plan) in enumerate(zip(self.sizes, self.counts, self.plans), start=1):
            if self.stop_event.is_set():
                return
            width, height = self.size_at(longest)
            content = self._painted_content(height, width)
            objective = self._objective(content, longest, scale_plan)
            if self._image is None:
                self._image = self._start_image(content)
            else:
                self._image = resize_image(self._image, height, width)
            exact = None
            if index == len(self.sizes) and self.painter.precision.low and self.config.optimizer == "lbfgs":
                exact = functools.partial(self._objective, content, longest, scale_plan, torch.float32)
            yield from self._optimise(objective, steps, scale_plan, index, sum(self.counts[index - 1 :]), exact)
            if self.stop_event.is_set():
                return
        self.finished = True
        self._seconds = time.perf_counter() - self._start

    def _painted_content(self, height: int, width: int) -> torch.Tensor:
        content = resize_image(self.content, height, width)
        if self.config.preserve_color == "luminance":
            content = color.luminance(content).clamp(0, 1).expand(-1, 3, -1, -1).contiguous()
        return content.to(self.painter.device)

    def _start_image(self, content: torch.Tensor) -> torch.Tensor:
        c, device = self.config, self.painter.device
        height, width = content.shape[-2:]
        if self.init is not None:
            return resize_image(self.init.detach().float().cpu(), height, width).to(device)
        if c.init == "content":
            return content.clone()
        if c.init == "noise":
            generator = torch.Generator().manual_seed(c.seed)
            return torch.rand(content.shape, generator=generator).to(device)
        return resize_image(self.painter.styles[0], height, width).to(device)

    def _objective(
        self, content: torch.Tensor, longest: int, scale_plan: Plan, dtype: torch.dtype | None = None
    ) -> Objective:
        """The objective of one scale, its network pass in `dtype` (default: the painter's precision)."""
        c, painter = self.config, self.painter
        dtype = dtype or painter.precision.dtype
        height, width = content.shape[-2:]
        windows = scale_plan.windows or (Window.whole(height, width),)
        terms: list[Term] = []
        if c.content_weight:
            terms.append(ContentLoss(self._content_targets(content, windows, dtype), c.content_weight))
        if c.style_weight:
            masks = [
                None if m is None else resize_mask_image(m, height, width).to(painter.device) for m in painter.masks
            ]
            for i, m in enumerate(masks):
                if m is not None and not m.any():
                    warnings.warn(f"style mask {i + 1} is all black, so style {i + 1} is not applied anywhere")
            targets = painter.targets(max(1, round(c.style_scale * longest)), dtype)
            terms.append(
                StyleLoss(painter.representation, targets, painter.blend, masks, (height, width), c.style_weight)
            )
        terms.append(TotalVariation(c.tv_weight))
        for term in self.extra_terms:
            resized = getattr(term, "resized", None)
            terms.append(resized(height, width) if resized is not None else term)
        return Objective(painter.network, terms, scale_plan.windows, c.winograd, self.stop_event, dtype)

    def _content_targets(
        self, content: torch.Tensor, windows: Sequence[Window], dtype: torch.dtype | None = None
    ) -> dict[str, torch.Tensor]:
        layers = self.config.content_layers
        out: dict[str, torch.Tensor] = {}
        for features, window in feature_windows(
            self.painter.network, content, layers, windows, self.config.winograd, dtype=dtype
        ):
            for name in layers:
                stride = layer_stride(name)
                part = window.interior(features[name], stride)
                if name not in out:
                    h, w = content.shape[-2] // stride, content.shape[-1] // stride
                    out[name] = part.new_zeros((1, part.shape[1], h, w))
                window.crop(out[name], stride).copy_(part)
            del features, part  # before the next window's pass
            if len(windows) > 1:
                release_freed_memory(content.device)
        return out

    def _optimise(
        self,
        objective: Objective,
        steps: int,
        scale_plan: Plan,
        scale: int,
        planned: int,
        exact: Callable[[], Objective] | None = None,
    ) -> Iterator[Progress]:
        """Up to `steps` optimiser steps on `objective`, one Progress each; `planned` is the steps
        of this scale and those after it.

        `exact` (the last scale of a low-precision L-BFGS run) makes a float32 objective: once the
        loss stops falling (precision.stalled) or no step lowers it any more, the remaining steps
        run on that, from the image reached, with a fresh L-BFGS history. Near the optimum the
        low-precision loss is too rough for L-BFGS's line search and curvature pairs.
        """
        last: dict[str, float] = {}
        first = True
        precision = self.painter.precision.name

        def evaluate(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            nonlocal first
            result: Evaluation = objective(x)
            if first and not math.isfinite(result.terms["total"]):
                bad = [k for k, v in result.terms.items() if k != "total" and not math.isfinite(v)]
                shift = self.painter.config.activation_shift
                fix = "lower style_weight, content_weight or tv_weight"
                if "style" in bad and abs(shift) > 100:  # squared twice in a Gram: a large shift overflows first
                    fix = f"use an activation_shift near -1 (got {shift:g}), or {fix}"
                raise ImpastoError(
                    f"the loss is not finite at the start ({', '.join(bad) or 'total'} overflowed); {fix}"
                )
            first = False
            last.clear()
            last.update(result.terms)
            return result.total, result.gradient

        image = self._image
        assert image is not None  # set by _scales before a scale is optimised
        steps_taken = self._optimiser(evaluate, image, steps, scale_plan)
        size = (image.shape[-1], image.shape[-2])
        start, step = len(self.history), 0
        while step < steps:
            x = next(steps_taken, (None, 0))[0]  # None: no step along the descent direction lowers the loss
            if x is not None:
                self._image = x.detach().clamp(0, 1)
                losses = dict(last)
                if not math.isfinite(losses["total"]):
                    raise ImpastoError("the loss became NaN or infinite; lower style_weight or learning_rate")
                self.history.append(losses)
                self._painted = size
                snapshot = self._image
                yield Progress(
                    len(self.history),
                    start + planned,
                    scale,
                    len(self.sizes),
                    size,
                    losses,
                    time.perf_counter() - self._start,
                    functools.partial(_picture, snapshot),
                    scale_plan.tiles,
                    precision,
                )
                if self.stop_event.is_set() or self._converged(step):
                    return
                step += 1
            if exact is not None and (x is None or stalled([h["total"] for h in self.history[start:]])):
                objective, exact, precision = exact(), None, "fp32"
                assert self._image is not None
                steps_taken = self._optimiser(evaluate, self._image, steps - step, scale_plan)
            elif x is None:
                return

    def _optimiser(
        self,
        evaluate: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
        image: torch.Tensor,
        steps: int,
        scale_plan: Plan,
    ) -> Iterator[tuple[torch.Tensor, int]]:
        if self.config.optimizer == "lbfgs":
            return lbfgs(evaluate, image, steps, history=scale_plan.history)
        return adam(evaluate, image, steps, self.config.learning_rate)

    def _converged(self, step: int, window: int = 10) -> bool:
        tol = self.config.tolerance
        if not tol or step < window:
            return False
        before, now = self.history[-window - 1]["total"], self.history[-1]["total"]
        return (before - now) < tol * abs(before)

    @property
    def tiled(self) -> bool:
        """Whether any scale runs in tiles (its memory is bounded by the plan, not the image)."""
        return any(p.windows is not None for p in self.plans)

    def finish(self, callback: ProgressCallback | None = None) -> StylizeResult:
        """Iterate to the end (or until stopped) and return the result; see Painter.paint."""
        if callback is not None and not callable(callback):
            raise ImpastoError(f"callback must be a function of a Progress, got {type(callback).__name__}")
        try:
            for progress in self:
                if callback is not None and callback(progress) is False:
                    self.stop()
        except KeyboardInterrupt:
            self.stop()
        return self.result()

    def result(self) -> StylizeResult:
        """The image so far at the full size (an enlargement if stopped at a coarse scale)."""
        width, height = self.final
        image = self._image
        if image is None:  # stopped before the first step: the start image
            first = self.size_at(self.sizes[0])
            image = self._start_image(self._painted_content(first[1], first[0]))
        painted = self._painted or (image.shape[-1], image.shape[-2])  # a scale that took no step paints nothing
        image = resize_image(image.detach().float().cpu(), height, width)
        if self.config.preserve_color == "luminance":
            content = resize_image(self.content, height, width)
            image = color.combine_luminance(color.luminance(image), content)
        seconds = self._seconds if self._seconds is not None else time.perf_counter() - self._start
        return StylizeResult(
            image, list(self.history), self.config, seconds, self.interrupted, peak_bytes(self.painter.device), painted
        )
