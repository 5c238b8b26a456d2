"""The re-rank stage's vectorised paths against the per-row and item-id paths they stand in for."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.candidates import Candidates, compact, normalize_relevance, sort_by_score
from rankstack.reranking import (
    DPP,
    MMR,
    DPPConfig,
    ExplanationTrace,
    InMemoryExposureStore,
    ItemCatalog,
    ItemSimilarity,
    MMRConfig,
    RerankConfig,
    RerankContext,
    RerankPipeline,
    RuleEngine,
)
from rankstack.reranking.diversity import DiversityReranker
from rankstack.reranking.rerank_pipeline import _head_then_rest, _head_then_rest_by_id
from rankstack.reranking.rules.engine import has_duplicates


class GeneralMMR(MMR):
    """MMR that always takes the general (matmul) path."""

    def select_rows(self, ids: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        """The general path of :class:`DiversityReranker`."""
        return DiversityReranker.select_rows(self, ids, scores, k)


def _reference_rerank(pipeline: RerankPipeline, candidates: Candidates, k: int, context: RerankContext) -> Candidates:
    """The stage as it was: general MMR, head placed by item id, every slate arranged row by row."""
    incoming, scores = compact(candidates.item_ids, candidates.scores)
    ids = pipeline.rules.filter(incoming, context)
    scores = pipeline.rules.adjust(ids, normalize_relevance(ids, scores, "minmax"))
    ids, scores = sort_by_score(ids, scores)
    if pipeline.diversifier is not None:
        diversifier = pipeline.diversifier
        if isinstance(diversifier, MMR):
            assert isinstance(diversifier.config, MMRConfig)
            diversifier = GeneralMMR(diversifier.similarity, diversifier.config)
        depth = min(ids.shape[1], pipeline.config.depth or 2 * k)
        head = _compacted_picks(diversifier, ids, scores, depth)
        ids, scores = _head_then_rest_by_id(ids, scores, head)
    return pipeline.rules.slates_by_row(ids, scores, k, context, source=f"{candidates.source}+rerank",
                                        incoming=incoming)


def _compacted_picks(diversifier: DiversityReranker, ids: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Picked item ids [rows, k] taken from the compacted rows (how ``DiversityReranker.rerank`` did it)."""
    ids, scores = compact(ids, scores)
    out = np.full((ids.shape[0], k), -1, dtype=np.int64)
    width = min(k, ids.shape[1])
    picks = diversifier.select_rows(ids, scores, width)
    got = picks >= 0
    out[:, :width] = np.where(got, np.take_along_axis(ids, np.where(got, picks, 0), axis=1), -1)
    return out


def _catalog(rng: np.random.Generator, n_items: int) -> ItemCatalog:
    cats = [None if rng.random() < 0.1 else f"c{rng.integers(6)}" for _ in range(n_items)]
    return ItemCatalog(pl.DataFrame({"item_id": np.arange(n_items), "category": cats,
                                     "sponsored": rng.random(n_items) < 0.3}), n_items)


@settings(max_examples=120, deadline=None)
@given(seed=st.integers(0, 100_000), rows=st.integers(1, 8), width=st.integers(1, 40), k=st.integers(1, 30),
       depth=st.one_of(st.none(), st.integers(1, 45)), weight=st.sampled_from([0.0, 0.5, 0.8, 1.0]),
       method=st.sampled_from(["mmr", "dpp", "none"]), boost=st.booleans(), tied=st.booleans(),
       slate_rule=st.sampled_from(["none", "cap", "bury", "pin"]), explain=st.booleans())
