"""Ruder et al.'s temporal loss: stay close to the earlier stylised frames where they are visible.

For frame t and an earlier frame p, the earlier stylised frame is warped into frame t along the
backward flow t -> p, and the loss is the mean squared difference to it, weighted per pixel by
how reliable that flow is (0 at occlusions and motion boundaries). With long-term consistency
there is one such pair per offset, and each earlier frame only weighs where no closer frame is
reliable (their "closest first" weights, `long_term_weights`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..images import resize_image
from ..terms import PixelTerm
from .flow import resize_flow, warp


def temporal_loss(image: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Ruder et al.'s weighted MSE: sum of weights * (image - target)^2 over pixels and channels,
    divided by the number of elements. image, target (1, C, H, W); weights (1, 1, H, W).

    A mean, like the style loss is (per pixel, both shrink as the image grows), so one weight
    holds the style equally still at every size."""
    return (weights * (image - target).square()).sum() / image.numel()


def long_term_weights(weights: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Ruder et al.'s "closest first" weights, nearest frame first in `weights`:
    c_j = max(0, c_j - sum of the closer frames' reliabilities)."""
    out: list[torch.Tensor] = []
    for j, w in enumerate(weights):
        closer = sum(weights[:j], torch.zeros_like(w))
        out.append((w - closer).clamp_min(0))
    return out


def resize_weights(weights: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-pixel weights at another size: area-averaged when shrinking, bilinear when enlarging."""
    if height <= weights.shape[-2] and width <= weights.shape[-1]:
        return F.interpolate(weights, size=(height, width), mode="area")
    return F.interpolate(weights, size=(height, width), mode="bilinear", align_corners=False).clamp(0, 1)


@dataclass(frozen=True)
class Constraint:
    """One earlier stylised frame, the flow that brings it into the current frame, and the
    per-pixel weights of that flow; all at the current frame's full size."""

    previous: torch.Tensor  # (1, C, H, W) the earlier stylised frame, in the optimised pixels
    flow: torch.Tensor  # (1, 2, H, W) backward flow, current frame -> earlier frame
    weights: torch.Tensor  # (1, 1, H, W) in [0, 1]

    def resized(self, height: int, width: int) -> Constraint:
        if tuple(self.flow.shape[-2:]) == (height, width):
            return self
        return Constraint(
            resize_image(self.previous, height, width),
            resize_flow(self.flow, height, width),
            resize_weights(self.weights, height, width),
        )

    def target(self) -> torch.Tensor:
        """The earlier stylised frame warped into the current frame (bicubic: warped from frame to
        frame, bilinear interpolation would blur the strokes a little more each time)."""
        return warp(self.previous, self.flow, "bicubic")


class TemporalLoss(PixelTerm):
    """Sum over constraints of the weighted MSE to each warped earlier frame (a PixelTerm).

    At each coarse-to-fine scale the earlier frames, the flows (and their vectors) and the
    weights are resampled to that scale, and the warp is done there.
    """

    def __init__(self, constraints: Sequence[Constraint], weight: float, name: str = "temporal") -> None:
        self.name, self.weight = name, weight
        self.constraints = list(constraints)
        self._targets = [(c.target(), c.weights) for c in self.constraints]

    def loss(self, image: torch.Tensor) -> torch.Tensor:
        if any(target.device != image.device for target, _ in self._targets):  # once, not every evaluation
            self._targets = [(t.to(image.device), w.to(image.device)) for t, w in self._targets]
        total = torch.zeros((), device=image.device)
        for target, weights in self._targets:
            total = total + temporal_loss(image, target, weights)
        return total

    def resized(self, height: int, width: int) -> TemporalLoss:
        return TemporalLoss([c.resized(height, width) for c in self.constraints], self.weight, self.name)
