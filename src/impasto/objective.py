"""The style-transfer objective at one image size: targets computed once, loss per evaluation."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from .losses import StyleRepresentation, content_loss, resize_mask, total_variation
from .vgg import VGG


class Objective:
    """alpha * content + beta * sum_s w_s * style_s + gamma * TV for a fixed content and styles.

    Content features and style Gram matrices are computed once, here, without gradients. Each
    style may have a mask at the content's size; its Gram matrices then see only the white area.
    """

    def __init__(self, network: VGG, content: torch.Tensor, styles: Sequence[torch.Tensor],
                 representation: StyleRepresentation, content_layers: Sequence[str],
                 weights: tuple[float, float, float], style_blend: Sequence[float] | None = None,
                 masks: Sequence[torch.Tensor | None] | None = None) -> None:
        self.network = network
        self.representation = representation
        self.content_layers = tuple(content_layers)
        self.content_weight, self.style_weight, self.tv_weight = weights
        blend = list(style_blend) if style_blend is not None else [1.0] * len(styles)
        self.blend = [w / sum(blend) for w in blend]
        style_layers = {name for term in representation.terms for name in term if name}
        self.layers = tuple(style_layers | set(self.content_layers))
        with torch.no_grad():
            feats = network(content, self.content_layers) if self.content_layers else {}
            self.content_targets = {name: feats[name].detach() for name in self.content_layers}
            self.style_targets = []
            for style in styles:
                grams = representation.grams(network(style, style_layers))
                self.style_targets.append([g.detach() for g in grams])
        self.masks = list(masks) if masks is not None else [None] * len(styles)
        self._layer_masks: list[dict[str, torch.Tensor] | None] | None = None

    def _masks_at_layers(self, features: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor] | None]:
        if self._layer_masks is None:
            self._layer_masks = []
            for index, mask in enumerate(self.masks):
                if mask is None:
                    self._layer_masks.append(None)
                    continue
                if not mask.any():
                    warnings.warn(f"style mask {index + 1} is all black, so style {index + 1} is not applied anywhere")
                self._layer_masks.append({name: resize_mask(mask, features[name].shape[-2:])
                                          for name, _ in self.representation.terms})
        return self._layer_masks

    def __call__(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weighted loss terms and their sum ("total") for an image of the content's size."""
        features = self.network(image, self.layers)
        zero = image.new_zeros(())
        content = sum((content_loss(features[n], self.content_targets[n]) for n in self.content_layers), zero)
        style = zero
        if self.style_weight:
            unmasked = None
            for weight, targets, masks in zip(self.blend, self.style_targets, self._masks_at_layers(features)):
                if not weight:
                    continue
                if masks is None:
                    # Styles without masks share the generated image's Gram matrices.
                    unmasked = unmasked or self.representation.grams(features)
                    grams = unmasked
                else:
                    grams = self.representation.grams(features, masks)
                style = style + weight * self.representation.loss(grams, targets)
        tv = total_variation(image) if self.tv_weight else zero
        terms = {"content": self.content_weight * content, "style": self.style_weight * style,
                 "tv": self.tv_weight * tv}
        terms["total"] = terms["content"] + terms["style"] + terms["tv"]
        return terms
