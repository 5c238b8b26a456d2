"""``rankstack serve ARTIFACT``: the HTTP service (FastAPI on uvicorn) over a trained pipeline artifact."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from rankstack.cli.common import err_console, friendly_errors
from rankstack.serving.loaders import DEFAULT_LOADER
from rankstack.serving.server import (
    BALANCE_WORKERS_HELP,
    BATCH_WAIT_HELP,
    BATCHER_HELP,
    DEFAULT_BATCH_WAIT_MS,
    DEFAULT_STATE,
    EVENT_DEADLINE_HELP,
    INLINE_BATCH_HELP,
    MAX_BATCH_HELP,
    MAX_CONNECTIONS_HELP,
    MAX_QUEUE_HELP,
    PIN_WORKERS_HELP,
    REQUEST_START_HELP,
    SHED_HELP,
    WORKERS_HELP,
    run_server,
)


class Batcher(StrEnum):
    """Where recommend batches run (``rankstack serve --batcher``)."""

    loop = "loop"
    thread = "thread"


def serve(
    artifact: Annotated[Path, typer.Argument(help="Pipeline artifact folder (from `rankstack train -o`).")],
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.", min=1, max=65535)] = 8000,
    state: Annotated[str, typer.Option("--state", help="Online state: sqlite:PATH or redis://HOST:PORT/DB.")
                     ] = DEFAULT_STATE,
    deadline_ms: Annotated[float, typer.Option("--deadline-ms", help="Time budget per request for the pipeline.",
                                               min=1)] = 100.0,
    loader: Annotated[str, typer.Option("--loader", help="MODULE:CALLABLE turning the artifact path into a "
                                        "Recommender.")] = DEFAULT_LOADER,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "warning",
    workers: Annotated[int, typer.Option("--workers", help=WORKERS_HELP, min=1)] = 1,
    pin_workers: Annotated[bool, typer.Option("--pin-workers/--no-pin-workers", help=PIN_WORKERS_HELP)] = False,
    balance_workers: Annotated[bool, typer.Option("--balance-workers/--no-balance-workers",
                                                  help=BALANCE_WORKERS_HELP)] = True,
    max_batch: Annotated[int, typer.Option("--max-batch", help=MAX_BATCH_HELP, min=1, max=1024)] = 32,
    batch_wait_ms: Annotated[float, typer.Option("--batch-wait-ms", help=BATCH_WAIT_HELP, min=0,
                                                 max=100)] = DEFAULT_BATCH_WAIT_MS,
    batcher: Annotated[Batcher, typer.Option("--batcher", help=BATCHER_HELP)] = Batcher.loop,
    inline_batch_ms: Annotated[float, typer.Option("--inline-batch-ms", help=INLINE_BATCH_HELP, min=0)] = 50.0,
    shed: Annotated[bool, typer.Option("--shed/--no-shed", help=SHED_HELP)] = True,
    max_queue: Annotated[int, typer.Option("--max-queue", help=MAX_QUEUE_HELP, min=1)] = 1_000,
    max_connections: Annotated[int | None, typer.Option("--max-connections", help=MAX_CONNECTIONS_HELP, min=1)
                               ] = None,
    event_deadline_ms: Annotated[float, typer.Option("--event-deadline-ms", help=EVENT_DEADLINE_HELP, min=1)
                                 ] = 1000.0,
    request_start_header: Annotated[str | None, typer.Option("--request-start-header", help=REQUEST_START_HELP,
                                                             metavar="NAME")] = None,
) -> None:
    """Serve recommendations over HTTP: /v1/recommend, /v1/events, /healthz, /readyz, /metrics, /admin/reload."""
    with friendly_errors():
        run_server(artifact, host=host, port=port, state=state, deadline_ms=deadline_ms, loader=loader,
                   log_level=log_level, workers=workers, max_batch=max_batch, batch_wait_ms=batch_wait_ms,
                   batcher=batcher.value, shed=shed, max_queue=max_queue, max_connections=max_connections,
                   inline_batch_ms=inline_batch_ms, request_start_header=request_start_header,
                   event_deadline_ms=event_deadline_ms, pin_workers=pin_workers,
                   balance_workers=balance_workers,
                   say=lambda message: err_console.print(message, highlight=False))
