"""The video example: the clip examples/chelsea_pan.mp4 (a slow pan and zoom across
examples/chelsea.png), and the figures in docs/ made from a styled run of it.

    .venv/bin/python scripts/video_example.py                  # writes examples/chelsea_pan.mp4
    .venv/bin/impasto video examples/chelsea_pan.mp4 examples/starry_night_van_gogh.jpg \
        -o out/video/chelsea_pan.mp4 --size 128 --threads 1 --report
    .venv/bin/python scripts/video_example.py --figures out/video/chelsea_pan.mp4
        # docs/video_chelsea_pan.webp (input | each frame alone | impasto video) and
        # docs/video_frames.jpg (five consecutive frames, alone above, impasto video below)

The camera moves on a smooth (eased) path: from the left of the photo to the cat's face, zooming
in by a third. Frames are cut from the photo with Lanczos resampling at sub-pixel positions, so
the motion is smooth and real (not whole pixels), as a camera's would be.
"""

from __future__ import annotations

import argparse
import math
from fractions import Fraction
from pathlib import Path

import PIL.Image

from impasto.video.clip import image_files, open_clip, write_video

ROOT = Path(__file__).resolve().parents[1]
SIZE = (240, 160)  # (width, height) of the clip
FPS = Fraction(12)
SECONDS = 2.5


def _ease(t: float) -> float:
    return 0.5 - 0.5 * math.cos(math.pi * t)


def pan_and_zoom(photo: PIL.Image.Image, frames: int) -> list[PIL.Image.Image]:
    """Crops of the photo along the camera path, each resized to SIZE."""
    width, height = photo.size
    out = []
    for i in range(frames):
        t = _ease(i / (frames - 1))
        crop_h = height * (0.9 - 0.3 * t)  # zoom in by a third
        crop_w = crop_h * SIZE[0] / SIZE[1]
        left = (width - crop_w) * (0.1 + 0.6 * t)  # pan from the left towards the face
        top = (height - crop_h) * (0.5 - 0.2 * t)
        box = (left, top, left + crop_w, top + crop_h)
        out.append(photo.resize(SIZE, PIL.Image.Resampling.LANCZOS, box=box))
    return out


def _frames(folder: Path) -> list[PIL.Image.Image]:
    return [PIL.Image.open(p).convert("RGB") for p in image_files(folder)]


def _side_by_side(images: list[PIL.Image.Image], gap: int = 4) -> PIL.Image.Image:
    width, height = images[0].size
    out = PIL.Image.new("RGB", (len(images) * width + (len(images) - 1) * gap, height), "white")
    for i, image in enumerate(images):
        out.paste(image, (i * (width + gap), 0))
    return out


def figures(styled: Path) -> None:
    """The README's animation and still figure from a `--report` run into `styled` (a video)."""
    ours = _frames(styled.with_name(styled.name + ".frames"))
    alone = _frames(styled.with_name(styled.name + ".alone"))
    size = ours[0].size
    source = open_clip(ROOT / "examples" / "chelsea_pan.mp4")
    inputs = [image.resize(size, PIL.Image.Resampling.LANCZOS) for image in source.frames()]
    panels = [
        _side_by_side(list(trio)).resize((2 * (3 * size[0] + 8), 2 * size[1]), PIL.Image.Resampling.LANCZOS)
        for trio in zip(inputs, alone, ours)
    ]
    # Animated WebP: a third the size of a GIF of these painterly textures, and no 256-colour palette.
    panels[0].save(
        ROOT / "docs" / "video_chelsea_pan.webp",
        save_all=True,
        append_images=panels[1:],
        loop=0,
        duration=round(1000 / source.fps),
        quality=80,
        method=6,
    )
    rows = [_side_by_side(alone[10:15]), _side_by_side(ours[10:15])]
    still = PIL.Image.new("RGB", (rows[0].width, 2 * rows[0].height + 4), "white")
    still.paste(rows[0], (0, 0))
    still.paste(rows[1], (0, rows[0].height + 4))
    still.resize((2 * still.width, 2 * still.height), PIL.Image.Resampling.NEAREST).save(
        ROOT / "docs" / "video_frames.jpg", quality=90
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--figures",
        metavar="STYLED",
        type=Path,
        help="make the docs' figures from an `impasto video --report` run into this video",
    )
    args = parser.parse_args()
    if args.figures:
        figures(args.figures.resolve())
        return
    photo = PIL.Image.open(ROOT / "examples" / "chelsea.png").convert("RGB")
    frames = pan_and_zoom(photo, round(SECONDS * FPS))
    print(write_video(ROOT / "examples" / "chelsea_pan.mp4", frames, FPS))


if __name__ == "__main__":
    main()
