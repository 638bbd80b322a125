"""Measuring flicker: the warping error (Lai et al., "Learning Blind Video Temporal Consistency",
ECCV 2018), and how stylised each frame stays.

The warping error of a clip is the mean over consecutive pairs of the mean squared difference
between frame t+1 and frame t warped into t+1, over the pixels the flow does not mark occluded.
Its flow is Farneback's, from the *input* frames: a method other than the job's DIS, so a clip
is not rewarded for agreeing with its own flow's mistakes. The input's own warping error is the
floor: what the measurement calls motion, not flicker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..engine import Painter
from ..images import resize_mask_image
from ..objective import Objective
from ..terms import StyleLoss
from .flow import occluded, optical_flow, warp


@dataclass(frozen=True)
class Motion:
    """The backward flow of frame t+1 (to frame t) and where it is not occluded, per pair."""

    flows: tuple[torch.Tensor, ...]
    visible: tuple[torch.Tensor, ...]  # (1, 1, H, W) float, 1 = not occluded


def measure_motion(inputs: Sequence[torch.Tensor], method: str = "farneback") -> Motion:
    """Flows and occlusion masks between consecutive input frames (all of one size)."""
    flows, visible = [], []
    for before, after in zip(inputs, inputs[1:]):
        backward = optical_flow(after, before, method)
        forward = optical_flow(before, after, method)
        flows.append(backward)
        visible.append((~occluded(backward, forward)).float())
    return Motion(tuple(flows), tuple(visible))


def warping_error(frames: Sequence[torch.Tensor], motion: Motion) -> float:
    """Mean over pairs of the masked mean squared difference (over pixels and channels, RGB in
    [0, 1]) between frame t+1 and frame t warped into it."""
    if len(frames) != len(motion.flows) + 1:
        raise ValueError(f"{len(frames)} frames for {len(motion.flows)} flows; give one frame more than flows")
    errors = []
    for before, after, flow, mask in zip(frames, frames[1:], motion.flows, motion.visible):
        diff = (after - warp(before, flow)).square() * mask
        errors.append(float(diff.sum() / (mask.sum().clamp_min(1) * after.shape[1])))
    return sum(errors) / len(errors) if errors else 0.0


def style_distance(painter: Painter, image: torch.Tensor) -> float:
    """The painter's style loss (weight 1) of an image at its own size: how far its Gram
    matrices are from the styles'."""
    height, width = image.shape[-2:]
    c = painter.config
    masks = [None if m is None else resize_mask_image(m, height, width).to(painter.device) for m in painter.masks]
    # float32 targets, as the float32 objective below: a measure, whatever precision painted
    targets = painter.targets(max(1, round(c.style_scale * max(height, width))), torch.float32)
    term = StyleLoss(painter.representation, targets, painter.blend, masks, (height, width), 1.0)
    return Objective(painter.network, [term], None, c.winograd)(image.to(painter.device)).terms["style"]


@dataclass(frozen=True)
class ClipReport:
    """The figures `impasto video --report` prints."""

    frames: int
    input_error: float
    alone_error: float
    error: float
    style_ratio_mean: float  # our style distance / the frame alone's, mean over frames
    style_ratio_max: float
    first_seconds: float | None
    later_seconds: float | None  # mean over the later frames painted in this run

    def lines(self) -> list[str]:
        if self.frames < 2:
            out = ["warping error: none to measure, the clip has one frame (it compares each frame with the next)"]
        else:
            out = [
                f"warping error over {self.frames} frames (Lai et al.; Farneback flow, non-occluded pixels, "
                "RGB in [0, 1]):",
                f"  input frames           {self.input_error:.6f}",
                f"  each frame alone       {self.alone_error:.6f}",
                f"  impasto video          {self.error:.6f}  ({self.error / max(self.alone_error, 1e-12):.2f}x "
                "the frames alone)",
            ]
        out.append(
            f"style distance / frame alone's: mean {self.style_ratio_mean:.2f}x, worst {self.style_ratio_max:.2f}x"
        )
        if self.first_seconds and self.later_seconds is not None:
            out.append(
                f"time: first frame {self.first_seconds:.1f} s, later frames {self.later_seconds:.1f} s each "
                f"({self.later_seconds / self.first_seconds:.2f}x the first)"
            )
        elif self.frames >= 2:
            out.append("time: not measured, this run resumed the clip (--restart times the whole clip)")
        return out


def clip_report(
    inputs: Sequence[torch.Tensor],
    ours: Sequence[torch.Tensor],
    alone: Sequence[torch.Tensor],
    painter: Painter,
    first_seconds: float | None = None,
    later_seconds: Sequence[float] = (),
) -> ClipReport:
    """Compare a styled clip with its frames styled alone, on the input's motion."""
    motion = measure_motion(inputs)
    ratios = [style_distance(painter, o) / max(style_distance(painter, a), 1e-12) for o, a in zip(ours, alone)]
    later = sum(later_seconds) / len(later_seconds) if later_seconds else None
    return ClipReport(
        len(inputs),
        warping_error(inputs, motion),
        warping_error(alone, motion),
        warping_error(ours, motion),
        sum(ratios) / len(ratios),
        max(ratios),
        first_seconds,
        later,
    )
