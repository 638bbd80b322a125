"""What the studio page runs, without Gradio: masks from painted layers, the regions map, the
option widgets' values, stop switches, and a job's frames."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from impasto import IMPROVED, StyleConfig
from impasto.errors import ImpastoError
from impasto.metadata import read_settings, sha256_of
from impasto.web import controls, jobs

from conftest import pattern, stripes


def layer(width: int, height: int, box: tuple[int, int, int, int] | None) -> np.ndarray:
    out = np.zeros((height, width, 4), np.uint8)
    if box is not None:
        x0, y0, x1, y1 = box
        out[y0:y1, x0:x1] = (221, 46, 68, 150)
    return out


# --- masks and regions ---------------------------------------------------------------------------


def test_painted_area_becomes_a_white_mask():
    mask = jobs.painted_mask([layer(8, 6, (1, 1, 4, 3)), layer(8, 6, (6, 4, 8, 6))])
    expected = np.zeros((6, 8), np.uint8)
    expected[1:3, 1:4] = expected[4:6, 6:8] = 255
    assert mask.mode == "L" and np.array_equal(np.asarray(mask), expected)


@pytest.mark.parametrize("layers", [None, [], [layer(8, 6, None)]])
def test_nothing_painted_means_everywhere(layers):
    assert jobs.painted_mask(layers) is None


def test_a_mask_must_have_the_contents_shape_but_not_its_size():
    jobs.check_mask_shape(Image.new("L", (96, 64)), (48, 32), "style mask 1")
    with pytest.raises(ImpastoError, match="style mask 2 is 40x40 but the content is 48x32"):
        jobs.check_mask_shape(Image.new("L", (40, 40)), (48, 32), "style mask 2")


def test_the_editor_shows_any_content_centred_on_one_canvas_clear_around_it():
    for content, box in [(pattern(60, 40, 1), (0, 0, 1200, 800)), (pattern(40, 60, 1), (333, 0, 866, 800))]:
        picture = jobs.editor_background(content)
        assert picture.mode == "RGBA" and picture.size == jobs.EDITOR_CANVAS
        assert picture.getchannel("A").getbbox() == box  # clear beside a tall photo
    # At least Gradio's editor canvas (800×800) both ways, or a layer sent to it lands off the photo.
    assert min(jobs.EDITOR_CANVAS) >= 800


def test_uploaded_mask_becomes_a_layer_in_the_styles_colour_on_the_photo():
    mask = Image.new("L", (40, 60), 0)
    mask.paste(255, (0, 0, 20, 60))  # the left half
    background = jobs.editor_background(pattern(40, 60, 1))  # shown at x 333..866 of 1200
    out = jobs.mask_layer(mask, background, "#1f77b4")
    assert out.shape == (800, 1200, 4)
    assert tuple(out[400, 340]) == (0x1F, 0x77, 0xB4, round(255 * jobs.MASK_OPACITY))
    assert out[400, 860, 3] == 0 and out[400, 320, 3] == 0  # not on the right half, nor beside the photo
    cut = jobs.picture_layers([out], np.asarray(background))
    assert np.array_equal(np.asarray(jobs.painted_mask(cut).resize((40, 60))) > 127, np.asarray(mask) > 127)


def test_layers_are_cut_to_the_photo_in_the_editor():
    background = np.zeros((8, 10, 4), np.uint8)
    background[2:6, 3:9, 3] = 255  # the photo; clear around it
    stroke = layer(10, 8, (0, 0, 5, 4))  # begun beside the photo
    assert np.array_equal(jobs.picture_layers([stroke], background)[0], stroke[2:6, 3:9])
    other = layer(4, 4, (0, 0, 2, 2))  # an API client's layer of its own size stays as it is
    assert jobs.picture_layers([other], background)[0] is other
    assert jobs.picture_layers([stroke], background[..., :3])[0].shape == (8, 10, 4)  # opaque: all of it
    assert jobs.picture_layers([stroke], None)[0] is stroke


def test_regions_tint_each_styles_area_and_leave_the_rest_grey():
    content = pattern(64, 32, 1)
    left = Image.new("L", (64, 32), 0)
    left.paste(255, (0, 0, 32, 32))
    out = np.asarray(jobs.regions(content, [left, None], side=64)).astype(int)
    red, blue = jobs.STYLE_COLOURS[0], jobs.STYLE_COLOURS[1]
    assert red.startswith("#dd") and blue.startswith("#1f")
    left_side, right_side = out[:, :28], out[:, 36:]
    assert (left_side[..., 0] > right_side[..., 0].mean()).mean() > 0.9  # red and blue mixed on the left
    assert (right_side[..., 2] > right_side[..., 0]).all()  # only blue on the right
    only_masked = np.asarray(jobs.regions(content, [left], side=64)).astype(int)[:, 36:]
    assert (only_masked[..., 0] == only_masked[..., 1]).all()  # no style: grey


# --- options -------------------------------------------------------------------------------------


def test_every_config_field_has_a_place_in_the_page():
    placed = controls.UP_FRONT + controls.ADVANCED + controls.SERVER + controls.PER_STYLE
    assert sorted(placed) == sorted(controls.FIELDS) and len(set(placed)) == len(placed)


def test_widget_values_become_the_config():
    config = controls.config_from_values(
        {
            "size": 64.0,
            "iterations": 7.0,
            "style_weight": 1e3,
            "seed": 2,
            "content_layers": ["relu3_2"],
            "style_layer_weights": "1, 0.5 0.25",
            "tile": "256",
            "max_memory": "1.5G",
            "init": "noise",
            "all_conv_layers": True,
        },
        StyleConfig(device="cpu"),
    )
    assert config == StyleConfig(
        device="cpu",
        size=64,
        iterations=7,
        style_weight=1e3,
        seed=2,
        content_layers=("relu3_2",),
        style_layer_weights=(1.0, 0.5, 0.25),
        tile=256,
        max_memory=int(1.5 * 2**30),
        init="noise",
        all_conv_layers=True,
    )
    assert (
        controls.config_from_values({"tile": "", "max_memory": "", "style_layer_weights": ""}, StyleConfig())
        == StyleConfig()
    )


@pytest.mark.parametrize(
    "values, message",
    [
        ({"size": None}, "size is empty"),
        ({"iterations": 2.5}, "iterations must be a whole number"),
        ({"style_layer_weights": "1 x"}, "style layer weights '1 x' must be numbers"),
        ({"max_memory": "lots"}, "max memory 'lots' is not a memory size"),
        ({"style_weight": -1}, "style strength must be at least 0"),
    ],
)
def test_bad_widget_values_are_named_as_the_page_labels_them(values, message):
    with pytest.raises(ImpastoError) as info:
        controls.config_from_values(values, StyleConfig())
    assert message in controls.to_labels(str(info.value))


def test_labels_and_hints_come_from_the_config():
    assert (
        controls.to_labels("lower style_weight, content_weight or tv_weight")
        == "lower style strength, content weight or total-variation weight"
    )
    assert controls.to_labels("size 0 must be between 1 and 32768") == "size 0 must be between 1 and 32768"
    assert controls.hint("iterations") == "optimiser steps, summed over all scales (default: 300)"
    assert "(default: relu1_1 relu2_1 relu3_1 relu4_1 relu5_1)" in controls.hint("style_layers")
    assert controls.PRESETS["Novak & Nikulin"] == IMPROVED
    assert StyleConfig().replace(**controls.PRESETS["Gatys et al."]) == StyleConfig()


# --- stop switches -------------------------------------------------------------------------------


def test_a_stop_reaches_the_sessions_armed_run_even_before_it_starts():
    switches = jobs.StopSwitches()
    ticket = switches.arm("browser")
    assert switches.stop("browser") == "waiting"  # pressed while the job waits in the queue
    assert switches.take("browser", ticket).is_set()
    assert switches.stop("browser") == "running"
    assert switches.stop("someone else") is None


def test_a_run_stopped_in_the_queue_stays_stopped_when_run_is_pressed_again():
    switches = jobs.StopSwitches()
    first = switches.arm("browser")
    assert switches.stop("browser") == "waiting"
    second = switches.arm("browser")  # Run again while the first still waits
    assert switches.take("browser", first).is_set()  # its turn: it does not start
    assert not switches.take("browser", second).is_set()  # the new run goes ahead


def test_a_stop_reaches_only_its_own_session():
    switches = jobs.StopSwitches()
    mine, theirs = switches.take("me", None), switches.take("them", None)
    switches.stop("them")
    assert theirs.is_set() and not mine.is_set()
    assert not switches.take("me", "stale ticket").is_set()  # an unknown ticket gets a fresh switch
    switches.forget("me", mine)
    assert switches.stop("me") == "running"  # the fresh one is still there; forgetting the old one kept it


# --- a job -----------------------------------------------------------------------------------------


@pytest.fixture
def job_files(tmp_path):
    content, style = tmp_path / "photo.png", tmp_path / "starry.png"
    pattern(48, 32, 1).save(content)
    stripes(40, 40).save(style)
    return SimpleNamespace(content=str(content), style=str(style), folder=tmp_path / "results")


def test_a_job_reports_frames_and_saves_a_png_with_its_settings(tiny_net, job_files):
    studio = jobs.Studio(tiny_net, job_files.folder, preview_every=0)
    mask = Image.new("L", (96, 64), 0)
    mask.paste(255, (0, 0, 48, 64))
    job = jobs.Job(
        job_files.content,
        [jobs.StyleInput(job_files.style, 1.0, mask)],
        StyleConfig(size=64, iterations=5, scales=1, device="cpu"),
    )
    frames = list(studio.paint(job, threading.Event()))
    assert frames[0].status.startswith("Starting: 5 iterations in one scale, 64×43 px")
    assert [f.preview.size for f in frames[1:-1]] == [(64, 43)] * 5
    assert frames[-1].image.size == (64, 43) and frames[-1].status.startswith("Done: 5 iterations")
    settings = read_settings(frames[-1].download)
    assert frames[-1].download.name == "photo-starry.png" and frames[-1].download.parent.parent == job_files.folder
    # The painted mask, saved beside the PNG under the name the record gives it: reproduce finds it.
    assert [m.name for m in frames[-1].masks] == ["photo-starry.mask1.png"]
    assert frames[-1].masks[0].parent == frames[-1].download.parent
    assert settings["inputs"]["style mask 1"] == {
        "file": "photo-starry.mask1.png",
        "sha256": sha256_of(frames[-1].masks[0]),
    }
    assert all(f.masks == () for f in frames[:-1])
    assert settings["device"] == "cpu" and settings["config"]["style_blend"] is None
    # How it ran, as the command records it: threads and the network pass's arithmetic.
    assert settings["run"]["threads"] == torch.get_num_threads() and settings["run"]["precision"] == "fp32"


def test_a_job_stopped_before_it_starts_paints_nothing(tiny_net, job_files):
    stop = threading.Event()
    stop.set()
    job = jobs.Job(job_files.content, [jobs.StyleInput(job_files.style)], StyleConfig(size=64, device="cpu"))
    frames = list(jobs.Studio(tiny_net, job_files.folder).paint(job, stop))
    assert [f.status for f in frames] == ["Stopped before it started; nothing was painted."]
    assert not job_files.folder.exists()


def test_time_left_uses_the_scales_time_per_step_and_the_pixels_to_come():
    run = SimpleNamespace(sizes=[32, 64], counts=[4, 2], size_at=lambda s: (s, s))
    time_left = jobs.TimeLeft(run)

    def step(scale, iteration, elapsed):
        return time_left.update(SimpleNamespace(scale=scale, iteration=iteration, elapsed=elapsed))

    # First step: 2 s for 1024 px; 3 more steps of 1024 px and 2 of 4096 px to go, at that rate.
    assert step(1, 1, 2.0) == pytest.approx(2.0 * (3 + 2 * 4))
    # 1 s a step within the scale (its first step, which also sets it up, left out).
    assert step(1, 3, 4.0) == pytest.approx(1.0 * (1 + 2 * 4))
    # A new scale's first step: the time per pixel so far, 10 s for 8192 px.
    assert step(2, 5, 10.0) == pytest.approx(10.0 / 8192 * 4096)
    assert step(2, 6, 13.0) == 0


def test_time_left_counts_a_scale_that_ended_early_by_the_steps_it_took():
    run = SimpleNamespace(sizes=[32, 64], counts=[4, 2], size_at=lambda s: (s, s))
    time_left = jobs.TimeLeft(run)

    def step(scale, iteration, elapsed):
        return time_left.update(SimpleNamespace(scale=scale, iteration=iteration, elapsed=elapsed))

    step(1, 1, 1.0)
    # The first scale converged after 2 of its 4 steps: 6 s for 2 x 1024 + 4096 px.
    assert step(2, 3, 6.0) == pytest.approx(6.0 / 6144 * 4096)


def test_a_result_that_cannot_be_saved_is_still_shown(tiny_net, job_files, monkeypatch):
    studio = jobs.Studio(tiny_net, job_files.folder, preview_every=0)
    job = jobs.Job(job_files.content, [jobs.StyleInput(job_files.style)], StyleConfig(size=48, iterations=2, scales=1))

    def full_disk(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(studio, "_save", full_disk)
    last = list(studio.paint(job, threading.Event()))[-1]
    assert last.image is not None and last.download is None
    assert (
        last.status.startswith("Done: 2 iterations") and "could not be saved for download (No space left" in last.status
    )
