"""Running a batch's tasks on this machine: in this process, or in worker processes.

`dispatch` is the loop every pool of workers shares (these processes, or Ray actors): it gives
each idle worker the next task, passes progress on, and gives a task whose worker died to a
fresh worker, up to `retries` times. A stop asks every worker to stop its task (which then
comes back interrupted) and starts no more.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import numbers
import pickle
import signal
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol

from ..errors import ImpastoError
from .worker import Outcome, Step, Task, Worker, child_threads

__all__ = ["LocalExecutor", "OnEvent", "Pool", "dispatch", "whole_number"]

OnEvent = Callable[[Task, int, "Step | None"], Any]
"""Called with (task, worker slot, step): step None when the task starts on that worker."""

Event = tuple[str, int, Any]
"""What a pool reports: ("step", slot, Step), ("done", slot, Outcome) or ("died", slot, reason)."""


def whole_number(value: Any, name: str, minimum: int, or_none: bool = False) -> int:
    """`value` as an int once it is a whole number of at least `minimum`; an ImpastoError naming the
    parameter `name` otherwise (True and 2.0 are refused). `or_none`: the message says None is
    allowed too (the caller handles None)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        also = " or None" if or_none else ""
        raise ImpastoError(f"{name} must be a whole number of at least {minimum}{also}, got {value!r:.60}")
    return int(value)


class Pool(Protocol):
    """Workers, addressed by slot 0..size-1, each painting one task at a time."""

    size: int

    def send(self, slot: int, task: Task) -> None: ...
    def poll(self, timeout: float) -> list[Event]: ...
    def replace(self, slot: int) -> None: ...
    def stop(self) -> None: ...
    def close(self, at_once: bool = False) -> None: ...


def dispatch(
    tasks: Iterable[Task], pool: Pool, stop: Any, on_event: OnEvent | None = None, retries: int = 2
) -> Iterator[Outcome]:
    """Outcomes of the tasks as they finish. Tasks not started when `stop` is set get none."""
    todo, idle = deque(tasks), deque(range(pool.size))
    busy: dict[int, Task] = {}
    deaths: Counter[int] = Counter()
    stopping = False
    while todo or busy:
        if stop is not None and stop.is_set() and not stopping:
            stopping = True
            todo.clear()
            pool.stop()
        while idle and todo:
            slot, task = idle.popleft(), todo.popleft()
            busy[slot] = task
            pool.send(slot, task)
            if on_event is not None:
                on_event(task, slot, None)
        for kind, slot, payload in pool.poll(0.2):
            running = busy.get(slot)
            if running is None:
                if kind == "died":  # between tasks: a fresh worker for the next one
                    pool.replace(slot)
                continue
            if kind == "step":
                if on_event is not None:
                    on_event(running, slot, payload)
                continue
            del busy[slot]
            if kind == "done":
                idle.append(slot)
                yield payload
                continue
            deaths[running.index] += 1  # "died"
            pool.replace(slot)
            idle.append(slot)
            if deaths[running.index] <= retries and not stopping:
                todo.appendleft(running)
            else:
                yield Outcome.failure(running.index, f"its worker died {deaths[running.index]} times ({payload})")


class LocalExecutor:
    """Paints on this machine: in this process (`workers` 1), or in `workers` processes.

    In this process the thread count is the caller's (the library sets none); each worker process
    uses `threads` CPU threads (default: this process's threads split between the workers). The
    in-process worker is kept between batches (`worker`), so its network and painters are reused.
    """

    def __init__(
        self, workers: int = 1, threads: int | None = None, worker: Worker | None = None, retries: int = 2
    ) -> None:
        self.workers = whole_number(workers, "workers", 1)
        if threads is not None:
            threads = whole_number(threads, "threads", 1, or_none=True)
        self.threads = threads or child_threads(None, self.workers)
        if worker is not None and not callable(getattr(worker, "paint", None)):
            raise ImpastoError(f"worker must be a batch Worker (or None for a new one), got {type(worker).__name__}")
        self.worker = worker if worker is not None else Worker()
        self.retries = whole_number(retries, "retries", 0)
        self.pool: ProcessPool | None = None  # while a batch runs in processes: them, e.g. to watch

    def run(self, tasks: Sequence[Task], stop: Any = None, on_event: OnEvent | None = None) -> Iterator[Outcome]:
        """Outcomes as tasks finish (in this process: in order)."""
        if self.workers == 1:
            yield from self._here(tasks, stop, on_event)
            return
        pool = self.pool = ProcessPool(min(self.workers, max(1, len(tasks))), self.threads)
        try:
            yield from dispatch(tasks, pool, stop, on_event, self.retries)
        except BaseException:  # a second Ctrl-C, or the caller left: end the workers now
            pool.close(at_once=True)
            raise
        finally:
            self.pool = None
        pool.close()

    def _here(self, tasks: Sequence[Task], stop: Any, on_event: OnEvent | None) -> Iterator[Outcome]:
        for task in tasks:
            if stop is not None and stop.is_set():
                return
            if on_event is not None:
                on_event(task, 0, None)
            note = None if on_event is None else (lambda step, t=task: on_event(t, 0, step))
            yield self.worker.paint(task, stop, note)


