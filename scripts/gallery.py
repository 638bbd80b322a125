"""Make the README's gallery: one image per method, from the bundled example images.

    .venv/bin/python scripts/gallery.py [--size 256] [--out docs/gallery]

Every image uses the library's defaults, the default style weight included, except for the options
named in its row. Beside each image the script reports how strongly it is painted (see
scripts/strength.py): the output's Gram distance to its style, as a fraction of the photo's (per
region for the masked row), and writes these figures to <out>/strength.txt.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from strength import measure

from impasto import IMPROVED, VGG
from impasto.images import pil_to_tensor, read_mask, save_image

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"
CAT, ROCKET = EX / "chelsea.png", EX / "rocket.jpg"
STARRY, WAVE = EX / "starry_night_van_gogh.jpg", EX / "great_wave_hokusai.jpg"

# name, caption, content, styles, masks, options
ROWS = [
    ("gatys", "Gatys et al. (defaults)", CAT, [STARRY], None, {}),
    ("geometric", "+ geometric layer weights", CAT, [STARRY], None, {"layer_weighting": "geometric"}),
    ("all_layers", "+ all 16 conv layers", CAT, [STARRY], None, {"all_conv_layers": True}),
    ("shift", "+ activation shift -1", CAT, [STARRY], None, {"activation_shift": -1.0}),
    ("chain", "+ correlation chain", CAT, [STARRY], None, {"correlation_chain": True}),
    ("improved", "--improved (all four)", CAT, [STARRY], None, IMPROVED),
    ("blend", "two styles, 0.5 / 0.5", CAT, [STARRY, WAVE], None, {"style_blend": (0.5, 0.5)}),
    ("masks", "sky: Starry Night, the rest: Great Wave", ROCKET, [STARRY, WAVE], "sky", {}),
    ("luminance", "--preserve-color luminance", CAT, [STARRY], None, {"preserve_color": "luminance"}),
    ("histogram", "--preserve-color histogram", CAT, [STARRY], None, {"preserve_color": "histogram"}),
    ("wave", "Gatys et al., The Great Wave", CAT, [WAVE], None, {}),
    ("raccoon", "Gatys et al., another photo", EX / "raccoon.jpg", [STARRY], None, {}),
]


def figures(values: tuple[float | None, ...]) -> str:
    shown = [f"{v:.1%}" for v in values if v is not None]
    return " / ".join(shown) if shown else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery")
    parser.add_argument("--only", nargs="*", help="names of rows to make")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)  # this script owns its process
    network = VGG.load()
    sky = pil_to_tensor(read_mask(EX / "rocket_sky.png"))
    lines = [
        f"--size {args.size}; style: Gram distance to the style (relu1_1..relu5_1) as a fraction of the photo's",
        f"{'name':12s} {'seconds':>7s} {'style':>13s}  caption",
    ]
    print("\n".join(lines), flush=True)
    for name, caption, content, styles, masks, options in ROWS:
        if args.only and name not in args.only:
            continue
        mask_list = [sky, 1.0 - sky] if masks == "sky" else None
        start = time.perf_counter()
        found = measure(network, content, styles, args.size, options, mask_list)
        save_image(found.image, args.out / f"{name}.jpg")
        lines.append(f"{name:12s} {time.perf_counter() - start:7.1f} {figures(found.style):>13s}  {caption}")
        print(lines[-1], flush=True)
    if not args.only:
        (args.out / "strength.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
