"""`impasto batch`: many pictures in one run. A thin adapter from argv to the batch library.

Every option of the still-image command applies to every job. Bad input for the whole batch is
one line on stderr and exit status 2 before any work; a job that fails is one line and a row in
the summary, and the exit status is 1 at the end; Ctrl-C or SIGTERM keeps the finished outputs,
drops the pictures under way (nothing half-written) and exits 130 or 143; running the same
command again does only what is missing.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import cli as still
from ..config import IMPROVED, StyleConfig
from ..errors import ImpastoError

EXIT_FAILED = 1
_BATCH_NAMES = re.compile(r"(?<![\w-])(together|workers)(?![\w-])")


def to_flags(message: str) -> str:
    """A library message with the batch's and the still image's parameter names as flags."""
    return still.to_flags(_BATCH_NAMES.sub(lambda m: "--" + m.group(1), message))


def build_parser() -> argparse.ArgumentParser:
    parser = still._Parser(
        prog="impasto batch",
        description="Paint every content in every style (or the jobs of a TOML file) in one run: the network "
        "is loaded once per worker, style targets are reused, and a rerun skips what is done.",
        epilog="A jobs file has shared defaults at the top (any option by its Python name, e.g. style_weight, "
        "and styles, masks, improved, output_dir, format) and one [[job]] table per picture (content, "
        "styles, masks, output, options). Options given here override the file's.",
    )
    parser.add_argument("jobs_file", nargs="?", metavar="JOBS.toml", help="a TOML file of [[job]] tables")
    parser.add_argument("--contents", nargs="+", metavar="DIR|FILE", help="photos to paint: files or folders")
    parser.add_argument("--styles", nargs="+", metavar="DIR|FILE", help="artworks: files or folders")
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUTDIR",
        help="folder for the pictures and batch-summary.csv (with a jobs file: default its "
        "output_dir, else its folder)",
    )
    parser.add_argument(
        "--together",
        action="store_true",
        help="one picture per content in all the styles blended (default: one per style)",
    )
    parser.add_argument(
        "--style-masks",
        nargs="+",
        metavar="MASK",
        help="one mask per style, in the same order, used with that style for every content",
    )
    parser.add_argument(
        "--format",
        default=None,
        choices=_formats(),
        metavar="{" + ",".join(_formats()) + "}",
        help="file format of the pictures (default: png)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes here, or Ray actors with --ray (default: 1 here; with --ray, "
        "the cluster's CPUs divided by --threads)",
    )
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="paint on a Ray cluster: auto (on a cluster's node), ray://HOST:10001, or local "
        "(start one here); needs pip install 'impasto[ray]'",
    )
    parser.add_argument("--improved", action="store_true", help="Novak & Nikulin's preset (see impasto --help)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    still._add_config_flags(parser)
    for action in parser._actions:
        if action.dest == "threads":
            action.help = "CPU threads of each worker (default: here, the cores split between the workers; on Ray, 1)"
    return parser


def _formats() -> tuple[str, ...]:
    from .jobs import OUTPUT_FORMATS

    return OUTPUT_FORMATS


def _options(args: dict[str, Any]) -> dict[str, Any]:
    """The StyleConfig options given on the command line (and no others)."""
    options = {**(IMPROVED if args.pop("improved") else {}), **args}
    for name in ("content_layers", "style_layers", *still.NUMBER_LISTS):
        if name in options:
            options[name] = tuple(options[name])
    return options


def _jobs(args: dict[str, Any]) -> tuple[list, Path, list[str]]:
    """The jobs the command line describes, the output folder, and the folders of inputs named."""
    from .jobs import cross_jobs, image_files
    from .jobs_file import jobs_folder, read_jobs_file

    jobs_file, contents, styles = args.pop("jobs_file"), args.pop("contents"), args.pop("styles")
    output, together, masks, fmt = args.pop("output"), args.pop("together"), args.pop("style_masks"), args.pop("format")
    options = _options(args)
    if jobs_file is not None:
        given = [flag for flag, value in (("--contents", contents), ("--styles", styles)) if value]
        if given:
            raise ImpastoError(
                f"give either a jobs file or --contents and --styles, not both (got {' and '.join(given)})"
            )
        if masks:
            raise ImpastoError(
                "--style-masks goes with --contents and --styles; in a jobs file, give a job masks = [...]"
            )
        if together:
            raise ImpastoError(
                "--together goes with --contents and --styles; in a jobs file, a job's styles all paint one picture"
            )
        return read_jobs_file(jobs_file, options, output), jobs_folder(jobs_file, output), []
    if not contents or not styles:
        raise ImpastoError("give --contents and --styles (files or folders), or a jobs file")
    if not output:
        raise ImpastoError("give -o OUTDIR, the folder for the pictures")
    config = StyleConfig(**options)
    mask_paths = [Path(m) for m in masks] if masks else None
    folder = Path(output).expanduser()
    jobs = cross_jobs(
        image_files(contents, "content"),
        image_files(styles, "style"),
        folder,
        config,
        together=together,
        masks=mask_paths,
        fmt=fmt or "png",
    )
    return jobs, folder, [*contents, *styles]


def _executor(ray: str | None, workers: int | None, threads: int | None):
    if workers is not None and workers < 1:
        raise ImpastoError(f"--workers {workers} must be at least 1")
    if ray is not None:
        from .cluster import RayExecutor, require_ray

        require_ray()  # now, before any work, if the extra is missing
        return RayExecutor(ray, workers, threads or 1)
    from .local import LocalExecutor

    return LocalExecutor(workers or 1, threads or None)  # threads 0: the default split


class _Bars:
    """A bar over jobs (done, failed, skipped, ETA) and one per worker over its job's steps."""

    def __init__(self, quiet: bool, to_flags) -> None:
        self.quiet, self.to_flags = quiet, to_flags
        self.outer = None
        self.inner: dict[int, Any] = {}

    def _write(self, line: str) -> None:
        from tqdm import tqdm

        tqdm.write(line, file=sys.stderr)

    def __call__(self, event) -> None:
        if event.kind == "failed":
            self._write(f"impasto: failed: {event.job.name}: {self.to_flags(event.message or '')}")
        elif event.kind == "warning":
            self._write(f"impasto: warning: {event.job.name}: {event.message}")
        if self.quiet:
            return
        from tqdm import tqdm

        if self.outer is None and event.kind in ("started", "done", "stopped"):
            self.outer = tqdm(
                total=event.total,
                initial=event.skipped + event.failed,
                unit="job",
                dynamic_ncols=True,
                file=sys.stderr,
                position=0,
                desc="jobs",
            )
        if self.outer is None:
            return
        if event.kind in ("done", "failed", "skipped", "stopped"):
            self.outer.update(1)
        self.outer.set_postfix_str(f"done {event.done}, failed {event.failed}, skipped {event.skipped}")
        if event.kind == "started":
            bar = self.inner.get(event.worker)
            if bar is None:
                bar = self.inner[event.worker] = tqdm(
                    total=event.job.config.iterations,
                    unit="it",
                    leave=False,
                    dynamic_ncols=True,
                    file=sys.stderr,
                    position=1 + event.worker,
                )
            bar.reset(total=event.job.config.iterations)
            bar.set_description(event.job.name[:40], refresh=True)
        elif event.kind == "step" and event.worker in self.inner:
            bar = self.inner[event.worker]
            bar.total = event.step.total  # less once a coarse scale has ended early
            bar.update(event.step.iteration - bar.n)

    def close(self) -> None:
        for bar in [*self.inner.values(), self.outer]:
            if bar is not None:
                bar.close()


