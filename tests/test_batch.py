"""Batches: jobs from folders and TOML files, resume, faults, stop, and the summary a user reads."""

import csv
import dataclasses
import re
import threading

import numpy as np
import pytest
from PIL import Image

from impasto import StyleConfig
from impasto.batch import LocalExecutor, Worker, cross_jobs, image_files, read_jobs_file, run_batch
from impasto.batch.jobs import output_folder
from impasto.errors import ImpastoError
from impasto.metadata import HASH_KEY, read_settings

from conftest import pattern, stripes

FAST = StyleConfig(size=40, iterations=3, scales=1)


def fixed_arithmetic(config: StyleConfig) -> StyleConfig:
    """The config with direct float32 convolutions: Winograd and precision "auto" are chosen by a
    timing, per process where the machine is busy, so processes could choose differently."""
    names = {f.name for f in dataclasses.fields(StyleConfig)}
    config = config.replace(winograd=False)  # no per-process timing decides the convolutions
    return config.replace(precision="fp32") if "precision" in names else config


@pytest.fixture
def folders(tmp_path):
    contents, styles = tmp_path / "photos", tmp_path / "art"
    contents.mkdir()
    styles.mkdir()
    pattern(48, 32, 1).save(contents / "cat.png")
    pattern(40, 40, 2).save(contents / "dog.jpg")
    (contents / "notes.txt").write_text("not an image, and not picked up from a folder")
    stripes(40, 40).save(styles / "stripes.png")
    pattern(40, 40, 7).save(styles / "blobs.png")
    return tmp_path, contents, styles


def executor(tiny_net, config=FAST):
    """A local executor whose worker paints on the tiny random network (milliseconds a job)."""
    return LocalExecutor(worker=Worker(networks={config: tiny_net}))


def summary_rows(path):
    with open(path, newline="") as fh:
        return {row["job"]: row for row in csv.DictReader(fh)}


# --- jobs --------------------------------------------------------------------------------------


def test_every_content_in_every_style_is_one_named_job(folders):
    tmp, contents, styles = folders
    jobs = cross_jobs(image_files([contents], "content"), image_files([styles], "style"), tmp / "out", FAST)
    assert sorted(j.output.name for j in jobs) == [
        "cat-blobs.png",
        "cat-stripes.png",
        "dog-blobs.png",
        "dog-stripes.png",
    ]
    assert all(len(j.styles) == 1 and j.config == FAST for j in jobs)
    together = cross_jobs(
        image_files([contents / "cat.png"], "content"),
        image_files([styles], "style"),
        tmp / "out",
        FAST.replace(style_blend=(0.7, 0.3)),
        together=True,
        fmt="jpg",
    )
    assert [j.output.name for j in together] == ["cat-blobs+stripes.jpg"]
    assert together[0].styles == (styles / "blobs.png", styles / "stripes.png")


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda t, c, s: image_files([t / "nowhere"], "content"), "does not exist"),
        (lambda t, c, s: image_files([t / "out"], "content"), "has no images"),
        (lambda t, c, s: cross_jobs([c / "cat.png"], [s / "stripes.png"], t, FAST, fmt="bmp"), "carry their settings"),
        (
            lambda t, c, s: cross_jobs(
                [c / "cat.png"], [s / "stripes.png", s / "blobs.png"], t, FAST.replace(style_blend=(1.0, 2.0))
            ),
            "together",
        ),
        (
            lambda t, c, s: cross_jobs([c / "cat.png", t / "cat.png"], [s / "stripes.png"], t, FAST),
            "two jobs would write",
        ),
        (
            lambda t, c, s: cross_jobs([c / "cat.png", c / "cat.png"], [s / "stripes.png"], t, FAST),
            "the content is given twice; give it once",
        ),
        (lambda t, c, s: cross_jobs([c / "cat.png"], [s / "stripes.png"], t, FAST, masks=[c, c]), "one mask per style"),
    ],
)
def test_a_bad_batch_is_one_line_before_any_work(folders, make, needle):
    tmp, contents, styles = folders
    (tmp / "out").mkdir()
    with pytest.raises(ImpastoError, match=needle) as info:
        make(tmp, contents, styles)
    assert "\n" not in str(info.value)


