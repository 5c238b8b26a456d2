"""Build the app from command-line style settings and run it on uvicorn (shared by the CLI and ``-m``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import uvicorn

from rankstack.serving.app import create_app
from rankstack.serving.loaders import DEFAULT_LOADER, resolve_loader
from rankstack.serving.settings import ServiceSettings
from rankstack.state import RedisStateStore, open_state

DEFAULT_STATE = "sqlite:rankstack-state.db"
# The event loop, the batch worker and the pipeline's stage threads share one GIL; CPython's default 5 ms
# switch interval makes a thread that becomes runnable wait up to 5 ms behind a busy one. 0.5 ms cut the
# median latency by a third under load on the 2-core box (docs/benchmarks.md, Serving).
SWITCH_INTERVAL_S = 0.0005


def _stderr(message: str) -> None:
    """Print one line to standard error."""
    print(message, file=sys.stderr, flush=True)


def run_server(artifact: Path, *, host: str = "127.0.0.1", port: int = 8000, state: str = DEFAULT_STATE,
               deadline_ms: float = 100.0, loader: str = DEFAULT_LOADER, log_level: str = "warning",
               say: Callable[[str], None] = _stderr) -> None:
    """Open the state store, load the artifact (errors are ``RankstackError``s), then serve until stopped."""
    settings = ServiceSettings.from_env(artifact, deadline_s=deadline_ms / 1000.0)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    store = open_state(state)
    try:
        if isinstance(store, RedisStateStore) and store.healthy() and (problem := store.durability_problem()):
            say(f"warning: {problem}")
        app = create_app(resolve_loader(loader), store, settings)
        if settings.admin_token is None:
            say("admin endpoints are off (set RANKSTACK_ADMIN_TOKEN to enable /admin/reload)")
        say(f"serving {artifact} on http://{host}:{port} (state: {state}; OpenAPI at /openapi.json)")
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()
