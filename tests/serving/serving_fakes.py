"""A tiny deterministic Recommender and artifact format for testing the service without a trained pipeline."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rankstack.errors import RankstackError
from rankstack.events import Event
from rankstack.pipeline.api import RecommendRequest, RecommendResponse, ScoredItem
from rankstack.state.store import StateStore

TOKEN = "test-admin-token-0123456789"


class FakeArtifactError(RankstackError):
    """The fake artifact is corrupt or of another format."""


class FakeRecommender:
    """Items ``i0 … i{n-1}`` scored 1/(1+j); items the user recently clicked are left out (reads online state)."""

    def __init__(self, version: str = "v1", n_items: int = 50, delay_s: float = 0.0,
                 delay_per_request_s: float = 0.0) -> None:
        self.version = version
        self.n_items = n_items
        self.delay_s = delay_s
        self.delay_per_request_s = delay_per_request_s
        self.started = threading.Event()
        self.fail = False
        self.last_deadline_s: float | None = None
        self.cached_users: set[str] = set()  # a stand-in state cache: a user's first request misses, later ones hit
        self.cache_hits = self.cache_misses = 0

    def recommend(self, requests: Sequence[RecommendRequest], state: StateStore | None = None, *,
                  deadline_s: float | None = None) -> list[RecommendResponse]:
        """One slate per request, the same for the same inputs and state."""
        self.started.set()
        self.last_deadline_s = deadline_s
        if self.fail:
            raise RuntimeError("boom")
        time.sleep(self.delay_s + self.delay_per_request_s * len(requests))
        out = []
        for req in requests:
            if req.user_id in self.cached_users:
                self.cache_hits += 1
            else:
                self.cache_misses += 1
                self.cached_users.add(req.user_id)
            history = set(state.recent_items(req.user_id, 5)) if state is not None else set()
            banned = history | set(req.exclude)
            items = [ScoredItem(item_id=f"i{j}", score=1.0 / (1 + j), propensity=1.0)
                     for j in range(self.n_items) if f"i{j}" not in banned][: req.k]
            out.append(RecommendResponse(
                request_id=req.request_id or "offline", user_id=req.user_id, items=items, model_version=self.version,
                stages={"retrieval": "ran", "ranking": "ran", "reranking": "ran"},
                stage_ms={"retrieval": 0.1, "ranking": 0.2, "reranking": 0.05},
            ))
        return out

    def state_cache_counts(self) -> tuple[int, int, int]:
        """(hits, misses, entries) of the stand-in state cache, as ``Pipeline.state_cache_counts``."""
        return self.cache_hits, self.cache_misses, len(self.cached_users)

    def describe(self) -> dict[str, Any]:
        """Version and catalog size."""
        return {"version": self.version, "n_items": self.n_items}

    def known_items(self, item_ids: Sequence[str]) -> list[bool]:
        """True for ``i0 … i{n-1}``."""
        catalog = {f"i{j}" for j in range(self.n_items)}
        return [i in catalog for i in item_ids]


def write_fake_artifact(path: Path, version: str = "v1", n_items: int = 50, delay_s: float = 0.0,
                        load_once: bool = False, delay_per_request_s: float = 0.0) -> Path:
    """A folder with the fake manifest (a batch of b requests sleeps ``delay_s + b · delay_per_request_s``); a
    ``load_once`` artifact refuses every load after its first."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "manifest.json").write_text(json.dumps({"format": 1, "version": version, "n_items": n_items,
                                                    "delay_s": delay_s, "load_once": load_once,
                                                    "delay_per_request_s": delay_per_request_s}))
    return path


def load_fake(path: Path) -> FakeRecommender:
    """Load a fake artifact; corrupt or other-format manifests raise ``FakeArtifactError``."""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise FakeArtifactError(f"{path}: unreadable manifest: {exc}") from exc
    if manifest.get("format") != 1:
        raise FakeArtifactError(f"{path}: artifact format {manifest.get('format')!r} is not supported (expected 1)")
    if manifest.get("load_once"):
        try:
            (path / "loaded").open("x").close()
        except FileExistsError:
            raise FakeArtifactError(f"{path}: this artifact may be loaded once only") from None
    return FakeRecommender(manifest["version"], manifest["n_items"], manifest.get("delay_s", 0.0),
                           manifest.get("delay_per_request_s", 0.0))


def click(eid: str, user: str = "u1", item: str = "i0", kind: str = "click", **kw: Any) -> dict[str, Any]:
    """An event as JSON for the events endpoint."""
    return Event(event_id=eid, user_id=user, item_id=item, event=kind, **kw).model_dump(exclude_none=True)  # type: ignore[arg-type]
