"""Settings carried inside a PNG: written, read back, and the same options again."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest
from PIL import Image

from impasto import IMPROVED, StyleConfig, __version__
from impasto.errors import ImpastoError
from impasto.metadata import (
    KEY,
    SCHEMA,
    SUMMARY_KEY,
    config_from_settings,
    read_settings,
    save_png_with_settings,
    save_with_settings,
    settings_record,
    sha256_of,
    summary,
)

from conftest import pattern


@pytest.fixture
def inputs(tmp_path):
    content, style = tmp_path / "photo.jpg", tmp_path / "starry.png"
    pattern(24, 16, 1).save(content)
    pattern(20, 20, 2).save(style)
    return {"content": content, "style 1": style, "style mask 1": ("painted", b"\x89PNG mask bytes")}


def test_record_names_software_options_and_inputs(inputs):
    config = StyleConfig(size=96, iterations=7, seed=5, style_weight=1e3).replace(**IMPROVED)
    record = settings_record(config, inputs, "ab" * 32, device="cpu", run={"iterations": 3, "interrupted": True})
    assert record["schema"] == SCHEMA and record["impasto"] == __version__
    assert record["torch"].startswith("2.") and record["pillow"] == Image.__version__
    assert record["device"] == "cpu" and record["seed"] == 5 and record["weights_sha256"] == "ab" * 32
    assert record["config"] == json.loads(json.dumps(dataclasses.asdict(config)))
    assert record["inputs"]["content"] == {
        "file": "photo.jpg",
        "sha256": hashlib.sha256(inputs["content"].read_bytes()).hexdigest(),
    }
    assert record["inputs"]["style mask 1"] == {
        "file": "painted",
        "sha256": hashlib.sha256(b"\x89PNG mask bytes").hexdigest(),
    }
    assert record["run"] == {"iterations": 3, "interrupted": True}
    json.dumps(record, allow_nan=False)  # JSON-ready as it is


def test_record_never_holds_a_folder(inputs):
    record = settings_record(StyleConfig(), inputs)
    assert str(inputs["content"].parent) not in json.dumps(record)
    assert record["device"] == "auto"  # the config's, when the caller does not say


def test_png_round_trip_keeps_pixels_and_settings(tmp_path, inputs):
    image = pattern(30, 20, 3)
    record = settings_record(StyleConfig(size=64, iterations=5), inputs)
    out = save_png_with_settings(image, tmp_path / "out" / "result.png", record)
    assert out == (tmp_path / "out" / "result.png").resolve()
    assert read_settings(out) == record
    with Image.open(out) as img:
        assert img.format == "PNG" and np.array_equal(np.asarray(img), np.asarray(image))
        assert json.loads(img.text[KEY]) == record
        assert img.text[SUMMARY_KEY] == summary(record)
    assert [p.name for p in out.parent.iterdir()] == ["result.png"]  # no temporary file left


def test_settings_give_back_the_same_config(tmp_path, inputs):
    config = StyleConfig(
        size=80, style_layers=("relu1_1", "relu3_1"), style_blend=(0.7, 0.3), style_layer_weights=(1.0, 2.0), tile=128
    ).replace(**IMPROVED)
    out = save_png_with_settings(pattern(8, 8, 0), tmp_path / "a.png", settings_record(config, inputs))
    assert config_from_settings(read_settings(out)) == config


def test_summary_is_one_readable_line(inputs):
    config = StyleConfig(size=64, iterations=9, preserve_color="luminance")
    line = summary(settings_record(config, inputs, run={"iterations": 4, "interrupted": True}))
    assert "\n" not in line
    for part in (
        "content photo.jpg",
        "style 1 starry.png",
        "size 64",
        "iterations 9",
        "seed 0",
        "preserve_color luminance",
        "stopped after 4 iterations",
    ):
        assert part in line
    assert "style_weight" not in line  # options at their defaults are left out


def test_file_without_settings_reads_as_none(tmp_path):
    pattern(8, 8, 0).save(tmp_path / "plain.png")
    pattern(8, 8, 0).save(tmp_path / "plain.jpg")
    assert read_settings(tmp_path / "plain.png") is None
    assert read_settings(tmp_path / "plain.jpg") is None


@pytest.mark.parametrize("content, needle", [(None, "does not exist"), (b"not an image", "not an image")])
def test_unreadable_files_give_one_line(tmp_path, content, needle):
    path = tmp_path / "x.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImpastoError, match=needle) as info:
        read_settings(path)
    assert "\n" not in str(info.value)


def test_a_record_without_its_options_is_refused_not_taken_for_the_defaults():
    with pytest.raises(ImpastoError, match="has no config"):
        config_from_settings({"schema": SCHEMA, "seed": 7})


def test_damaged_record_is_reported(tmp_path):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt(KEY, "{not json")
    pattern(8, 8, 0).save(tmp_path / "bad.png", pnginfo=info)
    with pytest.raises(ImpastoError, match="damaged"):
        read_settings(tmp_path / "bad.png")


def test_only_png_carries_settings(tmp_path, inputs):
    with pytest.raises(ImpastoError, match=r"\.png"):
        save_png_with_settings(pattern(8, 8, 0), tmp_path / "out.jpg", settings_record(StyleConfig(), inputs))


def test_unknown_options_are_named(inputs):
    record = settings_record(StyleConfig(), inputs)
    record["config"]["sharpness"] = 2
    with pytest.raises(ImpastoError, match="sharpness"):
        config_from_settings(record)


def test_sha256_of_file_and_bytes_agree(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"abc" * 1000)
    assert sha256_of(path) == sha256_of(b"abc" * 1000) == hashlib.sha256(b"abc" * 1000).hexdigest()
    with pytest.raises(ImpastoError, match="cannot read"):
        sha256_of(tmp_path / "missing.bin")


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((StyleConfig(), {"content image": Image.new("RGB", (2, 2))}), {}, "a PIL image or tensor has no file to name"),
        ((StyleConfig(), ["photo.png"]), {}, "inputs must map each role to its file"),
        (({"size": 64}, {}), {}, "config must be the run's StyleConfig"),
        ((StyleConfig(), {}), {"run": 3}, "impasto.provenance.run_facts"),
    ],
)
def test_natural_mistakes_in_a_record_are_one_clear_error(args, kwargs, message):
    with pytest.raises(ImpastoError, match=message):
        settings_record(*args, **kwargs)


def test_saving_a_tensor_says_to_pass_the_image(tmp_path):
    import torch

    with pytest.raises(ImpastoError, match="pass result.image"):
        save_with_settings(torch.rand(1, 3, 4, 4), tmp_path / "x.png", {})
