"""Whether Winograd convolution pays on this machine, decided per layer shape from a one-off timing.

Winograd F(4x4, 3x3) (impasto.winograd) does a quarter of direct convolution's multiply-adds but
adds memory-bound transforms, so whether it wins depends on the CPU's caches, memory bandwidth and
SIMD width, not only on the layer: on one 2-core AVX2 machine it ran 1.3-2x faster than oneDNN on
256- and 512-channel layers, on another 2-core machine a whole run gained nothing. So the first
call on a machine times forward plus input gradient both ways on a few representative layer
shapes (`BUCKETS`; 1.3-1.4 s in a fresh process on 2 AVX-512 cores) and keeps the result as JSON
in the user's cache folder, one file per CPU model and flags, torch version and thread count,
unless other processes competed for the CPU meanwhile. A layer takes the choice of the nearest
bucket. The static gates of impasto.winograd still apply first: a layer that fails them never
runs by Winograd and never causes a measurement.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from .winograd import MIN_CHANNELS, MIN_WORK, WinogradConv3x3

MARGIN = 1.05  # Winograd must be at least 5 % faster to be chosen: below that, noise decides
REPEATS = 3  # timed rounds after one warm-up round; the fastest counts
# A measurement during which the process got less than this share of its threads' CPU time competed
# with other processes. Winograd's dozen parallel passes suffer more from that than direct
# convolution's one (2 busy processes on 2 cores turned 1.2-1.9x faster into 1.2-3x slower), so
# such a plan decides for this process only and is not cached.
MIN_CPU_SHARE = 0.75
FORMAT = 1  # of the cache file; a file of another format is measured again


@dataclass(frozen=True)
class Bucket:
    """A layer shape that is timed: a 3x3 conv of `in_channels` to `out_channels` on height x width."""

    in_channels: int
    out_channels: int
    height: int
    width: int


# Past the static gates, each small enough to time in a few tens of milliseconds. VGG-19 at 512 px
# content has conv3_2..4 (256->256) at 128x128, conv4_1 (256->512) and conv4_2..4 (512->512) at
# 64x64, conv5_x at 32x32; at 256 px conv5_x is 16x16.
BUCKETS = (Bucket(256, 256, 48, 48), Bucket(256, 512, 32, 32), Bucket(512, 512, 16, 16), Bucket(512, 512, 32, 32))


@dataclass(frozen=True)
class Choice:
    """One bucket's timings (forward + input gradient, milliseconds) and what they decide."""

    bucket: Bucket
    direct_ms: float
    winograd_ms: float
    cpu_share: float = 1.0  # of its threads' CPU time the process got while timing (see MIN_CPU_SHARE)
    assumed: bool = False  # not timed (the CPU was busy): Winograd, as on every quiet machine measured

    @property
    def speedup(self) -> float:
        return self.direct_ms / self.winograd_ms

    @property
    def winograd(self) -> bool:
        return self.assumed or self.speedup >= MARGIN


@dataclass(frozen=True)
class Plan:
    """The choices of one machine at one thread count, measured now or read from the cache."""

    cpu: str
    torch_version: str
    threads: int
    choices: tuple[Choice, ...]
    seconds: float  # what measuring cost, when it was done
    measured: bool  # in this process, rather than read from `path`
    path: Path | None  # the cache file, or None where it was not written

    @property
    def under_load(self) -> bool:
        """Whether other processes competed for the CPU while it was measured."""
        return min(c.cpu_share for c in self.choices) < MIN_CPU_SHARE

    def choose(self, in_channels: int, out_channels: int, height: int, width: int) -> bool:
        """The choice of the bucket nearest this shape: channels first, then pixels (log scale)."""

        def distance(choice: Choice) -> tuple[float, float]:
            b = choice.bucket
            channels = abs(math.log2(in_channels / b.in_channels)) + abs(math.log2(out_channels / b.out_channels))
            return channels, abs(math.log2(height * width / (b.height * b.width)))

        return min(self.choices, key=distance).winograd

    def describe(self) -> str:
        """A few lines for a benchmark: the timings and choice of each bucket."""
        if self.path:
            where = f"cached in {self.path}"
        elif self.under_load:
            share = min(c.cpu_share for c in self.choices)
            where = f"not cached: measured under load, with {share:.0%} of the threads' CPU time"
        else:
            where = "not cached: cache folder not writable"
        how = f"measured now in {self.seconds:.2f} s" if self.measured else f"measured earlier in {self.seconds:.2f} s"
        lines = [
            f"Winograd per layer shape on {self.cpu}, torch {self.torch_version}, {self.threads} threads "
            f"({how}, {where}); forward + input gradient:"
        ]
        for c in self.choices:
            b = c.bucket
            if c.assumed:
                lines.append(
                    f"  {b.in_channels:>4}->{b.out_channels:<4} {b.height:>3}x{b.width:<3} not timed "
                    "(CPU busy) -> Winograd"
                )
                continue
            lines.append(
                f"  {b.in_channels:>4}->{b.out_channels:<4} {b.height:>3}x{b.width:<3} direct "
                f"{c.direct_ms:7.1f} ms, Winograd {c.winograd_ms:7.1f} ms, {c.speedup:5.2f}x -> "
                f"{'Winograd' if c.winograd else 'direct'}"
            )
        return "\n".join(lines)


