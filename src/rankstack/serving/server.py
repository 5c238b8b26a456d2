"""Build the app from command-line style settings and run it on uvicorn (shared by the CLI and ``-m``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import uvicorn

from rankstack.pipeline.components import open_state
from rankstack.serving.affinity import pin_process, seat_core, usable_cores
from rankstack.serving.app import create_app
from rankstack.serving.http_protocol import CoalescingHttpToolsProtocol
from rankstack.serving.loaders import DEFAULT_LOADER, resolve_loader
from rankstack.serving.settings import DEFAULT_BATCH_WAIT_MS, SWITCH_INTERVAL_S, ServiceSettings
from rankstack.serving.workers import run_workers
from rankstack.state.store import StateStore

__all__ = ["BATCHER_HELP", "BATCH_WAIT_HELP", "DEFAULT_STATE", "EVENT_DEADLINE_HELP", "INLINE_BATCH_HELP",
           "MAX_BATCH_HELP", "MAX_CONNECTIONS_HELP", "MAX_QUEUE_HELP", "REQUEST_START_HELP", "SHED_HELP",
           "SWITCH_INTERVAL_S", "WORKERS_HELP", "run_server"]
DEFAULT_STATE = "sqlite:rankstack-state.db"
WORKERS_HELP = ("Server processes sharing the port (default 1; one Python process uses about one core). Each loads "
                "the artifact and opens the state store; /metrics adds them up and /admin/reload reaches all.")
MAX_BATCH_HELP = "Most concurrent recommend requests answered by one pipeline call (micro-batching; default 32)."
BATCHER_HELP = ("Where recommend batches run: 'loop' (default) on the event loop's thread, so no second thread "
                "competes for the GIL; 'thread' on a worker thread, so the loop keeps reading requests meanwhile.")
INLINE_BATCH_HELP = ("With --batcher loop: batches expected to take longer than this many milliseconds run on a "
                     "worker thread, so refusals and /healthz are answered while they run (default 50).")
BATCH_WAIT_HELP = (f"Longest wait in milliseconds for a batch to fill (default {DEFAULT_BATCH_WAIT_MS:g}), scaled by "
                   "how busy the worker was over the last half second: a lightly loaded service answers at once, "
                   "a busy one fills larger batches, which cost less CPU per request. 0: never wait.")

SHED_HELP = ("Load shedding (default on): a recommend request that cannot be answered within --deadline-ms gets 503 "
             "with Retry-After at once instead of queueing; --no-shed queues up to --max-queue and degrades late.")
MAX_QUEUE_HELP = "Hard bound on waiting recommend requests (and on waiting event posts); beyond it 503 (default 1000)."
MAX_CONNECTIONS_HELP = ("Open connections (or requests) at which uvicorn answers new requests itself with a plain 503, "
                        "/healthz included (default: no limit).")

EVENT_DEADLINE_HELP = ("With shedding on: an event post arriving while the oldest post in flight has waited longer "
                       "than this many milliseconds to be stored gets 503 with Retry-After, nothing stored "
                       "(default 1000).")
PIN_WORKERS_HELP = ("Run each server process on one core (worker i on the i-th core this process may use, round "
                    "robin): for a box given to the service; Linux only. Off by default.")
BALANCE_WORKERS_HELP = ("With several workers: a worker taking over 10% more requests than the workers' mean closes "
                        "some kept-alive connections so clients reconnect and the kernel places them anew. On by "
                        "default.")
REQUEST_START_HELP = ("Header a front proxy stamps with when it received the request (e.g. X-Request-Start, nginx: "
                      "t=${msec}); recommend deadlines then count from that stamp, so requests that waited upstream "
                      "are shed by their real age. Off by default; the proxy's clock must agree with this one's.")


def _stderr(message: str) -> None:
    """Print one line to standard error."""
    print(message, file=sys.stderr, flush=True)


def run_server(artifact: Path, *, host: str = "127.0.0.1", port: int = 8000, state: str = DEFAULT_STATE,
               deadline_ms: float = 100.0, loader: str = DEFAULT_LOADER, log_level: str = "warning",
               workers: int = 1, max_batch: int = 32, batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
               batcher: str = "loop",
               shed: bool = True, max_queue: int = 1_000, max_connections: int | None = None,
               inline_batch_ms: float = 50.0, request_start_header: str | None = None,
               event_deadline_ms: float = 1000.0, pin_workers: bool = False, balance_workers: bool = True,
               say: Callable[[str], None] = _stderr) -> None:
    """Open the state store, load the artifact (errors are ``RankstackError``s), then serve until stopped.

    With ``workers`` > 1 the store is checked here and the artifact by ``run_workers`` (on its snapshot), then
    each worker process opens its own."""
    settings = ServiceSettings.from_env(artifact, deadline_s=deadline_ms / 1000.0, workers=workers,
                                        max_batch=max_batch, batch_wait_ms=batch_wait_ms, batcher=batcher,
                                        shed=shed, max_queue=max_queue, max_connections=max_connections,
                                        inline_batch_ms=inline_batch_ms,
                                        request_start_header=request_start_header,
                                        event_deadline_s=event_deadline_ms / 1000.0, pin_workers=pin_workers,
                                        balance_workers=balance_workers)
    cores = usable_cores() if settings.pin_workers else None  # refused here where the platform cannot pin
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    store = open_state(state)  # the app warns when the store's durability settings can lose events
    try:
        if settings.workers == 1:
            if cores is not None:
                pin_process(seat_core(0, cores))
            app = create_app(resolve_loader(loader), store, settings)
            _announce(settings, host, port, state, say)
            uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False,
                        http=CoalescingHttpToolsProtocol,
                        limit_concurrency=settings.max_connections, backlog=settings.backlog)
            return
    finally:
        _close(store)
    _announce(settings, host, port, state, say)
    run_workers(settings, state=state, loader=loader, host=host, port=port, log_level=log_level, cores=cores)


def _announce(settings: ServiceSettings, host: str, port: int, state: str, say: Callable[[str], None]) -> None:
    """Say what is served where, and whether admin endpoints are on."""
    if settings.admin_token is None:
        say("admin endpoints are off (set RANKSTACK_ADMIN_TOKEN to enable /admin/reload)")
    workers = f"; {settings.workers} worker processes" if settings.workers > 1 else ""
    say(f"serving {settings.artifact} on http://{host}:{port} (state: {state}; OpenAPI at /openapi.json{workers})")


def _close(store: StateStore) -> None:
    """Close the state store if it has a ``close``."""
    close = getattr(store, "close", None)
    if callable(close):
        close()
