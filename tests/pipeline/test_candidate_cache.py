"""The merged-candidate cache: cached slates equal computed ones, LRU bounds, warm-up order, what is never kept."""

from __future__ import annotations

import logging
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from rankstack.data.dataset import Dataset
from rankstack.pipeline import pipeline as pipeline_module
from rankstack.pipeline import stages as st
from rankstack.pipeline.api import RecommendRequest, RecommendResponse
from rankstack.pipeline.candidate_cache import CandidateCache, row_bytes
from rankstack.pipeline.pipeline import Pipeline

from .conftest import build
from .test_recommend import FakeState

SOURCES = ("popular", "itemknn")


def row_table(users: list[int], width: int = 6, sources: tuple[str, ...] = SOURCES) -> st.CandidateTable:
    """A table whose row for user u is derived from u alone (so any read-back names the user it came from)."""
    u = np.asarray(users, dtype=np.int64)[:, None]
    cols = np.arange(width)[None, :]
    ids = np.where(cols < width - 1, u * 10 + cols, -1)
    fused = np.where(ids >= 0, (u + 1) / (cols + 2.0), -np.inf).astype(np.float32).astype(np.float64)
    scores = {n: np.where(cols % (j + 2) == 0, u + j + 0.5, np.nan).astype(np.float32).astype(np.float64)
              for j, n in enumerate(sources)}
    return st.CandidateTable(ids, fused, scores)


def assert_tables_equal(got: st.CandidateTable, want: st.CandidateTable) -> None:
    assert got.item_ids.dtype == np.int64 and got.retrieval.dtype == np.float64
    np.testing.assert_array_equal(got.item_ids, want.item_ids)
    np.testing.assert_array_equal(got.retrieval, want.retrieval)
    assert set(got.source_scores) == set(want.source_scores)
    for name, scores in want.source_scores.items():
        np.testing.assert_array_equal(got.source_scores[name], scores)


def test_rows_read_back_exactly_and_count_hits() -> None:
    cache = CandidateCache(4, 6, SOURCES)
    assert cache.put(np.array([7, 3]), row_table([7, 3])) == 2
    found, table = cache.get(np.array([3, 9, 7]))
    assert found.tolist() == [True, False, True]
    assert table is not None
    assert_tables_equal(table, row_table([3, 7]))
    assert (cache.hits, cache.misses, len(cache)) == (2, 1, 2)
    assert cache.nbytes == 2 * row_bytes(6, 2)
    found, table = cache.get(np.array([1]))
    assert found.tolist() == [False] and table is None


@given(hst.lists(hst.tuples(hst.sampled_from(["get", "put"]), hst.lists(hst.integers(0, 12), min_size=1,
                                                                          max_size=5, unique=True)),
                 max_size=40), hst.integers(1, 6))
@settings(max_examples=60, deadline=None)
def test_behaves_like_a_least_recently_used_map(ops: list[tuple[str, list[int]]], capacity: int) -> None:
    cache = CandidateCache(capacity, 6, SOURCES)
    model: OrderedDict[int, None] = OrderedDict()
    for op, users in ops:
        if op == "put":
            cache.put(np.asarray(users), row_table(users))
            for u in users:
                model[u] = None
                model.move_to_end(u)
                while len(model) > capacity:
                    model.popitem(last=False)
        else:
            found, table = cache.get(np.asarray(users))
            want = [u for u in users if u in model]
            assert [u for u, f in zip(users, found.tolist(), strict=True) if f] == want
            if want:
                assert table is not None
                assert_tables_equal(table, row_table(want))
            for u in want:
                model.move_to_end(u)
        assert len(cache) == len(model)


def _wide_id(table: st.CandidateTable) -> st.CandidateTable:
    ids = table.item_ids.copy()
    ids[0, 0] = 2**31
    return st.CandidateTable(ids, table.retrieval, table.source_scores)


def _float64_score(table: st.CandidateTable) -> st.CandidateTable:
    fused = table.retrieval.copy()
    fused[0, 0] = 0.1  # not a float32: it would not read back exactly
    return st.CandidateTable(table.item_ids, fused, table.source_scores)


def _other_sources(table: st.CandidateTable) -> st.CandidateTable:
    return st.CandidateTable(table.item_ids, table.retrieval, {"popular": table.source_scores["popular"]})


def _narrow(table: st.CandidateTable) -> st.CandidateTable:
    return st.CandidateTable(table.item_ids[:, :5], table.retrieval[:, :5],
                             {n: s[:, :5] for n, s in table.source_scores.items()})


