"""`impasto video` end to end on tiny clips: folders and video files, sound, bad input, stopping
and resuming, the report. The network is the tiny random one."""

import os
import signal
from fractions import Fraction
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

av = pytest.importorskip("av")
pytest.importorskip("cv2")

from impasto.cli import main
from impasto.video import clip as clip_module
from impasto.video.clip import open_clip, write_video
from impasto.video.job import ClipJob

from conftest import EXAMPLES, pattern
from test_video_job import make_clip

FAST = ["--size", "48", "--iterations", "8", "--scales", "1", "-q"]
STYLE = str(EXAMPLES / "starry_night_van_gogh.jpg")


@pytest.fixture(autouse=True)
def tiny_network(monkeypatch, tiny_net):
    monkeypatch.setattr(
        "impasto.engine.build_network", lambda config, device: tiny_net
    )  # imported by the command when it runs


def video(argv):
    return main(["video", *map(str, argv)])


def make_video(path, frames=4, fps=15, sound=True):
    """A clip of a texture moving 2 px a frame, with a second of 440 Hz tone."""
    folder = make_clip(path.parent / (path.stem + "_frames"), frames=frames)
    images = [PIL.Image.open(p) for p in sorted(folder.iterdir())]
    write_video(path, images, Fraction(fps))
    if sound:
        _add_tone(path, fps)
    return path


