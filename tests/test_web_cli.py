"""`impasto web`'s own checks, before Gradio or the network load: the upload limit, the host and
the port. Fast: no server starts."""

from __future__ import annotations

import errno
import socket

import pytest

from impasto.cli import main
from impasto.errors import ImpastoError
from impasto.web import cli as web_cli


def run_web(capsys, *argv):
    try:
        code = main(["web", *map(str, argv)])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "text, size",
    [("25MB", 25 * 2**20), ("500kb", 500 * 2**10), ("1GB", 2**30), ("1.5G", 3 * 2**29), ("300000B", 300000)],
)
def test_max_upload_takes_gradios_sizes_and_max_memorys(text, size):
    assert web_cli.build_parser().parse_args(["--max-upload", text]).max_upload == size


@pytest.mark.parametrize("text", ["25", "abc", "0", "0MB", "25XB", "1.5.5GB"])
def test_a_bad_max_upload_is_one_line_naming_the_forms(capsys, text):
    code, err = run_web(capsys, "--max-upload", text)
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0]
    assert f"--max-upload: {text!r} is not an upload size" in err[0] and "25MB, 500KB or 1.5GB" in err[0]


def test_a_host_that_does_not_resolve_is_named_before_anything_loads(capsys):
    code, err = run_web(capsys, "--host", "not a host!!")
    assert code == 2 and len(err) == 1  # no "loading the network", no "serving on"
    assert err[0].startswith("impasto: error: --host 'not a host!!' is not an address or a name this machine")
    assert "use 127.0.0.1" in err[0]


def test_a_host_of_another_machine_is_not_taken_for_a_busy_port():
    with pytest.raises(ImpastoError, match=r"192\.0\.2\.1 is not an address of this machine\); use --host"):
        web_cli.check_address("192.0.2.1", free_port())  # TEST-NET-1: never this machine's


def test_a_busy_port_is_named_as_busy():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ImpastoError, match=r"\(the port is in use\); choose another port with --port"):
            web_cli.check_address("127.0.0.1", port)


def test_any_other_reason_is_reported_as_it_is(monkeypatch):
    class Refusing(socket.socket):
        def bind(self, address):
            raise OSError(errno.ENETDOWN, "Network is down")

    monkeypatch.setattr(web_cli.socket, "socket", Refusing)
    with pytest.raises(ImpastoError) as info:
        web_cli.check_address("127.0.0.1", 8123)
    assert str(info.value) == "cannot serve on 127.0.0.1:8123 (Network is down); check --host and --port"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0.0.0.0"])
def test_a_free_address_passes(host):
    web_cli.check_address(host, free_port())


@pytest.mark.parametrize("port", ["0", "65536"])
def test_a_port_out_of_range_is_one_line(capsys, port):
    code, err = run_web(capsys, "--port", port)
    assert code == 2 and err == [f"impasto: error: --port {port} must be between 1 and 65535"]


def test_the_servers_options_reach_the_page_and_the_threads(capsys, monkeypatch):
    pytest.importorskip("gradio")
    import torch

    from impasto.web import app

    made, threads = {}, []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)  # not this test process's
    monkeypatch.setattr(app, "create_app", lambda network, **kw: made.update(kw, network=network) or "page")
    monkeypatch.setattr(app, "launch", lambda page, **kw: made.update(page=page, **kw))
    port = free_port()
    code, err = run_web(
        capsys, "--port", port, "--threads", "1", "--pooling", "avg", "--no-winograd", "--device", "cpu"
    )
    assert code == 0, err
    base = made["base"]
    assert (base.threads, base.pooling, base.winograd, base.device) == (1, "avg", False, "cpu") and threads == [1]
    assert made["page"] == "page" and made["port"] == port and len(made["weights_sha256"]) == 64
    assert made["network"].pooling == "avg" and not made["network"].winograd


def test_weights_that_are_not_there_are_one_clear_line(capsys, tmp_path):
    code, err = run_web(capsys, "--weights", tmp_path / "vgg.pth", "--port", free_port())
    assert code == 2 and "Traceback" not in "".join(err)
    assert err[-1].startswith("impasto: error: --weights file ") and err[-1].endswith("use the default VGG-19")
