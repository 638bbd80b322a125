"""`impasto reproduce IMAGE -o OUT`: paint a picture again from the settings it carries.

It finds the inputs (by name, then by SHA-256, next to IMAGE, here and in --search folders),
warns about each difference from the machine that made IMAGE, and runs the still-image command
with the recorded options, seed and CPU thread count: on the same machine and versions, on the
CPU, the new picture is bit-identical.
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from .. import cli as still
from ..config import StyleConfig
from ..errors import ImpastoError


def build_parser() -> argparse.ArgumentParser:
    parser = still._Parser(
        prog="impasto reproduce", description="Paint a picture again from the settings it carries (see impasto info)."
    )
    parser.add_argument("image", metavar="IMAGE", help="a picture impasto made (PNG, JPEG, WebP or TIFF)")
    parser.add_argument("-o", "--output", required=True, help="where to write the new picture")
    parser.add_argument(
        "--search",
        nargs="+",
        default=[],
        metavar="DIR",
        help="folders to look in for the inputs (and below), by name and by contents",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def still_argv(config: StyleConfig, inputs: Mapping[str, Any], output: str = "OUT") -> list[str]:
    """The `impasto` command line that paints with `config` from these inputs (by role): every
    option that differs from its default, as its flag."""
    styles = [str(v) for k, v in inputs.items() if k.startswith("style image")]
    masks = {int(k.rsplit(" ", 1)[1]): str(v) for k, v in inputs.items() if k.startswith("style mask")}
    if masks and sorted(masks) != list(range(1, len(styles) + 1)):
        raise ImpastoError(
            "the picture was made with masks for some of its styles only (in the web page); "
            "the command line needs one mask per style"
        )
    argv = [str(inputs["content image"]), *styles, "-o", str(output)]
    if masks:
        argv += ["--style-masks", *(masks[i] for i in sorted(masks))]
    defaults = StyleConfig()
    for f in dataclasses.fields(StyleConfig):
        value = getattr(config, f.name)
        if value == getattr(defaults, f.name) and f.name != "seed":
            continue
        flag = still._flag(f.name)
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, tuple):
            argv += [flag, *map(str, value)]
        elif value is not None:
            argv += [flag, str(value)]
    return argv


def run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    from .settings import read_record

    record = read_record(args.image)  # checked before torch loads: a bad record answers at once
    from .reproduce import device_available, differences, find_inputs, recorded_config  # imports torch

    found = find_inputs(record, args.image, args.search)
    config = recorded_config(record, found, args.search, args.image)
    device = record.get("device")
    if config.device == "auto" and device and device_available(device):
        config = config.replace(device=device)  # where it was made, not where auto points today
    elif config.device != "auto" and not device_available(config.device):
        config = config.replace(device="auto")
    facts = record.get("run") or {}
    if getattr(config, "precision", None) == "auto" and facts.get("precision"):
        config = config.replace(precision=facts["precision"])  # what auto chose then, not what it may choose now
    threads = facts.get("threads")
    if not config.threads and isinstance(threads, int) and threads > 0:
        config = config.replace(threads=threads)  # the same reductions, so the same bits
    for note in differences(record, config):
        warnings.warn(note)
    command = still_argv(config, found, args.output)
    if args.quiet:
        command.append("-q")
    from ..images import check_output_path

    check_output_path(args.output, [args.image, *found.values()])
    return still.run_stylize(command)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `impasto reproduce`; returns the exit status."""
    warnings.showwarning = still._one_line_warnings
    # Every option comes from the picture (reproduce takes none), so a message names it as the
    # record does ("size"), not as a flag the user could not have given ("--size").
    return still.run_front_end(
        run, argv, "interrupted before the first iteration; nothing was written", flags=lambda message: message
    )