def test_jobs_file_shares_defaults_and_each_job_overrides(tmp_path):
    (tmp_path / "jobs.toml").write_text("""
size = 40
iterations = 3
styles = ["art/a.png"]
style_weight = 300       # a whole number for a float option: the same settings as 300.0
output_dir = "made"

[[job]]
content = "photos/one.png"

[[job]]
content = "photos/two.png"
styles = ["art/a.png", "art/b.png"]
style_blend = [1, 3]
output = "two-blended.webp"
seed = 4

[[job]]
content = "photos/three.png"
sise = 64

[[job]]
content = "photos/four.png"
size = -1
""")
    jobs = read_jobs_file(tmp_path / "jobs.toml", overrides={"iterations": 5})
    one, two, three, four = jobs
    assert one.config == StyleConfig(size=40, iterations=5, style_weight=300.0)
    assert one.content == tmp_path / "photos" / "one.png" and one.output == tmp_path / "made" / "one-a.png"
    assert two.config.style_blend == (1.0, 3.0) and two.config.seed == 4 and two.config.iterations == 5
    assert two.output == tmp_path / "made" / "two-blended.webp" and len(two.styles) == 2
    assert three.config is None and "unknown option 'sise'" in three.error
    assert four.config is None and "size -1" in four.error
    assert (
        read_jobs_file(tmp_path / "jobs.toml", output_dir=tmp_path / "elsewhere")[0].output.parent
        == tmp_path / "elsewhere"
    )


@pytest.mark.parametrize(
    "text, needle",
    [
        ("size = [", "not valid TOML"),
        ("size = 40", "no [[job]] tables"),
        ("colour = 1\n[[job]]\ncontent = 'a.png'\nstyles = ['b.png']", "unknown setting 'colour'"),
        ("[[job]]\nstyles = ['b.png']", "no content"),
        ("[[job]]\ncontent = 'a.png'", "no styles"),
        ("[[job]]\ncontent = 7\nstyles = ['b.png']", "job 1: content must be a path (a string), got 7"),
        ("[[job]]\ncontent = 'a.png'\nstyles = [1]", "styles must be a file name or a list of file names"),
        ("[[job]]\ncontent = 'a.png'\nstyles = ['b.png']\noutput = 5", "output must be a path (a string), got 5"),
        ("improved = 'no'\n[[job]]\ncontent = 'a.png'\nstyles = ['b.png']", 'improved must be true or false, got "no"'),
        (
            "iterations = true\n[[job]]\ncontent = 'a.png'\nstyles = ['b.png']",
            "iterations must be a whole number, got true",
        ),
        (
            "style_weight = '9'\n[[job]]\ncontent = 'a.png'\nstyles = ['b.png']",
            'style_weight must be a number, got "9"',
        ),
        ("output_dir = 5\n[[job]]\ncontent = 'a.png'\nstyles = ['b.png']", "output_dir must be a path (a string)"),
        ("format = 5\n[[job]]\ncontent = 'a.png'\nstyles = ['b.png']", "format must be a string, got 5"),
    ],
)
def test_a_bad_jobs_file_is_one_line(tmp_path, text, needle):
    (tmp_path / "jobs.toml").write_text(text)
    with pytest.raises(ImpastoError, match=re.escape(needle)) as info:
        read_jobs_file(tmp_path / "jobs.toml")
    assert "\n" not in str(info.value)


def test_a_jobs_file_that_is_not_utf8_is_one_line(tmp_path):
    (tmp_path / "jobs.toml").write_bytes(b"\xff\xfe[\x00[\x00j\x00o\x00b\x00]\x00]\x00")
    with pytest.raises(ImpastoError, match="is not UTF-8 text.*save it as UTF-8") as info:
        read_jobs_file(tmp_path / "jobs.toml")
    assert "\n" not in str(info.value)


