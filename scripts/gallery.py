"""Make the README's gallery: one image per method, from the bundled example images.

    .venv/bin/python scripts/gallery.py [--size 384] [--out docs/gallery]

Every image uses the library's defaults except for the options named in its row.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import PIL.ImageOps

from impasto import IMPROVED, StyleConfig, VGG, stylize
from impasto.images import read_mask, save_image

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
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery")
    parser.add_argument("--only", nargs="*", help="names of rows to make")
    args = parser.parse_args()
    network = VGG.load()
    sky = read_mask(EX / "rocket_sky.png")
    for name, caption, content, styles, masks, options in ROWS:
        if args.only and name not in args.only:
            continue
        mask_list = [sky, PIL.ImageOps.invert(sky)] if masks == "sky" else None
        start = time.perf_counter()
        result = stylize(content, styles, masks=mask_list, network=network,
                         config=StyleConfig(size=args.size).replace(**options))
        save_image(result.tensor, args.out / f"{name}.jpg")
        print(f"{name:12s} {time.perf_counter() - start:6.1f} s  {caption}", flush=True)


if __name__ == "__main__":
    main()
