"""The arithmetic of the network pass: float32, or bfloat16 / float16 where the hardware does it.

Only the network pass (convolutions, ReLUs, poolings) runs in low precision (see `VGG.forward`);
the image being optimised, the Gram matrices (float32 sums of the low-precision features), every
loss, the gradient the optimiser sees and its state stay float32.

`precision="auto"` decides per machine and device:

- CPU: bfloat16 only where the CPU multiplies it natively (`avx512_bf16` or `amx_bf16` on x86,
  `bf16` on ARM) *and* a one-off timing of a few VGG layer shapes found it faster than the best
  float32 way (direct or Winograd). Elsewhere bfloat16 is emulated, slower than float32, and never
  chosen, not even timed. The timing (a few seconds) is kept beside the Winograd choice of
  `impasto.convplan`, in the same cache folder, one file per CPU, torch version and thread count;
  timed while other processes competed for the CPU, it is kept only if its verdict is clear.
- CUDA: bfloat16 where the GPU has bf16 tensor cores (compute capability 8.0 on), float16 with
  dynamic loss scaling (`LossScale`) on 7.x, float32 before; the low precision is kept only where
  the same timing finds it faster.
- Apple MPS: float32.

Low precision means direct convolutions: Winograd's transforms multiply bfloat16's rounding error
about fivefold (see impasto.winograd), which made the loss 2 % off float32's and rough, so it
stays a float32 method (docs/precision.md has the measurements).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import convplan
from .config import PRECISIONS
from .convplan import MIN_CPU_SHARE, cache_dir, cpu_description, write_json
from .errors import ImpastoError
from .winograd import MIN_CHANNELS, WinogradConv3x3

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# CPU flags that mean bfloat16 dot products in hardware: AVX512_BF16 (AMD Zen 4, Intel Cooper
# Lake and Sapphire Rapids on), AMX (Sapphire Rapids on), ARMv8.6's BF16 (Graviton 3, Neoverse V1).
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
MARGIN = 1.10  # low precision must be at least 10 % faster to be chosen: below that, keep exact float32
# Timed under load (another process on the CPU), a verdict is cached only when it is this clear:
# both ways are single oneDNN passes, timed alternately, so load blurs their ratio but rarely flips
# it (2 busy processes on 2 cores: 1.3x against 1.5-2x quiet).
CLEAR = 1.2
REPEATS = 2  # timed rounds after one warm-up round; the fastest counts
FORMAT = 1  # of the cache file; a file of another format is measured again
# A low-precision L-BFGS run falls back to float32 when its loss fell by less than STALL over the
# last STALL_STEPS steps. bfloat16's rounding makes the loss rough at about 2e-5 to 1e-4 of its
# value (VGG-19 at 128 px: a step predicted to gain 1e-4 gained a sixth of that), so steps that
# gain 1e-4 each are led by the noise as much as by the gradient.
STALL, STALL_STEPS = 1e-3, 10


@dataclass(frozen=True)
class Precision:
    """What the network pass of a run computes in, and why."""

    name: str  # fp32, bf16 or fp16
    reason: str  # for a report: "asked for", or what auto saw

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.name]

    @property
    def low(self) -> bool:
        return self.name != "fp32"


@dataclass(frozen=True)
class Shape:
    """A 3x3 conv layer shape that is timed, and its share of VGG-19's conv work up to relu5_1."""

    in_channels: int
    out_channels: int
    height: int
    width: int
    share: float

    @property
    def gflop(self) -> float:
        """Forward plus input gradient."""
        return 4 * 9 * self.in_channels * self.out_channels * self.height * self.width / 1e9


# One shape per VGG block, small enough to time in tens of milliseconds; `share` is the block's part
# of the multiply-adds to relu5_1 (block 1 10 %, 2 15 %, 3 and 4 36 % each, conv5_1 3 %).
SHAPES = (
    Shape(64, 64, 96, 96, 0.10),
    Shape(128, 128, 64, 64, 0.15),
    Shape(256, 256, 48, 48, 0.36),
    Shape(512, 512, 32, 32, 0.39),
)


@dataclass(frozen=True)
class Timing:
    """Milliseconds of forward + input gradient of one shape: float32 at its best (direct or
    Winograd), and the low precision (direct)."""

    shape: Shape
    fp32_ms: float
    low_ms: float
    cpu_share: float = 1.0  # of its threads' CPU time the process got while timing


