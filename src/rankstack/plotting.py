"""Saving Matplotlib figures the same way everywhere (Agg backend, parent folders made, figure closed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def save_figure(fig: Any, path: str | Path, *, dpi: int = 120) -> Path:
    """Lay out ``fig``, write it to ``path`` (creating folders), close it and return the path."""
    import matplotlib.pyplot as plt

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
