"""The `impasto` command: a thin adapter from argv to the library.

Its flags and defaults are read from StyleConfig's fields. Every ImpastoError becomes one line on
stderr and exit status 2; Ctrl-C saves the image so far and exits with 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Only what --help, --version and the checks of the input need is imported here: torch (seconds)
# waits until a run is sure to start, so that a usage mistake or a missing file answers at once.
from . import __version__
from .config import IMPROVED, INITS, StyleConfig, unused_options
from .errors import ImpastoError
from .images import check_output_path, read_image, read_mask, save_image

if TYPE_CHECKING:
    from .transfer import ImageLike, Progress

FLAG_NAMES = {"style_blend": "--style-weights"}
NUMBER_LISTS = ("style_blend", "style_layer_weights")
SUBCOMMANDS = ("mask-transfer", "color-transfer")
# Front ends of their own, each in its sub-package: `impasto video ...` -> impasto.video.cli.main.
FRONT_ENDS = {
    "video": "impasto.video.cli",
    "web": "impasto.web.cli",
    "batch": "impasto.batch.cli",
    "info": "impasto.provenance.info_cli",
    "reproduce": "impasto.provenance.reproduce_cli",
}
EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 130, 143
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a command killed by it
_UNITS = {
    "": 1,
    "B": 1,
    "K": 2**10,
    "KB": 2**10,
    "M": 2**20,
    "MB": 2**20,
    "G": 2**30,
    "GB": 2**30,
    "T": 2**40,
    "TB": 2**40,
}


_NEGATIVE = re.compile(r"-(?:inf(?:inity)?|nan|\.?\d[\w.+-]*)", re.IGNORECASE)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line, not the whole usage text, and a negative value
    (`--tv-weight -1e3`, `--activation-shift -inf`) is a value, not taken for an option."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        joined: list[str] = []
        for token in list(sys.argv[1:] if args is None else args):
            action = self._option_string_actions.get(joined[-1]) if joined else None
            if action is not None and action.nargs is None and _NEGATIVE.fullmatch(token):
                joined[-1] += ("=" if joined[-1].startswith("--") else "") + token  # --opt=-1, -o-1.png
            else:
                joined.append(token)
        return super().parse_known_args(joined, namespace)


def _flag(name: str) -> str:
    return FLAG_NAMES.get(name, "--" + name.replace("_", "-"))


def _flag_pattern() -> re.Pattern:
    names = sorted((f.name for f in dataclasses.fields(StyleConfig)), key=len, reverse=True)
    compound = [n for n in names if "_" in n]
    single = [n for n in names if "_" not in n]
    # A one-word name is a parameter where the library writes it as one: at the start of the
    # message, after "use"/"set"/"lower", or before its value; elsewhere it is an ordinary word.
    return re.compile(
        r"(?<![\w-])(?:(%s)|(?:(?<=^)|(?<=use )|(?<=set )|(?<=lower )|(?<=pass ))(%s)"
        r"|(%s)(?= [-\d'\"]))(?![\w-])" % ("|".join(compound), "|".join(single), "|".join(single))
    )


_FLAGS = _flag_pattern()


def to_flags(message: str) -> str:
    """A library message with each parameter name written as its command-line flag (the one place
    where the two vocabularies meet)."""
    return _FLAGS.sub(lambda m: _flag(next(g for g in m.groups() if g)), message)


def run_front_end(
    run: Callable[[list[str]], int],
    argv: Sequence[str] | None,
    interrupted: str,
    flags: Callable[[str], str] = to_flags,
) -> int:
    """What every subcommand's main() does around its `run`: a bad input is one line (the library's
    parameter names written as `flags` writes them) and exit 2; a Ctrl-C before `run` handles it
    says `interrupted` and exits 130."""
    try:
        return run(list(sys.argv[1:] if argv is None else argv))
    except ImpastoError as error:
        print(f"impasto: error: {flags(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `impasto video ... --report | head`: the reader has all it wanted
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as error:  # what no check foresaw (a path the system refuses, say): still one line
        print(f"impasto: error: {_os_error(error)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"impasto: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED


def parse_tile(text: str) -> int | str:
    """--tile: a number of pixels, auto or off."""
    return int(text) if text.strip().isdigit() else text.strip().lower()


def parse_bytes(text: str) -> int:
    """--max-memory: 6G, 500M, 4GB, 1.5G, or a number of bytes."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?B?)\s*", text.upper().replace("I", ""))
    try:
        value = float(match.group(1)) * _UNITS[match.group(2)] if match else -1
    except ValueError:
        value = -1
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a memory size such as 6G, 500M or 4GB")
    return int(value)


