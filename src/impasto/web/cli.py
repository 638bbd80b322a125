"""`impasto web`: serve the studio page on this machine.

It binds to 127.0.0.1 unless told otherwise, never opens a public share link, sends no analytics
and loads nothing from other hosts, so it works offline. The network is loaded once, here, after
the address and the upload limit are checked, so a mistake in either answers at once.
"""

from __future__ import annotations

import argparse
import errno
import re
import socket
import sys
from collections.abc import Sequence

from .. import cli as still
from ..config import StyleConfig
from ..errors import ImpastoError
from .controls import SERVER

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7860
UPLOAD_UNITS = {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}
"""Units of --max-upload: Gradio's own (any case), plus the --max-memory style K, M, G, T."""
_UPLOAD_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([KMGT]?B|[KMGT])")


def parse_upload_size(text: str) -> int:
    """--max-upload as a number of bytes: 25MB, 500kb, 1GB (as Gradio reads them), or 1.5G as
    --max-memory does. A unit is required: a bare 25 would be 25 bytes, refusing every upload."""
    match = _UPLOAD_SIZE.fullmatch(text.replace(" ", "").upper())
    size = float(match[1]) * UPLOAD_UNITS[match[2].rstrip("B") + "B"] if match else 0.0
    if size < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an upload size; give a number above 0 and a unit, e.g. 25MB, 500KB or 1.5GB "
            f"(units: {', '.join(UPLOAD_UNITS)}, or K, M, G, T)"
        )
    return int(size)


def check_address(host: str, port: int) -> None:
    """A one-line ImpastoError unless this machine can serve on host:port: the host must resolve,
    be an address of this machine, and the port be free (bound once and let go, as Gradio does)."""
    if not 0 < port < 65536:
        raise ImpastoError(f"--port {port} must be between 1 and 65535")
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::1], as in a URL
    try:
        family, kind, proto, _, address = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ImpastoError(
            f"--host {host!r} is not an address or a name this machine can resolve ({reason}); "
            "use 127.0.0.1 (this machine only), 0.0.0.0 (every network) or a valid host name"
        ) from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
        try:
            probe.bind(address)
        except OSError as error:
            raise ImpastoError(_bind_problem(host, port, error)) from None


def _bind_problem(host: str, port: int, error: OSError) -> str:
    """Why the server could not listen on host:port, and what to change, in one line."""
    where = f"cannot serve on {host}:{port}"
    if error.errno == errno.EADDRINUSE:
        return f"{where} (the port is in use); choose another port with --port"
    if error.errno == errno.EADDRNOTAVAIL:
        return (
            f"{where} ({host} is not an address of this machine); use --host 127.0.0.1 (this machine "
            "only), 0.0.0.0 (every network) or one of this machine's addresses"
        )
    if error.errno == errno.EACCES and port < 1024:
        return f"{where} (only an administrator may use ports below 1024); choose a port above 1023 with --port"
    return f"{where} ({error.strerror or error}); check --host and --port"


def build_parser() -> argparse.ArgumentParser:
    parser = still._Parser(
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
        "--max-upload",
        type=parse_upload_size,
        default=None,
        metavar="SIZE",
        help="largest file an upload may be, e.g. 25MB, 500KB or 1.5GB (default: 25MB)",
    )
    # What the page does not show: fixed for the process, which loads its network once.
    still._add_config_flags(parser, SERVER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until Ctrl-C; returns the exit status. Problems are one-line ImpastoErrors."""
    args = vars(build_parser().parse_args(list(sys.argv[1:] if argv is None else argv)))
    host, port, max_upload = args.pop("host"), args.pop("port"), args.pop("max_upload")
    base = StyleConfig(**args)  # the server's options, checked before anything is loaded
    check_address(host, port)
    import torch

    from ..engine import build_network, resolve_device
    from ..memory import reuse_freed_memory
    from ..provenance.record import weights_sha256
    from . import app  # imports Gradio, or says how to install it

    if base.threads:
        torch.set_num_threads(base.threads)
    torch.backends.cudnn.benchmark = True  # process-wide, so the command's choice, not the library's
    print("impasto web: loading the network...", file=sys.stderr)
    reuse_freed_memory()
    network = build_network(base, resolve_device(base.device))
    page = app.create_app(network, base=base, weights_sha256=weights_sha256(base))
    print(f"impasto web: serving on http://{host}:{port} (Ctrl-C to stop)", file=sys.stderr)
    app.launch(page, host=host, port=port, max_file_size=max_upload or app.MAX_FILE_SIZE, quiet=True)
    return 0
