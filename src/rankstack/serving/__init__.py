"""HTTP service: FastAPI app over a ``Recommender`` and a ``StateStore``, with metrics and hot reload."""

from rankstack.serving.app import create_app
from rankstack.serving.model_slot import RecommenderLoader, ReloadRefusedError
from rankstack.serving.settings import ServiceSettings

__all__ = ["RecommenderLoader", "ReloadRefusedError", "ServiceSettings", "create_app"]
