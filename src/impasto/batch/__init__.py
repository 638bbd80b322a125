"""Batches: many pictures in one run, resumable, on this machine or on a Ray cluster.

    from impasto.batch import LocalExecutor, cross_jobs, image_files, run_batch

    jobs = cross_jobs(image_files(["photos"], "content"), image_files(["art"], "style"), Path("out"),
                      impasto.StyleConfig(size=384))
    result = run_batch(jobs, LocalExecutor(workers=2), summary="out/batch-summary.csv")

`jobs` makes the jobs (every content in every style) and checks them, `jobs_file` reads those
of a TOML file, `runner` runs them (skipping those done before, writing outputs with their
settings, the summary CSV), `worker` is what paints on each worker (one network, painters reused
across jobs), `local` runs workers here and `cluster` on Ray (the `impasto[ray]` extra, imported
only there). `impasto batch` is `cli`. Names are imported on first use, so `impasto batch --help`
answers without loading torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "RayExecutor": "cluster",
    "OUTPUT_FORMATS": "jobs",
    "Job": "jobs",
    "cross_jobs": "jobs",
    "image_files": "jobs",
    "read_jobs_file": "jobs_file",
    "LocalExecutor": "local",
    "SUMMARY_NAME": "runner",
    "BatchEvent": "runner",
    "BatchResult": "runner",
    "JobReport": "runner",
    "run_batch": "runner",
    "Outcome": "worker",
    "Step": "worker",
    "Task": "worker",
    "Worker": "worker",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