def _add_tone(path, fps):
    temp = path.with_name("tone_" + path.name)
    with av.open(str(path)) as src, av.open(str(temp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = src.streams.video[0].width, src.streams.video[0].height, "yuv420p"
        audio = out.add_stream("aac", rate=44100)
        for index, decoded in enumerate(src.decode(video=0)):
            frame = av.VideoFrame.from_ndarray(decoded.to_ndarray(format="rgb24"), format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
        t = np.arange(44100) / 44100
        tone = av.AudioFrame.from_ndarray(
            (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], format="fltp", layout="mono"
        )
        tone.sample_rate, tone.pts = 44100, 0
        out.mux(audio.encode(tone))
        out.mux(audio.encode())
    os.replace(temp, path)


def streams(path):
    with av.open(str(path)) as container:
        frames = sum(1 for _ in container.decode(video=0))
        rate = container.streams.video[0].average_rate
        return frames, rate, len(container.streams.audio)


def test_a_folder_of_frames_to_a_folder_keeps_the_names(tmp_path):
    make_clip(tmp_path / "in")
    assert video([tmp_path / "in", STYLE, "-o", tmp_path / "out", *FAST]) == 0
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["f1.png", "f2.png", "f3.png", "f4.png"]


def test_a_video_keeps_its_rate_and_sound(tmp_path):
    source = make_video(tmp_path / "clip.mp4", fps=15)
    assert streams(source) == (4, 15, 1)
    assert video([source, STYLE, "-o", tmp_path / "styled.mp4", *FAST]) == 0
    assert streams(tmp_path / "styled.mp4") == (4, 15, 1)
    assert not (tmp_path / "styled.mp4.frames").exists()  # the frames were only a means


@pytest.mark.parametrize("name", ["styled.mp4", "styled.gif"])
def test_a_finished_video_made_again_with_the_same_settings_is_left_as_it_is(tmp_path, monkeypatch, capsys, name):
    make_clip(tmp_path / "in")
    out = tmp_path / name
    assert video([tmp_path / "in", STYLE, "-o", out, *FAST]) == 0
    made = out.stat().st_mtime_ns
    runs = []
    real_run = ClipJob.run
    monkeypatch.setattr(ClipJob, "run", lambda self, *a, **k: runs.append(1) or real_run(self, *a, **k))
    argv = [tmp_path / "in", STYLE, "-o", out, *[f for f in FAST if f != "-q"]]
    assert video(argv) == 0
    assert "is already made from this input with these styles and options" in capsys.readouterr().err
    assert not runs and out.stat().st_mtime_ns == made and not out.with_name(name + ".frames").exists()
    assert video([*argv, "--style-weight", "50"]) == 0 and runs == [1]  # other settings: painted again
    assert video([*argv, "--style-weight", "50", "--fps", "10"]) == 0 and runs == [1, 1]  # another rate too


def test_a_video_to_a_folder_and_a_folder_to_a_gif(tmp_path):
    source = make_video(tmp_path / "clip.mp4", sound=False)
    assert video([source, STYLE, "-o", tmp_path / "frames", *FAST]) == 0
    assert sorted(p.name for p in (tmp_path / "frames").glob("*.png"))[-1] == "frame_00004.png"
    assert video([tmp_path / "frames", STYLE, "-o", tmp_path / "again.gif", "--fps", "10", *FAST]) == 0
    assert open_clip(tmp_path / "again.gif").count == 4


def _different_sizes(tmp_path):
    folder = make_clip(tmp_path / "in")
    pattern(30, 20, 1).save(folder / "f3.png")
    return folder


def _not_a_video(tmp_path):
    (tmp_path / "clip.mp4").write_text("not a video")
    return tmp_path / "clip.mp4"


def _empty(tmp_path):
    (tmp_path / "in").mkdir()
    return tmp_path / "in"


@pytest.mark.parametrize(
    "make, output, match",
    [
        (_not_a_video, "out.mp4", "is not a video PyAV can read"),
        (_empty, "out", "has no frames"),
        (_different_sizes, "out", "frames differ in size: f1.png is 48x32 but f3.png is 30x20"),
        (lambda p: make_clip(p / "in"), "out.png", "is an image; give a folder or a video file"),
        (lambda p: make_clip(p / "in"), "out.mp4", "PyAV cannot write h264_nvenc video"),
        (lambda p: make_clip(p / "in"), "out.mpg4", "has extension '.mpg4', which impasto does not write (it writes"),
        (lambda p: make_clip(p / "in") / "f1.png", "out.mp4", "is a still image, not a video; paint it with"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_any_work(tmp_path, capsys, monkeypatch, make, output, match):
    monkeypatch.setitem(clip_module.VIDEO_CODECS, ".mp4", "h264_nvenc")  # there is no GPU to encode on
    source = make(tmp_path)
    painted = []
    monkeypatch.setattr(ClipJob, "run", lambda *a, **k: painted.append(1))
    assert video([source, STYLE, "-o", tmp_path / output, *FAST]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("impasto: error: ") and match in err
    assert not painted and not (tmp_path / output).exists()


def test_a_frame_found_damaged_on_its_turn_keeps_the_frames_done_and_says_so(tmp_path, capsys):
    source = make_clip(tmp_path / "in")
    whole = (source / "f3.png").read_bytes()
    (source / "f3.png").write_bytes(whole[: len(whole) // 2])  # its size still reads; its pixels do not
    assert video([source, STYLE, "-o", tmp_path / "out", *FAST]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "f3.png is truncated or damaged" in err
    assert f"the 2 frames done are kept in {tmp_path / 'out'}, and the same command resumes after them" in err
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["f1.png", "f2.png"]


def test_a_mask_folder_of_the_wrong_count_is_named_by_its_path(tmp_path, capsys):
    source, masks = make_clip(tmp_path / "in"), make_clip(tmp_path / "masks", frames=3)
    assert video([source, STYLE, "-o", tmp_path / "out", "--style-masks", masks, *FAST]) == 2
    err = capsys.readouterr().err
    assert f"style mask folder {masks} has 3 masks for 4 frames; give one mask per frame" in err
    assert not (tmp_path / "out").exists()


def test_fps_is_for_a_folder_a_video_keeps_its_own_rate(tmp_path, capsys):
    source = make_video(tmp_path / "clip.mp4", sound=False)
    assert video([source, STYLE, "-o", tmp_path / "fast.mp4", "--fps", "30", *FAST]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--fps sets the frame rate of a folder of frames" in err
    assert not (tmp_path / "fast.mp4").exists()


def test_a_bad_option_is_named_by_its_flag(tmp_path, capsys):
    make_clip(tmp_path / "in")
    assert video([tmp_path / "in", STYLE, "-o", tmp_path / "out", "--long-term", "5", *FAST]) == 2
    assert "--long-term offsets 5 must" in capsys.readouterr().err


def test_sigterm_writes_a_playable_video_of_the_frames_done_and_a_rerun_resumes(tmp_path, capsys, monkeypatch):
    source = make_video(tmp_path / "clip.mp4", sound=False)
    original = ClipJob.paint_later

    def terminated_at_frame_3(self, index, *args, **kwargs):
        if index == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, index, *args, **kwargs)

    monkeypatch.setattr(ClipJob, "paint_later", terminated_at_frame_3)
    out = tmp_path / "styled.mp4"
    assert video([source, STYLE, "-o", out, *FAST]) == 143
    assert "terminated after 2 of 4 frames" in capsys.readouterr().err
    assert streams(out)[0] == 2
    monkeypatch.setattr(ClipJob, "paint_later", original)
    assert video([source, STYLE, "-o", out, *FAST[:-1]]) == 0
    assert "resuming after frame 2 of 4" in capsys.readouterr().err
    assert streams(out)[0] == 4


def test_the_report_compares_with_each_frame_alone(tmp_path, capsys):
    make_clip(tmp_path / "in")
    assert video([tmp_path / "in", STYLE, "-o", tmp_path / "out", "--report", *FAST]) == 0
    printed = capsys.readouterr().out
    for line in ("input frames", "each frame alone", "impasto video", "style distance", "later frames"):
        assert line in printed
    assert len(list((tmp_path / "out.alone").glob("*.png"))) == 4


def test_help_lists_the_video_and_still_options(capsys):
    with pytest.raises(SystemExit):
        video(["--help"])
    text = capsys.readouterr().out
    for flag in ("--temporal-weight", "--long-term", "--later-iterations", "--style-masks", "--tile", "--report"):
        assert flag in text


@pytest.mark.parametrize("module, needed", [("av", "PyAV"), ("cv2", "OpenCV")])
def test_a_missing_extra_names_what_to_install(tmp_path, capsys, monkeypatch, module, needed):
    source = make_video(tmp_path / "clip.mp4", sound=False)
    monkeypatch.setitem(__import__("sys").modules, module, None)  # as if not installed
    painted = []
    monkeypatch.setattr(ClipJob, "run", lambda *a, **k: painted.append(1))
    assert video([source, STYLE, "-o", tmp_path / "out", *FAST]) == 2 and not painted
    err = capsys.readouterr().err
    assert needed in err and "pip install 'impasto[video]'" in err and err.count("\n") == 1


def test_still_options_masks_and_long_term_apply_to_a_clip(tmp_path):
    make_clip(tmp_path / "in")
    mask = tmp_path / "mask.png"
    pattern(48, 32, 7).convert("L").save(mask)
    masks = make_clip(tmp_path / "masks")  # a folder of per-frame masks (colour images become luminance)
    argv = [
        tmp_path / "in",
        STYLE,
        STYLE,
        "-o",
        tmp_path / "out",
        "--style-masks",
        mask,
        masks,
        "--improved",
        "--preserve-color",
        "luminance",
        "--long-term",
        "1",
        "2",
        *FAST,
    ]
    assert video(argv) == 0
    assert len(list((tmp_path / "out").glob("*.png"))) == 4


def test_frames_are_never_written_where_an_input_is(tmp_path, capsys, monkeypatch):
    source, masks = make_clip(tmp_path / "in"), make_clip(tmp_path / "masks")
    painted = []
    monkeypatch.setattr(ClipJob, "run", lambda *a, **k: painted.append(1))
    argv = [source, STYLE, "--style-masks", masks, "--restart", *FAST]
    assert video([*argv, "-o", masks]) == 2  # --restart would have replaced the masks
    assert "which is the input" in capsys.readouterr().err
    assert video([*argv, "-o", source]) == 2
    assert "is the input; choose another output" in capsys.readouterr().err
    style = tmp_path / "out" / "style.png"
    style.parent.mkdir()
    style.write_bytes(Path(STYLE).read_bytes())
    assert video([source, style, "-o", tmp_path / "out", *FAST]) == 2
    assert "which holds the input" in capsys.readouterr().err
    assert not painted and sorted(p.name for p in masks.iterdir()) == sorted(p.name for p in source.iterdir())
