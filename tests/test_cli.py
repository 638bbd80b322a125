"""The `impasto` command: what a user sees, exit codes, files written or not."""

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from impasto.cli import build_parser, main
from impasto.config import StyleConfig

from conftest import pattern, run_main, stripes

FAST = ["--size", "40", "--iterations", "4", "--scales", "1", "-q"]


def assert_one_line_error(code, err, *fragments):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("impasto: error:"), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], err


def test_help_documents_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in (
        "--size",
        "--style-scale",
        "--iterations",
        "--init",
        "--seed",
        "--content-weight",
        "--style-weight",
        "--tv-weight",
        "--content-layers",
        "--style-layers",
        "--pooling",
        "--weights",
        "--optimizer",
        "--save-every",
        "--quiet",
        "--device",
        "--style-masks",
        "--style-weights",
        "--preserve-color",
        "--improved",
        "--activation-shift",
        "--correlation-chain",
        "--all-conv-layers",
        "--layer-weighting",
        "--scales",
    ):
        assert flag in text, flag
    assert f"(default: {StyleConfig().size})" in text
    assert "(default: relu4_2)" in text


def test_flags_map_onto_the_config():
    args = build_parser().parse_args(
        [
            "c.png",
            "s1.png",
            "s2.png",
            "-o",
            "o.png",
            "--style-weights",
            "0.7",
            "0.3",
            "--no-correlation-chain",
            "--pooling",
            "avg",
        ]
    )
    assert args.styles == ["s1.png", "s2.png"]
    assert args.style_blend == [0.7, 0.3]
    assert args.pooling == "avg" and args.correlation_chain is False


@pytest.fixture
def files(tmp_path):
    content, style = tmp_path / "content.png", tmp_path / "style.png"
    pattern(60, 40, 1).save(content)
    stripes(40, 40).save(style)
    return tmp_path, content, style


def bad_cases(tmp, content, style, make_files=True):
    text, truncated, blocker = tmp / "notes.png", tmp / "cut.jpg", tmp / "file"
    if make_files:
        text.write_text("not an image")
        pattern(200, 200, 3).save(truncated, quality=95)
        truncated.write_bytes(truncated.read_bytes()[:1500])
        blocker.write_text("x")
    out = tmp / "out.png"
    return [
        ([tmp / "missing.jpg", style, "-o", out], ["missing.jpg", "does not exist"]),
        ([text, style, "-o", out], ["notes.png", "not an image"]),
        ([truncated, style, "-o", out], ["cut.jpg", "truncated"]),
        ([content, style, "-o", out, "--size", "0"], ["--size"]),
        ([content, style, "-o", out, "--size", "100000"], ["--size"]),
        ([content, style, "-o", out, "--content-weight", "nan"], ["--content-weight", "finite"]),
        ([content, style, "-o", out, "--style-weight", "-1"], ["--style-weight"]),
        ([content, style, "-o", out, "--style-layers", "relu3_1", "rleu4_1"], ["rleu4_1", "did you mean relu4_1"]),
        ([content, style, "-o", blocker / "out.png"], ["file"]),
        ([content, style, "-o", content], ["content.png"]),
        ([content, style, "-o", tmp / "out.gif"], [".gif", ".png"]),
        ([content, style, "-o", out, "--style-masks", content, content], ["2 style masks for 1 style"]),
        ([content, style, style, "-o", out, "--style-weights", "1"], ["1 --style-weights for 2 style"]),
        ([content, style, "-o", out, "--pooling", "median"], ["--pooling"]),
        ([content, style, "-o", out, "--weights", text], ["notes.png"]),
        ([content, style, "-o", out, "--save-every", "-1"], ["--save-every"]),
        ([content, style, "-o", out, "--style-layer-weights", "1", "nan"], ["--style-layer-weights", "finite"]),
        ([content, style, "-o", tmp / "start.png", "--init", tmp / "start.png"], ["is the input", "start.png"]),
        ([tmp / "out_00002.png", style, "-o", out, "--save-every", "2"], ["snapshots named out_NNNNN.png"]),
        ([content, style, "-o", out, "--init", "Noise"], ["'Noise' is not one of content, noise, style"]),
        ([content, style, "-o", out, "--threads", "100000"], ["--threads 100000 must be between 0 and 1024"]),
        ([content, style, "-o", tmp / ("n" * 300 + ".png")], ["is 304 bytes, over 255"]),
        ([content, style, "-o", tmp / ("n" * 240 + ".png")], ["file name is 244 bytes", "shorten it"]),
        ([content, style, "-o", tmp], ["is a folder; give a file name"]),
    ]


