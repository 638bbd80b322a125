"""Tests for colour preservation: YIQ conversions, luminance-only transfer, histogram matching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from impasto.color import (
    HISTOGRAM_METHODS,
    combine_luminance,
    luminance,
    match_histogram,
    match_luminance,
    rgb_to_yiq,
    transfer_color,
    yiq_to_rgb,
)

from conftest import EXAMPLES

ONE_LEVEL = 1 / 255


def _rand(*shape: int, low: float = 0.0, high: float = 1.0, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(*shape, generator=gen)


def _stats(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and population covariance of an image (1, 3, H, W), in float64."""
    pixels = img.double().reshape(3, -1)
    return pixels.mean(dim=1), torch.cov(pixels, correction=0)


def _correlated_style(seed: int = 1) -> torch.Tensor:
    """A 32x32 image in [0.2, 0.5] whose channels are strongly correlated."""
    base = _rand(1, 1, 32, 32, seed=seed)
    noise = _rand(1, 3, 32, 32, seed=seed + 100)
    mix = torch.tensor([0.8, 0.5, 0.2]).view(1, 3, 1, 1)
    return 0.2 + 0.3 * (mix * base + (1 - mix) * noise)


def _content(seed: int = 2) -> torch.Tensor:
    """A 24x24 image in [0.3, 0.6] with channel statistics unlike the style's."""
    base = _rand(1, 1, 24, 24, seed=seed)
    noise = _rand(1, 3, 24, 24, seed=seed + 100)
    mix = torch.tensor([0.1, 0.6, 0.9]).view(1, 3, 1, 1)
    scale = torch.tensor([0.3, 0.15, 0.25]).view(1, 3, 1, 1)
    return 0.3 + scale * (mix * base - (1 - mix) * noise + (1 - mix))


# --- YIQ conversions -------------------------------------------------------------------------


def test_rgb_yiq_round_trip() -> None:
    img = _rand(1, 3, 16, 16)
    assert torch.allclose(yiq_to_rgb(rgb_to_yiq(img)), img, atol=1e-6)


def test_white_and_gray_have_expected_yiq() -> None:
    white = torch.ones(1, 3, 2, 2)
    assert torch.allclose(luminance(white), torch.ones(1, 1, 2, 2), atol=1e-6)
    for g in (0.0, 0.25, 0.7):
        yiq = rgb_to_yiq(torch.full((1, 3, 2, 2), g))
        assert torch.allclose(yiq[:, 0], torch.full((1, 2, 2), g), atol=1e-6)
        assert torch.allclose(yiq[:, 1:], torch.zeros(1, 2, 2, 2), atol=1e-6)


def test_luminance_shape() -> None:
    assert luminance(_rand(1, 3, 5, 7)).shape == (1, 1, 5, 7)


# --- luminance-only transfer ------------------------------------------------------------------


def test_match_luminance_takes_content_mean_and_std() -> None:
    style_y = _rand(1, 1, 20, 20, low=0.0, high=0.4, seed=3)
    content_y = _rand(1, 1, 12, 16, low=0.4, high=0.9, seed=4)
    matched = match_luminance(style_y, content_y)
    assert matched.shape == style_y.shape
    assert abs(matched.double().mean() - content_y.double().mean()) < 1e-5
    assert abs(matched.double().std(correction=0) - content_y.double().std(correction=0)) < 1e-5


def test_match_luminance_constant_style_gives_content_mean() -> None:
    content_y = _rand(1, 1, 8, 8, seed=5)
    matched = match_luminance(torch.full((1, 1, 8, 8), 0.4), content_y)
    assert torch.isfinite(matched).all()
    assert torch.allclose(matched, torch.full_like(matched, content_y.mean().item()), atol=1e-6)


def test_combine_luminance_keeps_content_chroma_and_given_y() -> None:
    content = _rand(1, 3, 16, 16, low=0.3, high=0.7, seed=6)
    result_y = luminance(content) + _rand(1, 1, 16, 16, low=-0.05, high=0.05, seed=7)
    combined = combine_luminance(result_y, content)
    assert combined.shape == content.shape and combined.dtype == torch.float32
    yiq, content_yiq = rgb_to_yiq(combined), rgb_to_yiq(content)
    assert (yiq[:, 1:] - content_yiq[:, 1:]).abs().max() < ONE_LEVEL
    assert (yiq[:, :1] - result_y).abs().max() < ONE_LEVEL


