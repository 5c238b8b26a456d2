"""ModelSlot warms a freshly loaded recommender up before it serves, and refuses one whose warm-up fails."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Sequence
from pathlib import Path

import pytest

from rankstack.pipeline.api import RecommendRequest, RecommendResponse
from rankstack.serving.model_slot import ModelSlot, ReloadRefusedError
from rankstack.state.store import StateStore


class WarmingRecommender:
    """Counts smoke requests and warm-ups; ``fail_warmup`` makes the warm-up raise."""

    def __init__(self, fail_warmup: bool = False) -> None:
        self.calls: list[str] = []
        self.fail_warmup = fail_warmup

    def recommend(self, requests: Sequence[RecommendRequest], state: StateStore | None = None, *,
                  deadline_s: float | None = None) -> list[RecommendResponse]:
        self.calls.append("recommend")
        return [RecommendResponse(request_id="r", user_id=r.user_id, items=[], stages={}, model_version="v",
                                  fallback=None, stage_ms={}) for r in requests]

    def warmup(self) -> None:
        self.calls.append("warmup")
        if self.fail_warmup:
            raise RuntimeError("cold stage broke")

    def known_items(self, item_ids: Sequence[str]) -> list[bool]:
        return [True] * len(item_ids)


def test_every_load_runs_the_smoke_request_then_the_warmup(tmp_path: Path) -> None:
    loaded: list[WarmingRecommender] = []

    def loader(path: Path) -> WarmingRecommender:
        loaded.append(WarmingRecommender())
        return loaded[-1]

    slot = ModelSlot(loader, tmp_path, "warmup-user")  # type: ignore[arg-type]
    slot.reload()
    assert [r.calls for r in loaded] == [["recommend", "warmup"], ["recommend", "warmup"]]


def test_a_failing_warmup_refuses_the_artifact_and_keeps_the_old_model(tmp_path: Path) -> None:
    good = WarmingRecommender()
    slot = ModelSlot(lambda path: good, tmp_path, "warmup-user")  # type: ignore[arg-type,return-value]
    bad = WarmingRecommender(fail_warmup=True)
    slot.loader = lambda path: bad  # type: ignore[assignment,return-value]
    with pytest.raises(ReloadRefusedError, match="cold stage broke"):
        slot.reload()
    assert slot.current.recommender is good


def test_a_slot_that_only_checks_runs_the_smoke_request_without_the_warmup(tmp_path: Path) -> None:
    checked = WarmingRecommender()
    ModelSlot(lambda path: checked, tmp_path, "warmup-user", warm=False).close()  # type: ignore[arg-type,return-value]
    assert checked.calls == ["recommend"]


class Cycle:
    """An object in a reference cycle with itself (only the cyclic collector frees it)."""

    def __init__(self) -> None:
        self.me = self


def test_a_load_collects_garbage_then_freezes_what_lives(tmp_path: Path) -> None:
    kept, dropped = Cycle(), Cycle()
    dropped_ref = weakref.ref(dropped)
    del dropped
    before = gc.get_freeze_count()
    slot = ModelSlot(lambda path: WarmingRecommender(), tmp_path, "u1")
    assert dropped_ref() is None  # collected before the freeze, not frozen with the live objects
    assert gc.get_freeze_count() > before and kept.me is kept
    frozen = gc.get_freeze_count()
    slot.reload()
    assert gc.get_freeze_count() >= frozen


class CollectorWatch(WarmingRecommender):
    """Records whether automatic garbage collection was on during the smoke request and the warm-up."""

    def __init__(self) -> None:
        super().__init__()
        self.collector: list[bool] = []

    def recommend(self, requests: Sequence[RecommendRequest], state: StateStore | None = None, *,
                  deadline_s: float | None = None) -> list[RecommendResponse]:
        self.collector.append(gc.isenabled())
        return super().recommend(requests, state, deadline_s=deadline_s)

    def warmup(self) -> None:
        self.collector.append(gc.isenabled())
        super().warmup()


@pytest.mark.parametrize("enabled_before", [True, False])
def test_a_serving_load_runs_without_automatic_collection_and_restores_it(tmp_path: Path,
                                                                           enabled_before: bool) -> None:
    seen: list[bool] = []

    def load(path: Path) -> CollectorWatch:
        seen.append(gc.isenabled())
        return watch

    watch = CollectorWatch()
    (gc.enable if enabled_before else gc.disable)()
    try:
        ModelSlot(load, tmp_path, "u1")  # type: ignore[arg-type]
        assert seen == [False] and watch.collector == [False, False]
        assert gc.isenabled() is enabled_before
        with pytest.raises(ReloadRefusedError):  # a failed load restores it too
            ModelSlot(lambda path: WarmingRecommender(fail_warmup=True), tmp_path, "u1")  # type: ignore[arg-type,return-value]
        assert gc.isenabled() is enabled_before
        ModelSlot(load, tmp_path, "u1", warm=False)  # a check-only slot leaves the collector alone
        assert seen[-1] is enabled_before
    finally:
        gc.enable()
