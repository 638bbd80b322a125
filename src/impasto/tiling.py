"""Exact tiling: cut an image into windows whose features, away from their edges, are the whole
image's features.

A window is a tile (its *inner* pixels) with a halo around it. Tiles start on multiples of the
network's total stride, so every pooling grid of a window lines up with the whole image's, and the
halo is at least as deep as the zero padding at a window's edge can reach (`VGG.halo`). Then each
position of every layer lies in exactly one tile and its features there equal the untiled ones:
a loss that is a sum over positions, or a function of such sums (a Gram matrix is one), can be
computed tile by tile with no error but float rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Window:
    """The pixels one network pass sees (`top`..`bottom`, `left`..`right`), and the inner box of
    pixels whose features it owns. Boxes are half-open, in pixels of the whole image."""

    top: int
    left: int
    bottom: int
    right: int
    inner: tuple[int, int, int, int]  # top, left, bottom, right

    @classmethod
    def whole(cls, height: int, width: int) -> Window:
        """The whole image as one window that owns everything."""
        return cls(0, 0, height, width, (0, 0, height, width))

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the window in pixels."""
        return self.bottom - self.top, self.right - self.left

    def pixels(self, image: torch.Tensor) -> torch.Tensor:
        """The window's pixels of a whole image (a view)."""
        return image[..., self.top : self.bottom, self.left : self.right]

    def positions(self, stride: int) -> tuple[slice, slice]:
        """The inner box at a layer of this stride, in positions of the whole image's layer.

        Inner edges are multiples of the stride or the image's far edge, where the layer's own
        size is the floor of the image's size over the stride: floor division gives both.
        """
        top, left, bottom, right = self.inner
        return slice(top // stride, bottom // stride), slice(left // stride, right // stride)

    def crop(self, whole: torch.Tensor, stride: int) -> torch.Tensor:
        """The inner box of a tensor laid out like the whole image's layer of this stride."""
        rows, cols = self.positions(stride)
        return whole[..., rows, cols]

    def interior(self, features: torch.Tensor, stride: int) -> torch.Tensor:
        """The inner box of this window's own features at a layer of this stride."""
        rows, cols = self.positions(stride)
        dy, dx = self.top // stride, self.left // stride
        return features[..., rows.start - dy : rows.stop - dy, cols.start - dx : cols.stop - dx]


def _cuts(length: int, tile: int, align: int) -> list[int]:
    """Edges of about-equal tiles along one side, on multiples of `align`, from 0 to `length`."""
    count = max(1, math.ceil(length / tile))
    edges = sorted({0, length} | {min(length, round(i * length / count / align) * align) for i in range(1, count)})
    return edges


def windows(height: int, width: int, tile: int, halo: int, align: int) -> list[Window]:
    """Tiles of at most about `tile` pixels a side covering the image, each with its halo.

    `align` is the network's total stride at the deepest layer used; `halo` is rounded up to a
    multiple of it, so window edges stay on the pooling grid.
    """
    halo = -(-halo // align) * align
    tile = max(align, tile // align * align)
    rows, cols = _cuts(height, tile, align), _cuts(width, tile, align)
    out = []
    for top, bottom in zip(rows, rows[1:]):
        for left, right in zip(cols, cols[1:]):
            out.append(
                Window(
                    max(0, top - halo),
                    max(0, left - halo),
                    min(height, bottom + halo),
                    min(width, right + halo),
                    (top, left, bottom, right),
                )
            )
    return out


def largest_window(height: int, width: int, tile: int, halo: int, align: int) -> tuple[int, int, int]:
    """(height, width) of the largest window `windows()` would make, and how many it would make."""
    halo = -(-halo // align) * align
    tile = max(align, tile // align * align)

    def longest(length: int) -> tuple[int, int]:
        edges = _cuts(length, tile, align)
        return max(min(length, b + halo) - max(0, a - halo) for a, b in zip(edges, edges[1:])), len(edges) - 1

    (h, rows), (w, cols) = longest(height), longest(width)
    return h, w, rows * cols
