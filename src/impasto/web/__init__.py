"""impasto's studio page: `impasto web` serves it on 127.0.0.1 (the `impasto[web]` extra, Gradio).

`app.create_app(network)` builds the page (Gradio Blocks) and `app.launch` serves it; `jobs`
holds what the page runs and needs no Gradio. Gradio is imported only here, on first use.
"""

from __future__ import annotations

import os
from types import ModuleType

from ..errors import ImpastoError

INSTALL_HINT = "pip install 'impasto[web]'"


def require_gradio() -> ModuleType:
    """The gradio module, with analytics off, or a one-line ImpastoError naming the extra."""
    # Read when Blocks are created: with it off, the server talks to no host but the browser's.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        import gradio
    except ImportError:
        raise ImpastoError(
            f"the web page needs Gradio, which is not installed; install it with: {INSTALL_HINT}"
        ) from None
    if not gradio.__version__.startswith("6."):
        raise ImpastoError(f"the web page needs Gradio 6, not {gradio.__version__}; install it with: {INSTALL_HINT}")
    return gradio
