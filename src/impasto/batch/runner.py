"""Running a batch: what is done already, what each job needs, writing outputs and the summary.

The driver's side of a batch, whatever paints the tasks (this process, worker processes, a Ray
cluster). Before any work it hashes every input and the weights; a job whose output exists and
carries the same `settings_hash` is skipped, so a batch run again after a crash, a Ctrl-C or a
power cut does only what is missing. Outputs are written here alone, atomically, with their
settings, so a half-written file never exists to be taken as done. A job that fails is reported
(one line, and in the summary file) and the others go on.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import PIL.Image

from ..config import StyleConfig
from ..errors import ImpastoError
from ..images import check_output_path
from ..metadata import HASH_KEY, read_settings, settings_hash, settings_record
from ..provenance import input_roles, save_result, weights_sha256
from .jobs import Job, as_path, output_folder
from .local import LocalExecutor, OnEvent
from .worker import Blob, Outcome, Step, Task

__all__ = ["BatchEvent", "BatchResult", "Executor", "JobReport", "STATUSES", "SUMMARY_NAME", "run_batch"]

STATUSES = ("done", "skipped", "failed", "stopped")
SUMMARY_NAME = "batch-summary.csv"
_COLUMNS = ("job", "status", "output", "seconds", "iterations", "content", "styles", "error")


class Executor(Protocol):
    """What paints a batch's tasks (LocalExecutor, RayExecutor)."""

    def run(self, tasks: Sequence[Task], stop: Any = None, on_event: OnEvent | None = None) -> Iterator[Outcome]: ...


@dataclass(frozen=True)
class JobReport:
    """How one job ended: done (written), skipped (done before), failed (`error`), or stopped."""

    job: Job
    status: str
    error: str | None = None
    seconds: float = 0.0
    iterations: int = 0


@dataclass(frozen=True)
class BatchEvent:
    """Progress of a batch, for a callback: a job started, stepped, ended, or warned."""

    kind: str  # "skipped", "started", "step", "done", "failed", "stopped", "warning"
    job: Job
    worker: int | None = None  # the worker's slot, for "started" and "step"
    step: Step | None = None
    message: str | None = None  # the reason of "failed", the text of "warning"
    done: int = 0  # jobs written so far in this run
    failed: int = 0
    skipped: int = 0
    total: int = 0


@dataclass
class BatchResult:
    """Every job's report, in the batch's order; `interrupted` when a stop ended it early."""

    reports: list[JobReport]
    interrupted: bool = False
    summary: Path | None = None

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.reports)

    @property
    def failed(self) -> list[JobReport]:
        return [r for r in self.reports if r.status == "failed"]


@dataclass
class _Planned:
    job: Job
    config: StyleConfig  # the job's config, which a planned job always has
    inputs: dict[str, dict[str, str]]  # role -> {"file", "sha256"}
    weights: str
    expected: str


def _roles(job: Job) -> dict[str, Path]:
    roles: dict[str, Path] = {}
    for role, source in input_roles(job.content, job.styles, job.masks).items():
        assert isinstance(source, Path)  # a job's inputs are all paths
        roles[role] = source
    if job.start_image is not None:
        roles["start image"] = job.start_image
    return roles


def _plan(job: Job, hashes: dict[Path, str], weights: dict[Any, str]) -> _Planned:
    """Hash the job's inputs (once per file) and weights; ImpastoError for a missing input."""
    if job.error is not None or job.config is None:
        raise ImpastoError(job.error or "bad options")
    roles = _roles(job)
    described: dict[str, dict[str, str]] = {}
    for role, path in roles.items():
        key = path.expanduser().resolve()
        if key not in hashes:
            if not key.is_file():
                raise ImpastoError(f"{role} {path} does not exist; check the path")
            from ..metadata import sha256_of

            hashes[key] = sha256_of(key)
        described[role] = {"file": path.name, "sha256": hashes[key]}
    check_output_path(job.output, list(roles.values()))
    if job.config.weights not in weights:
        weights[job.config.weights] = weights_sha256(job.config)
    w = weights[job.config.weights]
    expected = settings_hash({"config": dataclasses.asdict(job.config), "inputs": described, "weights_sha256": w})
    return _Planned(job, job.config, described, w, expected)