@dataclass(frozen=True)
class Measurement:
    """One device's timings of float32 against one low precision, and what they decide."""

    device: str  # "cpu", or the GPU's name
    candidate: str  # bf16 or fp16
    timings: tuple[Timing, ...]
    seconds: float
    path: Path | None = None  # the cache file it was read from or written to; None: not cached
    assumed: bool = False  # not timed (the CPU was busy): the low precision, as where it was timed

    @property
    def speedup(self) -> float:
        """float32 time over low-precision time of a VGG pass, weighting each shape by its share."""
        if self.assumed:
            return math.nan
        fp32 = sum(t.shape.share * t.fp32_ms / t.shape.gflop for t in self.timings)
        low = sum(t.shape.share * t.low_ms / t.shape.gflop for t in self.timings)
        return fp32 / low

    @property
    def under_load(self) -> bool:
        return self.assumed or min(t.cpu_share for t in self.timings) < MIN_CPU_SHARE

    @property
    def choice(self) -> str:
        return self.candidate if self.assumed or self.speedup >= MARGIN else "fp32"

    @property
    def clear(self) -> bool:
        """Whether the verdict stands even if load blurred the timings (see CLEAR)."""
        return not MARGIN / CLEAR < self.speedup < MARGIN * CLEAR

    def describe(self) -> str:
        """A few lines for a benchmark: the timings per shape and the choice."""
        if self.assumed:
            return (
                f"precision on {self.device}: not timed (CPU busy), {self.candidate} assumed, as where it was "
                "timed; not cached"
            )
        load = ", measured under load" if self.under_load else ""
        where = (
            f"cached in {self.path}{load}"
            if self.path
            else "not cached: measured under load, too close to call"
            if self.under_load and not self.clear
            else f"not cached{load}"
        )
        lines = [
            f"precision on {self.device}: {self.candidate} {self.speedup:.2f}x float32 over a VGG pass "
            f"-> {self.choice} (measured in {self.seconds:.2f} s, {where}); forward + input gradient:"
        ]
        for t in self.timings:
            s = t.shape
            lines.append(
                f"  {s.in_channels:>4}->{s.out_channels:<4} {s.height:>3}x{s.width:<3} float32 "
                f"{t.fp32_ms:7.1f} ms, {self.candidate} {t.low_ms:7.1f} ms, {t.fp32_ms / t.low_ms:5.2f}x"
            )
        return "\n".join(lines)


Measure = Callable[[Shape, str, torch.device], Timing]

_LOCK = threading.Lock()
_MEASUREMENTS: dict[Path, Measurement] = {}


def resolve_precision(
    name: str, device: torch.device, *, measure: Measure | None = None, native: bool | None = None
) -> Precision:
    """The precision `name` (one of PRECISIONS) means on `device`.

    fp32 and bf16 are taken as asked (bf16 on the CPU even where it is emulated: slow, but allowed);
    fp16 needs CUDA. auto: see the module's docstring. `measure` and `native` replace the timing
    and the hardware check, for tests.
    """
    if name not in PRECISIONS:
        raise ImpastoError(f"precision {name!r} is not one of: {', '.join(PRECISIONS)}")
    if name == "fp16" and device.type != "cuda":
        raise ImpastoError(f"precision fp16 needs a CUDA GPU, not {device.type}; use precision bf16 or fp32")
    if name in ("bf16", "fp16") and device.type not in ("cpu", "cuda"):
        raise ImpastoError(f"precision {name} is not available on {device.type}; use precision fp32")
    if name == "bf16" and device.type == "cuda" and torch.cuda.get_device_capability(device)[0] < 8:  # Ampere on
        raise ImpastoError("precision bf16: this GPU has no bfloat16; use precision fp16 or fp32")
    if name != "auto":
        return Precision(name, "asked for")
    candidate, why = low_precision_candidate(device, native)
    if candidate is None:
        return Precision("fp32", f"auto: {why}")
    found = measurement(device, candidate, measure=measure)
    if found.assumed:
        return Precision(found.choice, f"auto: {why}; not timed, the CPU is busy")
    verdict = "faster" if found.choice != "fp32" else "not faster enough"
    return Precision(found.choice, f"auto: {why}; {candidate} measured {found.speedup:.2f}x float32, {verdict}")


def low_precision_candidate(device: torch.device, native: bool | None = None) -> tuple[str | None, str]:
    """(bf16 or fp16 worth timing on `device`, or None; why)."""
    if device.type == "cpu":
        if native is None:
            native = native_bf16_cpu()
        if not native:
            return None, "this CPU has no native bfloat16 (" + "/".join(NATIVE_BF16_FLAGS[:2]) + ")"
        return "bf16", "native bfloat16 (" + ", ".join(bf16_flags()) + ")"
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        if native is None:
            native = major >= 8
        if native:
            return "bf16", f"bf16 tensor cores (compute capability {major}.{minor})"
        if major >= 7:
            return "fp16", f"fp16 tensor cores, no bf16 (compute capability {major}.{minor})"
        return None, f"no tensor cores (compute capability {major}.{minor})"
    return None, f"low precision is not used on {device.type}"


