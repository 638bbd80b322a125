"""Settings in every output format, `impasto info`, and `impasto reproduce` making the same bits."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from impasto import StyleConfig
from impasto.cli import main
from impasto.errors import ImpastoError
from impasto.metadata import (
    HASH_KEY,
    read_settings,
    save_png_with_settings,
    save_with_settings,
    settings_hash,
    settings_record,
)

from conftest import pattern, stripes

FAST = ["--size", "40", "--iterations", "4", "--scales", "1", "-q"]


def run_main(capsys, *argv):
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def pixels(path):
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


@pytest.fixture
def threads():
    """The command sets torch's thread count (--threads, or the recorded one): restore it after."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    pattern(48, 32, 1).save(folder / "photo.png")
    stripes(40, 40).save(folder / "art.png")
    return folder / "photo.png", folder / "art.png"


# --- the record in each format -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.jpg", "out.jpeg", "out.webp", "out.tif", "out.png"])
def test_every_format_but_bmp_carries_the_record(tmp_path, inputs, name):
    record = settings_record(
        StyleConfig(size=64, seed=3),
        {"content image": inputs[0], "style image 1": inputs[1]},
        "cd" * 32,
        device="cpu",
        run={"iterations": 2, "interrupted": False, "threads": 1},
    )
    picture = pattern(30, 20, 4)
    out = save_with_settings(picture, tmp_path / name, record)
    assert read_settings(out) == record
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == [name]  # written atomically, nothing else
    if name.endswith((".png", ".tif")):  # lossless: the same pixels
        assert np.array_equal(pixels(out), np.asarray(picture))
    with pytest.raises(ImpastoError, match="cannot carry its settings"):
        save_with_settings(picture, tmp_path / "out.bmp", record)


def test_the_settings_hash_covers_what_is_painted_only(inputs):
    roles = {"content image": inputs[0], "style image 1": inputs[1]}
    base = settings_record(StyleConfig(size=64, style_weight=30.0), roles, "ab" * 32)
    assert base[HASH_KEY] == settings_hash(base)
    same = [
        settings_record(
            StyleConfig(size=64, style_weight=30.0, threads=3, device="cpu", tile=128, winograd=False),
            roles,
            "ab" * 32,
            device="cuda",
            run={"iterations": 1},
        ),
        settings_record(StyleConfig(size=64, style_weight=30), roles, "ab" * 32),
    ]  # 30 == 30.0
    assert {r[HASH_KEY] for r in same} == {base[HASH_KEY]}
    other = [
        settings_record(StyleConfig(size=65, style_weight=30.0), roles, "ab" * 32),
        settings_record(StyleConfig(size=64, style_weight=30.0), roles, "ef" * 32),
        settings_record(
            StyleConfig(size=64, style_weight=30.0), {"content image": inputs[1], "style image 1": inputs[1]}, "ab" * 32
        ),
    ]
    assert base[HASH_KEY] not in {r[HASH_KEY] for r in other}


def test_info_into_a_pipe_its_reader_closed_ends_quietly(tmp_path, inputs, monkeypatch, capsys):
    import sys

    from impasto.cli import EXIT_BROKEN_PIPE

    record = settings_record(StyleConfig(size=64), {"content image": inputs[0], "style image 1": inputs[1]})
    png = save_png_with_settings(pattern(20, 20, 1), tmp_path / "r.png", record)

    class ClosedPipe:  # `impasto info r.png | head -1`, once head has its line and has gone
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["info", str(png)]) == EXIT_BROKEN_PIPE
    assert capsys.readouterr().err == ""  # not "error: Broken pipe; check the path"


# --- the still command writes it ---------------------------------------------------------------


@pytest.mark.weights
def test_the_still_command_writes_its_settings_unless_asked_not_to(capsys, tmp_path, inputs, threads):
    content, style = inputs
    code, _, err = run_main(capsys, content, style, "-o", tmp_path / "a.jpg", *FAST, "--seed", "5")
    assert code == 0, err
    record = read_settings(tmp_path / "a.jpg")
    assert record["seed"] == 5 and record["config"]["size"] == 40 and record["device"] == "cpu"
    assert record["inputs"]["content image"]["file"] == "photo.png" and record["run"]["iterations"] == 4
    code, out, _ = run_main(capsys, "info", tmp_path / "a.jpg")
    assert code == 0 and "content image  photo.png" in out
    assert "impasto photo.png art.png -o OUT --size 40 --iterations 4 --scales 1 --seed 5" in out
    code, out, _ = run_main(capsys, "info", tmp_path / "a.jpg", "--json")
    assert json.loads(out) == record
    code, _, err = run_main(capsys, content, style, "-o", tmp_path / "b.png", *FAST, "--no-metadata")
    assert code == 0 and read_settings(tmp_path / "b.png") is None
    code, _, err = run_main(capsys, content, style, "-o", tmp_path / "c.bmp", *FAST)
    assert code == 0 and "warning: .bmp cannot carry the settings" in err
    code, _, err = run_main(capsys, "info", tmp_path / "b.png")
    assert code == 2 and "carries no impasto settings" in err and len(err.strip().splitlines()) == 1


