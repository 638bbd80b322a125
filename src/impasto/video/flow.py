"""Optical flow between frames, warping along a flow, and the forward-backward consistency check.

Convention (OpenCV's): a flow from frame a to frame b is a (1, 2, H, W) float tensor on a's grid,
(dx, dy) in pixels, with a(x) ≈ b(x + flow(x)). Warping b along that flow shows b from a's
point of view: warp(b, flow)(x) = b(x + flow(x)). So the *backward* flow of frame t (t -> t-1)
warps the previous stylised frame into frame t.

Flows come from OpenCV: DIS (Kroeger et al. 2016) for the job, Farneback for measuring it (a
different method, so the measurement does not reward agreeing with the job's own flow errors).
OpenCV is imported only here, when a flow is first asked for.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ImpastoError

FLOW_METHODS = ("dis", "farneback")

# Ruder et al.'s consistency check (their consistencyChecker.cpp): a round trip along the flow
# and back must return within 0.01 of the squared flow lengths plus 0.5 px^2; a squared flow
# gradient above 0.01 of the squared flow plus 0.002 marks a motion boundary.
_ROUND_TRIP = (0.01, 0.5)
_BOUNDARY = (0.01, 0.002)


def opencv():
    """OpenCV, or a one-line error naming the extra to install."""
    try:
        import cv2
    except ImportError:
        raise ImpastoError(
            "impasto video needs OpenCV for optical flow; install it with: pip install 'impasto[video]'"
        ) from None
    return cv2


def _gray(image: torch.Tensor) -> np.ndarray:
    """8-bit luma (H, W) of a (1, 3, H, W) image in [0, 1]."""
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=image.dtype).view(1, 3, 1, 1)
    y = (image.detach().cpu() * weights).sum(1)[0]
    return y.clamp(0, 1).mul(255).round().to(torch.uint8).numpy()


def optical_flow(a: torch.Tensor, b: torch.Tensor, method: str = "dis") -> torch.Tensor:
    """The flow from image a to image b, (1, 2, H, W) on a's grid (both (1, 3, H, W) in [0, 1])."""
    if method not in FLOW_METHODS:
        raise ImpastoError(f"flow method {method!r} is not one of: {', '.join(FLOW_METHODS)}")
    if a.shape != b.shape:
        raise ImpastoError(f"optical flow needs two frames of one size, got {tuple(a.shape)} and {tuple(b.shape)}")
    cv2 = opencv()
    first, second = _gray(a), _gray(b)
    if method == "dis":
        flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(first, second, None)
    else:
        flow = cv2.calcOpticalFlowFarneback(
            first, second, None, pyr_scale=0.5, levels=4, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0
        )
    return torch.from_numpy(np.ascontiguousarray(flow)).permute(2, 0, 1).unsqueeze(0).float()


def _sample_grid(flow: torch.Tensor) -> torch.Tensor:
    """Where each pixel's flow lands, as grid_sample's normalised (x, y) with align_corners=True."""
    _, _, height, width = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=flow.dtype, device=flow.device),
        torch.arange(width, dtype=flow.dtype, device=flow.device),
        indexing="ij",
    )
    x = (xs + flow[0, 0]) * (2 / max(width - 1, 1)) - 1
    y = (ys + flow[0, 1]) * (2 / max(height - 1, 1)) - 1
    return torch.stack((x, y), dim=-1).unsqueeze(0)


def warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """`image` (1, C, H, W) sampled at x + flow(x); a sample outside repeats the border.

    `mode` "bicubic" blurs less than "bilinear" (a frame warped again and again stays sharp) and
    is clamped to the image's range, which its overshoot would leave."""
    if image.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"image {tuple(image.shape)} and flow {tuple(flow.shape)} must have one size")
    grid = _sample_grid(flow.to(image.device, image.dtype))
    out = F.grid_sample(image, grid, mode=mode, padding_mode="border", align_corners=True)
    return out.clamp(image.min(), image.max()) if mode == "bicubic" else out


def inside(flow: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W) bool: where x + flow(x) lands inside the frame."""
    _, _, height, width = flow.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=flow.dtype, device=flow.device),
        torch.arange(width, dtype=flow.dtype, device=flow.device),
        indexing="ij",
    )
    x, y = xs + flow[0, 0], ys + flow[0, 1]
    return ((x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)).view(1, 1, height, width)


def resize_flow(flow: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The flow for the same frames at another size: resampled, and its vectors scaled with it."""
    if tuple(flow.shape[-2:]) == (height, width):
        return flow.clone()
    scale = torch.tensor([width / flow.shape[-1], height / flow.shape[-2]], dtype=flow.dtype, device=flow.device)
    scale = scale.view(1, 2, 1, 1)
    shrinking = height < flow.shape[-2] or width < flow.shape[-1]
    resized = F.interpolate(flow, size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking)
    return resized * scale


def occluded(flow: torch.Tensor, reverse: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W) bool on flow's grid: the pixels whose round trip along `flow` and back along
    `reverse` (the flow the other way, on the other frame's grid) misses, or that leave the frame."""
    back = warp(reverse, flow)
    miss = (flow + back).square().sum(1, keepdim=True)
    lengths = flow.square().sum(1, keepdim=True) + back.square().sum(1, keepdim=True)
    allowed = _ROUND_TRIP[0] * lengths + _ROUND_TRIP[1]
    return (miss >= allowed) | ~inside(flow)


def motion_boundaries(flow: torch.Tensor) -> torch.Tensor:
    """(1, 1, H, W) bool: where the flow changes fast compared to its length (central differences)."""
    padded = F.pad(flow, (1, 1, 1, 1), mode="replicate")
    dx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) / 2
    dy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) / 2
    edge = (dx.square() + dy.square()).sum(1, keepdim=True)
    return edge > _BOUNDARY[0] * flow.square().sum(1, keepdim=True) + _BOUNDARY[1]


def _gaussian(image: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(np.ceil(2 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype, device=image.device)
    kernel = torch.exp(-x.square() / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    padded = F.pad(image, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(padded, kernel.view(1, 1, 1, -1))
    return F.conv2d(out, kernel.view(1, 1, -1, 1))


def reliability(flow: torch.Tensor, reverse: torch.Tensor, sigma: float = 0.8) -> torch.Tensor:
    """Per-pixel weights in [0, 1] (1, 1, H, W) for a temporal loss along `flow`.

    Ruder et al.: 0 at occlusions (the round trip misses), at motion boundaries and where the flow
    leaves the frame, 1 elsewhere, then smoothed by a Gaussian. As in their checker, occluded
    pixels enter the smoothing as -1, so the smoothing widens the occlusion instead of blurring
    into it.
    """
    weights = torch.ones_like(flow[:, :1])
    weights[motion_boundaries(flow)] = 0.0
    weights[~inside(flow)] = 0.0
    lost = occluded(flow, reverse) & inside(flow)
    weights[lost] = -1.0
    if sigma > 0:
        weights = _gaussian(weights, sigma)
    return weights.clamp(0, 1)
