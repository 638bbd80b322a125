"""Painting a batch on a Ray cluster (the `impasto[ray]` extra; core Ray, no dashboard).

One actor per worker holds the network (loaded once) and its painters. Jobs travel as image bytes
(each input file put in Ray's object store once, however many jobs use it) plus the StyleConfig;
results come back as PNG bytes. So the machines of the cluster need impasto and Ray installed,
but no shared filesystem: the driver reads the inputs and writes every output. An actor that
dies (its machine lost, killed for memory) is replaced and its task given to a worker again.
"""

from __future__ import annotations

import logging
import numbers
import threading
from collections.abc import Iterator, Sequence
from types import ModuleType
from typing import Any

from ..errors import ImpastoError
from .local import Event, OnEvent, dispatch, whole_number
from .worker import Blob, Outcome, Step, Task, Worker, read_blob

__all__ = ["INSTALL_HINT", "RayExecutor", "require_ray"]

INSTALL_HINT = "pip install 'impasto[ray]'"


def require_ray() -> ModuleType:
    """The ray module, or a one-line ImpastoError naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ImpastoError(
            f"running on Ray needs Ray, which is not installed; install it with: {INSTALL_HINT}"
        ) from None
    return ray


class PainterActor:
    """A Ray actor's state: a Worker on `threads` CPU threads, the task under way's progress."""

    def __init__(self, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)  # this actor's own process
        self.worker = Worker(fetch=_fetch)
        self.stop_event = threading.Event()
        self.latest: tuple[int, Step] | None = None

    def paint(self, task: Task) -> Outcome:
        self.latest = None

        def note(step: Step) -> None:
            self.latest = (task.index, step)

        return self.worker.paint(task, self.stop_event, note)

    def progress(self) -> tuple[int, Step] | None:
        return self.latest

    def stop(self) -> None:
        self.stop_event.set()


def _fetch(blob: Blob) -> bytes:
    import ray

    if isinstance(blob.source, ray.ObjectRef):
        return ray.get(blob.source)
    return read_blob(blob)


class RayExecutor:
    """Paints on a Ray cluster: `address` is what `ray.init` takes ("auto" on a cluster's node,
    "ray://host:10001" from outside it, "local" to start one on this machine). A process already
    connected to Ray (ray.init called) uses that connection. `workers` actors (default: the
    cluster's CPUs divided by `threads`) of `threads` CPU threads each.

    `gpus` is each actor's share of a GPU (Ray hides the GPUs from an actor that asks for none).
    By default an actor gets one GPU when a task asks for device cuda, or for auto on a cluster that
    has GPUs, and then there are at most as many actors as GPUs."""

    def __init__(
        self,
        address: str = "local",
        workers: int | None = None,
        threads: int = 1,
        retries: int = 2,
        gpus: float | None = None,
    ) -> None:
        if not isinstance(address, str):
            raise ImpastoError(
                f'address must be a str ("auto", "ray://host:10001" or "local"), got {type(address).__name__}'
            )
        self.address = address
        self.workers = None if workers is None else whole_number(workers, "workers", 1, or_none=True)
        self.threads = whole_number(threads, "threads", 1)
        self.retries = whole_number(retries, "retries", 0)
        if gpus is not None and (isinstance(gpus, bool) or not isinstance(gpus, numbers.Real) or not gpus >= 0):
            raise ImpastoError(f"gpus must be a number of 0 or more (a share of a GPU) or None, got {gpus!r:.60}")
        self.gpus = gpus
        self.pool: RayPool | None = None  # while a batch runs: its actors, e.g. to watch or kill one

    def run(self, tasks: Sequence[Task], stop: Any = None, on_event: OnEvent | None = None) -> Iterator[Outcome]:
        """Outcomes as tasks finish, in any order."""
        if not tasks:
            return
        ray = require_ray()
        started_here = not ray.is_initialized()
        if started_here:
            try:
                ray.init(
                    address=self.address,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.WARNING,
                    configure_logging=True,
                )
            except ConnectionError as error:
                raise ImpastoError(
                    f"cannot connect to Ray at {self.address!r} ({error}); start the cluster first, or use ray local"
                ) from None
        resources = ray.cluster_resources()
        gpus = self.gpus
        if gpus is None:
            wanted = {t.config.device for t in tasks}
            gpus = 1.0 if "cuda" in wanted or ("auto" in wanted and resources.get("GPU", 0) >= 1) else 0.0
        if gpus > resources.get("GPU", 0):  # Ray would wait for ever for a GPU it does not have
            if started_here:
                ray.shutdown()
            raise ImpastoError(
                f"the Ray cluster has {resources.get('GPU', 0):g} GPUs and a worker asks for {gpus:g} "
                "(device cuda); use device cpu or auto, or add GPUs to the cluster"
            )
        workers = self.workers or max(1, int(resources.get("CPU", 1)) // self.threads)
        if gpus > 0 and not self.workers:
            workers = max(1, min(workers, int(resources.get("GPU", 0) // gpus)))
        self.pool = RayPool(ray, min(workers, len(tasks)), self.threads, gpus)
        try:
            yield from dispatch(tasks, self.pool, stop, on_event, self.retries)
        finally:
            self.pool.close()
            self.pool = None
            if started_here:
                ray.shutdown()


class RayPool:
    """Actors addressed by slot; each input's bytes put in the object store once."""

    def __init__(self, ray: ModuleType, size: int, threads: int, gpus: float = 0.0) -> None:
        self.ray, self.size, self.threads = ray, size, threads
        self._remote = ray.remote(num_cpus=threads, num_gpus=gpus, max_concurrency=4)(PainterActor)
        self.actors = [self._remote.remote(threads) for _ in range(size)]
        self._calls: dict[Any, tuple[int, int]] = {}  # paint call -> (slot, task index)
        self._busy: dict[int, int] = {}  # slot -> task index
        self._seen: dict[int, int] = {}  # slot -> last iteration reported
        self._refs: dict[str, Any] = {}  # sha256 -> object reference of the bytes

    def _put(self, blob: Blob) -> Blob:
        if blob.sha256 not in self._refs:
            self._refs[blob.sha256] = self.ray.put(read_blob(blob))
        return Blob(blob.name, blob.sha256, self._refs[blob.sha256])

    def send(self, slot: int, task: Task) -> None:
        try:
            shipped = task.map_blobs(self._put)
        except ImpastoError as error:  # an input gone since planning: the task fails, here
            self._calls[self.ray.put(Outcome.failure(task.index, str(error)))] = (slot, task.index)
        else:
            self._calls[self.actors[slot].paint.remote(shipped)] = (slot, task.index)
        self._busy[slot], self._seen[slot] = task.index, 0

    def poll(self, timeout: float) -> list[Event]:
        if not self._calls:
            return []
        exceptions = self.ray.exceptions
        events: list[Event] = []
        ready, _ = self.ray.wait(list(self._calls), num_returns=len(self._calls), timeout=timeout)
        for ref in ready:
            slot, index = self._calls.pop(ref)
            self._busy.pop(slot, None)
            try:
                events.append(("done", slot, self.ray.get(ref)))
            except (exceptions.RayActorError, exceptions.WorkerCrashedError, exceptions.ObjectLostError) as error:
                events.append(("died", slot, type(error).__name__))
            except exceptions.RayError as error:
                reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
                events.append(("done", slot, Outcome.failure(index, reason)))
        return self._progress() + events

    def _progress(self) -> list[Event]:
        """Each busy actor's latest step, if newer than the last one reported."""
        slots = list(self._busy)
        calls = [self.actors[s].progress.remote() for s in slots]
        try:
            answers = self.ray.get(calls, timeout=2)
        except Exception:  # an actor dying now shows up in its paint call
            return []
        events: list[Event] = []
        for slot, answer in zip(slots, answers):
            if answer is None or answer[0] != self._busy.get(slot):
                continue
            _, step = answer
            if step.iteration > self._seen.get(slot, 0):
                self._seen[slot] = step.iteration
                events.append(("step", slot, step))
        return events

    def replace(self, slot: int) -> None:
        try:
            self.ray.kill(self.actors[slot], no_restart=True)
        except Exception:  # already gone
            pass
        self.actors[slot] = self._remote.remote(self.threads)

    def stop(self) -> None:
        for actor in self.actors:
            actor.stop.remote()

    def close(self, at_once: bool = False) -> None:
        for actor in self.actors:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # already gone
                pass
        self.actors = []
