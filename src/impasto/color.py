"""Colour preservation for style transfer (Gatys et al., "Preserving Color in Neural Artistic
Style Transfer", 2016).

Two ways to keep the content photo's colours: transfer style on luminance only
(:func:`match_luminance`, then :func:`combine_luminance`), or recolour the style image so its
colour statistics equal the content's (:func:`match_histogram`). :func:`transfer_color` puts the
content's chroma back onto a finished result, optionally inside a mask.

Images are RGB in [0, 1], shape (1, 3, H, W); luminance images are (1, 1, H, W). Inputs may be
any floating dtype on any device; every function returns float32 on the input's device and never
modifies its inputs. Colour statistics and matrix square roots are computed in float64 on the CPU
(they are 3x3), so devices without float64 work too.
"""

from __future__ import annotations

import torch

from .config import HISTOGRAM_METHODS

# NTSC RGB -> YIQ. The inverse is computed rather than typed in so round trips are exact.
_RGB_TO_YIQ = torch.tensor(
    [
        [0.299, 0.587, 0.114],
        [0.596, -0.274, -0.322],
        [0.211, -0.523, 0.312],
    ],
    dtype=torch.float64,
)
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def _check_image(name: str, img: torch.Tensor, channels: int) -> None:
    """Raise ValueError unless ``img`` is a floating (1, channels, H, W) tensor."""
    if not isinstance(img, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(img).__name__}")
    if not img.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {img.dtype}")
    if img.ndim != 4 or img.shape[0] != 1 or img.shape[1] != channels:
        raise ValueError(f"{name} must have shape (1, {channels}, H, W), got {tuple(img.shape)}")