def _add_config_flags(parser: argparse.ArgumentParser, names: Sequence[str] | None = None) -> None:
    """One flag per StyleConfig field (or per field in `names`), typed and documented from the
    field and its default."""
    defaults = StyleConfig()
    for f in dataclasses.fields(StyleConfig):
        if names is not None and f.name not in names:
            continue
        default = getattr(defaults, f.name)
        meta = dict(f.metadata)
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        suffix = f" (default: {shown})" if default is not None else ""
        kwargs: dict[str, Any] = {
            "dest": f.name,
            "default": argparse.SUPPRESS,
            "help": to_flags(meta["help"] + suffix),
            "metavar": meta.get("metavar"),
        }
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
            del kwargs["metavar"]
        elif isinstance(default, tuple) or f.name in NUMBER_LISTS:
            kwargs.update(
                nargs="+", metavar=meta.get("metavar", "LAYER"), type=float if f.name in NUMBER_LISTS else str
            )
            if f.name == "style_blend":
                kwargs["help"] = f"{meta['help']} (default: equal)"
        elif f.name == "tile":
            kwargs["type"] = parse_tile
        elif f.name == "max_memory":
            kwargs["type"] = parse_bytes
        else:
            kwargs["type"] = type(default) if default is not None else str
            if "choices" in meta:
                kwargs["choices"] = meta["choices"]
                kwargs["metavar"] = "{" + ",".join(meta["choices"]) + "}"
        parser.add_argument(_flag(f.name), **kwargs)


OTHER_COMMANDS = """\
other commands, each with its own --help:
  impasto video CLIP STYLE -o OUT      a video or a folder of frames, without flicker
  impasto batch --contents DIR --styles DIR -o OUTDIR
                                       every photo in every style; a rerun does only the rest
  impasto web                          the studio page: paint masks, watch, stop, download
  impasto info IMAGE                   the settings a picture carries
  impasto reproduce IMAGE -o OUT       paint a picture again from its settings
  impasto mask-transfer STYLISED CONTENT MASK -o OUT
                                       the content back where the mask is black
  impasto color-transfer STYLISED CONTENT -o OUT [--mask M]
                                       the content's colours on the result"""


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="impasto",
        description="Paint a photo in the style of one or more artworks (neural style transfer).",
        epilog=OTHER_COMMANDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("content", help="the photo to paint")
    parser.add_argument("styles", nargs="+", metavar="style", help="one or more artworks")
    parser.add_argument("-o", "--output", required=True, help="where to write the result (.png .jpg .webp .tif .bmp)")
    parser.add_argument(
        "--style-masks",
        nargs="+",
        metavar="MASK",
        help="one mask per style, in the same order: white = this style, black = keep the content",
    )
    parser.add_argument(
        "--improved",
        action="store_true",
        help="Novak & Nikulin's preset: --layer-weighting geometric --all-conv-layers "
        "--activation-shift -1 --correlation-chain (explicit flags override it)",
    )
    parser.add_argument(
        "--save-every",
        type=int,
        default=0,
        metavar="N",
        help="also write the image every N iterations, next to the output (default: 0 = never)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--no-metadata",
        action="store_true",
        help="leave the settings out of the output (by default it carries them: 'impasto info')",
    )
    parser.add_argument("--version", action="version", version=f"impasto {__version__}")
    _add_config_flags(parser)
    return parser


def _progress_bar(total: int, quiet: bool):
    if quiet:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="it", dynamic_ncols=True, file=sys.stderr)


def _snapshot_path(output: Path, iteration: int) -> Path:
    return output.with_name(f"{output.stem}_{iteration:05d}{output.suffix}")


def warn_unused(config: StyleConfig) -> None:
    """One warning for each option given that this run would not use (probably a mistake)."""
    for text in unused_options(config):
        warnings.warn(to_flags(text), stacklevel=2)