def run(argv: Sequence[str]) -> int:
    args = vars(build_parser().parse_args(argv))
    quiet, ray, workers = args.pop("quiet"), args.pop("ray"), args.pop("workers")
    threads = args.get("threads")
    contents_mode = args.get("jobs_file") is None
    jobs, folder, sources = _jobs(args)
    executor = _executor(ray, workers, threads)
    from .jobs import output_folder

    output_folder(folder, sources)  # last of the checks, so that a bad batch leaves no folder behind
    if ray is None and (workers or 1) == 1 and threads:
        import torch

        torch.set_num_threads(threads)  # the front end's to set: the library never does
    from .runner import SUMMARY_NAME, run_batch

    summary = folder / SUMMARY_NAME
    bars = _Bars(quiet, to_flags if contents_mode else str)
    stop = threading.Event()
    with still._signals_stop(stop) as signals:
        try:
            result = run_batch(jobs, executor, stop=stop, callback=bars, summary=summary)
        finally:
            bars.close()
    return _closing(result, signals.received[:1], summary, quiet)


def _closing(result, received: list[int], summary: Path, quiet: bool) -> int:
    import signal

    done, skipped, failed = result.count("done"), result.count("skipped"), result.count("failed")
    counts = f"{done} written, {skipped} done before, {failed} failed"
    if result.interrupted:
        how = "terminated" if received == [signal.SIGTERM] else "interrupted"
        left = len(result.reports) - done - skipped - failed
        print(
            f"impasto: {how}: {counts}, {left} not finished (nothing half-written); "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return still.EXIT_TERMINATED if received == [signal.SIGTERM] else still.EXIT_INTERRUPTED
    if failed:
        print(f"impasto: {failed} of {len(result.reports)} jobs failed ({counts}); see {summary}", file=sys.stderr)
        return EXIT_FAILED
    if not quiet:
        print(f"impasto: {counts}; summary in {summary}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `impasto batch`; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    return still.run_front_end(
        run,
        args,
        "interrupted; finished pictures are kept (nothing half-written); run the same command again to resume",
        _words(args),
    )


def _words(argv: list[str]) -> Callable[[str], str]:
    """How messages name the options: as flags, or as a jobs file names them (`style_weight`)
    when the options come from a jobs file (as the lines of its failed jobs do)."""
    known, _ = build_parser().parse_known_args(argv)
    return to_flags if known.jobs_file is None else str