def _check_same_size(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Raise ValueError unless ``a`` and ``b`` have the same height and width."""
    if a.shape[-2:] != b.shape[-2:]:
        raise ValueError(
            f"{name_a} shape {tuple(a.shape)} and {name_b} shape {tuple(b.shape)} must have the same height and width"
        )


def _work(img: torch.Tensor) -> torch.Tensor:
    """``img`` in at least float32 precision, for arithmetic."""
    return img.to(torch.promote_types(img.dtype, torch.float32))


def _apply_matrix(matrix: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
    """Multiply every pixel's 3-vector of ``img`` (N, 3, H, W) by ``matrix`` (3, 3)."""
    return torch.einsum("ij,njhw->nihw", matrix.to(img), img)


def rgb_to_yiq(img: torch.Tensor) -> torch.Tensor:
    """Convert an RGB image (1, 3, H, W) to YIQ channels (1, 3, H, W)."""
    _check_image("image", img, 3)
    return _apply_matrix(_RGB_TO_YIQ, _work(img)).float()


def yiq_to_rgb(yiq: torch.Tensor) -> torch.Tensor:
    """Convert a YIQ image (1, 3, H, W) back to RGB (1, 3, H, W), without clamping."""
    _check_image("YIQ image", yiq, 3)
    return _apply_matrix(_YIQ_TO_RGB, _work(yiq)).float()


def luminance(img: torch.Tensor) -> torch.Tensor:
    """The luminance (YIQ Y channel) of an RGB image, shape (1, 1, H, W)."""
    return rgb_to_yiq(img)[:, :1]


def match_luminance(style_y: torch.Tensor, content_y: torch.Tensor) -> torch.Tensor:
    """Style luminance shifted and scaled to the content luminance's mean and standard deviation.

    The two images may differ in size. A constant style maps to the content's mean.
    """
    _check_image("style luminance", style_y, 1)
    _check_image("content luminance", content_y, 1)
    s = style_y.cpu().double()
    c = content_y.cpu().double()
    mu_s, sigma_s = s.mean(), s.std(correction=0)
    mu_c, sigma_c = c.mean(), c.std(correction=0)
    # A constant style has no deviations to scale; flooring its std avoids 0/0.
    matched = (s - mu_s) * (sigma_c / sigma_s.clamp_min(1e-12)) + mu_c
    return matched.to(device=style_y.device, dtype=torch.float32)


def combine_luminance(result_y: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """RGB image with luminance ``result_y`` and the content's chroma (I, Q), clamped to [0, 1].

    ``result_y`` is (1, 1, H, W), or (1, 3, H, W) whose channel mean is taken as the luminance
    (a network fed replicated Y returns three channels that may drift apart).
    """
    if result_y.ndim == 4 and result_y.shape[1] == 3:
        _check_image("result", result_y, 3)
        result_y = _work(result_y).mean(dim=1, keepdim=True)
    _check_image("result luminance", result_y, 1)
    _check_image("content", content, 3)
    _check_same_size("result luminance", result_y, "content", content)
    chroma = rgb_to_yiq(content)[:, 1:]
    yiq = torch.cat([result_y.to(chroma), chroma], dim=1)
    return yiq_to_rgb(yiq).clamp(0.0, 1.0)


def _pixels64(img: torch.Tensor) -> torch.Tensor:
    """The pixels of an image (1, 3, H, W) as a float64 CPU matrix (3, H*W)."""
    return img.cpu().double().reshape(3, -1)


def _mean_cov(pixels: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean (3, 1) and covariance (3, 3) plus ``eps`` * I of pixels (3, N)."""
    mean = pixels.mean(dim=1, keepdim=True)
    centred = pixels - mean
    cov = centred @ centred.T / pixels.shape[1]
    return mean, cov + eps * torch.eye(3, dtype=cov.dtype)


def _cholesky_transform(cov_s: torch.Tensor, cov_c: torch.Tensor) -> torch.Tensor:
    """A = L_c L_s^-1, with L the lower Cholesky factor, so that A cov_s A^T = cov_c."""
    l_s = torch.linalg.cholesky(cov_s)
    l_c = torch.linalg.cholesky(cov_c)
    return torch.linalg.solve_triangular(l_s, l_c, upper=False, left=False)


def _sym_power(cov: torch.Tensor, power: float) -> torch.Tensor:
    """Symmetric matrix power U diag(lambda^power) U^T of a positive definite matrix."""
    eigvals, eigvecs = torch.linalg.eigh(cov)
    # Rounding can push the eigenvalues of a near-singular matrix just below zero.
    eigvals = eigvals.clamp_min(torch.finfo(eigvals.dtype).tiny)
    return eigvecs @ torch.diag(eigvals**power) @ eigvecs.T


def _eigen_transform(cov_s: torch.Tensor, cov_c: torch.Tensor) -> torch.Tensor:
    """A = cov_c^1/2 cov_s^-1/2 with symmetric square roots, so that A cov_s A^T = cov_c."""
    return _sym_power(cov_c, 0.5) @ _sym_power(cov_s, -0.5)


_TRANSFORMS = {"cholesky": _cholesky_transform, "eigen": _eigen_transform}


def match_histogram(
    style: torch.Tensor, content: torch.Tensor, method: str = "cholesky", eps: float = 1e-5
) -> torch.Tensor:
    """The style image recoloured so its RGB mean and covariance equal the content's.

    Applies x' = A (x - mu_s) + mu_c with A = cov_c^1/2 cov_s^-1/2, the square root taken by
    ``method`` (one of :data:`HISTOGRAM_METHODS`); ``eps`` * I is added to both covariances so
    flat or grayscale images stay invertible, which biases the matched covariance by O(eps).
    The result is clamped to [0, 1].
    """
    if method not in HISTOGRAM_METHODS:
        raise ValueError(f"unknown histogram method {method!r}; choose one of {', '.join(HISTOGRAM_METHODS)}")
    if not eps > 0 or eps == float("inf"):
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    _check_image("style", style, 3)
    _check_image("content", content, 3)
    pixels_s = _pixels64(style)
    mean_s, cov_s = _mean_cov(pixels_s, eps)
    mean_c, cov_c = _mean_cov(_pixels64(content), eps)
    transform = _TRANSFORMS[method](cov_s, cov_c)
    recoloured = transform @ (pixels_s - mean_s) + mean_c
    out = recoloured.reshape(style.shape).clamp(0.0, 1.0)
    return out.to(device=style.device, dtype=torch.float32)


def transfer_color(output: torch.Tensor, content: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The output's luminance with the content's chroma, optionally only where ``mask`` is set.

    ``content`` must already be the output's size. ``mask`` (1, 1, H, W) in [0, 1]: 1 takes the
    content's chroma, 0 keeps the output's pixels unchanged, values between blend linearly.
    """
    _check_image("output", output, 3)
    _check_image("content", content, 3)
    _check_same_size("output", output, "content", content)
    recoloured = combine_luminance(luminance(output), content)
    if mask is None:
        return recoloured
    _check_image("mask", mask, 1)
    _check_same_size("mask", mask, "output", output)
    if mask.numel() and (mask.min() < 0 or mask.max() > 1):
        raise ValueError(f"mask values must lie in [0, 1], got {mask.min().item():g} to {mask.max().item():g}")
    weight = _work(mask).to(device=output.device)
    blended = weight * recoloured.to(weight) + (1 - weight) * _work(output)
    return blended.float()