def _check_snapshots_spare(output: Path, inputs: Sequence[str]) -> None:
    """Error if an input has the name of one of --save-every's snapshots (they would replace it)."""
    pattern = re.compile(re.escape(output.stem) + r"_\d{5,}" + re.escape(output.suffix))
    for path in inputs:
        found = Path(path).expanduser().resolve()
        if found.parent == output.parent and pattern.fullmatch(found.name):
            raise ImpastoError(
                f"--save-every writes snapshots named {output.stem}_NNNNN{output.suffix} beside the output, "
                f"and the input {path} has such a name; choose another output name"
            )


def _callback(bar, output: Path, save_every: int):
    def report(p: Progress) -> None:
        if bar is not None:
            bar.total = p.total  # less once a coarse scale has ended early
            bar.update(p.iteration - bar.n)
            tiles = f" in {p.tiles} tiles" if p.tiles > 1 else ""
            bar.set_description(
                f"scale {p.scale}/{p.scales} {p.size[0]}x{p.size[1]}{tiles} {p.precision}", refresh=False
            )
            bar.set_postfix({k: f"{v:.3g}" for k, v in p.losses.items()}, refresh=False)
        if save_every and p.iteration % save_every == 0:
            save_image(p.current(), _snapshot_path(output, p.iteration))

    return report


def run_stylize(argv: Sequence[str]) -> int:
    args = vars(build_parser().parse_args(argv))
    content, styles, masks = args.pop("content"), args.pop("styles"), args.pop("style_masks")
    output, save_every, quiet = args.pop("output"), args.pop("save_every"), args.pop("quiet")
    no_metadata = args.pop("no_metadata")
    options = {**(IMPROVED if args.pop("improved") else {}), **args}
    for name in ("content_layers", "style_layers", *NUMBER_LISTS):
        if name in options:
            options[name] = tuple(options[name])
    if save_every < 0:
        raise ImpastoError(f"--save-every must be 0 or more, got {save_every}")
    config = StyleConfig(**options)
    warn_unused(config)
    inputs = [content, *styles, *(masks or []), *([config.init] if config.init not in INITS else [])]
    out = check_output_path(output, inputs)
    if save_every:
        _check_snapshots_spare(out, inputs)
    if masks is not None and len(masks) != len(styles):
        raise ImpastoError(
            f"got {len(masks)} style masks for {len(styles)} style images; give one mask per style, in the same order"
        )
    # Read (and so check) every input before importing torch; the run gets the decoded images.
    content_image = read_image(content, "content image")
    style_images: list[ImageLike] = [
        read_image(s, "style image" if len(styles) == 1 else f"style image {i + 1}") for i, s in enumerate(styles)
    ]
    mask_images = None if masks is None else [read_mask(m, f"style mask {i + 1}") for i, m in enumerate(masks)]

    import torch

    from .memory import reuse_freed_memory
    from .transfer import prepare

    if config.threads:
        torch.set_num_threads(config.threads)
    torch.backends.cudnn.benchmark = True  # process-wide, so the command's choice, not the library's
    stop = threading.Event()
    # From here a signal asks the run to stop: one during the set-up (targets, timings) stops it
    # before its first step, and the start image is still saved.
    with _signals_stop(stop) as signals:
        run = prepare(content_image, style_images, masks=mask_images, config=config, stop=stop)
        provenance = None
        if not no_metadata:  # gathered now, not after the run: an input may move meanwhile
            from .provenance import Provenance

            provenance = Provenance.gather(config, content, styles, masks)
        if not run.tiled:
            # Keeping freed blocks speeds up every evaluation but fragments the heap: a tiled run,
            # whose memory is bounded by its plan, does without (see memory.reuse_freed_memory).
            reuse_freed_memory()
        bar = _progress_bar(config.iterations, quiet)
        try:
            result = run.finish(_callback(bar, out, save_every))
            if bar is not None and run.finished:  # the last scale may have converged early: complete
                bar.total = bar.n
        finally:
            if bar is not None:
                bar.close()
        signals.saving = True  # a signal now must not cost the image
        if provenance is None:
            save_image(result.tensor, out)
        else:
            from .provenance import save_result

            save_result(result.image, out, provenance.record(result, run.painter))
    received = signals.received[:1]
    if result.interrupted:
        coarse = ""
        if result.upscaled and result.painted_size is not None:
            w, h = result.painted_size
            coarse = f" (stopped at a coarse scale: the image is enlarged from {w}x{h})"
        print(
            f"impasto: {'terminated' if received == [signal.SIGTERM] else 'interrupted'} after "
            f"{len(result.history)} iterations; saved the image so far to {out}{coarse}",
            file=sys.stderr,
        )
        return EXIT_TERMINATED if received == [signal.SIGTERM] else EXIT_INTERRUPTED
    if not quiet:
        from .memory import format_bytes

        memory = f", peak memory {format_bytes(result.peak_memory)}" if result.peak_memory else ""
        print(f"impasto: wrote {out} ({result.seconds:.1f} s{memory})", file=sys.stderr)
    return 0


