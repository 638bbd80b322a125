"""`impasto info IMAGE`: the settings a picture carries, readably (or as JSON)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from .. import cli as still
from ..errors import ImpastoError


def build_parser() -> argparse.ArgumentParser:
    parser = still._Parser(prog="impasto info", description="Show the settings a picture made by impasto carries.")
    parser.add_argument("image", metavar="IMAGE", help="a picture impasto made (PNG, JPEG, WebP or TIFF)")
    parser.add_argument(
        "--json", action="store_true", help="print the record as JSON, as stored (even one this impasto cannot read)"
    )
    return parser


def describe(record: Mapping[str, Any], image: str) -> list[str]:
    """The record as readable lines: software, run, inputs, options, and the commands that make it again."""
    from ..metadata import HASH_KEY
    from .reproduce_cli import still_argv
    from .settings import settings_config

    run = record.get("run") or {}
    threads = f", {run['threads']} CPU threads" if run.get("threads") else ""
    lines = [
        f"{image}: made by impasto {record.get('impasto')} (torch {record.get('torch')}, "
        f"Pillow {record.get('pillow')}) on {record.get('device')}{threads}"
    ]
    if run:
        stopped = " (stopped early)" if run.get("interrupted") else ""
        seconds = f" in {run['seconds']:.1f} s" if isinstance(run.get("seconds"), (int, float)) else ""
        lines.append(f"run: {run.get('iterations')} iterations{seconds}{stopped}, seed {record.get('seed')}")
    inputs = record.get("inputs") or {}
    width = max((len(role) for role in inputs), default=0)
    lines.append("inputs:")
    for role, info in inputs.items():
        lines.append(f"  {role:<{width}}  {info.get('file') or '(no name)'}  sha256 {info.get('sha256')}")
    lines.append(f"weights: sha256 {record.get('weights_sha256')}")
    lines.append(f"settings hash: {record.get(HASH_KEY)}")
    try:
        config = settings_config(record, image)
        names = {role: info.get("file") or role for role, info in inputs.items()}
        command = still_argv(config, names)
        lines.append("the same command: " + shlex.join(["impasto", *command]))
    except ImpastoError as error:  # shown, not raised: info tells what the picture carries
        lines.append(f"options: {json.dumps(record.get('config'))} ({error})")
        return lines
    lines.append(f"again: impasto reproduce {shlex.quote(image)} -o OUT [--search DIR]")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `impasto info`; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        from .settings import read_record

        record = read_record(args.image, check=not args.json)
    except ImpastoError as error:  # about the picture's settings, which name options as it does: no flags
        print(f"impasto: error: {error}", file=sys.stderr)
        return still.EXIT_USAGE
    if args.json:
        print(json.dumps(record, indent=2, ensure_ascii=False))
    else:
        print("\n".join(describe(record, args.image)))
    return 0