Measure = Callable[[Bucket], Choice]

_LOCK = threading.Lock()
_PLANS: dict[Path, Plan] = {}  # by cache file, whether or not it was written


def winograd_pays(
    in_channels: int,
    out_channels: int,
    height: int,
    width: int,
    threads: int | None = None,
    *,
    measure: Measure | None = None,
) -> bool:
    """Whether a frozen 3x3 conv of this shape is faster by Winograd than direct on this CPU.

    Shapes that fail the static gates (`MIN_CHANNELS`, `MIN_WORK`) are False without measuring;
    the others take the choice of `machine_plan(threads)`.
    """
    if in_channels < MIN_CHANNELS or in_channels * out_channels * height * width < MIN_WORK:
        return False
    return machine_plan(threads, measure=measure).choose(in_channels, out_channels, height, width)


def machine_plan(threads: int | None = None, *, measure: Measure | None = None) -> Plan:
    """This machine's choices at `threads` (default: torch's current count), measured once.

    Read from the cache file when one is valid, otherwise measured with `measure` (default
    `time_bucket`) and written there unless measured under load; concurrent callers wait for one
    measurement. Measuring for a thread count other than torch's current one sets torch's count
    (process-wide) for the measurement's duration.
    """
    threads = torch.get_num_threads() if threads is None else threads
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    key = cache_key(threads)
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"convplan-{digest}.json"
    with _LOCK:
        plan = _PLANS.get(path)
        if plan is None:
            plan = _load(path, key, threads)
            if plan is None:
                with _torch_threads(threads):
                    plan = _measure(threads, measure or time_bucket)
                plan = _store(plan, path, key)
            _PLANS[path] = plan
    return plan


def describe_plan(threads: int | None = None) -> str:
    """`machine_plan(threads).describe()`: the timings and choices, for a benchmark's report."""
    return machine_plan(threads).describe()


def time_bucket(bucket: Bucket, repeats: int = REPEATS) -> Choice:
    """Fastest forward + input gradient of `bucket`, direct and by Winograd, at torch's threads.

    The two alternate within each round, so a change in the machine's speed (another process,
    the clock) hits both alike.
    """
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(bucket.out_channels, bucket.in_channels, 3, 3, generator=generator) * 0.05
    bias = torch.zeros(bucket.out_channels)
    shape = (1, bucket.in_channels, bucket.height, bucket.width)
    x = torch.randn(shape, generator=generator).contiguous(memory_format=torch.channels_last).requires_grad_()
    grad = torch.randn(1, bucket.out_channels, bucket.height, bucket.width, generator=generator)
    grad = grad.contiguous(memory_format=torch.channels_last)
    convs: tuple[Callable[[torch.Tensor], torch.Tensor], ...] = (
        lambda t: F.conv2d(t, weight, bias, padding=1),
        WinogradConv3x3(weight, bias),
    )
    best = [math.inf, math.inf]
    wall = cpu = 0.0
    with torch.enable_grad():
        for round_ in range(repeats + 1):  # round 0 warms up: allocation, oneDNN's primitive
            for i, conv in enumerate(convs):
                start, start_cpu = time.perf_counter(), time.process_time()
                torch.autograd.grad(conv(x), x, grad)
                elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
                if round_:
                    best[i] = min(best[i], elapsed)
                    wall, cpu = wall + elapsed, cpu + elapsed_cpu  # all threads' CPU time
    share = min(1.0, cpu / (wall * torch.get_num_threads())) if wall > 0 else 1.0
    return Choice(bucket, best[0] * 1e3, best[1] * 1e3, share)