class _Signals:
    """What _signals_stop saw: the signals received, and whether the result is being saved."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.saving = False


@contextmanager
def _signals_stop(stop: threading.Event) -> Iterator[_Signals]:
    """While inside: Ctrl-C or SIGTERM asks the run to stop (it keeps its image); a second
    Ctrl-C stops at once (the latest image is still kept). Once `saving` is set, signals are only
    noted, so that none can interrupt the write of the result."""
    signals = _Signals()

    def handler(signum, frame) -> None:
        first = not signals.received
        signals.received.append(signum)
        stop.set()
        if not first and signum == signal.SIGINT and not signals.saving:
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield signals
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield signals
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_postprocess(command: str, argv: Sequence[str]) -> int:
    parser = _Parser(prog=f"impasto {command}")
    parser.add_argument("output_image", metavar="STYLISED", help="a stylised image (an earlier result)")
    parser.add_argument("content", metavar="CONTENT", help="the original photo")
    if command == "mask-transfer":
        parser.description = "Put the content's pixels back where the mask is black."
        parser.add_argument("mask", metavar="MASK", help="white = keep the stylised pixels, black = content")
    else:
        parser.description = "Give a stylised image the content's colours (YIQ chroma), keeping its luminance."
        parser.add_argument("--mask", help="only recolour where this mask is white")
    parser.add_argument("-o", "--output", required=True, metavar="OUT", help="where to write the result")
    args = parser.parse_args(argv)
    out = check_output_path(args.output, [args.output_image, args.content, args.mask])
    from .postprocess import color_transfer, mask_transfer

    if command == "mask-transfer":
        image = mask_transfer(args.output_image, args.content, args.mask)
    else:
        image = color_transfer(args.output_image, args.content, args.mask)
    save_image(image, out)
    return 0


def _one_line_warnings(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"impasto: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `impasto` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    warnings.showwarning = _one_line_warnings
    try:
        if argv and argv[0] in SUBCOMMANDS:
            return run_postprocess(argv[0], argv[1:])
        if argv and argv[0] in FRONT_ENDS:
            import importlib

            return importlib.import_module(FRONT_ENDS[argv[0]]).main(argv[1:])
        if not argv:  # a first look: how to paint, and what else there is
            print(
                f"usage: impasto CONTENT STYLE [STYLE ...] -o OUTPUT [options]\n\n{OTHER_COMMANDS}\n\n"
                "impasto --help lists every option.",
                file=sys.stderr,
            )
            return EXIT_USAGE
        _check_not_a_mistyped_command(argv)
        return run_stylize(argv)
    except ImpastoError as error:
        print(f"impasto: error: {to_flags(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `impasto info X | head`: the reader has all it wanted
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except OSError as error:  # what no check foresaw (a path the system refuses, say): still one line
        print(f"impasto: error: {_os_error(error)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("impasto: interrupted before the first iteration; nothing was written", file=sys.stderr)
        return EXIT_INTERRUPTED


def _quiet_stdout() -> None:
    """Standard output to /dev/null, so that the flush at exit does not fail on the closed pipe."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
        pass


def _os_error(error: OSError) -> str:
    where = f" ({error.filename})" if error.filename else ""
    return f"{error.strerror or error}{where}; check the path and its permissions"


def _check_not_a_mistyped_command(argv: Sequence[str]) -> None:
    """A first word that is no file but nearly a command's name is that command, mistyped."""
    import difflib

    word = argv[0] if argv else ""
    if not word or word.startswith("-") or any(c in word for c in "./\\") or os.path.exists(word):
        return
    close = difflib.get_close_matches(word, [*FRONT_ENDS, *SUBCOMMANDS], n=1, cutoff=0.6)
    if close:
        raise ImpastoError(f"{word!r} is not a file or a command; did you mean `impasto {close[0]}`?")