def test_options_of_the_wrong_toml_type_fail_their_job_and_say_the_type(tmp_path):
    """ "no" is not false, true is not 1: a wrong type is named, never taken for another value."""
    jobs = [
        ("improved = 'yes'", 'improved must be true or false, got "yes"'),
        ("improved = 1", "improved must be true or false, got 1"),
        ("winograd = 'no'", 'winograd must be true or false, got "no"'),
        ("iterations = true", "iterations must be a whole number, got true"),
        ("size = 40.0", "size must be a whole number, got 40.0"),
        ("style_blend = [1, 'a']", 'style_blend must be a list of numbers, got [1, "a"]'),
        ("content_layers = 'relu4_2'", 'content_layers must be a list of strings, got "relu4_2"'),
        ("tile = false", "tile must be a whole number or a string, got false"),
        ("init = 3", "init must be a string, got 3"),
        ("improved = true\ntile = 'off'\nstyle_weight = 300\nstyle_layer_weights = [1, 0.5, 1, 1, 1]", None),
    ]
    text = "styles = ['s.png']\n" + "".join(
        f"[[job]]\ncontent = 'a.png'\noutput = '{i}.png'\n{line}\n" for i, (line, _) in enumerate(jobs)
    )
    (tmp_path / "jobs.toml").write_text(text)
    for job, (line, error) in zip(read_jobs_file(tmp_path / "jobs.toml"), jobs):
        if error is None:
            assert job.error is None and job.config.all_conv_layers and job.config.tile == "off"
            assert job.config.style_weight == 300.0 and job.config.style_layer_weights == (1.0, 0.5, 1.0, 1.0, 1.0)
        else:
            assert job.config is None and job.error.endswith(error), line


def test_no_job_may_write_over_an_input_of_the_batch(tmp_path):
    """Another job's content, style or mask, or the job's own input, however the path is spelt."""
    for name in ("a.png", "a-s.png", "s.png", "m.png"):
        pattern(40, 40, 1).save(tmp_path / name)
    (tmp_path / "link").symlink_to(tmp_path)
    with pytest.raises(
        ImpastoError, match=r"job a-s would write .*a-s.png, which is the content image of job a-s-s; "
    ) as info:
        cross_jobs([tmp_path / "a.png", tmp_path / "a-s.png"], [tmp_path / "s.png"], tmp_path / "link", FAST)
    assert "another output folder (-o)" in str(info.value) and "\n" not in str(info.value)
    cases = [
        ("content = 'a.png'\noutput = 'link/a.png'", "its own content image"),
        ("content = 'a.png'\noutput = '../s.png'", "its own style image 1"),
        (
            "content = 'a-s.png'\nmasks = ['m.png']\n[[job]]\ncontent = 'a.png'\noutput = 'm.png'",
            "style mask 1 of job a-s",
        ),
        ("content = 'a.png'\noutput = 'x.png'\ninit = 'a-s.png'\n[[job]]\ncontent = 'a.png'", "start image of job x"),
    ]
    (tmp_path / "work").mkdir()
    for table, needle in cases:
        (tmp_path / "jobs.toml").write_text(f"styles = ['s.png']\n[[job]]\n{table}\n")
        with pytest.raises(ImpastoError, match=needle):
            read_jobs_file(tmp_path / "jobs.toml", output_dir=tmp_path / "work" if "../" in table else None)


# --- running, resuming, faults -----------------------------------------------------------------


def test_batch_writes_pictures_with_settings_and_resume_redoes_nothing(folders, tiny_net):
    tmp, contents, styles = folders
    out = tmp / "out"
    jobs = cross_jobs(image_files([contents], "content"), image_files([styles], "style"), out, FAST)
    run = executor(tiny_net)
    result = run_batch(jobs, run, summary=out / "summary.csv")
    assert [r.status for r in result.reports] == ["done"] * 4 and run.worker.painted == 4
    # Jobs that share a style share one painter: two styles, two painters, whatever the contents.
    assert len(run.worker.painters) == 2
    record = read_settings(out / "cat-stripes.png")
    assert record["config"]["size"] == 40 and record["inputs"]["style image 1"]["file"] == "stripes.png"
    assert record["run"]["iterations"] == 3 and not record["run"]["interrupted"]
    with Image.open(out / "cat-stripes.png") as picture:
        assert picture.size == (40, 27)
    again = run_batch(jobs, run, summary=out / "summary.csv")
    assert [r.status for r in again.reports] == ["skipped"] * 4 and run.worker.painted == 4
    assert {row["status"] for row in summary_rows(out / "summary.csv").values()} == {"skipped"}
    # How fast or where does not count as other settings; what it paints does.
    faster = [dataclasses.replace(j, config=j.config.replace(threads=1, tile="off", device="cpu")) for j in jobs]
    assert run_batch(faster, run).count("skipped") == 4
    longer = [dataclasses.replace(j, config=j.config.replace(iterations=4)) for j in jobs[:1]]
    assert [r.status for r in run_batch(longer, executor(tiny_net, longer[0].config)).reports] == ["done"]


