"""``rankstack serve ARTIFACT``: the HTTP service (FastAPI on uvicorn) over a trained pipeline artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rankstack.cli.common import err_console, friendly_errors
from rankstack.serving.loaders import DEFAULT_LOADER

DEFAULT_STATE = "sqlite:rankstack-state.db"


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
) -> None:
    """Serve recommendations over HTTP: /v1/recommend, /v1/events, /healthz, /readyz, /metrics, /admin/reload."""
    import uvicorn

    from rankstack.serving import ServiceSettings, create_app
    from rankstack.serving.loaders import resolve_loader
    from rankstack.state import RedisStateStore, open_state

    with friendly_errors():
        settings = ServiceSettings.from_env(artifact, deadline_s=deadline_ms / 1000.0)
        store = open_state(state)
        if isinstance(store, RedisStateStore) and store.healthy() and (problem := store.durability_problem()):
            err_console.print(f"[yellow]warning:[/yellow] {problem}")
        app = create_app(resolve_loader(loader), store, settings)
    if settings.admin_token is None:
        err_console.print("admin endpoints are off (set RANKSTACK_ADMIN_TOKEN to enable /admin/reload)")
    err_console.print(f"serving {artifact} on http://{host}:{port} (state: {state}; docs at /docs)")
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()