def test_stage_matches_the_reference(seed: int, rows: int, width: int, k: int, depth: int | None, weight: float,
                                     method: str, boost: bool, tied: bool, slate_rule: str, explain: bool) -> None:
    rng = np.random.default_rng(seed)
    n_items = 50
    catalog = _catalog(rng, n_items)
    rules: list[dict[str, object]] = [{"name": "cap", "type": "frequency_cap", "max_count": 2, "window_days": 1}]
    if boost:
        rules.append({"name": "b", "type": "boost", "match": {"attribute": "sponsored", "equals": True}, "amount": 0.2})
    rules.extend({
        "none": [],
        "cap": [{"name": "c", "type": "cap", "attribute": "category", "max_per_slate": 2}],
        "bury": [{"name": "s", "type": "bury", "match": {"attribute": "sponsored", "equals": True}}],
        "pin": [{"name": "p", "type": "pin", "item": 3, "slot": 2}],
    }[slate_rule])
    spec: dict[str, object] = {"depth": depth, "rules": rules}
    if method != "none":
        spec["diversity"] = {"method": method, "relevance_weight": min(weight, 0.99) if method == "dpp" else weight}
        spec["similarity"] = {"attribute": "category"}
    pipeline = RerankPipeline(RerankConfig.model_validate(spec), catalog)
    ids = np.array([rng.choice(n_items, size=width, replace=False) for _ in range(rows)])
    ids = np.where(rng.random(ids.shape) < 0.2, -1, ids)
    scores = np.round(rng.random(ids.shape), 1) if tied else rng.standard_normal(ids.shape)
    store = InMemoryExposureStore()
    for _ in range(int(rng.integers(0, 60))):
        store.record(int(rng.integers(rows)), int(rng.integers(n_items)), "impression", 100.0)
    traces = (ExplanationTrace(), ExplanationTrace()) if explain else (None, None)
    contexts = [RerankContext.for_users(np.arange(rows), now=200.0, exposure=store, trace=t) for t in traces]
    cands = Candidates(ids, scores, "x")
    got, ref = pipeline.rerank(cands, k, contexts[0]), _reference_rerank(pipeline, cands, k, contexts[1])
    np.testing.assert_array_equal(got.item_ids, ref.item_ids)
    np.testing.assert_array_equal(got.scores, ref.scores)
    assert got.source == ref.source
    if explain:
        assert traces[0] is not None and traces[1] is not None
        assert traces[0].records == traces[1].records


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 100_000), rows=st.integers(1, 6), width=st.integers(0, 30), depth=st.integers(1, 35))
def test_head_then_rest_matches_the_item_id_version(seed: int, rows: int, width: int, depth: int) -> None:
    rng = np.random.default_rng(seed)
    ids = np.array([rng.choice(100, size=width, replace=False) for _ in range(rows)]).reshape(rows, width)
    ids = np.where(rng.random(ids.shape) < 0.2, -1, ids)
    scores = rng.random(ids.shape)
    head = np.full((rows, depth), -1, dtype=np.int64)
    for row in range(rows):
        cols = rng.permutation(np.flatnonzero(ids[row] >= 0))[: int(rng.integers(0, depth + 1))]
        head[row, : cols.size] = cols
    head_ids = np.where(head >= 0, np.take_along_axis(ids, np.maximum(head, 0), axis=1), -1) if width else head
    got = _head_then_rest(ids, scores, head)
    ref = _head_then_rest_by_id(ids, scores, head_ids)
    np.testing.assert_array_equal(got[0], ref[0])
    np.testing.assert_array_equal(got[1], ref[1])


def test_head_then_rest_places_a_repeated_item_by_its_first_column() -> None:
    ids = np.array([[4, 7, 4, -1, 9]])
    scores = np.array([[0.9, 0.8, 0.7, -np.inf, 0.1]])
    assert has_duplicates(ids) and not has_duplicates(np.array([[4, -1, -1, 5]]))
    got_ids, got_scores = _head_then_rest(ids, scores, np.array([[4, 1]]))
    assert got_ids.tolist() == [[9, 7, 4, 4, -1]]
    assert got_scores.tolist() == [[0.1, 0.8, 0.9, 0.7, -np.inf]]


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 100_000), rows=st.integers(1, 6), width=st.integers(0, 30), k=st.integers(1, 35),
       repeat=st.booleans())
def test_slates_head_matches_the_row_by_row_path(seed: int, rows: int, width: int, k: int, repeat: bool) -> None:
    rng = np.random.default_rng(seed)
    rules = RuleEngine([], _catalog(rng, 60))
    ranked = rng.integers(-1, 60 if repeat else 10_000, (rows, width)) % 60
    ranked = np.where(rng.random(ranked.shape) < 0.25, -1, ranked)
    if not repeat:
        ranked = np.array([np.where(_first(r), r, -1) for r in ranked]).reshape(rows, width)
    scores = rng.random(ranked.shape)
    context = RerankContext.for_users(np.arange(rows))
    got = rules.slates(ranked, scores, k, context, source="s")
    ref = rules.slates_by_row(ranked, scores, k, context, source="s")
    np.testing.assert_array_equal(got.item_ids, ref.item_ids)
    np.testing.assert_array_equal(got.scores, ref.scores)
    assert got.item_ids.dtype == ref.item_ids.dtype and got.scores.dtype == ref.scores.dtype


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 100_000), k=st.integers(1, 12), method=st.sampled_from(["mmr", "dpp"]))
def test_positions_point_at_the_reranked_items(seed: int, k: int, method: str) -> None:
    rng = np.random.default_rng(seed)
    sim = ItemSimilarity(rng.standard_normal((40, 4)))
    ranker = MMR(sim, MMRConfig(relevance_weight=0.6)) if method == "mmr" else DPP(sim, DPPConfig())
    ids = np.array([rng.choice(40, size=15, replace=False) for _ in range(3)])
    ids = np.where(rng.random(ids.shape) < 0.3, -1, ids)
    cands = Candidates(ids, rng.random(ids.shape), "x")
    picks = ranker.positions(cands, k)
    out = ranker.rerank(cands, k)
    expected = np.where(picks >= 0, np.take_along_axis(ids, np.maximum(picks, 0), axis=1), -1)
    np.testing.assert_array_equal(out.item_ids, expected)


def _first(row: np.ndarray) -> np.ndarray:
    """True at the first occurrence of each value."""
    seen: set[int] = set()
    keep = np.zeros(row.size, dtype=bool)
    for i, v in enumerate(row.tolist()):
        keep[i] = v not in seen
        seen.add(v)
    return keep


