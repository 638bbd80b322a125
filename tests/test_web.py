"""The studio page over HTTP, driven by Gradio's own client: a run, stop-and-keep, a queued second
job, bad uploads. The page runs in this process on the tiny random network."""

from __future__ import annotations

import re
import socket
import struct
import tempfile
import time
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("gradio", reason="the web page needs Gradio: pip install 'impasto[web]'")
import httpx  # noqa: E402  (installed with Gradio)
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402
from gradio_client.utils import Status  # noqa: E402

from impasto import IMPROVED  # noqa: E402
from impasto.metadata import read_settings  # noqa: E402
from impasto.web import app, controls  # noqa: E402

from conftest import pattern, stripes  # noqa: E402

# Gradio 6.31's queue uses pandas options that pandas 3 deprecates; not impasto's to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*no_silent_downcasting"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
]

UPLOAD_LIMIT = 300 * 1024
RUN_LIMIT = 120  # seconds; generous, the machine's cores are shared


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_net):
    """The page on 127.0.0.1, its temporary files in a folder of this test module."""
    folder = tmp_path_factory.mktemp("web")
    (folder / "tmp").mkdir()
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(folder / "gradio"))
        mp.setenv("TMPDIR", str(folder / "tmp"))
        mp.setattr(tempfile, "tempdir", str(folder / "tmp"))
        torch.set_num_threads(1)  # the tiny network is fastest on one thread, and cores are shared
        blocks = app.create_app(tiny_net, folder=folder / "results", preview_every=0.2)
        url = app.launch(blocks, port=free_port(), block=False, quiet=True, max_file_size=UPLOAD_LIMIT)
        try:
            yield SimpleNamespace(
                url=url,
                blocks=blocks,
                folder=folder,
                client=lambda: Client(
                    url, verbose=False, analytics_enabled=False, download_files=str(folder / "downloads")
                ),
            )
        finally:
            blocks.close()
            torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uploads")
    paths = SimpleNamespace(
        content=folder / "content.png",
        style=folder / "style.png",
        other=folder / "wave.png",
        text=folder / "notes.txt",
        bomb=folder / "bomb.png",
        square_mask=folder / "square_mask.png",
        layer=folder / "layer.png",
    )
    pattern(48, 32, 1).save(paths.content)
    stripes(40, 40).save(paths.style)
    pattern(40, 40, 7).save(paths.other)
    paths.text.write_text("not a picture")
    paths.bomb.write_bytes(png_header_only(30000, 30000))
    Image.new("L", (40, 40), 255).save(paths.square_mask)
    layer = np.zeros((40, 40, 4), np.uint8)
    layer[5:20, 5:30] = (221, 46, 68, 150)
    Image.fromarray(layer).save(paths.layer)
    return paths


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG file that claims width x height pixels: a decompression bomb to any decoder."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def start(client: Client, files, **options):
    values = dict(
        content=handle_file(str(files.content)), style_1=handle_file(str(files.style)), size=64, iterations=20
    )
    values.update(options)
    return client.submit(api_name="/paint", **values)


def wait_until(condition, what: str, limit: float = RUN_LIMIT) -> None:
    end = time.monotonic() + limit
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"waited {limit} s for {what}")
        time.sleep(0.05)


def running(job) -> bool:
    return any("iteration" in out[1] for out in job.outputs())


def pixels(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.int16)


def test_a_run_shows_previews_and_ends_with_a_png_that_carries_its_settings(server, files):
    job = start(server.client(), files, iterations=12, seed=3)
    painting, status, plot, download, masks = job.result(timeout=RUN_LIMIT)
    statuses = [out[1] for out in job.outputs()]
    assert statuses[0].startswith("Starting: 12 iterations")
    assert re.search(r"Scale 1 of 1 · 64×43 px · iteration \d+ of 12", " ".join(statuses))
    assert status.startswith("Done: 12 iterations")
    assert {row[1] for row in plot["data"]} == {"content", "style", "tv", "total"}
    assert len(plot["data"]) == 12 * 4

    png = download["value"]
    assert Path(png).name == "content-style.png" and download["interactive"]
    settings = read_settings(png)
    assert settings["config"]["size"] == 64 and settings["config"]["iterations"] == 12 and settings["seed"] == 3
    assert settings["inputs"]["content image"]["file"] == "content.png"
    assert settings["inputs"]["style image 1"]["file"] == "style.png"
    assert settings["run"]["interrupted"] is False and settings["run"]["iterations"] == 12
    assert pixels(png).shape == (43, 64, 3)
    assert np.array_equal(pixels(png), pixels(painting))  # the page shows what the download holds
    assert masks["value"] is None and not masks["visible"]  # nothing painted: no mask files
    start_image = np.asarray(pattern(48, 32, 1).resize((64, 43), Image.Resampling.BICUBIC), np.int16)
    assert np.abs(pixels(png) - start_image).mean() > 1  # it painted