def test_a_damaged_or_foreign_output_is_made_again(folders, tiny_net):
    tmp, contents, styles = folders
    jobs = cross_jobs([contents / "cat.png"], [styles / "stripes.png", styles / "blobs.png"], tmp / "out", FAST)
    run = executor(tiny_net)
    run_batch(jobs, run)
    (tmp / "out" / "cat-stripes.png").write_bytes(b"\x89PNG\r\n\x1a\n half a file")
    pattern(40, 27, 3).save(tmp / "out" / "cat-blobs.png")  # no settings: someone else's picture
    result = run_batch(jobs, run)
    assert [r.status for r in result.reports] == ["done", "done"] and run.worker.painted == 4
    assert read_settings(tmp / "out" / "cat-stripes.png")[HASH_KEY]
    # Cut short after its settings (a copy or a disk that filled up): the pixels are not all there.
    whole = (tmp / "out" / "cat-stripes.png").read_bytes()
    (tmp / "out" / "cat-stripes.png").write_bytes(whole[: len(whole) - 200])
    assert read_settings(tmp / "out" / "cat-stripes.png")[HASH_KEY]  # the settings still read
    result = run_batch(jobs, run)
    assert [r.status for r in result.reports] == ["done", "skipped"] and run.worker.painted == 5


def test_a_broken_input_fails_its_jobs_and_the_others_go_on(folders, tiny_net):
    tmp, contents, styles = folders
    (contents / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    jobs = cross_jobs(image_files([contents], "content"), [styles / "stripes.png", tmp / "gone.png"], tmp / "out", FAST)
    result = run_batch(jobs, executor(tiny_net), summary=tmp / "out" / "summary.csv")
    status = {r.job.name: (r.status, r.error) for r in result.reports}
    assert status["cat-stripes"] == ("done", None) and status["dog-stripes"] == ("done", None)
    assert status["broken-stripes"][0] == "failed" and "broken.jpg" in status["broken-stripes"][1]
    assert status["cat-gone"] == ("failed", f"style image 1 {tmp / 'gone.png'} does not exist; check the path")
    rows = summary_rows(tmp / "out" / "summary.csv")
    assert rows["broken-stripes"]["status"] == "failed" and "broken.jpg" in rows["broken-stripes"]["error"]
    assert sorted(p.name for p in (tmp / "out").iterdir()) == ["cat-stripes.png", "dog-stripes.png", "summary.csv"]


def test_bad_options_fail_only_their_job(tmp_path, tiny_net):
    pattern(48, 32, 1).save(tmp_path / "a.png")
    stripes(40, 40).save(tmp_path / "s.png")
    (tmp_path / "jobs.toml").write_text("""
size = 40
iterations = 3
scales = 1
styles = ["s.png"]
[[job]]
content = "a.png"
[[job]]
content = "a.png"
output = "too-deep.png"
style_layers = ["relu9_9"]
""")
    jobs = read_jobs_file(tmp_path / "jobs.toml")
    result = run_batch(jobs, executor(tiny_net))
    assert [r.status for r in result.reports] == ["done", "failed"]
    assert "relu9_9" in result.reports[1].error and "\n" not in result.reports[1].error


def test_a_stop_keeps_finished_pictures_and_a_rerun_does_only_the_rest(folders, tiny_net):
    tmp, contents, styles = folders
    out = tmp / "out"
    jobs = cross_jobs(
        image_files([contents], "content"), image_files([styles], "style"), out, FAST.replace(iterations=6)
    )
    run = executor(tiny_net, jobs[0].config)
    stop = threading.Event()

    def stop_during_the_second_job(event):
        if event.kind == "step" and event.done == 1 and event.step.iteration == 2:
            stop.set()

    result = run_batch(jobs, run, stop=stop, callback=stop_during_the_second_job, summary=out / "summary.csv")
    assert result.interrupted and result.count("done") == 1 and result.count("stopped") == 3
    written = sorted(p.name for p in out.iterdir() if p.suffix == ".png")
    assert len(written) == 1 and not [p for p in out.iterdir() if p.name.startswith(".")]
    assert read_settings(out / written[0])["run"]["interrupted"] is False
    rerun = run_batch(jobs, run)
    assert rerun.count("skipped") == 1 and rerun.count("done") == 3 and run.worker.painted == 2 + 3


def test_warnings_come_back_with_their_job(tmp_path, tiny_net):
    pattern(48, 32, 1).save(tmp_path / "a.png")
    stripes(40, 40).save(tmp_path / "s.png")
    Image.new("L", (48, 32), 0).save(tmp_path / "black.png")
    jobs = cross_jobs(
        [tmp_path / "a.png"], [tmp_path / "s.png"], tmp_path / "out", FAST, masks=[tmp_path / "black.png"]
    )
    events = []
    run_batch(jobs, executor(tiny_net), callback=events.append)
    notes = [e.message for e in events if e.kind == "warning"]
    assert notes and "all black" in notes[0]
    assert [e.kind for e in events if e.kind not in ("step", "warning")] == ["started", "done"]


@pytest.mark.weights
def test_process_workers_paint_what_this_process_paints(folders):
    """Two worker processes of one thread each: the same pictures as one thread here."""
    import torch

    tmp, contents, styles = folders
    config = fixed_arithmetic(FAST)
    jobs = cross_jobs(image_files([contents], "content"), [styles / "stripes.png"], tmp / "procs", config)
    result = run_batch(jobs, LocalExecutor(workers=2, threads=1))
    assert [r.status for r in result.reports] == ["done", "done"]
    here = cross_jobs(image_files([contents], "content"), [styles / "stripes.png"], tmp / "here", config)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_batch(here, LocalExecutor())  # a network loaded as each worker loads its own
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(jobs, here):
        assert np.array_equal(np.asarray(Image.open(a.output)), np.asarray(Image.open(b.output)))


def test_an_output_from_before_an_option_existed_still_counts_as_done(folders, tiny_net):
    """A newer impasto's option at its default paints as before: no reason to redo the batch."""
    from impasto.metadata import save_png_with_settings, settings_hash

    tmp, contents, styles = folders
    jobs = cross_jobs([contents / "cat.png"], [styles / "stripes.png"], tmp / "out", FAST)
    run = executor(tiny_net)
    run_batch(jobs, run)
    record = read_settings(jobs[0].output)
    del record["config"]["histogram_method"]  # as if written before the option existed
    record[HASH_KEY] = settings_hash(record)
    with Image.open(jobs[0].output) as img:
        save_png_with_settings(img.copy(), jobs[0].output, record)
    assert run_batch(jobs, run).count("skipped") == 1
    eigen = [dataclasses.replace(jobs[0], config=FAST.replace(histogram_method="eigen"))]
    assert run_batch(eigen, executor(tiny_net, eigen[0].config)).count("done") == 1


@pytest.mark.weights
def test_a_worker_process_that_dies_has_its_job_painted_again(folders):
    import os
    import signal

    tmp, contents, styles = folders
    jobs = cross_jobs(image_files([contents], "content"), [styles / "stripes.png"], tmp / "out", fixed_arithmetic(FAST))
    run = LocalExecutor(workers=2, threads=1)
    killed = []

    def kill_workers(event):
        # One worker is killed as its job starts (a job just sent cannot be done yet, however fast
        # the machine), the other in the middle of painting, while it reports its progress.
        if (event.kind == "started" and not killed) or (event.kind == "step" and len(killed) == 1):
            killed.append(event.kind)
            os.kill(run.pool.processes[event.worker].pid, signal.SIGKILL)

    result = run_batch(jobs, run, callback=kill_workers)
    assert killed[0] == "started" and [r.status for r in result.reports] == ["done", "done"]
    assert all(read_settings(j.output)["run"]["iterations"] == 3 for j in jobs)


def test_workers_that_cannot_start_are_one_clear_error_not_failed_jobs(folders):
    import subprocess
    import sys

    tmp, contents, styles = folders
    # A script that starts worker processes but does its work outside `if __name__ == "__main__":`:
    # each spawned worker imports it, runs the batch again, and Python stops it.
    script = tmp / "unguarded.py"
    script.write_text(
        "from pathlib import Path\n"
        "import impasto\n"
        "from impasto.batch import LocalExecutor, cross_jobs, image_files, run_batch\n"
        f"jobs = cross_jobs(image_files([{str(contents)!r}], 'content'), [Path({str(styles / 'stripes.png')!r})],\n"
        f"                  Path({str(tmp / 'out')!r}), impasto.StyleConfig(size=40, iterations=3, scales=1))\n"
        "run_batch(jobs, LocalExecutor(workers=2, threads=1))\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "a batch worker process could not start" in last and '__name__ == "__main__"' in last
    assert not list((tmp / "out").glob("*.png"))


def test_a_summary_that_cannot_be_written_is_an_error_before_any_work(folders, tiny_net):
    tmp, contents, styles = folders
    (tmp / "a-file").write_text("")
    jobs = cross_jobs([contents / "cat.png"], [styles / "stripes.png"], tmp / "out", FAST)
    events = []
    with pytest.raises(
        ImpastoError, match=r"cannot create folder \S*a-file/sub \(.*\); check the path and permissions"
    ):
        run_batch(jobs, executor(tiny_net), callback=events.append, summary=tmp / "a-file" / "sub" / "summary.csv")
    assert not events and not (tmp / "out").exists()


# --- what Python callers pass ------------------------------------------------------------------


def test_one_folder_or_file_as_a_str_is_one_source_not_its_characters(folders):
    tmp, contents, styles = folders
    assert image_files(str(contents), "content") == image_files([contents], "content")
    assert image_files(styles / "stripes.png", "style") == [styles / "stripes.png"]
    for bad in (5, [contents, 5], b"photos"):
        with pytest.raises(ImpastoError, match="sources must be a path or a list of paths"):
            image_files(bad, "content")


def test_cross_jobs_takes_strs_and_the_default_config_and_its_jobs_run(folders, tiny_net):
    tmp, contents, styles = folders
    jobs = cross_jobs(str(contents / "cat.png"), [str(styles / "stripes.png")], str(tmp / "out"), FAST)
    assert [(j.content, j.styles, j.output) for j in jobs] == [
        (contents / "cat.png", (styles / "stripes.png",), tmp / "out" / "cat-stripes.png")
    ]
    assert run_batch(jobs, executor(tiny_net)).count("done") == 1
    assert (tmp / "out" / "cat-stripes.png").is_file()
    assert cross_jobs([contents / "cat.png"], [styles / "stripes.png"], tmp / "out", None)[0].config == StyleConfig()
    masked = cross_jobs([contents / "cat.png"], [styles / "stripes.png"], tmp / "out", FAST, masks=[None])
    assert masked[0].masks == (None,)


@pytest.mark.parametrize(
    "change, needle",
    [
        (dict(config={"size": 40}), "config must be a StyleConfig, got dict"),
        (dict(output_dir=None), "output_dir must be a path"),
        (dict(contents=[1]), "contents must be a path or a list of paths"),
        (dict(styles=[]), "no styles given"),
        (dict(masks=[3]), "masks must be a path or a list of paths"),
        (dict(fmt=None), "fmt must be one of: png"),
    ],
)
def test_cross_jobs_names_the_parameter_of_the_wrong_kind(folders, change, needle):
    tmp, contents, styles = folders
    args = dict(contents=[contents / "cat.png"], styles=[styles / "stripes.png"], output_dir=tmp / "out", config=FAST)
    fmt = change.pop("fmt", "png")
    masks = change.pop("masks", None)
    with pytest.raises(ImpastoError, match=needle):
        cross_jobs(**{**args, **change}, masks=masks, fmt=fmt)


def test_an_input_folder_given_as_a_str_is_still_not_an_output_folder(folders):
    tmp, contents, styles = folders
    with pytest.raises(ImpastoError, match="is the input folder"):
        output_folder(str(contents), str(contents))


def test_run_batch_refuses_what_is_not_an_executor_before_any_work(folders):
    tmp, contents, styles = folders
    jobs = cross_jobs([contents / "cat.png"], [styles / "stripes.png"], tmp / "out", FAST)
    with pytest.raises(ImpastoError, match="executor must be a LocalExecutor or a RayExecutor.*got str") as info:
        run_batch(jobs, "local", summary=tmp / "out" / "summary.csv")
    assert "\n" not in str(info.value) and not (tmp / "out").exists()
    for bad, needle in [("cat.png", "jobs must be a list of Jobs"), ([jobs[0], "x"], "but holds str")]:
        with pytest.raises(ImpastoError, match=needle):
            run_batch(bad, LocalExecutor())
    with pytest.raises(ImpastoError, match="stop must be a threading.Event"):
        run_batch(jobs, LocalExecutor(), stop=True)


def test_one_job_is_a_batch_of_one(folders, tiny_net):
    tmp, contents, styles = folders
    (job,) = cross_jobs([contents / "cat.png"], [styles / "stripes.png"], tmp / "out", FAST)
    assert [r.status for r in run_batch(job, executor(tiny_net)).reports] == ["done"]


@pytest.mark.parametrize(
    "options, needle",
    [
        (dict(workers="two"), "workers must be a whole number of at least 1, got 'two'"),
        (dict(workers=0), "workers must be a whole number of at least 1, got 0"),
        (dict(workers=1.5), "workers must be a whole number"),
        (dict(workers=True), "workers must be a whole number"),
        (dict(threads=-1), "threads must be a whole number of at least 1 or None, got -1"),
        (dict(threads=0), "threads must be a whole number of at least 1 or None"),
        (dict(retries=-1), "retries must be a whole number of at least 0"),
        (dict(worker="mine"), "worker must be a batch Worker"),
    ],
)
def test_local_executor_options_are_checked(options, needle):
    with pytest.raises(ImpastoError, match=needle):
        LocalExecutor(**options)


def test_local_executor_takes_whole_numbers():
    run = LocalExecutor(workers=np.int64(2), threads=3)
    assert (run.workers, run.threads) == (2, 3) and type(run.workers) is int
    assert LocalExecutor(workers=2).threads >= 1


def test_ray_executor_options_and_jobs_file_paths_are_checked():
    from impasto.batch import RayExecutor

    for options, needle in [
        (dict(threads="1"), "threads must be a whole number of at least 1"),
        (dict(workers=0), "workers must be a whole number of at least 1 or None"),
        (dict(gpus="half"), "gpus must be a number of 0 or more"),
        (dict(address=None), "address must be a str"),
    ]:
        with pytest.raises(ImpastoError, match=needle):
            RayExecutor(**options)
    with pytest.raises(ImpastoError, match="path must be a path"):
        read_jobs_file(5)


def test_two_jobs_of_one_content_with_other_options_are_told_to_name_their_outputs(tmp_path):
    (tmp_path / "art").mkdir()
    pattern(48, 32, 1).save(tmp_path / "c.png")
    stripes(40, 40).save(tmp_path / "art" / "s.png")
    (tmp_path / "jobs.toml").write_text(
        'styles = ["art/s.png"]\n[[job]]\ncontent = "c.png"\nstyle_weight = 10.0\n'
        '[[job]]\ncontent = "c.png"\nstyle_weight = 1000.0\n'
    )
    with pytest.raises(ImpastoError, match="two jobs would write .*give the jobs their own output names"):
        read_jobs_file(tmp_path / "jobs.toml")
