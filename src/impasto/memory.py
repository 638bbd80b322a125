"""How much memory a stylization needs, checked before anything large is allocated."""

from __future__ import annotations

import ctypes
import math
import os
import platform
import sys

import torch

from .errors import ImpastoError
from .vgg import VGG

# Measured on CPU with VGG-19 to relu5_1 (scripts/benchmark.py, 3-iteration commands at 512, 1024
# and 2048 px): besides the transformed Winograd filters, the peak is 2.4-3.3 times the bytes of all
# conv outputs: the saved activations, the gradients alive during the backward pass, Winograd's
# tiles, and the freed blocks glibc keeps after reuse_freed_memory(), whose layout varies from run
# to run (9.9 and 11.3 GB in two runs at 2048 px). 3.5 keeps the estimate above all of them.
ACTIVATION_FACTOR = 3.5
OVERHEAD = 600 * 2**20  # the interpreter, torch and the weights


def activation_bytes(network: VGG, width: int, height: int, last: str) -> int:
    """Bytes of all conv outputs up to layer `last` for a float32 image of this size."""
    return sum(weight.shape[0] * w * h * 4 for _, weight, w, h in network.conv_shapes(width, height, last))


def estimate_bytes(network: VGG, width: int, height: int, last: str, device: torch.device | None = None,
                   history: int = 20) -> int:
    """Expected peak memory of a run whose final image has this size, on `device` (default CPU)."""
    image = 3 * width * height * 4
    optimiser = (2 * history + 6) * image  # L-BFGS pairs plus a few working copies
    filters = network.winograd_bytes(last, device or torch.device("cpu"))
    return int(ACTIVATION_FACTOR * activation_bytes(network, width, height, last) + optimiser + filters + OVERHEAD)


def available_bytes(device: torch.device) -> int | None:
    """Memory this run may use on `device`, or None where it cannot be told."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free
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


def check_memory(network: VGG, width: int, height: int, last: str, device: torch.device) -> None:
    """ImpastoError, before any work, when the final size will not fit; names the largest that does."""
    available = available_bytes(device)
    need = estimate_bytes(network, width, height, last, device)
    if available is None or need <= available:
        return
    longest = max(width, height)
    fits = longest
    while fits > 16 and estimate_bytes(network, max(1, width * fits // longest),
                                       max(1, height * fits // longest), last, device) > available:
        fits = int(fits * 0.95)
    raise ImpastoError(f"a {width}x{height} image needs about {need / 2**30:.1f} GB of memory but "
                       f"{available / 2**30:.1f} GB is available on {device.type}; use --size {fits} or less")


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
    process. The CLI calls this; library users may. Returns False (and does nothing) where the C
    library is not glibc.
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    # Older glibc refuses thresholds above 32 MB; then take 32 MB, which still covers most buffers.
    kept = mallopt(_M_MMAP_THRESHOLD, 2**31 - 1) or mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)
    return bool(kept and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def format_bytes(count: int) -> str:
    return f"{count / 2**30:.1f} GB" if count >= 2**30 else f"{math.ceil(count / 2**20)} MB"