def test_options_reach_the_run(server, files):
    job = start(
        server.client(),
        files,
        iterations=3,
        preserve_color="luminance",
        tile="off",
        style_layers=["relu1_1", "relu2_1"],
        style_layer_weights="2 1",
        max_memory="2G",
    )
    _, _, _, download, _ = job.result(timeout=RUN_LIMIT)
    config = read_settings(download["value"])["config"]
    assert config["preserve_color"] == "luminance" and config["tile"] == "off" and config["max_memory"] == 2**31
    assert config["style_layers"] == ["relu1_1", "relu2_1"] and config["style_layer_weights"] == [2.0, 1.0]


def test_two_styles_a_painted_mask_and_the_improved_preset(server, files):
    mask = {
        "background": handle_file(str(files.content)),
        "layers": [handle_file(str(files.layer))],
        "composite": None,
        "id": None,
    }
    wide = np.zeros((32, 48, 4), np.uint8)
    wide[8:24, 10:40] = (221, 46, 68, 150)
    Image.fromarray(wide).save(files.layer.with_name("wide_layer.png"))
    mask["layers"] = [handle_file(str(files.layer.with_name("wide_layer.png")))]
    job = start(
        server.client(),
        files,
        iterations=3,
        mask_1=mask,
        style_2=handle_file(str(files.other)),
        weight_1=0.75,
        weight_2=0.25,
        **IMPROVED,
    )
    _, _, _, download, masks = job.result(timeout=RUN_LIMIT)
    settings = read_settings(download["value"])
    assert settings["config"]["style_blend"] == [0.75, 0.25]
    assert all(settings["config"][name] == value for name, value in IMPROVED.items())
    assert set(settings["inputs"]) == {"content image", "style image 1", "style mask 1", "style image 2"}
    # The painted mask comes with the PNG, under the name its record gives it.
    assert masks["visible"] and [Path(m).name for m in masks["value"]] == [settings["inputs"]["style mask 1"]["file"]]


def test_stop_keeps_the_image_so_far(server, files):
    client = server.client()
    job = start(client, files, iterations=100_000)
    wait_until(lambda: running(job), "the run to start")
    client.predict(api_name="/stop")
    painting, status, _, download, _ = job.result(timeout=RUN_LIMIT)
    assert status.startswith("Stopped after") and "kept the image so far" in status
    settings = read_settings(download["value"])
    assert settings["run"]["interrupted"] is True and 0 < settings["run"]["iterations"] < 100_000
    assert pixels(download["value"]).shape == (43, 64, 3)
    assert np.array_equal(pixels(download["value"]), pixels(painting))


def test_a_second_job_waits_its_turn_and_sees_its_place(server, files):
    first, second = server.client(), server.client()
    long = start(first, files, iterations=100_000)
    wait_until(lambda: running(long), "the first run to start")
    short = start(second, files, iterations=3)
    wait_until(lambda: short.status().code == Status.IN_QUEUE, "the second job to be queued")
    place = short.status()
    assert place.rank == 0 and place.queue_size >= 1  # first in line
    second.predict(api_name="/stop")  # another browser's Stop does not stop this run
    time.sleep(0.5)
    assert not long.done() and short.outputs() == []  # one run at a time
    first.predict(api_name="/stop")
    assert long.result(timeout=RUN_LIMIT)[1].startswith("Stopped after")
    assert short.result(timeout=RUN_LIMIT)[1].startswith("Done: 3 iterations")


@pytest.mark.parametrize(
    "case, message",
    [
        ("text content", "content image notes.txt is not an image PIL can read"),
        ("bomb content", "content image bomb.png is too large to decode safely"),
        ("text style", "style image 1 notes.txt is not an image PIL can read"),
        ("mask of another shape", "style mask 1 is 40x40 but the content is 48x32"),
        ("bad option", "style strength must be at least 0"),
    ],
)
def test_bad_input_gives_a_readable_message(server, files, case, message):
    options = {
        "text content": dict(content=handle_file(str(files.text))),
        "bomb content": dict(content=handle_file(str(files.bomb))),
        "text style": dict(style_1=handle_file(str(files.text))),
        "mask of another shape": dict(
            mask_1={
                "background": handle_file(str(files.content)),
                "layers": [handle_file(str(files.layer))],
                "composite": None,
                "id": None,
            }
        ),
        "bad option": dict(style_weight=-1),
    }[case]
    job = start(server.client(), files, iterations=2, **options)
    with pytest.raises(AppError) as info:
        job.result(timeout=RUN_LIMIT)
    assert message in str(info.value)  # shown as a message box in the page
    assert job.outputs()[-1][1] == f"Cannot paint: {info.value}"  # and in the status line
    assert str(server.folder) not in str(info.value)  # names the user's file, not the server's copy


