"""`stylize()`: paint a content image in the style of one or more artworks."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import PIL.Image
import torch
import torch.nn.functional as F

from . import color
from .config import StyleConfig
from .errors import ImpastoError
from .images import pil_to_tensor, read_image, read_mask, resize_longest, resize_to, tensor_to_pil
from .losses import StyleRepresentation
from .memory import check_memory, peak_bytes
from .objective import Objective
from .optim import adam, lbfgs
from .vgg import VGG, check_layers

ImageLike = Union[str, os.PathLike, PIL.Image.Image, torch.Tensor]


@dataclass(frozen=True)
class Progress:
    """What a progress callback receives after every optimiser step."""

    iteration: int                 # 1-based, counted over all scales
    total: int                     # planned iterations over all scales
    scale: int                     # 1-based index of the current scale
    scales: int
    size: tuple[int, int]          # (width, height) being optimised now
    losses: dict[str, float]       # weighted terms: content, style, tv, total
    elapsed: float                 # seconds since stylize() started
    current: Callable[[], PIL.Image.Image] = field(repr=False)  # the image so far, on request


ProgressCallback = Callable[[Progress], Any]


@dataclass
class StylizeResult:
    """The stylised image, the loss after every step, and how the run ended."""

    tensor: torch.Tensor           # (1, 3, H, W) RGB in [0, 1], on the CPU
    history: list[dict[str, float]]
    config: StyleConfig
    seconds: float
    interrupted: bool = False
    peak_memory: int | None = None  # bytes: max RSS on the CPU, max allocated on CUDA

    @property
    def image(self) -> PIL.Image.Image:
        return tensor_to_pil(self.tensor)


def resolve_device(name: str) -> torch.device:
    """cpu, cuda, mps, or auto (the first of cuda, mps, cpu that is available)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ImpastoError("--device cuda: no CUDA GPU is available to PyTorch; use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ImpastoError("--device mps: Apple's MPS backend is not available; use --device cpu or auto")
    if name not in ("cpu", "cuda", "mps"):
        raise ImpastoError(f"--device {name!r} is not one of: auto, cpu, cuda, mps")
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
    check_layers(config.style_layers, network.layer_names, "--style-layers")
    return tuple(sorted(config.style_layers, key=network.layer_names.index))


def build_network(config: StyleConfig, device: torch.device) -> VGG:
    """The VGG network that config names, on a device."""
    return VGG.load(config.weights, config.weights_format, config.pooling, config.winograd).to_device(device)


def _init_image(config: StyleConfig, content: torch.Tensor, style: PIL.Image.Image,
                generator: torch.Generator) -> torch.Tensor:
    height, width = content.shape[-2:]
    if config.init == "content":
        return content.clone()
    if config.init == "noise":
        return torch.rand(content.shape, generator=generator).to(content.device)
    source = style if config.init == "style" else read_image(config.init, "--init image")
    return pil_to_tensor(resize_to(source, (width, height))).to(content.device)


class _Run:
    """One stylization in progress; holds what the steps share."""

    def __init__(self, config: StyleConfig, network: VGG, device: torch.device,
                 callback: ProgressCallback | None) -> None:
        self.config, self.network, self.device, self.callback = config, network, device, callback
        self.history: list[dict[str, float]] = []
        self.start = time.perf_counter()
        self.generator = torch.Generator().manual_seed(config.seed)

    def tensor(self, image: PIL.Image.Image) -> torch.Tensor:
        return pil_to_tensor(image).to(self.device)

    def objective(self, content: PIL.Image.Image, styles: Sequence[PIL.Image.Image],
                  masks: Sequence[PIL.Image.Image | None], longest: int, weight_scale: float) -> Objective:
        c = self.config
        representation = StyleRepresentation(style_layers_for(c, self.network), c.activation_shift,
                                              c.correlation_chain, c.layer_weighting, c.style_layer_weights)
        style_side = max(1, round(c.style_scale * longest))
        content_t = self.tensor(content)
        mask_ts = [None if m is None else (self.tensor(resize_to(m, content.size)) >= 0.5).float() for m in masks]
        return Objective(self.network, content_t, [self.tensor(resize_longest(s, style_side)) for s in styles],
                         representation, c.content_layers,
                         (c.content_weight * weight_scale, c.style_weight, c.tv_weight),
                         c.style_blend, mask_ts)

    def optimise(self, objective: Objective, image: torch.Tensor, steps: int, scale: int,
                 scales: int, done: int, total: int) -> tuple[torch.Tensor, bool]:
        """Run `steps` optimiser steps from `image`; returns the result and whether to stop."""
        c = self.config
        last: dict[str, float] = {}

        def evaluate(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x = x.detach().requires_grad_(True)
            terms = objective(x)
            (grad,) = torch.autograd.grad(terms["total"], x)
            last.update({k: float(v.detach()) for k, v in terms.items()})
            # The network runs channels-last; the optimiser wants a plain contiguous gradient.
            return terms["total"].detach(), grad.contiguous()

        if c.optimizer == "lbfgs":
            steps_taken = lbfgs(evaluate, image, steps)
        else:
            steps_taken = adam(evaluate, image, steps, c.learning_rate)
        size = (image.shape[-1], image.shape[-2])
        x = image
        for step in range(steps):
            try:
                x, _ = next(steps_taken)
            except StopIteration:
                break  # no step along the descent direction lowers the loss any more
            except KeyboardInterrupt:
                return x.detach().clamp(0, 1), True
            losses = dict(last)
            if not math.isfinite(losses["total"]):
                raise ImpastoError("the loss became NaN or infinite; lower --style-weight or --learning-rate")
            self.history.append(losses)
            if self.callback is not None:
                snapshot = x.detach()
                self.callback(Progress(done + step + 1, total, scale, scales, size, losses,
                                       time.perf_counter() - self.start,
                                       lambda s=snapshot: tensor_to_pil(s.clamp(0, 1).cpu())))
            if self._converged(step):
                break
        return x.detach().clamp(0, 1), False

    def _converged(self, step: int, window: int = 10) -> bool:
        tol = self.config.tolerance
        if not tol or step < window:
            return False
        before, now = self.history[-window - 1]["total"], self.history[-1]["total"]
        return (before - now) < tol * abs(before)


def _read_inputs(content: ImageLike, style: ImageLike | Sequence[ImageLike],
                 masks: Sequence[ImageLike | None] | None):
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    if not styles:
        raise ImpastoError("no style image given; pass at least one")
    content_img = read_image(content, "content image")
    style_imgs = [read_image(s, "style image" if len(styles) == 1 else f"style image {i + 1}")
                  for i, s in enumerate(styles)]
    if masks is None:
        mask_imgs: list[PIL.Image.Image | None] = [None] * len(styles)
    else:
        if len(masks) != len(styles):
            raise ImpastoError(f"got {len(masks)} style masks for {len(styles)} style images; "
                               "give one mask per style, in the same order")
        mask_imgs = [None if m is None else read_mask(m, f"style mask {i + 1}") for i, m in enumerate(masks)]
    return content_img, style_imgs, mask_imgs


def _color_inputs(config: StyleConfig, content: PIL.Image.Image, styles: list[PIL.Image.Image]):
    """Apply colour preservation to the inputs: luminance-only images, or recoloured styles."""
    if config.preserve_color == "none":
        return content, styles
    c = pil_to_tensor(content)
    if config.preserve_color == "histogram":
        return content, [tensor_to_pil(color.match_histogram(pil_to_tensor(s), c, config.histogram_method))
                         for s in styles]
    content_y = color.luminance(c)
    gray = [tensor_to_pil(color.match_luminance(color.luminance(pil_to_tensor(s)), content_y).expand(-1, 3, -1, -1))
            for s in styles]
    return tensor_to_pil(content_y.expand(-1, 3, -1, -1)), gray


def stylize(content: ImageLike, style: ImageLike | Sequence[ImageLike], *,
            masks: Sequence[ImageLike | None] | None = None, config: StyleConfig | None = None,
            network: VGG | None = None, callback: ProgressCallback | None = None,
            **options: Any) -> StylizeResult:
    """Paint `content` in the style of `style` (one image or a list).

    Images may be paths, PIL images or (1, 3, H, W) tensors in [0, 1]. `options` override fields
    of `config` (see StyleConfig). `masks`, one per style, limit each style to the mask's white
    area. `network` replaces the VGG the config names. Ctrl-C ends the run early and returns the
    image so far, with `interrupted=True`.
    """
    config = (config or StyleConfig()).replace(**options)
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    content_img, style_imgs, mask_imgs = _read_inputs(content, style, masks)
    if config.style_blend is not None and len(config.style_blend) != len(style_imgs):
        raise ImpastoError(f"got {len(config.style_blend)} --style-weights for {len(style_imgs)} style images; "
                           "give one weight per style")
    network = network.to_device(device) if network is not None else build_network(config, device)
    winograd, network.winograd = network.winograd, config.winograd  # a given network: for this run only
    try:
        check_layers(config.content_layers, network.layer_names, "--content-layers")
        used = set(config.content_layers) | set(style_layers_for(config, network))
        sizes = scale_sizes(config.size, config.scales, config.min_size)
        final_size = resize_longest(content_img, sizes[-1]).size
        check_memory(network, *final_size, max(used, key=network.layer_names.index), device)

        run = _Run(config, network, device, callback)
        painted_content, painted_styles = _color_inputs(config, content_img, style_imgs)
        image, interrupted = _coarse_to_fine(run, painted_content, painted_styles, mask_imgs, sizes,
                                             math.prod(final_size))
        if tuple(image.shape[-2:]) != (final_size[1], final_size[0]):  # interrupted at a coarse scale
            image = F.interpolate(image, size=(final_size[1], final_size[0]), mode="bicubic", align_corners=False)
        result = image.detach().clamp(0, 1).cpu()
        if config.preserve_color == "luminance":
            content_full = pil_to_tensor(resize_to(content_img, (result.shape[-1], result.shape[-2])))
            result = color.combine_luminance(color.luminance(result), content_full)
    finally:
        network.winograd = winograd
    return StylizeResult(result, run.history, config, time.perf_counter() - run.start, interrupted,
                         peak_bytes(device))


def _coarse_to_fine(run: _Run, content: PIL.Image.Image, styles: Sequence[PIL.Image.Image],
                    masks: Sequence[PIL.Image.Image | None], sizes: Sequence[int],
                    final_pixels: int) -> tuple[torch.Tensor, bool]:
    """Optimise at each size in turn, starting each from the last one's result upsampled."""
    config = run.config
    counts = split_iterations(config.iterations, sizes)
    image, done, interrupted = None, 0, False
    try:
        for index, (longest, steps) in enumerate(zip(sizes, counts), start=1):
            content_s = resize_longest(content, longest)
            # The content loss is a sum over positions, the style loss is not: scale the content
            # weight so each coarse scale solves the same trade-off as the final size.
            objective = run.objective(content_s, styles, masks, longest, final_pixels / math.prod(content_s.size))
            if image is None:
                image = _init_image(config, run.tensor(content_s), styles[0], run.generator)
            else:
                image = F.interpolate(image, size=(content_s.height, content_s.width), mode="bicubic",
                                      align_corners=False).clamp_(0, 1)
            image, interrupted = run.optimise(objective, image, steps, index, len(sizes), done, config.iterations)
            done += steps
            if interrupted:
                break
    except KeyboardInterrupt:  # while building a scale's targets
        if image is None:
            raise
        interrupted = True
    return image, interrupted