def _done_before(planned: _Planned) -> bool:
    """Whether the output exists, whole, from the same settings. Options added to impasto since
    it was made count as the same settings while they are at their defaults."""
    if not planned.job.output.is_file():
        return False
    try:
        record = read_settings(planned.job.output)
    except ImpastoError:
        return False
    if not record or (record.get("run") or {}).get("interrupted"):
        return False
    return _same_settings(planned, record) and _whole_picture(planned.job.output)


def _same_settings(planned: _Planned, record: dict) -> bool:
    if record.get(HASH_KEY) == planned.expected:
        return True
    recorded = set(record.get("config") or {})
    config, defaults = dataclasses.asdict(planned.config), dataclasses.asdict(StyleConfig())
    newer = [name for name in config if name not in recorded]
    if not newer or any(config[name] != defaults[name] for name in newer):
        return False
    older = {name: value for name, value in config.items() if name in recorded}
    return settings_hash(record) == settings_hash(
        {"config": older, "inputs": planned.inputs, "weights_sha256": planned.weights}
    )


def _whole_picture(path: Path) -> bool:
    """Whether every pixel of the picture decodes: the settings come before the pixels in the
    file, so a copy cut short can carry whole settings."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)  # our own large output
            with PIL.Image.open(path) as picture:
                picture.load()
    except PIL.Image.DecompressionBombError:  # too large to decode here: taken on its settings
        return True
    except (OSError, SyntaxError, ValueError):
        return False
    return True


def _task(index: int, planned: _Planned) -> Task:
    job, inputs = planned.job, planned.inputs
    roles = _roles(job)

    def blob(role: str) -> Blob:
        return Blob(roles[role].name, inputs[role]["sha256"], roles[role])

    styles = tuple(blob(f"style image {i}") for i in range(1, len(job.styles) + 1))
    masks = tuple(blob(f"style mask {i}") if m is not None else None for i, m in enumerate(job.masks, start=1))
    return Task(
        index,
        blob("content image"),
        styles,
        planned.config,
        masks,
        blob("start image") if "start image" in roles else None,
    )


def run_batch(
    jobs: Sequence[Job] | Job,
    executor: Executor | None = None,
    *,
    stop: Any = None,
    callback: Callable[[BatchEvent], Any] | None = None,
    summary: str | os.PathLike | None = None,
) -> BatchResult:
    """Make every job's picture that is not made yet; report each job and write `summary` (CSV).

    `jobs` come from cross_jobs or read_jobs_file (one Job is a batch of one). `executor` paints
    (default: a LocalExecutor in this process). `stop` (a threading.Event) ends the batch early:
    finished outputs are kept, the tasks under way are dropped, unwritten.
    """
    jobs, executor = _checked(jobs, executor, stop, callback)
    reports: dict[int, JobReport] = {}
    summary_path = as_path(summary, "summary") if summary is not None else None
    if summary_path is not None:
        _check_summary(summary_path)
    counts = {"done": 0, "failed": 0, "skipped": 0}

    def emit(kind: str, job: Job, **fields: Any) -> None:
        if callback is not None:
            callback(
                BatchEvent(
                    kind,
                    job,
                    **fields,
                    total=len(jobs),
                    done=counts["done"],
                    failed=counts["failed"],
                    skipped=counts["skipped"],
                )
            )

    def finish(index: int, report: JobReport) -> None:
        reports[index] = report
        if report.status in counts:
            counts[report.status] += 1
        emit(report.status, report.job, message=report.error)

    def write_summary() -> None:
        if summary_path is not None:
            _write_summary(summary_path, jobs, reports)

    planned = _plan_all(jobs, finish)
    write_summary()
    # Jobs that share styles and options run back to back, so a worker's painter is reused.
    order = sorted(planned, key=lambda i: (tuple(b.sha256 for b in _task(i, planned[i]).styles), i))
    tasks = [_task(i, planned[i]) for i in order]

    def on_event(task: Task, worker: int, step: Step | None) -> None:
        emit("started" if step is None else "step", jobs[task.index], worker=worker, step=step)

    try:
        for outcome in executor.run(tasks, stop, on_event):
            finish(outcome.index, _keep(planned[outcome.index], outcome, emit))
            write_summary()
    finally:
        for index in planned:
            if index not in reports:
                reports[index] = JobReport(jobs[index], "stopped", "not finished")
        write_summary()
    interrupted = stop is not None and stop.is_set()
    return BatchResult([reports[i] for i in range(len(jobs))], interrupted, summary_path)


def _checked(jobs: Any, executor: Any, stop: Any, callback: Any) -> tuple[list[Job], Executor]:
    """The jobs as a list (one Job is a batch of one) and the executor (default: a LocalExecutor),
    once they and `stop` and `callback` are of the kinds run_batch takes; else an ImpastoError."""
    if isinstance(jobs, Job):
        jobs = [jobs]
    if isinstance(jobs, (str, bytes)) or not isinstance(jobs, Iterable):
        raise ImpastoError(
            f"jobs must be a list of Jobs (from cross_jobs or read_jobs_file), got {type(jobs).__name__}"
        )
    jobs = list(jobs)
    odd = next((j for j in jobs if not isinstance(j, Job)), None)
    if odd is not None:
        raise ImpastoError(
            f"jobs must be a list of Jobs (from cross_jobs or read_jobs_file), but holds {type(odd).__name__}"
        )
    if executor is None:
        executor = LocalExecutor()
    elif not callable(getattr(executor, "run", None)):
        raise ImpastoError(
            f"executor must be a LocalExecutor or a RayExecutor (or None for LocalExecutor()), got "
            f"{type(executor).__name__} {executor!r:.40}"
        )
    if stop is not None and not callable(getattr(stop, "is_set", None)):
        raise ImpastoError(f"stop must be a threading.Event (or None), got {type(stop).__name__}")
    if callback is not None and not callable(callback):
        raise ImpastoError(f"callback must be a function of a BatchEvent (or None), got {type(callback).__name__}")
    return jobs, executor


def _check_summary(path: Path) -> None:
    """An ImpastoError, before any work, where the summary cannot be written; creates its folder."""
    output_folder(path.parent)
    if path.is_dir():
        raise ImpastoError(f"summary {path} is a folder; move it away or give another output folder")


def _plan_all(jobs: Sequence[Job], finish: Callable[[int, JobReport], None]) -> dict[int, _Planned]:
    """The jobs still to do, planned; the others (failed to plan, or done before) are finished."""
    planned: dict[int, _Planned] = {}
    hashes: dict[Path, str] = {}
    weights: dict[Any, str] = {}
    for index, job in enumerate(jobs):
        try:
            plan = _plan(job, hashes, weights)
        except ImpastoError as error:
            finish(index, JobReport(job, "failed", " ".join(str(error).split())))
            continue
        if _done_before(plan):
            finish(index, JobReport(job, "skipped"))
        else:
            planned[index] = plan
    return planned


def _keep(planned: _Planned, outcome: Outcome, emit: Callable[..., None]) -> JobReport:
    """Write a finished task's picture with its settings; the job's report."""
    job = planned.job
    for text in outcome.warnings:
        emit("warning", job, message=text)
    if outcome.error is not None:
        return JobReport(job, "failed", outcome.error, outcome.seconds, outcome.iterations)
    if outcome.interrupted or outcome.png is None:
        return JobReport(job, "stopped", "stopped before its end; not written", outcome.seconds, outcome.iterations)
    run: dict[str, Any] = {
        "iterations": outcome.iterations,
        "interrupted": False,
        "seconds": outcome.seconds,
        "threads": outcome.threads,
    }
    if outcome.precision is not None:
        run["precision"] = outcome.precision
    record = settings_record(job.config, planned.inputs, planned.weights, device=outcome.device, run=run)
    try:
        with PIL.Image.open(io.BytesIO(outcome.png)) as picture:
            save_result(picture.convert("RGB"), job.output, record)
    except (ImpastoError, OSError) as error:
        return JobReport(job, "failed", " ".join(str(error).split()), outcome.seconds, outcome.iterations)
    return JobReport(job, "done", None, outcome.seconds, outcome.iterations)


def _write_summary(path: Path, jobs: Sequence[Job], reports: dict[int, JobReport]) -> None:
    """The summary CSV, one row per job (pending ones too), replaced atomically."""
    rows = []
    for index, job in enumerate(jobs):
        report = reports.get(index)
        rows.append(
            {
                "job": job.name,
                "status": report.status if report else "pending",
                "output": str(job.output),
                "seconds": f"{report.seconds:.1f}" if report and report.seconds else "",
                "iterations": report.iterations if report and report.iterations else "",
                "content": str(job.content),
                "styles": " ".join(map(str, job.styles)),
                "error": (report.error or "") if report else "",
            }
        )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_text(buffer.getvalue(), encoding="utf-8")
    os.replace(temp, path)