def test_combine_luminance_accepts_three_channel_result() -> None:
    content = _rand(1, 3, 8, 8, low=0.3, high=0.7, seed=8)
    y = _rand(1, 1, 8, 8, low=0.4, high=0.6, seed=9)
    assert torch.allclose(combine_luminance(y.expand(1, 3, 8, 8), content), combine_luminance(y, content))


def test_combine_luminance_clamps_to_unit_range() -> None:
    combined = combine_luminance(torch.full((1, 1, 4, 4), 2.0), _rand(1, 3, 4, 4, seed=10))
    assert combined.min() >= 0 and combined.max() <= 1


def test_combine_luminance_size_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(1, 1, 4, 4\).*\(1, 3, 5, 5\)"):
        combine_luminance(torch.zeros(1, 1, 4, 4), torch.zeros(1, 3, 5, 5))


# --- colour histogram matching ----------------------------------------------------------------


def test_fixtures_have_different_colour_statistics() -> None:
    mean_s, cov_s = _stats(_correlated_style())
    mean_c, cov_c = _stats(_content())
    assert (mean_s - mean_c).abs().max() > 0.05
    assert (cov_s - cov_c).abs().max() > 1e-3
    assert torch.linalg.eigvalsh(cov_c).min() > 1e-4  # non-degenerate


@pytest.mark.parametrize("method", HISTOGRAM_METHODS)
def test_match_histogram_gives_content_mean_and_covariance(method: str) -> None:
    style, content = _correlated_style(), _content()
    recoloured = match_histogram(style, content, method=method)
    assert recoloured.shape == style.shape and recoloured.dtype == torch.float32
    assert recoloured.min() > 0 and recoloured.max() < 1  # no clamping in this test
    mean_r, cov_r = _stats(recoloured)
    mean_c, cov_c = _stats(content)
    assert torch.allclose(mean_r, mean_c, atol=1e-5)
    # The eps regularisation biases the covariance by O(eps); these covariances are ~5e-3.
    assert torch.allclose(cov_r, cov_c, atol=3e-5)


@pytest.mark.parametrize("method", HISTOGRAM_METHODS)
def test_match_histogram_is_exact_as_eps_vanishes(method: str) -> None:
    style, content = _correlated_style(), _content()
    mean_r, cov_r = _stats(match_histogram(style, content, method=method, eps=1e-10))
    mean_c, cov_c = _stats(content)
    assert torch.allclose(mean_r, mean_c, atol=1e-6)
    assert torch.allclose(cov_r, cov_c, atol=1e-7)


def test_histogram_methods_differ_in_transform_but_not_statistics() -> None:
    """Cholesky and eigen square roots recolour differently, yet both give the content's stats."""
    style, content = _correlated_style(), _content()
    by_cholesky = match_histogram(style, content, method="cholesky")
    by_eigen = match_histogram(style, content, method="eigen")
    assert (by_cholesky - by_eigen).abs().max() > 1e-2
    mean_c, cov_c = _stats(content)
    for recoloured in (by_cholesky, by_eigen):
        mean_r, cov_r = _stats(recoloured)
        assert torch.allclose(mean_r, mean_c, atol=1e-5)
        assert torch.allclose(cov_r, cov_c, atol=3e-5)


def test_match_histogram_unknown_method_lists_choices() -> None:
    with pytest.raises(ValueError, match="cholesky.*eigen"):
        match_histogram(_correlated_style(), _content(), method="svd")


def test_match_histogram_rejects_non_positive_eps() -> None:
    with pytest.raises(ValueError, match="eps"):
        match_histogram(_correlated_style(), _content(), eps=0.0)


@pytest.mark.parametrize("method", HISTOGRAM_METHODS)
def test_match_histogram_grayscale_style_is_finite(method: str) -> None:
    gray = _rand(1, 1, 16, 16, seed=11).expand(1, 3, 16, 16)
    recoloured = match_histogram(gray, _content(), method=method)
    assert torch.isfinite(recoloured).all()
    assert torch.allclose(recoloured.mean(dim=(2, 3)), _content().mean(dim=(2, 3)), atol=0.05)


def test_match_histogram_flat_style_is_finite() -> None:
    assert torch.isfinite(match_histogram(torch.full((1, 3, 8, 8), 0.5), _content())).all()


# --- post-processing colour transfer ----------------------------------------------------------