# --- reproduce ---------------------------------------------------------------------------------


@pytest.mark.weights
def test_reproduce_is_bit_identical_and_finds_moved_inputs_by_hash(capsys, tmp_path, inputs, threads):
    content, style = inputs
    made = tmp_path / "made.png"
    code, _, err = run_main(
        capsys, content, style, "-o", made, "--init", "noise", "--seed", "7", "--threads", "1", *FAST
    )
    assert code == 0, err
    code, _, err = run_main(capsys, "reproduce", made, "-o", tmp_path / "again.png", "--search", content.parent, "-q")
    assert code == 0, err
    assert "warning" not in err
    assert np.array_equal(pixels(made), pixels(tmp_path / "again.png"))
    assert read_settings(tmp_path / "again.png")[HASH_KEY] == read_settings(made)[HASH_KEY]
    # Inputs moved and renamed: found by their SHA-256 in the folders named.
    moved = tmp_path / "elsewhere" / "deep"
    moved.mkdir(parents=True)
    shutil.move(content, moved / "renamed-photo.png")
    shutil.move(style, moved / "renamed-art.png")
    code, _, err = run_main(
        capsys, "reproduce", made, "-o", tmp_path / "third.png", "--search", tmp_path / "elsewhere", "-q"
    )
    assert code == 0, err
    assert np.array_equal(pixels(made), pixels(tmp_path / "third.png"))
    code, _, err = run_main(capsys, "reproduce", made, "-o", tmp_path / "fourth.png", "-q")
    assert code == 2 and "cannot find the content image photo.png" in err and "--search" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "fourth.png").exists()


@pytest.mark.weights
def test_reproduce_warns_when_the_software_differs(capsys, tmp_path, inputs, threads):
    content, style = inputs
    made = tmp_path / "made.png"
    assert run_main(capsys, content, style, "-o", made, "--threads", "1", *FAST)[0] == 0
    record = read_settings(made)
    record.update(torch="1.0.0", impasto="0.0.1")
    with Image.open(made) as img:
        save_png_with_settings(img.copy(), made, record)
    code, _, err = run_main(capsys, "reproduce", made, "-o", tmp_path / "again.png", "-q", "--search", content.parent)
    assert code == 0, err
    assert "warning: the picture was made with torch 1.0.0" in err and "impasto 0.0.1" in err


# --- a record this impasto cannot use: one line, exit 2 ----------------------------------------