@pytest.mark.parametrize("case", range(len(bad_cases(Path("."), "content", "style", make_files=False))))
def test_bad_input_is_one_line_exit_2_and_no_output(capsys, files, case):
    tmp, content, style = files
    argv, fragments = bad_cases(tmp, content, style)[case]
    code, _, err = run_main(capsys, *FAST, *argv)
    assert_one_line_error(code, err, *fragments)
    assert not (tmp / "out.png").exists()
    assert not (tmp / "out.gif").exists()
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith(".")) == []


def test_a_mistyped_command_is_named_not_taken_for_a_photo(capsys, files):
    tmp, content, style = files
    code, _, err = run_main(capsys, "inof", content)
    assert_one_line_error(code, err, "'inof' is not a file or a command; did you mean `impasto info`?")
    code, _, err = run_main(capsys, "vidoe", content, style, "-o", tmp / "x.mp4")
    assert_one_line_error(code, err, "did you mean `impasto video`?")
    code, _, err = run_main(capsys, "elephant", style, "-o", tmp / "x.png")  # no command is near it
    assert_one_line_error(code, err, "content image elephant does not exist")


def test_mask_transfer_and_color_transfer_commands(capsys, files):
    tmp, content, style = files
    mask = tmp / "mask.png"
    m = PIL.Image.new("L", (60, 40), 0)
    m.paste(255, (0, 0, 30, 40))
    m.save(mask)
    out = tmp / "stylised.png"
    stripes(60, 40).save(out)
    code, _, err = run_main(capsys, "mask-transfer", out, content, mask, "-o", tmp / "masked.png")
    assert code == 0, err
    masked = PIL.Image.open(tmp / "masked.png").convert("RGB")
    assert masked.getpixel((45, 20)) == PIL.Image.open(content).convert("RGB").getpixel((45, 20))
    assert masked.getpixel((10, 20)) == PIL.Image.open(out).convert("RGB").getpixel((10, 20))
    code, _, err = run_main(capsys, "color-transfer", out, content, "-o", tmp / "recoloured.png")
    assert code == 0, err
    assert PIL.Image.open(tmp / "recoloured.png").size == (60, 40)
    code, _, err = run_main(capsys, "mask-transfer", out, content, tmp / "nope.png", "-o", tmp / "x.png")
    assert_one_line_error(code, err, "nope.png")


@pytest.mark.weights
def test_cli_writes_an_image_and_snapshots(capsys, files):
    tmp, content, style = files
    out = tmp / "result.jpg"
    code, _, err = run_main(
        capsys, content, style, "-o", out, "--size", "48", "--iterations", "4", "--scales", "1", "--save-every", "2"
    )
    assert code == 0, err
    assert PIL.Image.open(out).size == (48, 32)
    assert PIL.Image.open(out).format == "JPEG"
    assert (tmp / "result_00002.jpg").exists() and (tmp / "result_00004.jpg").exists()
    assert "wrote" in err


