"""`impasto batch` as a user sees it: exit codes, one-line errors, the summary, Ctrl-C and resume."""

import csv
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from impasto.metadata import read_settings

from conftest import pattern, run_main, stripes

FAST = ["--size", "40", "--iterations", "3", "--scales", "1", "-q"]


def pictures(folder):
    return sorted(p.name for p in folder.glob("*.png") if not p.name.startswith("."))


def statuses(summary):
    with open(summary, newline="") as fh:
        return {row["job"]: row["status"] for row in csv.DictReader(fh)}


@pytest.fixture
def folders(tmp_path):
    contents, styles = tmp_path / "photos", tmp_path / "art"
    contents.mkdir()
    styles.mkdir()
    pattern(48, 32, 1).save(contents / "cat.png")
    pattern(40, 40, 2).save(contents / "dog.png")
    pattern(44, 30, 3).save(contents / "owl.png")
    stripes(40, 40).save(styles / "stripes.png")
    return tmp_path, contents, styles


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--contents", "{t}/nowhere", "--styles", "{s}", "-o", "{t}/out"], "nowhere does not exist"),
        (["--contents", "{c}", "--styles", "{s}"], "give -o OUTDIR"),
        (["--contents", "{c}", "-o", "{t}/out"], "give --contents and --styles"),
        (["{t}/jobs.toml", "--contents", "{c}", "--styles", "{s}"], "not both (got --contents and --styles)"),
        (["{t}/jobs.toml", "--together"], "--together goes with --contents and --styles; in a jobs file"),
        (["{t}/jobs.toml", "--style-masks", "{c}"], "--style-masks goes with --contents and --styles"),
        (["--contents", "{c}", "--styles", "{s}", "-o", "{t}/out", "--format", "bmp"], "invalid choice"),
        (["--contents", "{c}", "--styles", "{s}", "-o", "{t}/out", "--style-weights", "1"], "--together"),
        (["--contents", "{c}", "--styles", "{s}", "-o", "{t}/out", "--size", "0"], "--size 0 must be between"),
        (["--contents", "{c}", "--styles", "{s}", "-o", "{t}/out", "--workers", "0"], "--workers 0"),
        (["{t}/missing.toml"], "does not exist"),
    ],
)
def test_a_bad_batch_is_one_line_and_exit_2(capsys, folders, argv, needle):
    tmp, contents, styles = folders
    argv = [a.format(t=tmp, c=contents, s=styles) for a in argv]
    code, _, err = run_main(capsys, "batch", *argv)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not (tmp / "out").exists()


def test_missing_ray_names_the_extra(capsys, folders, monkeypatch):
    tmp, contents, styles = folders
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    code, _, err = run_main(
        capsys, "batch", "--contents", contents, "--styles", styles, "-o", tmp / "out", "--ray", "local", *FAST
    )
    assert code == 2 and err.strip().count("\n") == 0
    assert "pip install 'impasto[ray]'" in err


