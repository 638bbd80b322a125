"""3x3 convolutions by Winograd's minimal filtering F(4x4, 3x3) (Lavin and Gray, 2016).

A stride-1, padding-1 3x3 convolution computes each 4x4 output tile from a 6x6 input tile. In the
Winograd domain the channel mixing costs 36 multiply-adds per tile and channel pair instead of
16 * 9 = 144: one batched matmul over the 36 tile positions, four times less work than direct
convolution. The transforms in and out of that domain are memory-bound passes whose cost grows with
the image, not with the channel count, so they pay off only on layers with many channels: on a
2-core AVX2 CPU a 512-channel layer ran 2.0x faster than oneDNN's direct convolution (forward plus
input gradient), a 256-channel layer 1.4x, and 64- or 128-channel layers 2-3x *slower*.
Small images lose too: the transforms are a dozen separate tensor operations whose fixed cost
outweighs the saving below about 14x14 pixels for a 512-channel layer and 25x25 for a 256-channel
one. `MIN_CHANNELS` and `MIN_WORK` are where VGG starts using it.

Results differ from direct convolution by about 1e-5 of the output's largest magnitude, float32
rounding of the transforms. The weights are frozen: only the input gradient is computed, itself a
Winograd convolution with the filters flipped and their channels swapped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MIN_CHANNELS = 256  # input channels from which a layer is faster this way (see above)
MIN_WORK = 40_000_000  # and input channels x output channels x pixels, for small images

# The transforms for interpolation points 0, 1, -1, 2, -2 and infinity (Lavin and Gray, table 1).
_INPUT_1D = torch.tensor(
    [
        [4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1],
    ],
    dtype=torch.float64,
)
_FILTER_1D = torch.tensor(
    [
        [1 / 4, 0, 0],
        [-1 / 6, -1 / 6, -1 / 6],
        [-1 / 6, 1 / 6, -1 / 6],
        [1 / 24, 1 / 12, 1 / 6],
        [1 / 24, -1 / 12, 1 / 6],
        [0, 0, 1],
    ],
    dtype=torch.float64,
)
_OUTPUT_1D = torch.tensor(
    [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], dtype=torch.float64
)
# Both directions of a tile at once, acting on the row-major flattened 6x6 (36) tile.
_INPUT = torch.kron(_INPUT_1D, _INPUT_1D).float()  # (36, 36)
_OUTPUT = torch.kron(_OUTPUT_1D, _OUTPUT_1D).float()  # (16, 36)
_FILTER = torch.kron(_FILTER_1D, _FILTER_1D).float()  # (36, 9), on the flattened 3x3 filter


def transform_filters(weight: torch.Tensor) -> torch.Tensor:
    """(K, C, 3, 3) filters in the Winograd domain: (36, C, K), one C x K matrix per tile position."""
    k, c = weight.shape[:2]
    taps = weight.detach().float().cpu().permute(2, 3, 1, 0).reshape(9, c * k)  # row-major 3x3 taps
    return (_FILTER @ taps).view(36, c, k)


def filter_bytes(weight: torch.Tensor) -> int:
    """Memory of a WinogradConv3x3's two transformed filter sets for this (K, C, 3, 3) weight."""
    return 2 * 36 * weight.shape[0] * weight.shape[1] * 4


def conv3x3(x: torch.Tensor, filters: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """conv2d(x, weight, bias, padding=1) for float32 CPU `x` (N, C, H, W), from transformed filters.

    Returns a new channels_last tensor (N, K, H, W).
    """
    n, channels, height, width = x.shape
    rows, cols = -(-height // 4), -(-width // 4)  # output tiles down and across
    # Zero border of 1, and on the far sides enough to complete the last tile.
    padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 4 * cols + 1 - width, 1, 4 * rows + 1 - height))
    tiles = padded.unfold(1, 6, 4).unfold(2, 6, 4)  # (n, rows, cols, C, 6, 6), overlapping views
    tiles = tiles.permute(4, 5, 0, 1, 2, 3).reshape(36, -1)  # the one gathering copy
    transformed = (_INPUT @ tiles).view(36, -1, channels)  # (36, tiles, C)
    products = torch.bmm(transformed, filters)  # (36, tiles, K): the channel mixing
    k = filters.shape[2]
    y = (_OUTPUT @ products.view(36, -1)).view(4, 4, n, rows, cols, k)
    out = torch.empty((n, k, height, width), dtype=x.dtype, memory_format=torch.channels_last)
    nhwc = out.permute(0, 2, 3, 1)
    for i in range(4):  # scatter the 4x4 output tiles, cropped to the image, adding the bias
        for j in range(4):
            target = nhwc[:, i::4, j::4]
            source = y[i, j, :, : target.shape[1], : target.shape[2]]
            if bias is None:
                target.copy_(source)
            else:
                torch.add(source, bias, out=target)
    return out


class _Conv3x3(torch.autograd.Function):
    """Winograd forward; the input gradient is the transposed convolution, also by Winograd."""

    @staticmethod
    def forward(ctx, x, filters, flipped, bias):  # type: ignore[override]
        ctx.flipped = flipped
        return conv3x3(x, filters, bias)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return conv3x3(grad, ctx.flipped), None, None, None


class WinogradConv3x3:
    """A frozen 3x3 convolution (stride 1, padding 1) computed by F(4x4, 3x3) on the CPU."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.filters = transform_filters(weight)
        # The transposed convolution is a convolution with the filters rotated 180 degrees and
        # their input and output channels swapped.
        self.flipped = transform_filters(weight.flip(2, 3).transpose(0, 1))
        self.bias = None if bias is None else bias.detach().float().cpu().contiguous()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _Conv3x3.apply(x, self.filters, self.flipped, self.bias)
