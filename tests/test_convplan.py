"""Per-machine Winograd choice: decided from a measurement taken once, cached, and never for shapes
the static gates rule out. Measurements are faked except in one tiny real run."""

import dataclasses
import json
import threading

import pytest
import torch

from impasto import convplan
from impasto.convplan import BUCKETS, Bucket, Choice, machine_plan, time_bucket, winograd_pays


class FakeMeasure:
    """Pretends Winograd takes `ratio` times the direct time; counts the buckets it was asked."""

    def __init__(self, ratio: float, cpu_share: float = 1.0) -> None:
        self.ratio, self.cpu_share = ratio, cpu_share
        self.calls: list[Bucket] = []

    def __call__(self, bucket: Bucket) -> Choice:
        self.calls.append(bucket)
        return Choice(bucket, 10.0, 10.0 * self.ratio, self.cpu_share)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A fresh cache folder and no plan remembered from an earlier test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("IMPASTO_CACHE_DIR", str(folder))
    monkeypatch.setattr(convplan, "_PLANS", {})
    monkeypatch.setattr(convplan, "_busy", lambda: False)  # whatever else the machine is doing
    return folder


def new_process():
    """Forget the plans kept in memory, as a new process would start without them."""
    convplan._PLANS.clear()


@pytest.mark.parametrize("ratio,expected", [(0.5, True), (0.97, False), (1.0, False), (2.0, False)])
def test_winograd_only_where_measured_faster_by_the_margin(ratio, expected):
    """Winograd 3 % faster is within the noise: direct stays."""
    plan = machine_plan(measure=FakeMeasure(ratio))
    assert [c.winograd for c in plan.choices] == [expected] * len(BUCKETS)
    assert winograd_pays(512, 512, 64, 64, measure=FakeMeasure(ratio)) is expected


def test_each_shape_takes_the_nearest_bucket():
    """Winograd wins only on the 512-channel 16x16 bucket: only small 512-channel layers use it."""

    def measure(bucket):
        return Choice(bucket, 10.0, 5.0 if (bucket.in_channels, bucket.height) == (512, 16) else 20.0)

    assert winograd_pays(512, 512, 16, 16, measure=measure)
    assert winograd_pays(512, 512, 20, 20, measure=measure)
    assert not winograd_pays(512, 512, 64, 64, measure=measure)
    assert not winograd_pays(256, 256, 128, 128, measure=measure)
    assert not winograd_pays(256, 512, 64, 64, measure=measure)


@pytest.mark.parametrize("shape", [(128, 256, 128, 128), (64, 64, 512, 512), (256, 256, 16, 16), (512, 512, 8, 8)])
def test_static_gates_never_measure(shape, cache):
    """Too few input channels, or too little work: direct, without timing or touching the cache."""
    measure = FakeMeasure(0.1)
    assert not winograd_pays(*shape, measure=measure)
    assert measure.calls == []
    assert not cache.exists()


def test_measured_once_then_read_from_the_cache_file(cache):
    first = FakeMeasure(0.5)
    plan = machine_plan(measure=first)
    assert plan.measured and first.calls == list(BUCKETS)
    files = list(cache.iterdir())
    assert files == [plan.path]
    record = json.loads(plan.path.read_text())
    assert record["key"]["threads"] == torch.get_num_threads()
    assert [c["winograd"] for c in record["choices"]] == [True] * len(BUCKETS)

    again = FakeMeasure(2.0)
    assert machine_plan(measure=again) is plan  # the same process: from memory
    new_process()
    reread = machine_plan(measure=again)
    assert again.calls == []
    assert not reread.measured and reread.choices == plan.choices
    assert winograd_pays(512, 512, 64, 64, measure=again)  # the cached choice, not the new fake


@pytest.mark.parametrize("content", ["{not json", "[]", '{"format": 1}', ""])
def test_a_corrupt_cache_file_is_measured_again_and_rewritten(content):
    path = machine_plan(measure=FakeMeasure(0.5)).path
    path.write_text(content)
    new_process()
    measure = FakeMeasure(2.0)
    plan = machine_plan(measure=measure)
    assert measure.calls == list(BUCKETS)
    assert plan.path == path and not any(c.winograd for c in plan.choices)
    assert json.loads(path.read_text())["choices"][0]["winograd_ms"] == 20.0


