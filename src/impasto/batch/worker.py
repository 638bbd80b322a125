"""What a batch worker does: paint tasks on one network, reusing painters between tasks.

A `Task` is one job as it travels to a worker: each input as a `Blob` (file name, SHA-256, and
where its bytes are: a path on a shared disk, the bytes themselves, or a Ray object reference)
plus the job's StyleConfig. An `Outcome` comes back: the picture as PNG bytes, or one line
saying why there is none. Workers need no shared filesystem and never write files: the driver
writes every output, so it alone decides what is done.

A `Worker` loads each network once (per weights file, pooling, device) and keeps the painters of
recent tasks, so tasks that share styles, masks and options reuse one Painter and its style
targets for every size they need.
"""

from __future__ import annotations

import io
import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import PIL.Image
import torch

from ..config import INITS, StyleConfig
from ..engine import Painter, Progress, build_network, resolve_device
from ..errors import ImpastoError
from ..images import pil_to_tensor, read_image, read_mask, tensor_to_pil
from ..vgg import VGG

__all__ = ["Blob", "Outcome", "Step", "Task", "Worker", "read_blob"]


@dataclass(frozen=True)
class Blob:
    """One input file: its name (for messages), SHA-256 (for caching), and its bytes' source."""

    name: str
    sha256: str
    source: Any  # a Path, bytes, or anything a Worker's `fetch` understands (a Ray ObjectRef)


@dataclass(frozen=True)
class Task:
    """One job for a worker: its inputs as blobs, its options; `index` is its place in the batch."""

    index: int
    content: Blob
    styles: tuple[Blob, ...]
    config: StyleConfig
    masks: tuple[Blob | None, ...] = ()
    init: Blob | None = None  # the start image, when config.init is a path

    def map_blobs(self, change: Callable[[Blob], Blob]) -> Task:
        """The same task with every blob replaced by `change(blob)`."""

        def opt(b: Blob | None) -> Blob | None:
            return None if b is None else change(b)

        return replace(
            self,
            content=change(self.content),
            styles=tuple(change(b) for b in self.styles),
            masks=tuple(opt(b) for b in self.masks),
            init=opt(self.init),
        )


@dataclass(frozen=True)
class Step:
    """A task's progress after one optimiser step."""

    iteration: int
    total: int
    size: tuple[int, int]
    losses: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """What a worker gives back for a task: a PNG, or the reason there is none."""

    index: int
    png: bytes | None = None
    error: str | None = None
    interrupted: bool = False  # stopped before its end: no picture is kept
    iterations: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    threads: int = 1
    precision: str | None = None  # of the network pass, as the painter resolved it
    warnings: tuple[str, ...] = ()

    @classmethod
    def failure(cls, index: int, reason: str) -> Outcome:
        return cls(index, error=" ".join(reason.split()))


def read_blob(blob: Blob) -> bytes:
    """A blob's bytes, from its path or as they are."""
    if isinstance(blob.source, (bytes, bytearray, memoryview)):
        return bytes(blob.source)
    try:
        return Path(blob.source).read_bytes()
    except FileNotFoundError:
        raise ImpastoError(f"{blob.name} does not exist any more; check the path") from None
    except OSError as exc:
        raise ImpastoError(f"{blob.name} cannot be read ({exc.strerror or exc}); check the file") from None


def decode(data: bytes, name: str, what: str, mask: bool = False) -> torch.Tensor:
    """An image's bytes as a float tensor; a broken file is a one-line ImpastoError naming it."""
    label = f"{what} {name}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(io.BytesIO(data)) as img:
                img.load()
                picture = img.copy()
    except PIL.UnidentifiedImageError:
        raise ImpastoError(f"{label} is not an image PIL can read (JPEG, PNG, WebP, TIFF, BMP)") from None
    except (PIL.Image.DecompressionBombError, PIL.Image.DecompressionBombWarning):
        raise ImpastoError(f"{label} is too large to decode safely; shrink it first") from None
    except Exception as exc:  # PIL's decoders raise many types on damaged data
        reason = "truncated or damaged" if "truncated" in str(exc) else f"damaged ({exc})"
        raise ImpastoError(f"{label} is {reason}; re-export or re-download it") from None
    return pil_to_tensor(read_mask(picture, label) if mask else read_image(picture, label))


