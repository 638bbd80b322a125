"""`impasto web`: serve the studio page on this machine.

It binds to 127.0.0.1 unless told otherwise, never opens a public share link, sends no analytics
and loads nothing from other hosts, so it works offline. The network is loaded once, here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import ImpastoError

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7860


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="impasto web",
        description="Serve impasto's studio page: upload a photo and styles, paint masks, watch the "
        "picture form, stop it, download a PNG that carries its settings.",
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default: {DEFAULT_HOST}, this machine only; "
        "0.0.0.0 lets other machines on your network in)",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default: {DEFAULT_PORT})")
    parser.add_argument(
        "--max-upload", default=None, metavar="SIZE", help="largest file an upload may be, e.g. 25MB (default: 25MB)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until Ctrl-C; returns the exit status. Problems are one-line ImpastoErrors."""
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if not 0 < args.port < 65536:
        raise ImpastoError(f"--port {args.port} must be between 1 and 65535")
    from ..memory import reuse_freed_memory
    from ..metadata import sha256_of
    from ..weights import default_weights_path
    from . import app  # imports Gradio, or says how to install it

    print("impasto web: loading the network...", file=sys.stderr)
    reuse_freed_memory()
    page = app.create_app(weights_sha256=sha256_of(default_weights_path()))
    print(f"impasto web: serving on http://{args.host}:{args.port} (Ctrl-C to stop)", file=sys.stderr)
    app.launch(page, host=args.host, port=args.port, max_file_size=args.max_upload or app.MAX_FILE_SIZE, quiet=True)
    return 0
