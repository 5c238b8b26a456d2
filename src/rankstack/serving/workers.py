"""Several server processes on one port (``--workers N``): uvicorn servers, each with its own model, batcher and
state-store connection (SQLite in WAL mode and Redis are both safe to share between processes).

The parent makes a private temporary folder with ``metrics/`` (``$PROMETHEUS_MULTIPROC_DIR``: ``/metrics`` adds
up every worker), ``control/`` (hot reload reaches every worker, see ``fanout``) and ``snapshots/`` (the copy of
the served artifact, see ``snapshots``), copies the artifact there and checks the copy in a short-lived child,
hands the settings to the workers as JSON in ``$RANKSTACK_WORKER_SPEC`` and removes the folder once every worker
has stopped (SIGTERM or SIGINT to the parent).

A worker that dies is replaced at once; the replacement loads the published snapshot, so it serves what the
others serve even if the artifact on disk was changed or deleted meanwhile. If a replacement cannot start, the
parent retries with back-off (``RETRY_S`` doubling up to ``RETRY_MAX_S``) and leaves the healthy workers
serving; ``/readyz`` and ``rankstack_workers_serving`` show the reduced capacity. Only a worker of the first
start that cannot start stops the service.

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
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from prometheus_client import multiprocess
from pydantic import BaseModel, ConfigDict
from uvicorn.config import STARTUP_FAILURE

from rankstack.errors import RankstackError
from rankstack.pipeline.components import open_state
from rankstack.serving.affinity import pin_process, seat_core, usable_cores
from rankstack.serving.app import create_app
from rankstack.serving.fanout import ReloadGroup, pid_alive, publish_start
from rankstack.serving.http_protocol import CoalescingHttpToolsProtocol
from rankstack.serving.loaders import resolve_loader
from rankstack.serving.model_slot import ModelSlot, ReloadRefusedError
from rankstack.serving.settings import SWITCH_INTERVAL_S, ServiceSettings
from rankstack.serving.snapshots import take_snapshot

log = logging.getLogger(__name__)
SPEC_ENV = "RANKSTACK_WORKER_SPEC"
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
RETRY_S = 1.0  # first wait before starting again a replacement worker that could not start
RETRY_MAX_S = 30.0


class WorkerSpec(BaseModel):
    """What each worker needs to build its app; travels as JSON in ``$RANKSTACK_WORKER_SPEC``."""

    model_config = ConfigDict(extra="forbid")
    settings: ServiceSettings
    state: str
    loader: str
    control_dir: Path
    snapshots: Path | None = None


THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def worker_threads(workers: int, cores: int | None, environ: Mapping[str, str]) -> int | None:
    """Math-library threads per worker: the cores shared out (at least 1), or None when the operator has set
    ``OMP_NUM_THREADS`` (theirs wins). N workers each running torch with every core's threads would contend."""
    if "OMP_NUM_THREADS" in environ:
        return None
    return max(1, (cores or 1) // max(workers, 1))


def run_workers(settings: ServiceSettings, *, state: str, loader: str, host: str, port: int, log_level: str,
                cores: list[int] | None = None) -> None:
    """Snapshot and check the artifact, then serve with ``settings.workers`` uvicorn worker processes until
    SIGTERM / SIGINT, then clean up (``ReloadRefusedError`` when the artifact does not load). ``cores``: the
    cores to pin the workers to (``settings.pin_workers``; None: read here when pinning)."""
    root = Path(tempfile.mkdtemp(prefix="rankstack-serve-"))
    (root / "metrics").mkdir()
    (root / "control").mkdir()
    spec = WorkerSpec(settings=settings, state=state, loader=loader, control_dir=root / "control",
                      snapshots=root / "snapshots")
    saved = {name: os.environ.get(name) for name in (SPEC_ENV, METRICS_ENV, *THREAD_ENV)}
    threads = worker_threads(settings.workers, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                             else os.cpu_count(), os.environ)
    try:
        files = take_snapshot(settings.artifact, root / "snapshots")
        problem = _check_in_child(loader, settings.artifact, files, settings.warmup_user)
        if problem is not None:
            raise ReloadRefusedError(problem)
        publish_start(spec.control_dir, settings.artifact, files)
        os.environ[SPEC_ENV] = spec.model_dump_json()
        os.environ[METRICS_ENV] = str(root / "metrics")
        if threads is not None:  # the workers, spawned below, inherit it before they import torch
            for name in THREAD_ENV:
                os.environ[name] = str(threads)
        if settings.pin_workers and cores is None:
            cores = usable_cores()
        if hasattr(socket, "SO_REUSEPORT"):
            _supervise(settings.workers, host, port, log_level, spec.control_dir, cores)
        else:  # pragma: no cover - platforms without SO_REUSEPORT
            uvicorn.run(f"{__name__}:worker_app", factory=True, host=host, port=port, workers=settings.workers,
                        log_level=log_level, access_log=False,
                        http=CoalescingHttpToolsProtocol, limit_concurrency=settings.max_connections,
                        backlog=settings.backlog)
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


def _serve_worker(host: str, port: int, log_level: str, core: int | None = None) -> None:
    """One worker process (on ``core`` only, when given): its own listening socket, then uvicorn until SIGTERM /
    SIGINT."""
    if core is not None:  # before any thread starts, so each inherits it
        pin_process(core)
    settings = WorkerSpec.model_validate_json(os.environ[SPEC_ENV]).settings
    sock = reuse_port_socket(host, port)
    config = uvicorn.Config(f"{__name__}:worker_app", factory=True, log_level=log_level, access_log=False,
                            http=CoalescingHttpToolsProtocol, limit_concurrency=settings.max_connections,
                            backlog=settings.backlog)
    uvicorn.Server(config).run(sockets=[sock])


def _check_artifact(loader: str, artifact: Path, files: Path, warmup_user: str) -> str | None:
    """Load and smoke-test the snapshot as a worker will, without its warm-up (each worker warms its own); the
    refusal, or None."""
    try:
        ModelSlot(resolve_loader(loader), artifact, warmup_user, warm=False, files=files).close()
    except RankstackError as exc:
        return str(exc)
    return None


def _check_in_child(loader: str, artifact: Path, files: Path, warmup_user: str) -> str | None:
    """``_check_artifact`` in a short-lived child process, so that the supervising parent of several workers does
    not keep a copy of the model (~565 MB resident for the 41k-item benchmark pipeline)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_check_artifact, loader, artifact, files, warmup_user).result()


@dataclass
class _Seat:
    """One worker place: its process (None while waiting to retry), whether it ever served, its failed starts."""

    process: multiprocessing.process.BaseProcess | None
    core: int | None = None  # with --pin-workers: the core its worker (and any replacement) runs on
    first: bool = True
    served: bool = False
    failures: int = 0
    retry_at: float = 0.0


def _supervise(workers: int, host: str, port: int, log_level: str, control_dir: Path,
               cores: list[int] | None = None) -> None:
    """Start ``workers`` worker processes (with ``cores``, worker i pinned to ``seat_core(i, cores)``), replace any
    that dies, stop them all on SIGTERM / SIGINT. A worker of the first start that cannot start
    (``STARTUP_FAILURE``) stops the service; a replacement that cannot start, or dies before serving, is started
    again after a back-off (on the same core), and the healthy workers keep serving."""
    holder = reuse_port_socket(host, port)  # bound, never listening: the port is ours before any worker starts
    context = multiprocessing.get_context("spawn")
    stop: list[int] = []
    previous = {sig: signal.signal(sig, lambda sig, _frame: stop.append(sig))
                for sig in (signal.SIGTERM, signal.SIGINT)}

    def start(core: int | None) -> multiprocessing.process.BaseProcess:
        process = context.Process(target=_serve_worker, args=(host, port, log_level, core), name="rankstack-worker")
        process.start()
        return process

    places = [None if cores is None else seat_core(i, cores) for i in range(workers)]
    seats = [_Seat(start(core), core) for core in places]
    failed = False
    try:
        while not stop and not failed:
            time.sleep(0.2)
            for seat in seats:
                if stop:
                    break
                failed = _tend(seat, start, control_dir, seats)
                if failed:
                    break
    finally:
        processes = [seat.process for seat in seats if seat.process is not None]
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


def _tend(seat: _Seat, start: Callable[[int | None], multiprocessing.process.BaseProcess], control_dir: Path,
          seats: list[_Seat]) -> bool:
    """Look after one worker place: note when its worker serves, replace a dead one (after a back-off if it never
    served); True when the service must stop (a worker of the first start could not start)."""
    process = seat.process
    now = time.monotonic()
    if process is None:
        if now >= seat.retry_at:
            seat.process, seat.served = start(seat.core), False
        return False
    if not seat.served and _acknowledged(control_dir, process):  # a killed worker's acknowledgement stays
        seat.served, seat.failures = True, 0
    if process.is_alive():
        return False
    for name in (f"ack-{process.pid}.json", f"load-{process.pid}.json"):  # a later process may get the same pid
        (control_dir / name).unlink(missing_ok=True)
    if seat.first and not seat.served and process.exitcode == STARTUP_FAILURE:
        log.error("worker %s could not start: stopping the service", process.pid)
        return True
    seat.first = False
    if seat.served:
        log.warning("worker %s died (exit code %s): starting another", process.pid, process.exitcode)
        seat.process, seat.served = start(seat.core), False
        return False
    seat.failures += 1
    delay = min(RETRY_S * 2 ** (seat.failures - 1), RETRY_MAX_S)
    serving = sum(s.process is not None and s.process.is_alive() and _acknowledged(control_dir, s.process)
                  for s in seats)
    log.error("replacement worker %s could not start (exit code %s, attempt %d): trying again in %g s; %d of %d "
              "workers serve meanwhile", process.pid, process.exitcode, seat.failures, delay, serving, len(seats))
    seat.process, seat.retry_at = None, now + delay
    return False


def _acknowledged(control_dir: Path, process: multiprocessing.process.BaseProcess) -> bool:
    """Whether the worker got as far as serving (it writes its reload acknowledgement once its app has started)."""
    return (control_dir / f"ack-{process.pid}.json").exists()


def worker_app() -> FastAPI:
    """uvicorn's app factory, run in each worker: its own state store and model, joined to the reload group."""
    spec = WorkerSpec.model_validate_json(os.environ[SPEC_ENV])
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    metrics_dir = os.environ[METRICS_ENV]
    _forget_dead_workers(metrics_dir)
    try:
        store = open_state(spec.state)
        group = ReloadGroup(spec.control_dir, snapshots=spec.snapshots)
        app = create_app(resolve_loader(spec.loader), store, spec.settings, group=group,
                         on_shutdown=[getattr(store, "close", lambda: None),
                                      lambda: multiprocess.mark_process_dead(os.getpid(), metrics_dir)])
    except RankstackError as exc:  # the supervisor stops the service (first start) or retries (a replacement)
        log.error("worker %d cannot start: %s", os.getpid(), exc)
        sys.exit(STARTUP_FAILURE)
    return app


def _forget_dead_workers(metrics_dir: str) -> None:
    """Drop the live-gauge files of workers that died without shutting down (uvicorn replaced them)."""
    for path in Path(metrics_dir).glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        if not pid_alive(pid):
            multiprocess.mark_process_dead(pid, metrics_dir)
