"""The loss terms of neural style transfer, each a small pure function.

Features are (1, C, H, W) activations of one layer; masks are (1, 1, H, W) with values in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import ImpastoError
from .tiling import Window
from .vgg import layer_stride


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Gatys et al.: 1/2 * sum (F - P)^2."""
    return 0.5 * (features - target).square().sum()


def _flat(features: torch.Tensor, shift: float, mask: torch.Tensor | None) -> torch.Tensor:
    """(1, C, H, W) -> (H*W, C), shifted then masked; free for channels-last input."""
    x = features.movedim(1, -1).reshape(-1, features.shape[1])
    if shift:
        x = x + shift
    if mask is not None:
        x = x * mask.reshape(-1, 1)
    return x


def _area(features: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor | float:
    if mask is None:
        return float(features.shape[-2] * features.shape[-1])
    # An empty mask gives an all-zero Gram; dividing by 1 keeps it finite.
    return mask.sum().clamp_min(1.0)


def gram_matrix(features: torch.Tensor, shift: float = 0.0, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(C, C) Gram matrix of (F + shift), divided by the number of positions (or the mask's area).

    Dividing by M makes Grams of images of different sizes comparable; with equal sizes the
    style loss below equals Gatys et al.'s 1/(4 N^2 M^2) sum (G - A)^2 exactly. Novak & Nikulin's
    activation shift (s = -1) makes the sparse post-ReLU features dense.
    """
    x = _flat(features, shift, mask)
    return x.T @ x / _area(features, mask)


def pool_to_deep(shallow: torch.Tensor, factor: int) -> torch.Tensor:
    """A shallower layer's maps averaged over `factor` x `factor` blocks, on the network's own
    pooling grid, so each position lines up with one of the deeper layer's."""
    return F.avg_pool2d(shallow, factor) if factor > 1 else shallow


def _factor(deep: torch.Tensor, shallow: torch.Tensor) -> int:
    """The pooling factor between two layers' maps, from their heights."""
    ratio = shallow.shape[-2] / max(1, deep.shape[-2])
    return 2 ** max(0, round(math.log2(max(ratio, 1.0))))


def cross_gram(
    deep: torch.Tensor,
    shallow: torch.Tensor,
    shift: float = 0.0,
    mask: torch.Tensor | None = None,
    factor: int | None = None,
) -> torch.Tensor:
    """(C_deep, C_shallow) correlations between two layers (Novak & Nikulin's correlation chain).

    The shallower layer's maps are average-pooled by `factor` (the poolings between the layers;
    default: from the maps' sizes) to the deeper layer's grid; `mask` is at the deeper layer's size.
    Novak & Nikulin leave the resampling open; pooling on the network's own grid (rather than
    adaptive pooling) keeps each deep position paired with the pixels it sees, and lets tiles add up.
    """
    shallow = pool_to_deep(shallow, factor or _factor(deep, shallow))
    a = _flat(deep, shift, mask)
    b = _flat(shallow, shift, mask)
    return a.T @ b / _area(deep, mask)


def gram_loss(gram: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """E_l = sum (G - A)^2 / (4 N_a N_b); N_a = N_b = N_l for an ordinary Gram matrix."""
    return (gram - target).square().sum() / (4.0 * gram.shape[0] * gram.shape[1])


def gram_norm(target: torch.Tensor) -> torch.Tensor:
    """E_l of a featureless image against `target`: sum A^2 / (4 N_a N_b), the size of a style term."""
    return gram_loss(torch.zeros_like(target), target)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Sum of squared differences between horizontally and vertically adjacent pixels."""
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return dy.square().sum() + dx.square().sum()


def layer_weights(count: int, weighting: str = "uniform") -> list[float]:
    """Weights of `count` style terms, shallow first, summing to 1.

    uniform: 1/count each (Gatys et al.). geometric: proportional to 2^(D - l) for the l-th of D
    terms (Novak & Nikulin 3.1), so the shallow layers that carry colour and texture dominate.
    """
    if count < 1:
        raise ValueError(f"need at least one style term, got {count}")
    if weighting == "uniform":
        return [1.0 / count] * count
    if weighting == "geometric":
        raw = [2.0 ** (count - depth) for depth in range(1, count + 1)]
        return [w / sum(raw) for w in raw]
    raise ValueError(f"unknown layer weighting {weighting!r}; choose uniform or geometric")


@dataclass(frozen=True)
class StyleRepresentation:
    """Which Gram matrices describe a style, and how much each counts."""

    layers: tuple[str, ...]
    shift: float = 0.0
    chain: bool = False
    weighting: str = "uniform"
    explicit: tuple[float, ...] | None = None  # per-term weights used as given, overriding `weighting`

    def __post_init__(self) -> None:
        if self.chain and len(self.layers) < 2:
            raise ImpastoError("correlation_chain needs at least two style layers")
        if self.explicit is not None and len(self.explicit) != len(self.terms):
            raise ImpastoError(
                f"got {len(self.explicit)} style_layer_weights for {len(self.terms)} style terms; "
                "give one weight per style layer (per adjacent pair with correlation_chain)"
            )

    @property
    def terms(self) -> list[tuple[str, str | None]]:
        """(layer, partner) pairs: partner is the layer before in the chain, or None."""
        if self.chain:
            return [(self.layers[i], self.layers[i - 1]) for i in range(1, len(self.layers))]
        return [(layer, None) for layer in self.layers]

    @property
    def weights(self) -> list[float]:
        if self.explicit is not None:
            return list(self.explicit)
        return layer_weights(len(self.terms), self.weighting)

    def grams(
        self, features: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        """One matrix per term of a whole image's features; `masks` maps a layer name to a mask
        at that layer's size. The same sums as the tiled path, divided once."""
        # The image size the features imply: exact at the shallowest layer, and every deeper
        # layer's size follows from it by the same floor division the network does.
        shallow = min((layer for term in self.terms for layer in term if layer), key=layer_stride)
        stride = layer_stride(shallow)
        height, width = (n * stride for n in features[shallow].shape[-2:])
        sums = self.sums(features, Window.whole(height, width), masks)
        return [s / a for s, a in zip(sums, self.areas(height, width, masks))]

    def loss(self, grams: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> torch.Tensor:
        """Sum over terms of w_l * E_l, divided by `norm(targets)`."""
        total = sum(
            (w * gram_loss(g, t) for w, g, t in zip(self.weights, grams, targets)),
            torch.zeros((), device=grams[0].device),
        )
        return total / self.norm(targets)

    def norm(self, targets: Sequence[torch.Tensor]) -> float:
        """Sum over terms of w_l * E_l(0, A_l): the unnormalised loss of a featureless image.

        Each representation's E_l live on their own scale (activations differ by orders of
        magnitude between layers, the shift and the chain change them again, a recoloured style
        has less contrast), so at one style_weight some representations would barely paint.
        Dividing by this, from the style targets alone, puts every representation's style loss on
        one scale (0.4 to 0.8 for the example photos against the paintings) while keeping its own
        balance of layers. It is a constant of the targets: deterministic, independent of the start image,
        and exact under tiling. (Gatys et al. had a VGG rescaled to unit mean activations instead;
        the weights shipped here are not.)
        """
        value = float(sum(w * gram_norm(t) for w, t in zip(self.weights, targets)))
        return value if value > 0 else 1.0  # an all-zero style target: nothing to scale by

    def sums(
        self, features: Mapping[str, torch.Tensor], window: Window, masks: Mapping[str, torch.Tensor] | None = None
    ) -> list[torch.Tensor]:
        """Per term, the Gram matrix's sum over the positions `window` owns, not yet divided.

        `features` are the window's; `masks` map a layer to its mask over the *whole* image at that
        layer's size. Summed over the tiles of an image, these are the whole image's sums exactly.
        """
        out = []
        for layer, partner in self.terms:
            stride = layer_stride(layer)
            mask = window.crop(masks[layer], stride) if masks is not None else None
            a = _flat(window.interior(features[layer], stride), self.shift, mask)
            if partner is None:
                out.append(a.T @ a)
                continue
            shallow = pool_to_deep(features[partner], stride // layer_stride(partner))
            out.append(a.T @ _flat(window.interior(shallow, stride), self.shift, mask))
        return out

    def areas(
        self, height: int, width: int, masks: Mapping[str, torch.Tensor] | None = None
    ) -> list[torch.Tensor | float]:
        """Per term, what its sums are divided by: the positions of its layer, or its mask's area."""
        out: list[torch.Tensor | float] = []
        for layer, _ in self.terms:
            stride = layer_stride(layer)
            if masks is None:
                out.append(float((height // stride) * (width // stride)))
            else:
                out.append(masks[layer].sum().clamp_min(1.0))  # an empty mask gives an all-zero Gram
        return out


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area-resample a binary mask to a layer's size and binarise it again."""
    if tuple(mask.shape[-2:]) != tuple(size):
        mask = F.interpolate(mask, size=size, mode="area")
    return (mask >= 0.5).to(mask.dtype)