def carrying(path, record):
    """A PNG carrying `record` as stored, however it is shaped (written as a chunk, not through
    save_png_with_settings, which needs a well-formed record for its readable line)."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("impasto", json.dumps(record))
    pattern(16, 12, 2).save(path, pnginfo=info)
    return path


def made_from(inputs):
    """A record of a run on `inputs`, as the still command writes it, as JSON gives it back."""
    roles = {"content image": inputs[0], "style image 1": inputs[1]}
    config = StyleConfig(size=40, iterations=3, scales=1, threads=1)
    record = settings_record(config, roles, "ab" * 32, device="cpu", run={"iterations": 3, "threads": 1})
    return json.loads(json.dumps(record))


def one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "Error:" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.pop("inputs"), "cannot read: they name no inputs"),
        (lambda r: r.update(schema=999), "of schema 999, and impasto"),
        (lambda r: r.pop("schema"), "of no schema"),
        (lambda r: r.update(inputs="photo.png"), "inputs is the text 'photo.png', not a table"),
        (lambda r: r["inputs"].pop("content image"), "they name no content image"),
        (lambda r: r["inputs"]["style image 1"].update(sha256=7), "the style image 1 has no SHA-256"),
        (lambda r: r.update(config=[40]), "config is a list, not a table of options"),
        (lambda r: r.pop("config"), "they have no config (the options)"),
        (lambda r: r.update(run={"threads": "four"}), "run threads is the text 'four', not a whole number"),
    ],
)
@pytest.mark.parametrize("command", ["info", "reproduce"])
def test_a_record_of_another_shape_is_one_line(capsys, tmp_path, inputs, command, change, message):
    record = made_from(inputs)
    change(record)
    picture = carrying(inputs[0].parent / "made.png", record)
    extra = ["-o", tmp_path / "again.png"] if command == "reproduce" else []
    code, out, err = run_main(capsys, command, picture, *extra)
    assert code == 2 and out == "" and not (tmp_path / "again.png").exists()
    assert one_line(err).startswith(f"impasto: error: {picture} carries impasto settings ") and message in err
    if command == "info":  # and --json shows it as stored, for a look inside
        code, out, _ = run_main(capsys, "info", picture, "--json")
        assert code == 0 and json.loads(out) == record


def test_another_schema_names_both_and_the_version_that_made_it(capsys, inputs):
    record = made_from(inputs)
    record.update(schema=2, impasto="9.0.0")
    picture = carrying(inputs[0].parent / "made.png", record)
    code, _, err = run_main(capsys, "info", picture)
    assert code == 2 and "of schema 2, and impasto" in err and "reads schema 1 only" in err
    assert one_line(err).endswith("read them with impasto 9.0.0, which made the picture")
    code, out, _ = run_main(capsys, "info", picture, "--json")  # as stored, for a look inside
    assert code == 0 and json.loads(out) == record


def test_a_recorded_value_is_named_as_the_pictures_not_as_a_flag(capsys, tmp_path, inputs):
    record = made_from(inputs)
    record["config"]["size"] = -5
    picture = carrying(inputs[0].parent / "made.png", record)
    code, _, err = run_main(capsys, "reproduce", picture, "-o", tmp_path / "again.png")
    assert code == 2 and not (tmp_path / "again.png").exists()
    assert one_line(err) == (
        f"impasto: error: the settings recorded in {picture} are not valid: size -5 must be between 1 and 32768"
    )
    # info shows what the picture carries, with the problem, and offers no command that cannot run
    code, out, _ = run_main(capsys, "info", picture)
    assert code == 0 and "size -5 must be between 1 and 32768" in out and "--size" not in out
    assert "again: impasto reproduce" not in out and "the same command" not in out


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("winograd", "no", "winograd is the text 'no', not true or false"),  # "no" would read as true
        ("style_layers", 5, "style_layers is the number 5, not a list of names"),
        ("size", "big", "size is the text 'big', not a whole number"),
        ("sharpness", 2, "name options impasto"),
    ],
)
def test_a_recorded_option_of_the_wrong_type_is_named(capsys, tmp_path, inputs, option, value, message):
    record = made_from(inputs)
    record["config"][option] = value
    picture = carrying(inputs[0].parent / "made.png", record)
    code, _, err = run_main(capsys, "reproduce", picture, "-o", tmp_path / "again.png")
    assert code == 2 and message in one_line(err) and "--" not in err


def test_a_search_path_that_is_a_file_is_named_as_one(capsys, tmp_path, inputs):
    picture = carrying(tmp_path / "made.png", made_from(inputs))
    code, _, err = run_main(capsys, "reproduce", picture, "-o", tmp_path / "again.png", "--search", inputs[0])
    assert code == 2
    assert one_line(err) == (
        f"impasto: error: search folder {inputs[0]} is a file, not a folder; pass a folder, such as {inputs[0].parent}"
    )


@pytest.mark.parametrize("command", ["info", "reproduce"])
def test_a_picture_without_settings_says_so_plainly(capsys, tmp_path, command):
    pattern(16, 12, 2).save(tmp_path / "photo.png")
    extra = ["-o", tmp_path / "again.png"] if command == "reproduce" else []
    code, _, err = run_main(capsys, command, tmp_path / "photo.png", *extra)
    line = one_line(err)
    assert code == 2 and "photo.png carries no impasto settings: it was not made by impasto" in line
    assert "metadata was stripped" in line and "nothing to reproduce" not in line


def test_a_record_of_device_auto_says_nothing_of_where_it_was_made():
    from impasto.provenance.reproduce import differences

    assert not [n for n in differences({"device": "auto"}, StyleConfig()) if "made on" in n]
    assert [n for n in differences({"device": "tpu"}, StyleConfig()) if "made on tpu" in n]