def _network_key(config: StyleConfig) -> Hashable:
    return (config.weights, config.weights_format, config.pooling, config.winograd, config.device)


class Worker:
    """Paints tasks; one network per (weights, pooling, Winograd, device), loaded on first use,
    and up to `keep` painters of recent tasks, reused by tasks with the same styles and options.

    `fetch` turns a blob into bytes (default: `read_blob`). `networks` may give networks already
    loaded, by StyleConfig (their key is taken from it).
    """

    def __init__(
        self, fetch: Callable[[Blob], bytes] = read_blob, keep: int = 8, networks: dict[StyleConfig, VGG] | None = None
    ) -> None:
        self.fetch = fetch
        self.keep = keep
        self.networks: dict[Hashable, VGG] = {_network_key(c): n for c, n in (networks or {}).items()}
        self.painters: OrderedDict[Hashable, Painter] = OrderedDict()
        self.painted = 0  # tasks painted, for tests and reports

    def network(self, config: StyleConfig) -> VGG:
        key = _network_key(config)
        if key not in self.networks:
            self.networks[key] = build_network(config, resolve_device(config.device))
        return self.networks[key]

    def paint(self, task: Task, stop: Any = None, callback: Callable[[Step], Any] | None = None) -> Outcome:
        """Paint a task; every problem becomes an Outcome with a one-line reason, never an exception
        (but KeyboardInterrupt, which stops the run and gives an interrupted Outcome)."""
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                outcome = self._paint(task, stop, callback)
            except ImpastoError as error:
                outcome = Outcome.failure(task.index, str(error))
            except (MemoryError, torch.cuda.OutOfMemoryError):
                outcome = Outcome.failure(task.index, "out of memory; lower size or max_memory, or use fewer workers")
            except Exception as error:  # a failing job must not end the batch
                outcome = Outcome.failure(task.index, f"{type(error).__name__}: {error}")
        notes = tuple(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
        return replace(outcome, seconds=round(time.perf_counter() - started, 3), warnings=notes)

    def _paint(self, task: Task, stop: Any, callback: Callable[[Step], Any] | None) -> Outcome:
        config = task.config
        content = decode(self.fetch(task.content), task.content.name, "content image")
        painter = self._painter(task, content)
        init = None
        if task.init is not None:
            init = decode(self.fetch(task.init), task.init.name, "start image")
        elif config.init not in INITS:
            raise ImpastoError(f"init {config.init!r} is a path, but the task carries no start image")

        def report(p: Progress) -> None:
            if callback is not None:
                callback(Step(p.iteration, p.total, p.size, dict(p.losses)))

        result = painter.paint(content, init=init, stop=stop, callback=report)
        self.painted += 1
        outcome = Outcome(
            task.index,
            iterations=len(result.history),
            interrupted=result.interrupted,
            device=painter.device.type,
            threads=torch.get_num_threads(),
            precision=getattr(getattr(painter, "precision", None), "name", None),
        )
        if result.interrupted:
            return outcome
        buffer = io.BytesIO()
        tensor_to_pil(result.tensor).save(buffer, format="PNG", compress_level=1)
        return replace(outcome, png=buffer.getvalue())

    def _painter(self, task: Task, content: torch.Tensor) -> Painter:
        """The painter for the task's styles, masks and options (made once, then reused)."""
        config = task.config
        colour = task.content.sha256 if config.preserve_color != "none" else None
        key = (tuple(b.sha256 for b in task.styles), tuple(b and b.sha256 for b in task.masks), config, colour)
        if key in self.painters:
            self.painters.move_to_end(key)
            return self.painters[key]
        styles = [decode(self.fetch(b), b.name, f"style image {i}") for i, b in enumerate(task.styles, start=1)]
        masks = [
            None if b is None else decode(self.fetch(b), b.name, f"style mask {i}", mask=True)
            for i, b in enumerate(task.masks, start=1)
        ] or None
        painter = Painter(styles, masks=masks, config=config, network=self.network(config), color_reference=content)
        self.painters[key] = painter
        while len(self.painters) > self.keep:
            self.painters.popitem(last=False)
        return painter


def child_threads(total: int | None, workers: int) -> int:
    """CPU threads for each of `workers` worker processes sharing `total` (default: the cores)."""
    total = total or torch.get_num_threads() or os.cpu_count() or 1
    return max(1, total // max(1, workers))
