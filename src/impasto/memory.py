"""How much memory a stylization needs, checked before anything large is allocated."""

from __future__ import annotations

import ctypes
import math
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .config import MIN_TILE
from .errors import ImpastoError
from .tiling import Window, largest_window, windows
from .vgg import VGG, layer_stride

# Measured on CPU with VGG-19 to relu5_1 (scripts/benchmark.py, 3-iteration commands at 512, 1024
# and 2048 px): besides the transformed Winograd filters, the peak is 2.4-3.3 times the bytes of all
# conv outputs: the saved activations, the gradients alive during the backward pass, Winograd's
# tiles, and the freed blocks glibc keeps after reuse_freed_memory(), whose layout varies from run
# to run (9.9 and 11.3 GB in two runs at 2048 px). 3.5 keeps the estimate above all of them.
ACTIVATION_FACTOR = 3.5
OVERHEAD = 600 * 2**20  # the interpreter, torch and the weights
LBFGS_HISTORY = 20  # L-BFGS pairs kept, where memory allows
MIN_HISTORY = 5


def activation_bytes(network: VGG, width: int, height: int, last: str) -> int:
    """Bytes of all conv outputs up to layer `last` for a float32 image of this size."""
    return sum(weight.shape[0] * w * h * 4 for _, weight, w, h in network.conv_shapes(width, height, last))


def image_copies(optimizer: str, history: int) -> int:
    """Full-size float images alive at once: the optimiser's (L-BFGS: its history pairs; Adam:
    two moments), plus the content, the start image, the run's image and its snapshot, and the
    step's: the point, its gradient, the search direction, the trial point and its gradient,
    the new pair, and the total variation's differences and their gradients. Measured: 21
    copies at 5 pairs in the L-BFGS loop (with glibc's default allocator; keeping freed blocks,
    reuse_freed_memory, fragments them up to 35, which is why a tiled run does without)."""
    return (2 * history if optimizer == "lbfgs" else 2) + 14


