"""The named, weighted terms an objective adds up.

Two kinds, so that any image size can be tiled exactly:

- a `FeatureTerm` reads network features. Its loss is a function of *sums over positions*
  (`sums`), which add up over the tiles of an image; the objective computes them tile by tile
  and differentiates the loss through them (see objective.py).
- a `PixelTerm` reads the image's pixels only (total variation, a video's temporal loss) and is
  evaluated on the whole image at once.

A new loss is a new term passed to the objective; the objective never changes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import torch

from .losses import StyleRepresentation, content_loss, gram_loss, resize_mask, total_variation
from .tiling import Window
from .vgg import layer_stride

Sums = dict[str, torch.Tensor]


class PixelTerm(ABC):
    """A weighted loss on the image's pixels, evaluated on the whole image."""

    name: str
    weight: float

    @abstractmethod
    def loss(self, image: torch.Tensor) -> torch.Tensor:
        """The unweighted loss of an image (1, 3, H, W); differentiable."""

    def resized(self, height: int, width: int) -> PixelTerm:
        """This term for an image of another size (coarse-to-fine); by default itself."""
        return self


class FeatureTerm(ABC):
    """A weighted loss on network features that is a function of sums over positions."""

    name: str
    weight: float
    layers: tuple[str, ...]

    @abstractmethod
    def sums(self, features: Mapping[str, torch.Tensor], window: Window) -> Sums:
        """Sums over the positions `window` owns, from that window's features."""

    @abstractmethod
    def loss(self, sums: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The unweighted loss from the whole image's sums; differentiable in them."""


Term = PixelTerm | FeatureTerm


class TotalVariation(PixelTerm):
    """Squared differences of neighbouring pixels, per pixel: smooths the high-frequency noise
    Gram losses leave. A mean, like the other terms, so its strength does not change with size."""

    def __init__(self, weight: float, name: str = "tv") -> None:
        self.name, self.weight = name, weight

    def loss(self, image: torch.Tensor) -> torch.Tensor:
        return total_variation(image) / (image.shape[-2] * image.shape[-1])


class ContentLoss(FeatureTerm):
    """Gatys et al.'s content loss 1/2 sum (F - P)^2 at each content layer, P the content's
    features, divided by the layer's positions M, and by `norm`: the same for F = 0.

    Gatys et al. sum over positions while the style loss (Gram / M) does not grow with the image,
    so their balance moves with the output size: a larger output is less painted. The mean fixes
    the count of positions, but not the features' energy, which falls as an image is enlarged
    (relu4_2 of the example photo: 0.58x from 256 to 512 px, its style term's norm 0.83x).
    Relative to the content's own features, like the style loss to the style's, the trade-off is
    the same at every size and every coarse-to-fine scale.
    """

    def __init__(self, targets: Mapping[str, torch.Tensor], weight: float, name: str = "content") -> None:
        self.name, self.weight = name, weight
        self.targets = dict(targets)  # layer -> (1, C, h, w) features of the whole content image
        self.layers = tuple(self.targets)
        norm = sum(
            float(content_loss(torch.zeros_like(t), t)) / (t.shape[-2] * t.shape[-1]) for t in self.targets.values()
        )
        self.norm = norm if norm > 0 else 1.0  # all-zero features: nothing to scale by

    def sums(self, features: Mapping[str, torch.Tensor], window: Window) -> Sums:
        out = {}
        for layer, target in self.targets.items():
            stride = layer_stride(layer)
            diff = window.interior(features[layer], stride) - window.crop(target, stride)
            out[layer] = 0.5 * diff.square().sum()
        return out

    def loss(self, sums: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return (
            sum(
                (
                    total / (self.targets[layer].shape[-2] * self.targets[layer].shape[-1])
                    for layer, total in sums.items()
                ),
                torch.zeros(()),
            )
            / self.norm
        )


class StyleLoss(FeatureTerm):
    """Sum over styles s of blend_s * sum over style terms l of w_l * E_l (Gram matrices) / norm_s.

    norm_s (StyleRepresentation.norm) is the same sum for a featureless image, so the same weight
    paints as strongly with every representation, colour mode and style image. Each style may have
    a mask over the image; its Gram matrices then see only the white area. Styles without a mask
    share the image's Gram sums.
    """

    def __init__(
        self,
        representation: StyleRepresentation,
        targets: Sequence[Sequence[torch.Tensor]],
        blend: Sequence[float],
        masks: Sequence[torch.Tensor | None],
        size: tuple[int, int],
        weight: float,
        name: str = "style",
    ) -> None:
        self.name, self.weight = name, weight
        self.representation = representation
        self.targets = [list(t) for t in targets]
        self.blend = [w / sum(blend) for w in blend]
        self.layers = tuple(dict.fromkeys(n for term in representation.terms for n in term if n))
        height, width = size
        self.masks = [None if m is None else self._layer_masks(m, height, width) for m in masks]
        self.areas = [representation.areas(height, width, m) for m in self.masks]
        self.norms = [representation.norm(t) for t in self.targets]

    def _layer_masks(self, mask: torch.Tensor, height: int, width: int) -> dict[str, torch.Tensor]:
        return {
            layer: resize_mask(mask, (height // layer_stride(layer), width // layer_stride(layer)))
            for layer, _ in self.representation.terms
        }

    def _keys(self) -> list[str | None]:
        """Which set of sums each style reads: 'u' (shared, unmasked), 'm<i>' (its own mask), None (unused)."""
        return [
            None if not w else ("u" if m is None else f"m{i}") for i, (w, m) in enumerate(zip(self.blend, self.masks))
        ]

    def sums(self, features: Mapping[str, torch.Tensor], window: Window) -> Sums:
        out: Sums = {}
        for index, key in enumerate(self._keys()):
            if key is None or f"{key}.0" in out:
                continue
            for j, total in enumerate(self.representation.sums(features, window, self.masks[index])):
                out[f"{key}.{j}"] = total
        return out

    def loss(self, sums: Mapping[str, torch.Tensor]) -> torch.Tensor:
        total = torch.zeros(())
        weights = self.representation.weights
        for blend, key, targets, areas, norm in zip(self.blend, self._keys(), self.targets, self.areas, self.norms):
            if key is None:
                continue
            for j, (w, target, area) in enumerate(zip(weights, targets, areas)):
                total = total + blend / norm * w * gram_loss(sums[f"{key}.{j}"] / area, target)
        return total