@pytest.mark.parametrize("spoil", [_wide_id, _float64_score, _other_sources, _narrow],
                         ids=["item id past int32", "score not a float32", "a source missing", "narrower rows"])
def test_rows_that_would_not_read_back_exactly_are_not_kept(spoil: Any) -> None:
    cache = CandidateCache(4, 6, SOURCES)
    assert cache.put(np.array([1, 2]), spoil(row_table([1, 2]))) == 0
    assert len(cache) == 0


@pytest.mark.parametrize(("capacity", "width"), [(0, 5), (3, 0)])
def test_bad_sizes_are_refused(capacity: int, width: int) -> None:
    with pytest.raises(ValueError, match="capacity >= 1 and width >= 1"):
        CandidateCache(capacity, width, SOURCES)


@pytest.fixture
def fast_switches() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_concurrent_readers_and_writers_never_see_another_users_row(fast_switches: None) -> None:
    cache = CandidateCache(8, 6, SOURCES)  # fewer slots than users: puts keep evicting under the readers
    wrong: list[str] = []

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(300):
            users = rng.choice(20, size=3, replace=False)
            if rng.random() < 0.5:
                cache.put(users, row_table(users.tolist()))
            else:
                found, table = cache.get(users)
                if table is not None and not np.array_equal(table.item_ids, row_table(users[found].tolist()).item_ids):
                    wrong.append(f"{users[found].tolist()}: {table.item_ids[:, 0].tolist()}")

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
    assert len(cache) == 8


def slate(response: RecommendResponse) -> list[tuple[str, float, float | None]]:
    return [(i.item_id, i.score, i.propensity) for i in response.items]


def requests_for(fit: Dataset, users: list[int], unknown: int = 1) -> list[RecommendRequest]:
    """Requests for known users (internal ids ``users``, k = 5) and ``unknown`` never-seen users."""
    known = [str(u) for u in fit.user_map.to_external(np.asarray(users)).to_list()]
    return ([RecommendRequest(user_id=u, k=5, request_id=f"r-{u}") for u in known]
            + [RecommendRequest(user_id=f"nobody-{i}", k=5, request_id=f"n-{i}") for i in range(unknown)])


MIXED = {"exploration": {"policy": "epsilon_greedy", "epsilon": 0.3, "pool": 10},
         "rerank": {"rules": [{"name": "cap", "type": "cap", "attribute": "category", "max_per_slate": 2}]},
         "ranker": {"source": "fakeseq"}}


@pytest.mark.parametrize("warm", [True, False])
def test_cached_slates_equal_computed_ones(small_split: tuple[Dataset, Dataset], warm: bool) -> None:
    fit, _ = small_split
    computed = build(fit, **MIXED)
    cached = build(fit, **{**MIXED, "merge": {"k": 30, "warm_cache": warm}})
    kept = cached.keep_candidates()
    assert cached.candidate_cache is not None
    assert kept == (len(fit.user_map) if warm else 0)
    users = [0, 5, 9, 5, 17]
    requests = requests_for(fit, users)
    external = [r.user_id for r in requests]
    state = FakeState(recent={external[1]: ["i39", "i38"]}, exposures={external[2]: {"i0": 3}})
    with_filters = [r.model_copy(update={"filters": {"category": ["c1", "c2"]}}) if at == 3 else r
                    for at, r in enumerate(requests)]
    for _ in range(2):  # without warm-up the first call fills the cache, the second reads it
        got = cached.recommend(with_filters, state, stage_deadlines=False)
        want = computed.recommend(with_filters, state, stage_deadlines=False)
        assert [slate(r) for r in got] == [slate(r) for r in want]
        assert [r.stages["retrieval"] for r in got] == [r.stages["retrieval"] for r in want]
        assert [r.fallback for r in got] == [r.fallback for r in want]
    hits, misses, entries = cached.candidate_cache_counts()
    assert (hits, misses) == ((10, 0) if warm else (5, 5))  # cold: the first call misses all five (user 5 twice)
    assert entries == (len(fit.user_map) if warm else 4)