@pytest.mark.weights
@pytest.mark.parametrize(
    "signum, status, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_ctrl_c_and_sigterm_save_the_image_so_far(files, signum, status, word):
    tmp, content, style = files
    out = tmp / "result.png"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "impasto",
            str(content),
            str(style),
            "-o",
            str(out),
            "--size",
            "64",
            "--iterations",
            "2000",
            "--scales",
            "1",
            "--save-every",
            "1",
            "-q",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (tmp / "result_00003.png").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert word in err and "Traceback" not in err
    assert err.endswith("\n") and len(err.strip().splitlines()) == 1
    saved = PIL.Image.open(out)
    assert saved.size == (64, 43)
    # The image of the latest step, not the start image.
    first = np.asarray(PIL.Image.open(tmp / "result_00001.png"), dtype=np.float32)
    assert np.abs(np.asarray(saved, dtype=np.float32) - first).mean() > 0.1
    assert not [p for p in tmp.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_console_script_and_module_agree(files):
    tmp, content, style = files
    for command in ([sys.executable, "-m", "impasto"], [os.path.join(os.path.dirname(sys.executable), "impasto")]):
        proc = subprocess.run(
            [*command, str(content), str(style), "-o", str(tmp / "o.png"), "--size", "0"],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 2
        assert proc.stderr.strip() == "impasto: error: --size 0 must be between 1 and 32768"


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("impasto ")


def test_signals_ask_to_stop_and_never_interrupt_the_save():
    import os
    import threading

    from impasto.cli import _signals_stop

    stop = threading.Event()
    with _signals_stop(stop) as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.is_set() and signals.received == [signal.SIGTERM]
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C while running stops at once
            os.kill(os.getpid(), signal.SIGINT)
        signals.saving = True
        os.kill(os.getpid(), signal.SIGINT)  # while saving: noted only
        os.kill(os.getpid(), signal.SIGTERM)
    assert signals.received == [signal.SIGTERM, signal.SIGINT, signal.SIGINT, signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["photo.png"],
        ["--size", "x", "a.png", "b.png", "-o", "c.png"],
        ["missing.png", "also_missing.png", "-o", "out.png"],
        ["examples/chelsea.png", "examples/chelsea.png", "-o", "out.png", "--style-weight", "-1"],
        ["mask-transfer", "--help"],
        ["video", "--help"],
        ["batch", "--help"],
        ["info", "--help"],
        ["reproduce", "--help"],
        ["web", "--help"],
    ],
)
def test_help_version_and_bad_input_answer_before_torch_is_imported(argv):
    """Importing torch takes seconds: the command answers these without it."""
    code = (
        "import sys\nfrom impasto.cli import main\ntry:\n    status = main(sys.argv[1:])\n"
        "except SystemExit as exit:\n    status = exit.code\n"
        "print('torch imported' if 'torch' in sys.modules else 'no torch', status, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=Path(__file__).parent.parent
    )
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("no torch"), done.stderr
    assert last.split()[-1] in ("0", "2")


def test_options_this_run_would_not_use_are_warned_about(capsys, files):
    tmp, content, style = files
    argv = [*FAST, content, style, "-o", tmp / "out.png", "--learning-rate", "0.5", "--histogram-method", "eigen"]
    code, _, err = run_main(capsys, *argv)
    assert code == 0 and (tmp / "out.png").exists()
    assert "warning: --learning-rate is Adam's step size; it is not used with optimizer lbfgs" in err
    assert "warning: --histogram-method is only used with --preserve-color histogram" in err
    code, _, err = run_main(capsys, *argv, "--optimizer", "adam", "--preserve-color", "histogram")
    assert code == 0 and "warning" not in err
    code, _, err = run_main(
        capsys,
        *FAST,
        content,
        style,
        "-o",
        tmp / "out.png",
        *"--content-weight 0 --style-weight 0 --tv-weight 0".split(),
    )
    assert code == 0 and "are all 0: there is nothing to paint toward" in err


def test_a_negative_value_is_a_value_not_an_option():
    from impasto.cli import build_parser

    args = build_parser().parse_args(["c.png", "s.png", "-o", "-1.png", "--activation-shift", "-1e3", "--seed", "-1"])
    assert args.output == "-1.png" and args.activation_shift == -1000.0 and args.seed == -1
    assert build_parser().parse_args(["c.png", "s.png", "-o", "o.png", "--tv-weight", "-inf"]).tv_weight == -math.inf


def test_impasto_alone_shows_how_to_paint_and_every_other_command(capsys):
    from impasto.cli import FRONT_ENDS, SUBCOMMANDS

    code, out, err = run_main(capsys)
    assert code == 2 and out == ""
    assert err.startswith("usage: impasto CONTENT STYLE [STYLE ...] -o OUTPUT [options]")
    for command in (*FRONT_ENDS, *SUBCOMMANDS):
        assert f"impasto {command} " in err + " "
    code, out, _ = run_main(capsys, "--help")
    assert code == 0 and all(f"impasto {command}" in out for command in (*FRONT_ENDS, *SUBCOMMANDS))


def test_the_readmes_help_text_is_the_commands():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index("usage: impasto [-h]")
    block = readme[start : readme.index("```", start)].rstrip()
    env = {**os.environ, "COLUMNS": "100"}
    shown = subprocess.run([sys.executable, "-m", "impasto", "--help"], capture_output=True, text=True, env=env)
    assert shown.returncode == 0 and block == shown.stdout.rstrip()
