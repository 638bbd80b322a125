"""Seconds per evaluation (one forward and backward pass of the default objective) on this machine.

    .venv/bin/python scripts/benchmark.py [--sizes 256 512] [--repeats 5] [--out bench.txt]

Images are the bundled examples resized to exactly N x N pixels. Also reports a large float32
matmul's speed as the machine's practical peak and the convolutions' share of it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from impasto import StyleConfig, VGG
from impasto.images import pil_to_tensor, read_image, resize_to
from impasto.losses import StyleRepresentation
from impasto.objective import Objective

ROOT = Path(__file__).resolve().parents[1]


def conv_gflop(network: VGG, height: int, width: int, last: str) -> float:
    """GFLOP of the convolutions up to `last`, forward plus input-gradient backward (2x forward)."""
    total, h, w = 0.0, height, width
    for name in network.layer_names[: network.layer_names.index(last) + 1]:
        if name.startswith("conv"):
            weight = network.convs[name].weight
            total += 2 * weight.numel() * h * w
        elif name.startswith("pool"):
            h, w = h // 2, w // 2
    return 2 * total / 1e9


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    a = torch.rand(n, n)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def seconds_per_evaluation(network: VGG, size: int, repeats: int) -> float:
    config = StyleConfig()
    content = pil_to_tensor(resize_to(read_image(ROOT / "examples" / "chelsea.png"), (size, size)))
    style = pil_to_tensor(resize_to(read_image(ROOT / "examples" / "starry_night_van_gogh.jpg"), (size, size)))
    objective = Objective(network, content, [style], StyleRepresentation(config.style_layers),
                          config.content_layers, (config.content_weight, config.style_weight, config.tv_weight))

    def evaluate():
        x = content.clone().requires_grad_(True)
        torch.autograd.grad(objective(x)["total"], x)

    evaluate()
    return statistics.median(_timed(evaluate) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "benchmark.txt")
    args = parser.parse_args()
    network = VGG.load().to_device(torch.device("cpu"))
    peak = matmul_peak()
    lines = [f"torch {torch.__version__}, {torch.get_num_threads()} threads; matmul peak {peak:.0f} GFLOP/s",
             f"{'size':>9} {'s/eval':>8} {'GFLOP/s':>8} {'of peak':>8}"]
    for size in args.sizes:
        seconds = seconds_per_evaluation(network, size, args.repeats)
        rate = conv_gflop(network, size, size, "relu5_1") / seconds
        lines.append(f"{size:>4}x{size:<4} {seconds:8.3f} {rate:8.0f} {rate / peak:8.0%}")
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