def test_uploading_a_mask_of_another_shape_is_refused(server, files):
    client = server.client()
    with pytest.raises(AppError, match="style mask 1 is 40x40 but the content is 48x32"):
        client.predict(handle_file(str(files.square_mask)), handle_file(str(files.content)), api_name="/load_mask_1")
    editor = client.predict(handle_file(str(files.square_mask)), handle_file(str(files.other)), api_name="/load_mask_1")
    assert editor["layers"]  # the right shape becomes a layer of the style's editor
    black = files.square_mask.with_name("black_mask.png")
    Image.new("L", (40, 40), 0).save(black)
    with pytest.raises(AppError, match="style mask 2 is all black"):
        client.predict(handle_file(str(black)), handle_file(str(files.other)), api_name="/load_mask_2")


def test_uploads_over_the_limit_are_refused_and_the_server_keeps_serving(server, files):
    big = server.folder / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (400, 400, 3), np.uint8)).save(big)
    assert big.stat().st_size > UPLOAD_LIMIT
    with open(big, "rb") as fh:
        reply = httpx.post(server.url + "gradio_api/upload", files={"files": ("big.png", fh, "image/png")})
    assert reply.status_code == 413 and "size" in reply.text.lower()
    _, status, _, _, _ = start(server.client(), files, iterations=2).result(timeout=RUN_LIMIT)
    assert status.startswith("Done: 2 iterations")


def test_serves_only_this_machine_and_loads_nothing_from_elsewhere(server):
    assert server.url.startswith("http://127.0.0.1:")
    assert server.blocks.share is False and server.blocks.analytics_enabled is False
    page = httpx.get(server.url).text
    outside = [
        url
        for url in re.findall(r"""<(?:script|link|img)\b[^>]*(?:src|href)=["']([^"']+)""", page)
        if re.match(r"(https?:)?//", url) and "127.0.0.1" not in url
    ]
    assert outside == []


def test_every_option_has_a_widget_with_the_configs_default_and_help(server):
    widgets = {c.elem_id: c for c in server.blocks.blocks.values() if getattr(c, "elem_id", None)}
    for name in controls.UP_FRONT + controls.ADVANCED:
        widget = widgets[f"opt-{name}"]
        default = controls.FIELDS[name].default
        assert widget.info == controls.hint(name)
        assert controls.parse(name, widget.value) == default or (default is None and widget.value == "")


# --- the command ---------------------------------------------------------------------------------


def test_impasto_web_serves_this_machine_by_default(monkeypatch, capsys):
    from impasto.cli import main
    from impasto.web import cli as web_cli

    made, served, checked = {}, {}, []
    monkeypatch.setattr(web_cli, "check_address", lambda host, port: checked.append((host, port)))  # no real bind
    monkeypatch.setattr(app, "create_app", lambda network, **kw: made.update(kw) or "page")
    monkeypatch.setattr(app, "launch", lambda page, **kw: served.update(kw, page=page))
    assert main(["web"]) == 0
    assert served == {
        "page": "page",
        "host": "127.0.0.1",
        "port": 7860,
        "max_file_size": app.MAX_FILE_SIZE,
        "quiet": True,
    }
    assert re.fullmatch(r"[0-9a-f]{64}", made["weights_sha256"])  # the default weights, recorded in each PNG
    assert "serving on http://127.0.0.1:7860" in capsys.readouterr().err
    assert main(["web", "--host", "0.0.0.0", "--port", "8000", "--max-upload", "5MB"]) == 0
    assert (served["host"], served["port"], served["max_file_size"]) == ("0.0.0.0", 8000, 5 * 2**20)
    assert checked == [("127.0.0.1", 7860), ("0.0.0.0", 8000)]  # checked before the network loads
    assert web_cli.build_parser().get_default("host") == "127.0.0.1"


def test_a_busy_port_is_one_line(monkeypatch, capsys):
    import gradio as gr

    from impasto.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with gr.Blocks() as blocks:
            gr.Markdown("a page")
        monkeypatch.setattr(app, "create_app", lambda **kw: blocks)
        assert main(["web", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        f"impasto: error: cannot serve on 127.0.0.1:{port} (the port is in use); choose another port with --port"
    )


def test_without_gradio_the_message_names_the_extra(monkeypatch, capsys):
    import sys

    from impasto.cli import main

    monkeypatch.setitem(sys.modules, "gradio", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "impasto.web.app")
    monkeypatch.delattr(sys.modules["impasto.web"], "app")
    assert main(["web"]) == 2
    assert capsys.readouterr().err.strip().endswith("install it with: pip install 'impasto[web]'")


def test_the_loss_plot_stays_small_however_long_the_run():
    history = [{"content": 1.0, "style": 10.0, "tv": 100.0, "total": 111.0}] * 5000
    frame = app._plot(history)
    assert frame["iteration"].nunique() <= app.PLOT_POINTS + 1 and frame["iteration"].max() == 5000
    assert frame[frame.term == "tv"]["log10 loss"].eq(2.0).all()
    assert app._plot([]) is None and app._plot(history[:1]) is None  # no line yet
