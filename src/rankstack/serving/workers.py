"""Several server processes on one port (``--workers N``): uvicorn workers, each with its own model, batcher and
state-store connection (SQLite in WAL mode and Redis are both safe to share between processes).

The parent makes a private temporary folder with ``metrics/`` (``$PROMETHEUS_MULTIPROC_DIR``: ``/metrics`` adds
up every worker) and ``control/`` (hot reload reaches every worker, see ``fanout``), hands the settings to the
workers as JSON in ``$RANKSTACK_WORKER_SPEC`` and removes the folder once uvicorn has stopped every worker
(SIGTERM or SIGINT to the parent).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from prometheus_client import multiprocess
from pydantic import BaseModel, ConfigDict
from uvicorn.config import STARTUP_FAILURE

from rankstack.errors import RankstackError
from rankstack.serving.app import create_app
from rankstack.serving.fanout import ReloadGroup, pid_alive
from rankstack.serving.loaders import resolve_loader
from rankstack.serving.settings import SWITCH_INTERVAL_S, ServiceSettings
from rankstack.state import open_state

log = logging.getLogger(__name__)
SPEC_ENV = "RANKSTACK_WORKER_SPEC"
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


class WorkerSpec(BaseModel):
    """What each worker needs to build its app; travels as JSON in ``$RANKSTACK_WORKER_SPEC``."""

    model_config = ConfigDict(extra="forbid")
    settings: ServiceSettings
    state: str
    loader: str
    control_dir: Path


def run_workers(settings: ServiceSettings, *, state: str, loader: str, host: str, port: int, log_level: str) -> None:
    """Serve with ``settings.workers`` uvicorn worker processes until SIGTERM / SIGINT, then clean up."""
    root = Path(tempfile.mkdtemp(prefix="rankstack-serve-"))
    (root / "metrics").mkdir()
    (root / "control").mkdir()
    spec = WorkerSpec(settings=settings, state=state, loader=loader, control_dir=root / "control")
    saved = {name: os.environ.get(name) for name in (SPEC_ENV, METRICS_ENV)}
    os.environ[SPEC_ENV] = spec.model_dump_json()
    os.environ[METRICS_ENV] = str(root / "metrics")
    try:
        uvicorn.run(f"{__name__}:worker_app", factory=True, host=host, port=port, workers=settings.workers,
                    log_level=log_level, access_log=False)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(root, ignore_errors=True)


def worker_app() -> FastAPI:
    """uvicorn's app factory, run in each worker: its own state store and model, joined to the reload group."""
    spec = WorkerSpec.model_validate_json(os.environ[SPEC_ENV])
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    metrics_dir = os.environ[METRICS_ENV]
    _forget_dead_workers(metrics_dir)
    try:
        store = open_state(spec.state)
        app = create_app(resolve_loader(spec.loader), store, spec.settings, group=ReloadGroup(spec.control_dir),
                         on_shutdown=[getattr(store, "close", lambda: None),
                                      lambda: multiprocess.mark_process_dead(os.getpid(), metrics_dir)])
    except RankstackError as exc:  # uvicorn's parent stops the whole service on this exit code
        log.error("worker %d cannot start: %s", os.getpid(), exc)
        sys.exit(STARTUP_FAILURE)
    return app


def _forget_dead_workers(metrics_dir: str) -> None:
    """Drop the live-gauge files of workers that died without shutting down (uvicorn replaced them)."""
    for path in Path(metrics_dir).glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        if not pid_alive(pid):
            multiprocess.mark_process_dead(pid, metrics_dir)