def test_a_cache_file_for_other_buckets_is_measured_again():
    path = machine_plan(measure=FakeMeasure(0.5)).path
    record = json.loads(path.read_text())
    record["choices"][0]["height"] = 99
    path.write_text(json.dumps(record))
    new_process()
    measure = FakeMeasure(0.5)
    machine_plan(measure=measure)
    assert measure.calls == list(BUCKETS)


def test_an_unwritable_cache_folder_still_decides_and_remembers_for_the_process(tmp_path, monkeypatch):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv("IMPASTO_CACHE_DIR", str(blocker / "impasto"))  # a folder inside a file
    measure = FakeMeasure(0.5)
    assert winograd_pays(512, 512, 32, 32, measure=measure)
    plan = machine_plan(measure=measure)
    assert plan.path is None and "not cached" in plan.describe()
    assert len(measure.calls) == len(BUCKETS)  # measured once for both calls


def test_a_measurement_under_load_stops_keeps_the_static_choice_and_is_not_cached(cache):
    """Other processes competed for the CPU: one bucket is timed, the rest assumed (Winograd, the
    static gates' choice), used now and measured again next time."""
    loaded = FakeMeasure(2.0, cpu_share=0.5)
    plan = machine_plan(measure=loaded)
    assert len(loaded.calls) == 1 and all(c.assumed for c in plan.choices)
    assert plan.under_load and plan.path is None and "CPU busy" in plan.describe()
    assert winograd_pays(512, 512, 64, 64, measure=loaded) and len(loaded.calls) == 1
    assert not cache.exists()
    new_process()
    quiet = FakeMeasure(2.0)
    assert not winograd_pays(512, 512, 64, 64, measure=quiet)
    assert len(quiet.calls) == len(BUCKETS) and len(list(cache.iterdir())) == 1


def test_a_busy_machine_is_not_timed_at_all(cache, monkeypatch):
    monkeypatch.setattr(convplan, "_busy", lambda: True)
    measure = FakeMeasure(2.0)
    assert winograd_pays(512, 512, 64, 64, measure=measure) and measure.calls == []
    assert not cache.exists()


def test_the_key_and_file_change_with_the_thread_count(cache):
    one = machine_plan(1, measure=FakeMeasure(0.5))
    two = machine_plan(2, measure=FakeMeasure(2.0))
    assert one.threads == 1 and two.threads == 2 and one.path != two.path
    assert convplan.cache_key(1) != convplan.cache_key(2)
    assert len(list(cache.iterdir())) == 2


def test_measures_with_the_thread_count_asked_for_and_restores_torchs():
    before = torch.get_num_threads()
    seen = []
    machine_plan(before + 1, measure=lambda bucket: (seen.append(torch.get_num_threads()), Choice(bucket, 1.0, 2.0))[1])
    assert set(seen) == {before + 1}
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("threads", [0, -1, 1.5])
def test_rejects_a_bad_thread_count(threads):
    with pytest.raises(ValueError, match="threads"):
        machine_plan(threads, measure=FakeMeasure(0.5))


def test_concurrent_callers_measure_once(cache):
    measure = FakeMeasure(0.5)
    results = []
    workers = [
        threading.Thread(target=lambda: results.append(winograd_pays(512, 512, 64, 64, measure=measure)))
        for _ in range(4)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert results == [True] * 4 and len(measure.calls) == len(BUCKETS)
    assert [p.name for p in cache.iterdir()] == [machine_plan().path.name]  # no temporary left


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("IMPASTO_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert convplan.cache_dir() == tmp_path / "xdg" / "impasto"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # ignored, as the XDG spec says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert convplan.cache_dir() == tmp_path / "home" / ".cache" / "impasto"


def test_a_real_measurement_on_a_tiny_layer(cache):
    """Times the real convolutions, once, on one thread and an 8-channel 4x4 stand-in for the
    buckets, so that it stays quick on a busy machine."""
    timed = []

    def tiny(bucket):
        if not timed:
            timed.append(time_bucket(Bucket(8, 8, 4, 4), repeats=1))
        return dataclasses.replace(timed[0], bucket=bucket, cpu_share=1.0)  # cached even when busy

    plan = machine_plan(1, measure=tiny)
    assert timed[0].direct_ms > 0 and timed[0].winograd_ms > 0 and 0 < timed[0].cpu_share <= 1
    assert all(isinstance(c.winograd, bool) for c in plan.choices)
    assert isinstance(winograd_pays(512, 512, 32, 32, threads=1), bool)
    assert plan.path.exists() and "Winograd" in plan.describe()
