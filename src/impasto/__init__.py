"""impasto: neural style transfer (Gatys et al.) with Novak & Nikulin's improvements, masks and
colour preservation, fast on an ordinary CPU.

The names below are imported on first use (PEP 562), so that `import impasto.config` or the
command's --help does not pay for importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "IMPROVED": "config",
    "StyleConfig": "config",
    "Painter": "engine",
    "Run": "engine",
    "ImpastoError": "errors",
    "color_transfer": "postprocess",
    "mask_transfer": "postprocess",
    "Progress": "transfer",
    "StylizeResult": "transfer",
    "stylize": "transfer",
    "VGG": "vgg",
}

__all__ = [
    "IMPROVED",
    "ImpastoError",
    "Painter",
    "Progress",
    "Run",
    "StyleConfig",
    "StylizeResult",
    "VGG",
    "__version__",
    "color_transfer",
    "mask_transfer",
    "stylize",
]

if TYPE_CHECKING:
    from .config import IMPROVED, StyleConfig
    from .engine import Painter, Run
    from .errors import ImpastoError
    from .postprocess import color_transfer, mask_transfer
    from .transfer import Progress, StylizeResult, stylize
    from .vgg import VGG


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
