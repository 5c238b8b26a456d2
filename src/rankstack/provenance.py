"""Who/what/where of a run: code version and machine description for result manifests."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch

import rankstack


def code_version() -> dict[str, str | bool | None]:
    """Package version plus the git commit (and whether the tree was dirty) when run from a checkout."""
    root = Path(__file__).resolve().parents[2]
    commit: str | None = None
    dirty: bool | None = None
    if (root / ".git").exists():
        try:
            commit = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
            ).stdout.strip()
            status = subprocess.run(
                ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                capture_output=True, text=True, timeout=5, check=True,
            ).stdout
            dirty = bool(status.strip())
        except (OSError, subprocess.SubprocessError):
            commit = None
    return {"rankstack": rankstack.__version__, "git_commit": commit, "git_dirty": dirty}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, str | int | None]:
    """CPU, core count, Python/torch versions and the GPU, if any."""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": gpu,
    }
