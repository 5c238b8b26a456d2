"""HTTP service: FastAPI app over a ``Recommender`` and a ``StateStore``, with metrics and hot reload.

One process by default; ``--workers N`` (``ServiceSettings.workers``) runs N uvicorn worker processes on one
port, each with its own model, micro-batcher and state-store connection: ``/metrics`` adds up all of them
(prometheus_client multiprocess mode), ``/admin/reload`` reaches every worker (``fanout``) and each response
names the worker that answered (``X-Rankstack-Worker``). See ``workers`` and docs/serving.md.


The names below are imported on first use (``rankstack.lazy_exports``), so importing one submodule does not
import the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from rankstack.serving.app import create_app
    from rankstack.serving.model_slot import RecommenderLoader, ReloadRefusedError
    from rankstack.serving.settings import ServiceSettings

_HOME = {
    "create_app": "app",
    **dict.fromkeys(["RecommenderLoader", "ReloadRefusedError"], "model_slot"),
    "ServiceSettings": "settings",
}

__all__ = ["RecommenderLoader", "ReloadRefusedError", "ServiceSettings", "create_app"]

__getattr__ = lazy_getattr(__name__, _HOME)
