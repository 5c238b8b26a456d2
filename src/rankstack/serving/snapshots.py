"""Private copies of served artifacts, so that a worker started later loads exactly what the others serve.

With several workers the artifact folder an operator names can change or vanish while the service runs (a new
training run writes over it, a byte flips, a deploy replaces it). The worker that loads an artifact first copies
it into the service's private temporary folder and loads (so verifies) the copy; the copy is what is published to
the other workers and what a replacement worker loads after a crash. Only the published copy is kept.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from rankstack.serving.model_slot import ReloadRefusedError


def take_snapshot(source: Path, folder: Path) -> Path:
    """Copy the artifact folder ``source`` into a new folder under ``folder`` (``ReloadRefusedError`` if it cannot
    be copied); the copy is verified when it is loaded."""
    if not source.is_dir():
        raise ReloadRefusedError(f"artifact {source} refused: not a folder (missing, or not an artifact)")
    folder.mkdir(parents=True, exist_ok=True)
    dest = Path(tempfile.mkdtemp(prefix="artifact-", dir=folder))
    try:
        shutil.copytree(source, dest, symlinks=True, dirs_exist_ok=True)  # links are copied as links: refused later
    except (OSError, shutil.Error) as exc:
        shutil.rmtree(dest, ignore_errors=True)
        raise ReloadRefusedError(f"artifact {source} refused: cannot copy it to {folder}: {exc}") from None
    return dest


def drop_snapshot(path: Path | None, folder: Path | None) -> None:
    """Remove a snapshot made by ``take_snapshot`` (never anything outside ``folder``)."""
    if path is not None and folder is not None and path.parent == folder:
        shutil.rmtree(path, ignore_errors=True)