def test_transfer_color_without_mask_takes_content_chroma() -> None:
    output = _rand(1, 3, 16, 16, low=0.3, high=0.7, seed=12)
    content = _rand(1, 3, 16, 16, low=0.3, high=0.7, seed=13)
    result = transfer_color(output, content)
    yiq = rgb_to_yiq(result)
    assert (yiq[:, 1:] - rgb_to_yiq(content)[:, 1:]).abs().max() < ONE_LEVEL
    assert (yiq[:, :1] - luminance(output)).abs().max() < ONE_LEVEL


def test_transfer_color_half_mask_keeps_unmasked_pixels_exactly() -> None:
    output = _rand(1, 3, 16, 16, low=0.3, high=0.7, seed=14)
    content = _rand(1, 3, 16, 16, low=0.3, high=0.7, seed=15)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., :8] = 1.0
    result = transfer_color(output, content, mask)
    assert torch.equal(result[..., 8:], output[..., 8:])
    chroma = rgb_to_yiq(result)[:, 1:, :, :8]
    assert (chroma - rgb_to_yiq(content)[:, 1:, :, :8]).abs().max() < ONE_LEVEL


def test_transfer_color_soft_mask_blends_linearly() -> None:
    output = _rand(1, 3, 8, 8, low=0.3, high=0.7, seed=16)
    content = _rand(1, 3, 8, 8, low=0.3, high=0.7, seed=17)
    full = transfer_color(output, content)
    half = transfer_color(output, content, torch.full((1, 1, 8, 8), 0.5))
    assert torch.allclose(half, 0.5 * full + 0.5 * output, atol=1e-6)


def test_transfer_color_rejects_bad_mask() -> None:
    img = _rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        transfer_color(img, img, torch.full((1, 1, 8, 8), 1.5))
    with pytest.raises(ValueError, match=r"\(1, 1, 4, 4\).*\(1, 3, 8, 8\)"):
        transfer_color(img, img, torch.ones(1, 1, 4, 4))


def test_transfer_color_size_mismatch_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(1, 3, 8, 8\).*\(1, 3, 6, 8\)"):
        transfer_color(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 6, 8))


def test_wrong_channel_count_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"\(1, 4, 8, 8\)"):
        rgb_to_yiq(torch.zeros(1, 4, 8, 8))
    with pytest.raises(ValueError, match="floating"):
        luminance(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


# --- purity and dtypes ------------------------------------------------------------------------


def test_inputs_are_not_modified() -> None:
    style, content = _correlated_style(), _content()
    output = _rand(1, 3, 24, 24, seed=18)
    mask = _rand(1, 1, 24, 24, seed=19)
    y_s, y_c = luminance(style), luminance(content)
    originals = [t.clone() for t in (style, content, output, mask, y_s, y_c)]
    rgb_to_yiq(output)
    yiq_to_rgb(output)
    match_luminance(y_s, y_c)
    combine_luminance(y_c, content)
    combine_luminance(output, content)
    for method in HISTOGRAM_METHODS:
        match_histogram(style, content, method=method)
    transfer_color(output, content, mask)
    for original, now in zip(originals, (style, content, output, mask, y_s, y_c)):
        assert torch.equal(original, now)


def test_float64_inputs_give_float32_results() -> None:
    style, content = _correlated_style().double(), _content().double()
    y_s, y_c = luminance(style), luminance(content)
    results = [
        rgb_to_yiq(content),
        yiq_to_rgb(content),
        y_c,
        match_luminance(y_s, y_c),
        combine_luminance(y_c.double(), content),
        match_histogram(style, content),
        transfer_color(content, content, torch.ones(1, 1, 24, 24, dtype=torch.float64)),
    ]
    assert all(r.dtype == torch.float32 for r in results)
    assert torch.allclose(match_histogram(style, content), match_histogram(style.float(), content.float()))


# --- real images ------------------------------------------------------------------------------


def _load(path: Path, size: int = 64) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((size, size), Image.Resampling.BICUBIC)
        array = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


@pytest.mark.parametrize("method", HISTOGRAM_METHODS)
def test_match_histogram_on_real_images(method: str) -> None:
    content = _load(EXAMPLES / "chelsea.png")
    style = _load(EXAMPLES / "starry_night_van_gogh.jpg")
    recoloured = match_histogram(style, content, method=method)
    mean_s, _ = _stats(style)
    mean_r, cov_r = _stats(recoloured)
    mean_c, cov_c = _stats(content)
    assert torch.allclose(mean_r, mean_c, atol=0.02)
    assert torch.allclose(cov_r, cov_c, atol=0.1 * cov_c.abs().max().item())
    assert (mean_r - mean_c).norm() < 0.25 * (mean_s - mean_c).norm()
