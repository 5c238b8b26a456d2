"""Several server processes on one port (``--workers N``): uvicorn servers, each with its own model, batcher and
state-store connection (SQLite in WAL mode and Redis are both safe to share between processes).

The parent makes a private temporary folder with ``metrics/`` (``$PROMETHEUS_MULTIPROC_DIR``: ``/metrics`` adds
up every worker) and ``control/`` (hot reload reaches every worker, see ``fanout``), hands the settings to the
workers as JSON in ``$RANKSTACK_WORKER_SPEC`` and removes the folder once every worker has stopped (SIGTERM or
SIGINT to the parent).

Each worker listens on its own ``SO_REUSEPORT`` socket, so the kernel spreads new connections across the workers.
With one shared listening socket (uvicorn's own ``--workers``) whichever worker wakes first accepts every
connection waiting: 16 keep-alive connections opened together went 1714 / 0 or 1450 / 232 to two workers, so one
process served nearly all the load while the other idled. Where the platform lacks ``SO_REUSEPORT`` the
service falls back to uvicorn's shared socket.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
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
        if hasattr(socket, "SO_REUSEPORT"):
            _supervise(settings.workers, host, port, log_level)
        else:  # pragma: no cover - platforms without SO_REUSEPORT
            uvicorn.run(f"{__name__}:worker_app", factory=True, host=host, port=port, workers=settings.workers,
                        log_level=log_level, access_log=False)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(root, ignore_errors=True)


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT`` (the kernel balances connections across them)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RankstackError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _serve_worker(host: str, port: int, log_level: str) -> None:
    """One worker process: its own listening socket, then uvicorn until SIGTERM / SIGINT."""
    sock = reuse_port_socket(host, port)
    config = uvicorn.Config(f"{__name__}:worker_app", factory=True, log_level=log_level, access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


def _supervise(workers: int, host: str, port: int, log_level: str) -> None:
    """Start ``workers`` worker processes, replace any that dies, stop them all on SIGTERM / SIGINT; a worker that
    cannot start (``STARTUP_FAILURE``) stops the service."""
    holder = reuse_port_socket(host, port)  # bound, never listening: the port is ours before any worker starts
    context = multiprocessing.get_context("spawn")
    stop: list[int] = []
    previous = {sig: signal.signal(sig, lambda sig, _frame: stop.append(sig))
                for sig in (signal.SIGTERM, signal.SIGINT)}

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(target=_serve_worker, args=(host, port, log_level), name="rankstack-worker")
        process.start()
        return process

    processes = [start() for _ in range(workers)]
    failed = False
    try:
        while not stop and not failed:
            time.sleep(0.2)
            for at, process in enumerate(processes):
                if process.is_alive() or stop:
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    log.error("worker %s could not start: stopping the service", process.pid)
                    failed = True
                    break
                log.warning("worker %s died (exit code %s): starting another", process.pid, process.exitcode)
                processes[at] = start()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + 30
        for process in processes:
            process.join(max(deadline - time.monotonic(), 0.1))
            if process.is_alive():
                process.kill()
                process.join()
        holder.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed:
        raise RankstackError("a worker could not start (see its log above)")


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
