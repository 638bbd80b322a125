"""The objective: a weighted sum of named terms, its value and gradient, whole or tile by tile."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from .precision import LossScale
from .terms import FeatureTerm, PixelTerm, Sums, Term
from .tiling import Window
from .vgg import VGG


class StopFlag(Protocol):
    """What asks a run to stop: a threading.Event, or anything with its is_set()."""

    def is_set(self) -> bool: ...


class Stopped(Exception):
    """A stop was asked for while an evaluation was under way; its result is abandoned."""


@dataclass(frozen=True)
class Evaluation:
    """The loss at an image, term by term, and its gradient."""

    total: torch.Tensor  # 0-dim, detached
    terms: dict[str, float]  # weighted value of each term by name, and "total"
    gradient: torch.Tensor  # same shape as the image


def feature_windows(
    network: VGG,
    image: torch.Tensor,
    layers: Sequence[str],
    windows: Sequence[Window],
    winograd: bool | None = None,
    stop: StopFlag | None = None,
    dtype: torch.dtype | None = None,
) -> Iterator[tuple[dict[str, torch.Tensor], Window]]:
    """(features, window) for each window of an image, without gradients; `dtype` is the network
    pass's precision (see VGG.forward)."""
    with torch.no_grad():
        for window in windows:
            if stop is not None and stop.is_set():
                raise Stopped
            yield network(window.pixels(image), layers, winograd=winograd, dtype=dtype), window


class Objective:
    """sum over terms of weight * loss, for images of one size.

    With `windows` (see tiling.py) the feature terms are computed tile by tile in two passes, so
    memory is bounded by the largest window, and the value and gradient equal the untiled ones:
    1. without gradients, each window's sums are added up; the terms' losses follow from the
       totals, and autograd gives d loss / d sums (small tensors: Gram-sized);
    2. each window runs forward and backward on sum_k <d loss / d sums_k, sums_k(window)>, whose
       gradient with respect to the window's pixels is exactly that window's share of the whole
       gradient; the shares are added into one full-size gradient.
    A `stop` event set during a tiled evaluation raises Stopped between tiles. `dtype` is the
    network pass's precision (see VGG.forward; float16 backward passes get dynamic loss scaling);
    the terms, their sums and the gradient are float32 whatever it is.
    """

    def __init__(
        self,
        network: VGG,
        terms: Sequence[Term],
        windows: Sequence[Window] | None = None,
        winograd: bool | None = None,
        stop: StopFlag | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            raise ValueError(f"terms need distinct names, got {names}")
        self.network, self.winograd, self.stop = network, winograd, stop
        self.terms = list(terms)
        self.feature_terms = [t for t in terms if isinstance(t, FeatureTerm) and t.weight]
        self.pixel_terms = [t for t in terms if isinstance(t, PixelTerm) and t.weight]
        self.layers = tuple(dict.fromkeys(n for t in self.feature_terms for n in t.layers))
        self.windows = list(windows) if windows is not None and len(windows) > 1 else None
        self.dtype = dtype
        self.loss_scale = LossScale() if dtype == torch.float16 else None

    def __call__(self, image: torch.Tensor) -> Evaluation:
        """Value and gradient at `image` (1, 3, H, W); `image` itself is not changed."""
        if self.windows is None:
            return self._whole(image)
        return self._tiled(image, self.windows)

    def _finish(self, values: dict[str, torch.Tensor], gradient: torch.Tensor) -> Evaluation:
        terms = {t.name: 0.0 for t in self.terms}
        terms.update({name: float(v.detach()) for name, v in values.items()})
        total = sum(values.values(), torch.zeros((), device=gradient.device)).detach()
        terms["total"] = float(total)
        return Evaluation(total, terms, gradient)

    def _pixel_values(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {t.name: t.weight * t.loss(x) for t in self.pixel_terms}

    def _whole(self, image: torch.Tensor) -> Evaluation:
        x = image.detach().requires_grad_(True)
        window = Window.whole(*image.shape[-2:])
        features = self._features(x) if self.layers else {}
        values = {t.name: t.weight * t.loss(t.sums(features, window)) for t in self.feature_terms}
        values.update(self._pixel_values(x))
        total = sum(values.values(), torch.zeros((), device=image.device))
        gradient = self._gradient(total, x) if total.requires_grad else torch.zeros_like(x)
        # The network runs channels-last; the optimiser wants a plain contiguous gradient.
        return self._finish(values, gradient.contiguous())

    def _tiled(self, image: torch.Tensor, windows: Sequence[Window]) -> Evaluation:
        image = image.detach()
        totals: list[Sums] = [{} for _ in self.feature_terms]
        for features, window in feature_windows(
            self.network, image, self.layers, windows, self.winograd, self.stop, self.dtype
        ):
            for total, term in zip(totals, self.feature_terms):
                for key, value in term.sums(features, window).items():
                    total[key] = total[key] + value if key in total else value
            del features
        leaves = [{k: v.requires_grad_(True) for k, v in t.items()} for t in totals]
        values = {t.name: t.weight * t.loss(s) for t, s in zip(self.feature_terms, leaves)}
        weights = self._sum_gradients(values, leaves)
        gradient = torch.zeros_like(image)
        for window in windows:
            if self.stop is not None and self.stop.is_set():
                raise Stopped
            x = window.pixels(image).requires_grad_(True)
            features = self._features(x)
            surrogate = sum(
                (
                    (w * s).sum()
                    for term, ws in zip(self.feature_terms, weights)
                    for s, w in _paired(term.sums(features, window), ws)
                ),
                torch.zeros((), device=image.device),
            )
            if surrogate.requires_grad:
                window.pixels(gradient).add_(self._gradient(surrogate, x))
            del features, surrogate
        pixels = image.requires_grad_(True)
        pixel_values = self._pixel_values(pixels)
        if pixel_values:
            pixel_total = sum(pixel_values.values(), torch.zeros((), device=image.device))
            gradient += torch.autograd.grad(pixel_total, pixels)[0]
        values.update(pixel_values)
        return self._finish({k: v.detach() for k, v in values.items()}, gradient)

    def _features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.network(x, self.layers, winograd=self.winograd, dtype=self.dtype)

    def _gradient(self, output: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """d output / d x; through a float16 pass with loss scaling."""
        if self.loss_scale is not None:
            return self.loss_scale.gradient(output, x)
        return torch.autograd.grad(output, x)[0]

    @staticmethod
    def _sum_gradients(values: Mapping[str, torch.Tensor], leaves: Sequence[Sums]) -> list[Sums]:
        """d (sum of values) / d each sum, detached."""
        flat = [v for sums in leaves for v in sums.values()]
        total = sum(values.values(), torch.zeros(()))
        grads = (
            torch.autograd.grad(total, flat, allow_unused=True) if flat and total.requires_grad else [None] * len(flat)
        )
        out, i = [], 0
        for sums in leaves:
            out.append(
                {
                    k: (torch.zeros_like(v) if g is None else g.detach())
                    for (k, v), g in zip(sums.items(), grads[i : i + len(sums)])
                }
            )
            i += len(sums)
        return out


def _paired(sums: Sums, weights: Sums) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for key, value in sums.items():
        yield value, weights[key]
