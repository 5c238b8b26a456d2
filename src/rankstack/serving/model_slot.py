"""The served recommender behind one reference: load fully, smoke-test, then swap atomically."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rankstack.errors import RankstackError
from rankstack.pipeline.api import Recommender, RecommendRequest

RecommenderLoader = Callable[[Path], Recommender]


class ReloadRefusedError(RankstackError):
    """A new artifact could not be loaded or failed its smoke request; the old one keeps serving."""


@dataclass(frozen=True)
class Loaded:
    """One loaded artifact: requests take a reference at their start and finish on it."""

    recommender: Recommender
    artifact: Path
    loaded_at: float


class ModelSlot:
    """Holds the current ``Loaded``; ``reload`` builds the next one aside and swaps a single reference."""

    def __init__(self, loader: RecommenderLoader, artifact: Path, warmup_user: str) -> None:
        self.loader = loader
        self.warmup_user = warmup_user
        self._reload_lock = threading.Lock()
        self.current = self._load(artifact)

    def _load(self, artifact: Path) -> Loaded:
        """Load an artifact and run one smoke request on it; any failure is a ``ReloadRefusedError``."""
        try:
            recommender = self.loader(artifact)
            recommender.recommend([RecommendRequest(user_id=self.warmup_user, k=1)], None)
        except Exception as exc:
            raise ReloadRefusedError(f"artifact {artifact} refused: {type(exc).__name__}: {exc}") from exc
        return Loaded(recommender, artifact, time.time())

    def reload(self, artifact: Path | None = None) -> tuple[Loaded, Loaded]:
        """Serve ``artifact`` (default: the current path again); returns (previous, new). One reload at a time."""
        with self._reload_lock:
            previous = self.current
            loaded = self._load(artifact or previous.artifact)
            self.current = loaded
            return previous, loaded