@pytest.mark.weights
def test_batch_paints_everything_then_a_rerun_skips_it(capsys, folders):
    tmp, contents, styles = folders
    out = tmp / "out"
    (contents / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    code, _, err = run_main(capsys, "batch", "--contents", contents, "--styles", styles, "-o", out, *FAST)
    assert code == 1, err  # one job failed: the others are written all the same
    assert "impasto: failed: broken-stripes: content image broken.png" in err
    assert statuses(out / "batch-summary.csv") == {
        "broken-stripes": "failed",
        "cat-stripes": "done",
        "dog-stripes": "done",
        "owl-stripes": "done",
    }
    assert read_settings(out / "cat-stripes.png")["config"]["iterations"] == 3
    (contents / "broken.png").unlink()
    code, _, err = run_main(capsys, "batch", "--contents", contents, "--styles", styles, "-o", out, *FAST[:-1])
    assert code == 0, err
    assert "0 written, 3 done before, 0 failed" in err
    # A jobs file with its own options; the command line's win.
    (tmp / "jobs.toml").write_text(
        f"size = 64\niterations = 9\nformat = 'jpg'\nstyles = ['{styles / 'stripes.png'}']\n"
        f"[[job]]\ncontent = '{contents / 'cat.png'}'\nseed = 2\n"
    )
    code, _, err = run_main(capsys, "batch", tmp / "jobs.toml", "-o", tmp / "from-file", *FAST)
    assert code == 0, err
    record = read_settings(tmp / "from-file" / "cat-stripes.jpg")
    assert record["config"]["size"] == 40 and record["config"]["seed"] == 2
    with Image.open(tmp / "from-file" / "cat-stripes.jpg") as picture:
        assert picture.format == "JPEG" and picture.size == (40, 27)


@pytest.mark.weights
@pytest.mark.parametrize(
    "signum, status, word, workers",
    [
        (signal.SIGINT, 130, "interrupted", "1"),
        (signal.SIGTERM, 143, "terminated", "1"),
        (signal.SIGINT, 130, "interrupted", "2"),
    ],
)
def test_a_signal_keeps_finished_pictures_and_a_rerun_does_only_the_rest(folders, signum, status, word, workers):
    tmp, contents, styles = folders
    out = tmp / "out"
    command = [
        sys.executable,
        "-m",
        "impasto",
        "batch",
        "--contents",
        str(contents),
        "--styles",
        str(styles),
        "-o",
        str(out),
        "--size",
        "40",
        "--iterations",
        "40",
        "--scales",
        "1",
        "--threads",
        "1",
        "--workers",
        workers,
        "-q",
    ]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (out.is_dir() and pictures(out)) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    assert word in err and "run the same command again" in err and "Traceback" not in err
    finished = pictures(out)
    assert finished and len(finished) < 3
    for name in finished:  # whole pictures, with their settings
        assert read_settings(out / name)["run"]["interrupted"] is False
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    counts = statuses(out / "batch-summary.csv")
    assert sorted(k + ".png" for k, v in counts.items() if v == "skipped") == finished
    assert sum(v == "done" for v in counts.values()) == 3 - len(finished)
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and set(statuses(out / "batch-summary.csv").values()) == {"skipped"}


def test_a_job_that_would_write_over_another_jobs_content_is_refused_before_any_work(capsys, tmp_path):
    folder = tmp_path / "b2"
    folder.mkdir()
    pattern(48, 32, 1).save(folder / "a.png")
    pattern(48, 32, 2).save(folder / "a-s.png")  # job a-s would write this: the content of job a-s-s
    stripes(40, 40).save(folder / "s.jpg")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    for out in (folder, tmp_path / "." / "b2" / ".." / "b2"):
        code, _, err = run_main(
            capsys,
            "batch",
            "--contents",
            folder / "a.png",
            folder / "a-s.png",
            "--styles",
            folder / "s.jpg",
            "-o",
            out,
            *FAST,
        )
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert "job a-s would write" in err and "a-s.png, which is the content image of job a-s-s" in err
        assert "another output folder (-o)" in err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no picture, no summary


def test_the_output_folder_may_not_be_a_folder_of_inputs(capsys, folders):
    tmp, contents, styles = folders
    (tmp / "same").symlink_to(contents)
    for out, flag in ((contents, "--contents"), (tmp / "same", "--contents"), (styles, "--styles")):
        argv = ["--contents", contents, "--styles", styles, "-o", out]
        code, _, err = run_main(capsys, "batch", *argv, *FAST)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "is the input folder" in err and "give another output folder (-o)" in err
    assert pictures(contents) == ["cat.png", "dog.png", "owl.png"] and pictures(styles) == ["stripes.png"]
    assert not list(tmp.rglob("batch-summary.csv"))


def test_an_output_folder_that_cannot_be_made_is_one_line_and_exit_2(capsys, folders):
    tmp, contents, styles = folders
    (tmp / "a-file").write_text("")
    (tmp / "jobs.toml").write_text(
        f"output_dir = 'a-file'\nstyles = ['{styles / 'stripes.png'}']\n[[job]]\ncontent = '{contents / 'cat.png'}'\n"
    )
    cases = [
        (["--contents", contents, "--styles", styles, "-o", tmp / "a-file" / "out"], "cannot create folder"),
        (["--contents", contents, "--styles", styles, "-o", tmp / "a-file"], "is a file"),
        ([tmp / "jobs.toml"], "is a file"),
    ]
    for argv, needle in cases:
        code, _, err = run_main(capsys, "batch", *argv, *FAST)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert f"output folder {tmp / 'a-file'}" in err and needle in err and "failed" not in err


def test_jobs_file_mistakes_are_one_line_in_the_files_own_words(capsys, tmp_path):
    (tmp_path / "latin1.toml").write_bytes("size = 40 # taille réduite\n".encode("latin-1"))
    (tmp_path / "typed.toml").write_text("style_weight = '300'\nstyles = ['s.png']\n[[job]]\ncontent = 'a.png'\n")
    (tmp_path / "no.toml").write_text("improved = 'no'\nstyles = ['s.png']\n[[job]]\ncontent = 'a.png'\n")
    (tmp_path / "seven.toml").write_text("styles = ['s.png']\n[[job]]\ncontent = 7\n")
    cases = [
        ("latin1.toml", "is not UTF-8 text"),
        ("typed.toml", 'style_weight must be a number, got "300"'),
        ("no.toml", 'improved must be true or false, got "no"'),
        ("seven.toml", "job 1: content must be a path (a string), got 7"),
    ]
    for name, needle in cases:
        code, _, err = run_main(capsys, "batch", tmp_path / name, *FAST)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert needle in err  # the file's names: style_weight, not --style-weight