def bf16_flags() -> list[str]:
    """The CPU's flags (from /proc/cpuinfo) that mean native bfloat16 arithmetic."""
    flags = set(cpu_description()[1].split())
    return [f for f in NATIVE_BF16_FLAGS if f in flags]


def native_bf16_cpu() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware rather than emulating it."""
    return bool(bf16_flags())


def cpu_report() -> str:
    """One line for a report: the CPU, torch's vector capability and the flags bfloat16 speed depends on."""
    model, flags = cpu_description()
    relevant = sorted(f for f in flags.split() if f.startswith(("avx512", "amx")) or f in ("avx2", "fma", "bf16"))
    native = ", ".join(bf16_flags()) or "none"
    return (
        f"{model}, {os.cpu_count()} logical CPUs, torch {torch.__version__} CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}; native bfloat16 flags: {native}; "
        f"vector flags: {' '.join(relevant) or 'none'}"
    )


def measurement(device: torch.device, candidate: str, *, measure: Measure | None = None) -> Measurement:
    """Timings of float32 against `candidate` on `device`: read from the cache or measured once.

    Concurrent callers wait for one measurement. One taken under load is not written to the cache.
    """
    path, key = cache_path(device, candidate)
    with _LOCK:
        found = _MEASUREMENTS.get(path)
        if found is None:
            found = _load(path, key)
            if found is None:
                found = _measure(device, candidate, measure or time_shape)
                found = _store(found, path, key)
            _MEASUREMENTS[path] = found
    return found


def cache_path(device: torch.device, candidate: str, threads: int | None = None) -> tuple[Path, dict[str, object]]:
    """The cache file of a measurement on `device` at `threads` (default: torch's current count),
    and the key recorded in it."""
    key = cache_key(device, candidate, threads)
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / f"precision-{digest}.json", key


def store(found: Measurement, device: torch.device, threads: int | None = None) -> Measurement:
    """Write a measurement to the cache, as if it had been taken here at `threads` (for tests)."""
    return _store(found, *cache_path(device, found.candidate, threads))


def cache_key(device: torch.device, candidate: str, threads: int | None = None) -> dict[str, object]:
    """What a measurement depends on: the CPU (model, flags, threads) or GPU, torch, the candidate."""
    key: dict[str, object] = {"torch": torch.__version__, "candidate": candidate, "device": device.type}
    if device.type == "cuda":
        key.update(
            gpu=torch.cuda.get_device_name(device),
            capability=list(torch.cuda.get_device_capability(device)),
            cuda=torch.version.cuda,
        )
    else:
        model, flags = cpu_description()
        key.update(
            cpu=model, flags=hashlib.sha1(flags.encode()).hexdigest()[:16], threads=threads or torch.get_num_threads()
        )
    return key


def time_shape(shape: Shape, candidate: str, device: torch.device, repeats: int = REPEATS) -> Timing:
    """Fastest forward + input gradient of a conv of this shape in float32 (direct, and on the CPU
    Winograd where it applies) and in `candidate`, alternating within each round."""
    scale = 4 if device.type == "cuda" else 1  # a GPU needs larger layers to be busy
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(shape.out_channels, shape.in_channels, 3, 3, generator=generator) * 0.05
    bias = torch.zeros(shape.out_channels)
    size = (1, shape.in_channels, shape.height * scale, shape.width * scale)
    x = torch.randn(size, generator=generator).to(device).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(1, shape.out_channels, *size[2:], generator=generator).to(device)
    grad = grad.contiguous(memory_format=torch.channels_last)
    weight, bias = weight.to(device), bias.to(device)
    low = DTYPES[candidate]
    low_w, low_b, low_x, low_g = (t.to(low) for t in (weight, bias, x, grad))
    ways: list[tuple[Callable, torch.Tensor, torch.Tensor]] = [
        (lambda t: F.conv2d(t, weight, bias, padding=1), x, grad),
        (lambda t: F.conv2d(t, low_w, low_b, padding=1), low_x, low_g),
    ]
    if device.type == "cpu" and shape.in_channels >= MIN_CHANNELS:
        ways.append((WinogradConv3x3(weight, bias), x, grad))
    best = [math.inf] * len(ways)
    wall = cpu = 0.0
    with torch.enable_grad():
        for round_ in range(repeats + 1):  # round 0 warms up: allocation, oneDNN's or cuDNN's choice
            for i, (conv, inp, g) in enumerate(ways):
                inp = inp.detach().requires_grad_()
                _sync(device)
                start, start_cpu = time.perf_counter(), time.process_time()
                torch.autograd.grad(conv(inp), inp, g)
                _sync(device)
                elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
                if round_:
                    best[i] = min(best[i], elapsed)
                    wall, cpu = wall + elapsed, cpu + elapsed_cpu
    share = 1.0
    if device.type == "cpu" and wall > 0:
        share = min(1.0, cpu / (wall * torch.get_num_threads()))
    fp32 = min([best[0], *best[2:]])
    return Timing(shape, fp32 * 1e3, best[1] * 1e3, share)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _measure(device: torch.device, candidate: str, measure: Measure) -> Measurement:
    """Time every shape; on a CPU that other processes keep busy, time nothing and assume the low
    precision (as convplan assumes Winograd): there timings mislead and cost seconds every run,
    since they are not cached, while native bfloat16 convolutions ran 1.4-2x float32 wherever
    they were timed quietly."""
    name = "cpu" if device.type == "cpu" else torch.cuda.get_device_name(device)
    if device.type == "cpu" and convplan._busy():
        return Measurement(name, candidate, (), 0.0, assumed=True)
    start = time.perf_counter()
    timings = tuple(measure(shape, candidate, device) for shape in SHAPES)
    return Measurement(name, candidate, timings, time.perf_counter() - start)


