"""Starting or joining a Ray instance for one command."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from rankstack.distributed.backend import Backend
from rankstack.errors import ConfigError

TRAIN_POLL = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"


def import_ray() -> Any:
    """The ``ray`` module (ConfigError naming the extra to install when it is missing)."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(f"--backend ray needs Ray ({exc}): pip install 'rankstack[ray]'") from None
    return ray


@contextlib.contextmanager
def ray_session(backend: Backend) -> Iterator[Any]:
    """Yield ``ray`` connected to a cluster with at least ``backend.workers`` CPUs.

    A Ray instance already initialised in this process (a notebook, a test fixture) is used as it is and left
    running. Otherwise ``backend.address`` is joined, or, without one, a new local instance with ``workers`` CPUs
    (every CPU here when None) and no dashboard is started — never one that another ``ray start`` left running on
    this machine (``--address auto`` joins that) — and either is disconnected (a local one stopped) on exit.
    """
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING,
                                   "runtime_env": {"env_vars": train_env()}}
        try:
            if backend.address is not None:
                ray.init(address=backend.address, **options)
            else:
                ray.init(address="local", num_cpus=backend.workers, include_dashboard=False, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = backend.address or "a local Ray instance"
            raise ConfigError(f"could not start or join {where}: {exc}") from None
        started = True
    try:
        cpus = float(ray.cluster_resources().get("CPU", 0))
        if cpus < (backend.workers or 1):
            raise ConfigError(f"--workers {backend.workers} asks for more workers than the Ray cluster has CPUs "
                              f"({cpus:g}): lower --workers or add nodes")
        yield ray
    finally:
        if started:
            ray.shutdown()


def train_env() -> dict[str, str]:
    """Environment for the command's Ray processes: Ray Train's controller collects a worker's reports every
    ``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`` (2 s by default) and a worker's next report waits for that, which would
    pace epochs shorter than 2 s; 0.5 s here unless the variable is set."""
    return {TRAIN_POLL: os.environ.get(TRAIN_POLL, "0.5")}


def worker_count(ray: Any, backend: Backend) -> int:
    """``backend.workers``, or one per CPU of the connected Ray cluster when it is None."""
    if backend.workers is not None:
        return backend.workers
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
