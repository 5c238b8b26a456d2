"""Where data is looked for: ``--data-dir``, then ``$RANKSTACK_DATA``, then ``../shared/data``."""

from __future__ import annotations

import os
from pathlib import Path

ENV_DATA_DIR = "RANKSTACK_DATA"
BUNDLED_DIR = Path(__file__).parent / "data" / "bundled"


def data_dirs(data_dir: str | Path | None = None) -> list[Path]:
    """Candidate data directories in priority order (only those that exist)."""
    found: list[Path] = []
    if data_dir is not None:
        found.append(Path(data_dir))
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        found.append(Path(env))
    for base in (Path.cwd(), *Path.cwd().parents):
        shared = base / ".." / "shared" / "data"
        if shared.is_dir():
            found.append(shared.resolve())
            break
    seen: set[Path] = set()
    unique = []
    for path in found:
        key = path.resolve()
        if key not in seen and path.is_dir():
            seen.add(key)
            unique.append(path)
    return unique
