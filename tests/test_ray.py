"""Batches on a local Ray cluster (2 CPUs, started once for the session): the same pictures as
the local executor, resume, and a worker that dies has its job painted again."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from impasto import StyleConfig
from impasto.batch import LocalExecutor, RayExecutor, cross_jobs, run_batch
from impasto.errors import ImpastoError
from impasto.metadata import read_settings

from conftest import pattern, stripes

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.weights  # the actors load the real network


def fixed_arithmetic(config: StyleConfig) -> StyleConfig:
    """Direct float32 convolutions: Winograd and precision "auto" are chosen by a timing, per
    process where the machine is busy, so processes could choose differently."""
    names = {f.name for f in dataclasses.fields(StyleConfig)}
    config = config.replace(winograd=False)  # no per-process timing decides the convolutions
    return config.replace(precision="fp32") if "precision" in names else config


CONFIG = fixed_arithmetic(StyleConfig(size=40, iterations=4, scales=1))


@pytest.fixture(scope="session")
def cluster():
    """A local Ray cluster of 2 CPUs for the whole session."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture
def jobs(tmp_path):
    for i, name in enumerate(("cat.png", "dog.png", "owl.png")):
        pattern(48 - 4 * i, 32, i + 1).save(tmp_path / name)
    stripes(40, 40).save(tmp_path / "stripes.png")
    pattern(40, 40, 9).save(tmp_path / "blobs.png")

    def make(folder):
        contents = [tmp_path / n for n in ("cat.png", "dog.png", "owl.png")]
        return cross_jobs(contents, [tmp_path / "stripes.png", tmp_path / "blobs.png"], tmp_path / folder, CONFIG)

    return make


def paint_here(jobs):
    """The same jobs with the local executor in this process, on one thread like each Ray worker,
    on a network it loads as each worker does."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_batch(jobs, LocalExecutor())
    finally:
        torch.set_num_threads(threads)


def same_pixels(a, b):
    with Image.open(a) as x, Image.open(b) as y:
        return np.array_equal(np.asarray(x), np.asarray(y))


def test_ray_paints_what_the_local_executor_paints_and_resumes(cluster, jobs):
    on_ray = jobs("ray")
    executor = RayExecutor(threads=1)
    result = run_batch(on_ray, executor, summary=on_ray[0].output.parent / "summary.csv")
    assert [r.status for r in result.reports] == ["done"] * 6
    here = jobs("here")
    assert [r.status for r in paint_here(here).reports] == ["done"] * 6
    for a, b in zip(on_ray, here):
        assert same_pixels(a.output, b.output), a.name
    record = read_settings(on_ray[0].output)
    assert record["run"]["threads"] == 1 and record["device"] == "cpu"
    # Run again: nothing is sent to the cluster.
    events = []
    again = run_batch(on_ray, executor, callback=events.append)
    assert again.count("skipped") == 6 and not [e for e in events if e.kind == "started"]


def test_a_worker_that_dies_has_its_job_painted_again(cluster, jobs):
    on_ray = jobs("ray")[:2]
    executor = RayExecutor(threads=1, workers=2)
    killed = []

    def kill_the_first_worker_given_a_job(event):
        # On "started", not on a step: a fast machine finishes a 4-iteration job between two
        # progress polls, so a step event may never come; the job just sent cannot be done yet.
        if event.kind == "started" and not killed:
            killed.append(event.job.name)
            ray.kill(executor.pool.actors[event.worker], no_restart=True)

    result = run_batch(on_ray, executor, callback=kill_the_first_worker_given_a_job)
    assert killed and [r.status for r in result.reports] == ["done", "done"]
    here = jobs("here")[:2]
    paint_here(here)
    for a, b in zip(on_ray, here):
        assert same_pixels(a.output, b.output), a.name


def test_a_broken_input_fails_its_job_on_ray_too(cluster, tmp_path):
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n no pixels")
    stripes(40, 40).save(tmp_path / "stripes.png")
    broken = cross_jobs([tmp_path / "broken.png"], [tmp_path / "stripes.png"], tmp_path / "out", CONFIG)
    result = run_batch(broken, RayExecutor(threads=1, workers=1))
    assert result.reports[0].status == "failed" and "broken.png" in result.reports[0].error


def test_device_cuda_on_a_cluster_without_gpus_is_an_error_not_a_wait(cluster, jobs):
    # A worker asks Ray for a GPU when its jobs want CUDA (else Ray hides the GPUs from it); on a
    # cluster with none, Ray would wait for ever to place it.
    on_cuda = [dataclasses.replace(j, config=j.config.replace(device="cuda")) for j in jobs("cuda")[:2]]
    with pytest.raises(ImpastoError, match=r"the Ray cluster has 0 GPUs and a worker asks for 1 \(device cuda\)"):
        run_batch(on_cuda, RayExecutor(threads=1))
    assert ray.is_initialized()  # the session's cluster is left as it was