def whole_image_bytes(
    network: VGG,
    width: int,
    height: int,
    content_layers: Sequence[str],
    optimizer: str = "lbfgs",
    history: int = LBFGS_HISTORY,
) -> int:
    """Memory that grows with the whole image, however it is tiled: the optimiser's copies of
    the image and the content's target features."""
    image = 3 * width * height * 4
    targets = sum(
        channels * (width // layer_stride(n)) * (height // layer_stride(n)) * 4
        for n in content_layers
        for channels in [_channels(network, n)]
    )
    return image_copies(optimizer, history) * image + targets


def _channels(network: VGG, layer: str) -> int:
    """Channels of a layer's output: those of the last conv at or before it."""
    last_conv = [n for n in network.layer_names[: network.layer_names.index(layer) + 1] if n.startswith("conv")][-1]
    return network.convs[last_conv].out_channels


def pass_bytes(network: VGG, width: int, height: int, last: str) -> int:
    """Memory of one forward and backward pass over a window of this size."""
    return int(ACTIVATION_FACTOR * activation_bytes(network, width, height, last))


def estimate_bytes(
    network: VGG,
    width: int,
    height: int,
    last: str,
    device: torch.device | None = None,
    history: int = LBFGS_HISTORY,
    optimizer: str = "lbfgs",
    content_layers: Sequence[str] = (),
    window: tuple[int, int] | None = None,
    winograd: bool | None = None,
) -> int:
    """Expected peak memory of a run whose final image has this size, on `device` (default CPU).

    `window` is the (width, height) of the largest tile with its halo when the run is tiled.
    """
    pass_w, pass_h = window or (width, height)
    filters = network.winograd_bytes(last, device or torch.device("cpu"), winograd)
    return (
        pass_bytes(network, pass_w, pass_h, last)
        + filters
        + OVERHEAD
        + whole_image_bytes(network, width, height, content_layers, optimizer, history)
    )


def available_bytes(device: torch.device) -> int | None:
    """Memory this run may use on `device`, or None where it cannot be told."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        # Blocks PyTorch's caching allocator holds but no tensor uses (an earlier scale's) are
        # this process's to reuse, though the driver does not count them as free.
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


@dataclass(frozen=True)
class Plan:
    """How one scale runs: whole or in tiles, and the L-BFGS history that fits beside it."""

    windows: tuple[Window, ...] | None  # None: the whole image in one pass
    tile: int | None
    history: int
    estimate: int  # bytes

    @property
    def tiles(self) -> int:
        return 1 if self.windows is None else len(self.windows)


@dataclass(frozen=True)
class Need:
    """What a run asks of memory: its network, layers, optimiser and tiling choice."""

    network: VGG
    layers: tuple[str, ...]
    content_layers: tuple[str, ...]
    device: torch.device
    optimizer: str = "lbfgs"
    tile: int | str = "auto"
    budget: int | None = None  # bytes; None: what the device has available
    winograd: bool | None = None
    forward_only: bool = False  # targets: no gradients, no optimiser


def _forward_bytes(need: Need, width: int, height: int, window: tuple[int, int] | None) -> int:
    """A pass without gradients keeps about two layers' outputs at a time: count them all, once."""
    last = need.network.deepest(need.layers)
    pass_w, pass_h = window or (width, height)
    return (
        activation_bytes(need.network, pass_w, pass_h, last)
        + 3 * width * height * 4
        + need.network.winograd_bytes(last, need.device, need.winograd)
        + OVERHEAD
    )


def _estimate(need: Need, width: int, height: int, history: int, window: tuple[int, int] | None) -> int:
    if need.forward_only:
        return _forward_bytes(need, width, height, window)
    return estimate_bytes(
        need.network,
        width,
        height,
        need.network.deepest(need.layers),
        need.device,
        history,
        need.optimizer,
        need.content_layers,
        window,
        need.winograd,
    )


def _tile_sizes(need: Need, width: int, height: int) -> list[int | None]:
    """Candidate tile sizes, largest first (None: untiled); about 10 % apart down to MIN_TILE."""
    if need.tile == "off":
        return [None]
    if isinstance(need.tile, int):
        return [need.tile]
    align = layer_stride(need.network.deepest(need.layers))
    sizes: list[int | None] = [None]
    tile = max(width, height)
    while tile >= MIN_TILE:
        tile = max(align, tile // align * align)
        if not sizes or sizes[-1] != tile:
            sizes.append(tile)
        tile = min(tile - align, int(tile * 0.9))
    return sizes


def _window(need: Need, width: int, height: int, tile: int | None) -> tuple[int, int] | None:
    """(width, height) of the largest window of this tiling, or None when it is one window."""
    if tile is None:
        return None
    align = layer_stride(need.network.deepest(need.layers))
    h, w, count = largest_window(height, width, tile, need.network.halo(need.layers), align)
    return (w, h) if count > 1 else None


def _budget(need: Need) -> int | None:
    return need.budget if need.budget is not None else available_bytes(need.device)


def plan(need: Need, width: int, height: int) -> Plan | None:
    """The fastest way to run a scale of this size within the budget, or None if none fits.

    Untiled if it fits (with tile="auto"), else the largest tiles that fit; L-BFGS keeps a
    shorter history (down to MIN_HISTORY) only when even the smallest tiles leave too little room.
    """
    budget = _budget(need)
    histories = [LBFGS_HISTORY] if need.optimizer != "lbfgs" else list(range(LBFGS_HISTORY, MIN_HISTORY - 1, -5))
    candidates = [(tile, _window(need, width, height, tile)) for tile in _tile_sizes(need, width, height)]
    halo = need.network.halo(need.layers)
    # Below 4 halos a tile's window costs over 2.25 times its own pixels: a shorter L-BFGS
    # history (it only holds full-size images) is the cheaper sacrifice, so small tiles come last.
    large = [(t, w) for t, w in candidates if t is None or t >= 4 * halo or t == need.tile]
    small = [(t, w) for t, w in candidates if (t, w) not in large]
    tries = [(h, c) for h in histories for c in large] + [(histories[-1], c) for c in small]
    for history, (tile, window) in tries:
        estimate = _estimate(need, width, height, history, window)
        if budget is None or estimate <= budget:
            if window is None or tile is None:
                return Plan(None, None, history, estimate)
            align = layer_stride(need.network.deepest(need.layers))
            return Plan(tuple(windows(height, width, tile, halo, align)), tile, history, estimate)
    return None


def least_bytes(need: Need, width: int, height: int) -> int:
    """The smallest estimate any tiling and history gives for this size."""
    tiles = _tile_sizes(need, width, height)
    return min(
        _estimate(
            need,
            width,
            height,
            MIN_HISTORY if need.optimizer == "lbfgs" else LBFGS_HISTORY,
            _window(need, width, height, tile),
        )
        for tile in tiles
    )


def largest_fitting(need: Need, width: int, height: int) -> int:
    """The largest longest side, at this aspect ratio, that plan() accepts (0 if none)."""
    low, high = 0, max(width, height)
    while low < high:
        mid = (low + high + 1) // 2
        w, h = max(1, width * mid // max(width, height)), max(1, height * mid // max(width, height))
        if plan(need, w, h) is not None:
            low = mid
        else:
            high = mid - 1
    return low


def memory_error(need: Need, width: int, height: int) -> ImpastoError:
    """The one-line error for a size that does not fit, naming the largest that does."""
    budget = _budget(need) or 0
    fits = largest_fitting(need, width, height)
    how = "" if need.tile == "off" else " even in tiles"
    least = least_bytes(need, width, height)
    needed, available = format_bytes(least), format_bytes(budget)
    if needed == available:  # close: say it in megabytes rather than "3.0 GB but 3.0 GB"
        needed, available = f"{math.ceil(least / 2**20)} MB", f"{budget // 2**20} MB"
    problem = f"a {width}x{height} image needs about {needed} of memory{how}"
    problem += f" but {available} is available on {need.device.type}"
    if fits == 0:  # not even the smallest size: the network and the fixed costs alone do not fit
        more = "raise max_memory" if need.budget is not None else "free some memory"
        return ImpastoError(f"{problem}; no size fits in that: {more} to {format_bytes(least)} or more")
    return ImpastoError(f"{problem}; use size {fits} or less" + ("" if need.tile != "off" else ", or use tile auto"))


def peak_bytes(device: torch.device) -> int | None:
    """The process's peak memory so far (CPU: max RSS; CUDA: max allocated)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        import resource
    except ImportError:  # Windows
        return None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


# glibc mallopt() parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def reuse_freed_memory() -> bool:
    """Have glibc's malloc keep freed blocks for reuse instead of handing them back to the kernel.

    Every evaluation allocates and frees the same large activation and gradient buffers. By
    default glibc serves each large block with a fresh mapping and unmaps it on free, so the
    kernel zero-fills every page again on the next evaluation: at 512 px that measured 148,000
    page faults and 0.54 s of system time per evaluation, against about 600 and 0.01 s with this
    (about 10 % faster evaluations). The price: memory freed after the peak stays with the
    process, and the heap fragments: the full-size buffers of a large image take up to 1.7 times
    their bytes. The CLI calls this for runs that are not tiled (a tiled run's memory is bounded
    by its plan); library users may. Returns False (and does nothing) where the C library is not
    glibc.
    """
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    # Older glibc refuses thresholds above 32 MB; then take 32 MB, which still covers most buffers.
    kept = mallopt(_M_MMAP_THRESHOLD, 2**31 - 1) or mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
    return bool(kept and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def _libc_function(name: str) -> Any:
    """A glibc function by name, or None where the C library is not glibc."""
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError, TypeError):
        return None


def release_freed_memory(device: torch.device) -> None:
    """Hand the pages of freed blocks back to the kernel (glibc's malloc_trim), on the CPU.

    Called after each window of the passes that compute targets (once per scale): the style's
    windows may be larger than the steps', and the blocks each window freed, fragmented, would
    otherwise stay with the process (at 2896 px in 3.5 GB: a peak of 3.2 GB without, 2.8 GB
    with). Not between the tiles of the steps: there it cost 10 % more CPU time (the kernel
    zero-filling the pages again for each tile: 1.9 against 1.1 million page faults per
    evaluation at 1024 px in 512 px tiles) and lowered the peak by only about 5 %.
    """
    if device.type != "cpu":
        return
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim.argtypes = (ctypes.c_size_t,)
        trim(0)


def format_bytes(count: int) -> str:
    return f"{count / 2**30:.1f} GB" if count >= 2**30 else f"{math.ceil(count / 2**20)} MB"
