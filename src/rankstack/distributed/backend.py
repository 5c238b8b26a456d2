"""Where a command runs: in this process (``local``) or on Ray workers (``ray``); no Ray import here."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Literal

from rankstack.errors import ConfigError

BackendKind = Literal["local", "ray"]
INSTALL_HINT = "pip install 'rankstack[ray]'"


def ray_installed() -> bool:
    """Whether ``ray`` can be imported here (the ``ray`` extra is installed)."""
    return importlib.util.find_spec("ray") is not None


@dataclass(frozen=True)
class Backend:
    """``kind`` local or ray; ``workers``: Ray workers (one CPU each; None: one per CPU of the Ray instance);
    ``address``: an existing cluster (``ray://host:10001`` through Ray Client, ``host:6379`` or ``auto`` on a
    cluster node), else a local Ray instance with ``workers`` CPUs is started for the command and stopped after."""

    kind: BackendKind = "local"
    workers: int | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("local", "ray"):
            raise ConfigError(f"--backend must be 'local' or 'ray', got {self.kind!r}")
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                         or self.workers < 1):
            raise ConfigError(f"--workers must be an integer >= 1, got {self.workers!r}")
        if self.kind == "local" and self.address is not None:
            raise ConfigError("--address names a Ray cluster, so it needs --backend ray")
        if self.kind == "local" and self.workers not in (None, 1):
            raise ConfigError("--workers counts Ray workers, so it needs --backend ray")
        if self.address is not None and not self.address.strip():
            raise ConfigError("--address is empty: give ray://HOST:10001, HOST:6379 or auto")

    @property
    def is_ray(self) -> bool:
        """Whether the work goes to Ray workers."""
        return self.kind == "ray"

    def require(self) -> Backend:
        """This backend, after checking Ray is installed when it is needed (ConfigError with the install line)."""
        if self.is_ray and not ray_installed():
            raise ConfigError(f"--backend ray needs Ray, which is not installed: {INSTALL_HINT}")
        return self

    def to_json(self) -> dict[str, Any]:
        """For run records: ``{"backend": "ray", "workers": 2, "address": null}`` (workers null: one per CPU)."""
        return {"backend": self.kind, "workers": self.workers if self.is_ray else 1, "address": self.address}


LOCAL = Backend()
