"""Charts for documents: matplotlib without a display, figures as ``data:`` URIs.

matplotlib is imported on the first chart, not at import (it costs the command line
hundreds of milliseconds, and few commands draw).
"""

from __future__ import annotations

import base64
import io
from types import ModuleType
from typing import Any


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend (no display: servers and CI have none)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_data_uri(fig: Any) -> str:
    """The figure as a PNG ``data:`` URI, and the figure closed (pyplot keeps it otherwise)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