class SharedFlag:
    """A stop flag the worker processes share: one byte of shared memory, with no lock.

    Not `multiprocessing.Event`: its `is_set()` takes a lock shared by every process, and a
    worker killed while holding it (the engine asks between tiles) would hang the others.
    """

    def __init__(self, context: Any) -> None:
        self._value = context.RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def is_set(self) -> bool:
        return bool(self._value.value)


def _serve(slot: int, threads: int, channel: Any, stop: SharedFlag) -> None:
    """A worker process: paint each task `channel` brings until None; report through it."""
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the driver decides
    torch.set_num_threads(threads)
    worker = Worker()
    channel.send(("ready", slot, None))
    while True:
        try:
            task = channel.recv()
        except EOFError:  # the driver has gone
            return
        if task is None:
            return
        last = [0.0]

        def note(step: Step) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.2 or step.iteration == step.total:
                last[0] = now
                channel.send(("step", slot, step))

        channel.send(("done", slot, worker.paint(task, stop, note)))


class ProcessPool:
    """`size` worker processes (spawned, so each imports torch and loads its network once).

    Each worker has a pipe of its own, written without a lock: a worker killed in the middle of
    a message breaks only its own pipe, which its replacement does not inherit, so neither the
    other workers nor the next task on that slot can be held up or misled by it.
    """

    def __init__(self, size: int, threads: int) -> None:
        self.size, self.threads = size, threads
        self._context = multiprocessing.get_context("spawn")
        self._stop = SharedFlag(self._context)
        self._ready: dict[int, bool] = {}  # by slot: whether its process has started up
        self._workers = [self._spawn(slot) for slot in range(size)]

    def _spawn(self, slot: int) -> tuple[Any, Any]:
        self._ready[slot] = False
        here, there = self._context.Pipe()
        process = self._context.Process(
            target=_serve, args=(slot, self.threads, there, self._stop), name=f"impasto-batch-{slot}", daemon=True
        )
        process.start()
        there.close()  # the worker's end lives in the worker only, so its death reads as the end of the pipe
        return process, here

    @property
    def processes(self) -> list[Any]:
        """The worker processes, by slot."""
        return [process for process, _ in self._workers]

    def send(self, slot: int, task: Task) -> None:
        try:
            self._workers[slot][1].send(task)
        except OSError:  # the worker has died: the next poll says so
            pass

    def poll(self, timeout: float) -> list[Event]:
        channels = {channel: slot for slot, (_, channel) in enumerate(self._workers)}
        sentinels = [process.sentinel for process, _ in self._workers]
        events: list[Event] = []
        broken: set[int] = set()
        ready = multiprocessing.connection.wait([*channels, *sentinels], timeout)
        for channel, slot in channels.items():
            if channel not in ready:
                continue
            try:
                while channel.poll():
                    event = channel.recv()
                    if event[0] == "ready":
                        self._ready[slot] = True
                    else:
                        events.append(event)
            except (EOFError, OSError, pickle.UnpicklingError):  # it died, perhaps in the middle of a message
                broken.add(slot)
        for slot, (process, _) in enumerate(self._workers):
            if process.exitcode is not None or slot in broken:
                process.join(1)
                events.append(("died", slot, self._death(slot, process.exitcode)))
        return events

    def _death(self, slot: int, code: int | None) -> str:
        """Why a worker process ended, in words; an error if it never started (no task could run)."""
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"killed by {name}" + (", perhaps for lack of memory" if code == -signal.SIGKILL else "")
        if not self._ready[slot]:
            raise ImpastoError(
                f"a batch worker process could not start (exit status {code}); its error is above. A script "
                'that starts worker processes needs `if __name__ == "__main__":` around its own work'
            )
        return f"exit status {code}"

    def replace(self, slot: int) -> None:
        process, channel = self._workers[slot]
        if process.is_alive():
            process.terminate()
        process.join(5)
        channel.close()
        self._workers[slot] = self._spawn(slot)

    def stop(self) -> None:
        self._stop.set()

    def close(self, at_once: bool = False) -> None:
        """End the processes: idle ones when asked to, busy ones (or all, `at_once`) by a signal."""
        self._stop.set()
        for slot, (process, _) in enumerate(self._workers):
            if process.is_alive() and not at_once:
                self.send(slot, None)  # type: ignore[arg-type]
        deadline = time.monotonic() + (0 if at_once else 10)
        for process, channel in self._workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.terminate()
                process.join(5)
            channel.close()