def cache_dir() -> Path:
    """`$IMPASTO_CACHE_DIR`, else `$XDG_CACHE_HOME/impasto`, else `~/.cache/impasto` (not created)."""
    if os.environ.get("IMPASTO_CACHE_DIR"):
        return Path(os.environ["IMPASTO_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and Path(xdg).is_absolute():  # the XDG spec says to ignore a relative one
        return Path(xdg) / "impasto"
    return Path.home() / ".cache" / "impasto"


def cache_key(threads: int) -> dict[str, object]:
    """What a measurement depends on: CPU model and flags, torch version, thread count."""
    model, flags = cpu_description()
    return {
        "cpu": model,
        "flags": hashlib.sha1(flags.encode()).hexdigest()[:16],
        "torch": torch.__version__,
        "threads": threads,
    }


@lru_cache(maxsize=1)
def cpu_description() -> tuple[str, str]:
    """The CPU's model name and feature flags: from /proc/cpuinfo on Linux, else `platform`."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                name, sep, value = line.partition(":")
                if not sep:
                    if fields:
                        break  # the end of the first processor's block
                    continue
                fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    # x86 names its fields "model name" and "flags"; ARM "CPU part" (or "Hardware") and "Features".
    model = fields.get("model name") or fields.get("Hardware") or fields.get("CPU part") or ""
    flags = fields.get("flags") or fields.get("Features") or ""
    return model or platform.processor() or platform.machine() or "unknown", flags


@contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    if threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads != before:
            torch.set_num_threads(before)


def _busy() -> bool:
    """Whether other processes already keep the CPUs busy (load beyond this process's own)."""
    try:
        return os.getloadavg()[0] - 1.0 > 0.5 * (os.cpu_count() or 1)
    except (OSError, AttributeError):
        return False


def _measure(threads: int, measure: Measure) -> Plan:
    """Time every bucket; on a busy CPU, time at most one and assume the rest.

    Timings under load mislead (Winograd's many passes suffer most) and cost seconds each, every
    run, since they are not cached; so a busy machine keeps the static gates' choice instead.
    """
    start = time.perf_counter()
    choices: list[Choice] = []
    for bucket in BUCKETS:
        if choices and choices[-1].cpu_share < MIN_CPU_SHARE or (not choices and _busy()):
            share = choices[-1].cpu_share if choices else 0.0
            choices = [Choice(b, 1.0, 1.0, share, assumed=True) for b in BUCKETS]
            break
        choices.append(measure(bucket))
    return Plan(
        cpu_description()[0],
        torch.__version__,
        threads,
        tuple(choices),
        time.perf_counter() - start,
        measured=True,
        path=None,
    )


def _store(plan: Plan, path: Path, key: dict[str, object]) -> Plan:
    """`plan` with its `path`, once written atomically there; unchanged where it cannot be or
    where it was measured under load."""
    if plan.under_load:
        return plan
    record = {
        "format": FORMAT,
        "key": key,
        "seconds": plan.seconds,
        "margin": MARGIN,
        "choices": [
            {
                **asdict(c.bucket),
                "direct_ms": c.direct_ms,
                "winograd_ms": c.winograd_ms,
                "cpu_share": c.cpu_share,
                "winograd": c.winograd,
            }
            for c in plan.choices
        ],
    }
    return replace(plan, path=path) if write_json(path, record) else plan


def write_json(path: Path, record: dict[str, object]) -> bool:
    """Write `record` to `path` atomically (a cache file of this machine's timings); False where
    the folder cannot be written, which leaves the timing uncached."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        return False
    return True


def _load(path: Path, key: dict[str, object], threads: int) -> Plan | None:
    """The plan cached in `path`, or None where it is missing, unreadable or not for these buckets."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if record["format"] != FORMAT or record["key"] != key:
            return None
        entries = record["choices"]
        if len(entries) != len(BUCKETS):
            return None
        choices = []
        for bucket, entry in zip(BUCKETS, entries):
            if Bucket(*(entry[f] for f in ("in_channels", "out_channels", "height", "width"))) != bucket:
                return None
            choice = Choice(bucket, float(entry["direct_ms"]), float(entry["winograd_ms"]), float(entry["cpu_share"]))
            if not all(math.isfinite(t) and t > 0 for t in (choice.direct_ms, choice.winograd_ms, choice.cpu_share)):
                return None
            choices.append(choice)
        return Plan(
            cpu_description()[0],
            torch.__version__,
            threads,
            tuple(choices),
            float(record["seconds"]),
            measured=False,
            path=path,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
