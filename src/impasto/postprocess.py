"""Post-processing of a finished image, as the seed's mask and colour tools do."""

from __future__ import annotations

import PIL.Image
import torch

from . import color
from .images import pil_to_tensor, read_image, read_mask, resize_to, tensor_to_pil, warn_if_stretched


def _mask_tensor(mask, size: tuple[int, int]) -> torch.Tensor:
    """A binary (1, 1, H, W) mask at `size` (width, height): 1 where the mask image is white."""
    image = read_mask(mask, "mask")
    warn_if_stretched("the mask", image.size, size, "stylised image")
    return (pil_to_tensor(resize_to(image, size)) >= 0.5).float()


def _content(content, size: tuple[int, int]) -> torch.Tensor:
    image = read_image(content, "content image")
    warn_if_stretched("the content image", image.size, size, "stylised image")
    return pil_to_tensor(resize_to(image, size))


def mask_transfer(output, content, mask) -> PIL.Image.Image:
    """The stylised `output` where `mask` is white and the `content` where it is black."""
    out_img = read_image(output, "stylised image")
    out = pil_to_tensor(out_img)
    original = _content(content, out_img.size)
    m = _mask_tensor(mask, out_img.size)
    return tensor_to_pil(out * m + original * (1 - m))


def color_transfer(output, content, mask=None) -> PIL.Image.Image:
    """`output`'s luminance with `content`'s chroma (YIQ), optionally only where `mask` is white."""
    out_img = read_image(output, "stylised image")
    original = _content(content, out_img.size)
    m = None if mask is None else _mask_tensor(mask, out_img.size)
    return tensor_to_pil(color.transfer_color(pil_to_tensor(out_img), original, m))