def test_warm_up_keeps_the_most_active_users_until_full(small_split: tuple[Dataset, Dataset],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    fit, _ = small_split
    one_row = row_bytes(30, 2) / 2**20
    pipe = build(fit, merge={"k": 30, "cache_mb": 5.5 * one_row})
    with caplog.at_level(logging.INFO, logger="rankstack.pipeline.pipeline"):
        assert pipe.keep_candidates() == 5
    assert f"merged candidates of 5 of {len(fit.user_map)} known users kept" in caplog.text
    cache = pipe.candidate_cache
    assert cache is not None and cache.capacity == 5 and len(cache) == 5
    assert pipe.candidate_cache_counts() == (0, 0, 5)  # the warm-up's own lookups are not counted
    lengths = np.array([len(h) for h in pipe.parts.histories])
    most_active = np.argsort(-lengths, kind="stable")[:5]
    found, _ = cache.get(np.arange(len(lengths)))
    assert sorted(np.flatnonzero(found).tolist()) == sorted(most_active.tolist())
    assert pipe.keep_candidates() == 0  # already kept: nothing recomputed


def test_warm_up_stops_at_its_time_budget(small_split: tuple[Dataset, Dataset],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    fit, _ = small_split
    monkeypatch.setattr(pipeline_module, "WARM_BLOCK", 7)
    pipe = build(fit, merge={"k": 30, "warm_cache_s": 1e-9})  # over budget after the first block
    assert pipe.keep_candidates() == 7
    cache = pipe.candidate_cache
    assert cache is not None and len(cache) == 7
    rest = requests_for(fit, list(range(len(fit.user_map))), unknown=0)
    pipe.recommend(rest, None, stage_deadlines=False)  # the others fill on demand
    assert pipe.candidate_cache_counts() == (7, len(fit.user_map) - 7, len(fit.user_map))
    whole = build(fit, merge={"k": 30, "warm_cache_s": None})
    assert whole.keep_candidates() == len(fit.user_map)


@pytest.mark.parametrize("merge", [{"k": 30, "cache_mb": 0}, {"k": 30, "cache_mb": 1e-6}],
                         ids=["off", "smaller than a row"])
def test_no_cache_when_off_or_too_small(small_split: tuple[Dataset, Dataset], merge: dict[str, Any]) -> None:
    fit, _ = small_split
    pipe = build(fit, merge=merge)
    assert pipe.keep_candidates() == 0
    assert pipe.candidate_cache is None
    assert pipe.candidate_cache_counts() == (0, 0, 0)
    pipe.warmup()
    assert pipe.recommend(requests_for(fit, [1]), None, stage_deadlines=False)[0].items


def test_offline_calls_compute_every_list_until_the_service_keeps_them(small_split: tuple[Dataset, Dataset]) -> None:
    fit, _ = small_split
    pipe = build(fit)
    pipe.recommend(requests_for(fit, [1, 2]), None, stage_deadlines=False)
    assert pipe.candidate_cache is None
    pipe.warmup()
    assert pipe.candidate_cache is not None and len(pipe.candidate_cache) == len(fit.user_map)


def test_rows_of_a_failed_source_are_served_degraded_and_not_kept(small_split: tuple[Dataset, Dataset],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    fit, _ = small_split
    pipe = build(fit, merge={"k": 30, "warm_cache": False})
    pipe.keep_candidates()

    def broken(user_ids: np.ndarray, k: int, **_: Any) -> Any:
        raise RuntimeError("index unavailable")

    monkeypatch.setattr(pipe.retrievers["itemknn"], "retrieve", broken)
    first = pipe.recommend(requests_for(fit, [3, 4], unknown=0), None, stage_deadlines=False)
    assert [r.stages["retrieval"] for r in first] == ["degraded", "degraded"]
    assert pipe.candidate_cache_counts() == (0, 2, 0)
    monkeypatch.undo()
    again = pipe.recommend(requests_for(fit, [3, 4], unknown=0), None, stage_deadlines=False)
    assert [r.stages["retrieval"] for r in again] == ["ran", "ran"]
    assert pipe.candidate_cache_counts() == (0, 4, 2)
    assert [slate(r) for r in pipe.recommend(requests_for(fit, [3, 4], unknown=0), None, stage_deadlines=False)] \
        == [slate(r) for r in again]
    assert pipe.candidate_cache_counts() == (2, 4, 2)


def test_the_cache_does_not_follow_a_copy_under_another_config(small_split: tuple[Dataset, Dataset]) -> None:
    fit, _ = small_split
    pipe = build(fit)
    pipe.keep_candidates()
    other: Pipeline = pipe.with_config(pipe.config.model_copy(update={"merge": pipe.config.merge.model_copy(
        update={"k": 12})}))
    assert other.candidate_cache is None
    other.keep_candidates()
    assert other.candidate_cache is not None and other.candidate_cache.width == 12