def _store(found: Measurement, path: Path, key: dict[str, object]) -> Measurement:
    """`found` with its `path`, once written atomically there; unchanged where it cannot be or
    where it was measured under load and is not clear."""
    if found.assumed or found.under_load and not found.clear:
        return found
    record = {
        "format": FORMAT,
        "key": key,
        "device": found.device,
        "seconds": found.seconds,
        "speedup": found.speedup,
        "choice": found.choice,
        "timings": [
            {
                "in_channels": t.shape.in_channels,
                "out_channels": t.shape.out_channels,
                "height": t.shape.height,
                "width": t.shape.width,
                "fp32_ms": t.fp32_ms,
                "low_ms": t.low_ms,
                "cpu_share": t.cpu_share,
            }
            for t in found.timings
        ],
    }
    if not write_json(path, record):
        return found
    return Measurement(found.device, found.candidate, found.timings, found.seconds, path)


def _load(path: Path, key: dict[str, object]) -> Measurement | None:
    """The measurement cached in `path`, or None where it is missing, unreadable or for other shapes."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if record["format"] != FORMAT or record["key"] != key or len(record["timings"]) != len(SHAPES):
            return None
        timings = []
        for shape, entry in zip(SHAPES, record["timings"]):
            if tuple(entry[f] for f in ("in_channels", "out_channels", "height", "width")) != (
                shape.in_channels,
                shape.out_channels,
                shape.height,
                shape.width,
            ):
                return None
            timing = Timing(shape, float(entry["fp32_ms"]), float(entry["low_ms"]), float(entry["cpu_share"]))
            if not all(math.isfinite(v) and v > 0 for v in (timing.fp32_ms, timing.low_ms, timing.cpu_share)):
                return None
            timings.append(timing)
        return Measurement(str(record["device"]), str(key["candidate"]), tuple(timings), float(record["seconds"]), path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def stalled(losses: Sequence[float], steps: int = STALL_STEPS, fraction: float = STALL) -> bool:
    """Whether a loss history has stopped falling: by less than `fraction` over its last `steps`."""
    if len(losses) <= steps:
        return False
    before, now = losses[-steps - 1], losses[-1]
    return before - now < fraction * abs(before)


class LossScale:
    """Dynamic loss scaling for a float16 network pass (float32 and bfloat16 need none).

    The gradients of the losses with respect to the features are often below float16's smallest
    number (6e-8) and would vanish in the backward pass; scaling the loss by `scale` first lifts
    them into range, and the float32 image gradient is divided by it again. A gradient that
    overflowed (inf or NaN) is computed again at half the scale; after `interval` clean ones in a
    row the scale doubles. One per objective: a run's scale is its own.
    """

    def __init__(self, scale: float = 2.0**16, interval: int = 100, max_halvings: int = 40) -> None:
        self.scale, self.interval, self.max_halvings = scale, interval, max_halvings
        self._clean = 0

    def gradient(self, output: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """d output / d inputs, through a float16 pass, with the scale adjusted as needed."""
        for _ in range(self.max_halvings):
            scale = self.scale
            (grad,) = torch.autograd.grad(output * scale, inputs, retain_graph=True)
            if bool(torch.isfinite(grad).all()):
                self._clean += 1
                if self._clean >= self.interval:
                    self.scale, self._clean = self.scale * 2, 0
                return grad / scale
            self.scale, self._clean = self.scale / 2, 0
        raise ImpastoError("the gradient overflows float16 at every loss scale; use precision bf16 or fp32")
