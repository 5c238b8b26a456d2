"""Device selection shared by models and the evaluator."""

from __future__ import annotations

import torch

from rankstack.errors import ConfigError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` or ``"auto"`` → CUDA when available, else CPU; anything else is passed to ``torch.device``.

    A name torch does not know, or CUDA on a machine without it, is a ``ConfigError`` naming the device."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; expected auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r}: CUDA is not available here (torch {torch.__version__}); use cpu")
    return resolved
