"""How strongly each mode paints at the default style weight, and whether --size keeps the balance.

    .venv/bin/python scripts/strength.py                      # every mode at 256 and 512 px
    .venv/bin/python scripts/strength.py --sizes 256 --modes gatys improved

For each mode and size, one default run (only the mode's own options changed) and two figures:
- style: the output's Gram distance to the style (relu1_1 ... relu5_1, the style part of the
  benchmark's J), as a fraction of the raw photo's: 100 % is the photo, 0 % the style's Gram
  matrices. Each mode is judged against the style it paints with: the luminance-matched style for
  `luminance` (on the output's luminance), the recoloured style for `histogram`, and only the
  mask's white area for `mask`.
- content: the output's content distance (MSE at relu4_2, the content part of J) to the photo.
Then, per mode, the ratio of the style figures at the last and the first size: 1.00 means --size did
not change the balance of content and style.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from impasto import IMPROVED, VGG, Painter, StyleConfig, color
from impasto.images import (
    fit_longest,
    pil_to_tensor,
    read_image,
    resize_image,
    resize_mask_image,
    save_image,
)
from impasto.losses import gram_matrix, resize_mask

from benchmark import CONTENT_LAYER, STYLE_LAYERS, PasticheObjective

ROOT = Path(__file__).resolve().parents[1]
EX = ROOT / "examples"
PAIRS = {
    "chelsea_starry": (EX / "chelsea.png", EX / "starry_night_van_gogh.jpg"),
    "chelsea_wave": (EX / "chelsea.png", EX / "great_wave_hokusai.jpg"),
    "raccoon_starry": (EX / "raccoon.jpg", EX / "starry_night_van_gogh.jpg"),
}

MODES: dict[str, dict[str, object]] = {
    "gatys": {},
    "geometric": {"layer_weighting": "geometric"},
    "all_layers": {"all_conv_layers": True},
    "shift": {"activation_shift": -1.0},
    "chain": {"correlation_chain": True},
    "improved": dict(IMPROVED),
    "luminance": {"preserve_color": "luminance"},
    "histogram": {"preserve_color": "histogram"},
    "mask": {},  # the style only in the left half
}
"""Every way of describing or placing a style that should paint as strongly as the others."""


def left_half(image: torch.Tensor) -> torch.Tensor:
    """A (1, 1, H, W) mask the size of `image`, white on the left half."""
    mask = torch.zeros(1, 1, *image.shape[-2:])
    mask[..., : image.shape[-1] // 2] = 1.0
    return mask


@dataclass(frozen=True)
class Strength:
    """One run's figures: per style, its Gram distance as a fraction of the photo's (None where
    it is not defined: several styles blended over the same pixels); the content distance."""

    style: tuple[float | None, ...]
    content: float
    image: torch.Tensor


class StyleJudge:
    """J's style part for one style: images are compared with the style as the mode paints with it."""

    def __init__(
        self,
        network: VGG,
        content: torch.Tensor,
        style: torch.Tensor,
        mask: torch.Tensor | None = None,
        gray: bool = False,
    ) -> None:
        self.gray, self.mask = gray, mask
        self.objective = PasticheObjective(network, self._seen(content), style)

    def _seen(self, image: torch.Tensor) -> torch.Tensor:
        if not self.gray:
            return image
        return color.luminance(image).clamp(0, 1).expand(-1, 3, -1, -1).contiguous()

    def style(self, image: torch.Tensor) -> float:
        """Sum over relu1_1 ... relu5_1 of MSE(Gram / (C H W)), within the mask if there is one."""
        image = self._seen(image)
        if self.mask is None:
            return self.objective(image)[2]
        with torch.no_grad():
            feats = self.objective.network(image, STYLE_LAYERS)
            total = 0.0
            for name in STYLE_LAYERS:
                f = feats[name]
                gram = gram_matrix(f, mask=resize_mask(self.mask, tuple(f.shape[-2:]))) / f.shape[1]
                total += float((gram - self.objective.grams[name]).square().mean())
        return total

    def content(self, image: torch.Tensor) -> float:
        return self.objective(self._seen(image))[1]


def measure(
    network: VGG,
    content: Path,
    styles: Sequence[Path],
    size: int,
    options: Mapping[str, object],
    masks: Sequence[torch.Tensor] | None = None,
    config: StyleConfig | None = None,
) -> Strength:
    """Paint `content` at `size` with the defaults and `options`; judge it against the photo."""
    config = (config or StyleConfig()).replace(size=size, **options)
    photo = pil_to_tensor(read_image(content))
    width, height = fit_longest(photo.shape[-1], photo.shape[-2], size)
    painter = Painter(
        [pil_to_tensor(read_image(s)) for s in styles],
        masks=masks,
        config=config,
        network=network,
        color_reference=photo,
    )
    result = painter.paint(photo)
    start = resize_image(photo, height, width)
    figures: list[float | None] = []
    for index, style in enumerate(painter.styles):  # as the mode paints with them: recoloured
        mask = None if masks is None else resize_mask_image(masks[index], height, width)
        if len(styles) > 1 and mask is None:
            figures.append(None)
            continue
        sw, sh = fit_longest(style.shape[-1], style.shape[-2], round(config.style_scale * size))
        judge = StyleJudge(network, start, resize_image(style, sh, sw), mask, gray=config.preserve_color == "luminance")
        figures.append(judge.style(result.tensor) / judge.style(start))
    content_judge = StyleJudge(network, start, resize_image(painter.styles[0], height, width))
    return Strength(tuple(figures), content_judge.content(result.tensor), result.tensor)


def measure_mode(network: VGG, pair: str, mode: str, size: int, config: StyleConfig | None = None) -> Strength:
    """One of MODES on one of PAIRS; `mask` paints the style into the left half only."""
    content, style = PAIRS[pair]
    masks = [left_half(pil_to_tensor(read_image(content)))] if mode == "mask" else None
    return measure(network, content, [style], size, MODES[mode], masks, config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--pairs", nargs="+", choices=list(PAIRS), default=["chelsea_starry"])
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "strength.txt")
    parser.add_argument(
        "--images",
        type=Path,
        default=ROOT / "out" / "strength",
        help="where each output is saved, as <pair>_<mode>_<size>.jpg",
    )
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)  # this script owns its process
    network = VGG.load()
    header = (
        f"style: Gram distance to the style (relu1_1..relu5_1) as a fraction of the photo's; content: "
        f"MSE at {CONTENT_LAYER}\n{'pair':16s} {'mode':11s}"
        + "".join(f" {f'style {s}':>10s} {f'content {s}':>12s}" for s in args.sizes)
        + (f" {f'{args.sizes[-1]}/{args.sizes[0]}':>7s}" if len(args.sizes) > 1 else "")
    )
    lines = [header]
    print(header, flush=True)
    for pair in args.pairs:
        for mode in args.modes:
            row, figures = f"{pair:16s} {mode:11s}", []
            for size in args.sizes:
                start = time.perf_counter()
                found = measure_mode(network, pair, mode, size)
                save_image(found.image, args.images / f"{pair}_{mode}_{size}.jpg")
                figures.append(found.style[0])
                row += f" {found.style[0]:10.1%} {found.content:12.4g}"
                print(f"  ({pair} {mode} {size} px: {time.perf_counter() - start:.0f} s)", flush=True)
            if len(figures) > 1:
                row += f" {figures[-1] / figures[0]:6.2f}"
            lines.append(row)
            print(row, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
