"""``python -m rankstack.serving ARTIFACT …``: the service without loading the whole CLI (faster start)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rankstack.errors import RankstackError
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


def main(argv: list[str] | None = None) -> int:
    """Parse the same options as ``rankstack serve`` and run the server; 2 on a configuration error."""
    parser = argparse.ArgumentParser(prog="python -m rankstack.serving", description=__doc__)
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--state", default=DEFAULT_STATE)
    parser.add_argument("--deadline-ms", type=float, default=100.0)
    parser.add_argument("--loader", default=DEFAULT_LOADER)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--workers", type=int, default=1, help=WORKERS_HELP)
    parser.add_argument("--pin-workers", action=argparse.BooleanOptionalAction, default=False, help=PIN_WORKERS_HELP)
    parser.add_argument("--balance-workers", action=argparse.BooleanOptionalAction, default=True,
                        help=BALANCE_WORKERS_HELP)
    parser.add_argument("--max-batch", type=int, default=32, help=MAX_BATCH_HELP)
    parser.add_argument("--batch-wait-ms", type=float, default=DEFAULT_BATCH_WAIT_MS, help=BATCH_WAIT_HELP)
    parser.add_argument("--batcher", choices=["loop", "thread"], default="loop", help=BATCHER_HELP)
    parser.add_argument("--inline-batch-ms", type=float, default=50.0, help=INLINE_BATCH_HELP)
    parser.add_argument("--shed", action=argparse.BooleanOptionalAction, default=True, help=SHED_HELP)
    parser.add_argument("--max-queue", type=int, default=1_000, help=MAX_QUEUE_HELP)
    parser.add_argument("--max-connections", type=int, default=None, help=MAX_CONNECTIONS_HELP)
    parser.add_argument("--event-deadline-ms", type=float, default=1000.0, help=EVENT_DEADLINE_HELP)
    parser.add_argument("--request-start-header", default=None, metavar="NAME", help=REQUEST_START_HELP)
    args = parser.parse_args(argv)
    try:
        run_server(args.artifact, host=args.host, port=args.port, state=args.state, deadline_ms=args.deadline_ms,
                   loader=args.loader, log_level=args.log_level, workers=args.workers, max_batch=args.max_batch,
                   batch_wait_ms=args.batch_wait_ms, batcher=args.batcher, shed=args.shed, max_queue=args.max_queue,
                   max_connections=args.max_connections, inline_batch_ms=args.inline_batch_ms,
                   request_start_header=args.request_start_header, event_deadline_ms=args.event_deadline_ms,
                   pin_workers=args.pin_workers, balance_workers=args.balance_workers)
    except RankstackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
