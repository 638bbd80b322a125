"""impasto: neural style transfer (Gatys et al.) with Novak & Nikulin's improvements, masks and
colour preservation, fast on an ordinary CPU."""

from .config import IMPROVED, StyleConfig
from .engine import Painter, Run
from .errors import ImpastoError
from .postprocess import color_transfer, mask_transfer
from .transfer import Progress, StylizeResult, stylize
from .vgg import VGG

__version__ = "0.1.0"

__all__ = ["IMPROVED", "ImpastoError", "Painter", "Progress", "Run", "StyleConfig", "StylizeResult", "VGG",
           "color_transfer", "mask_transfer", "stylize", "__version__"]
