"""The YAML-configured pipeline end to end and the exposure store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.candidates import Candidates
from rankstack.reranking import (
    DPP,
    MMR,
    ExplanationTrace,
    InMemoryExposureStore,
    ItemCatalog,
    ItemSimilarity,
    RerankConfig,
    RerankContext,
    RerankPipeline,
    RuleEngine,
)
from rankstack.testing.rerankers import check_reranker

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "rules" / "example.yaml"


def test_every_stage_passes_the_conformance_suite(catalog: ItemCatalog) -> None:
    sim = ItemSimilarity(np.eye(30))
    for obj in (MMR(sim), DPP(sim), RuleEngine([], catalog), RerankPipeline(RerankConfig(), catalog)):
        check_reranker(obj)
    filtered = RerankConfig.model_validate({
        "diversity": {"method": "mmr", "relevance_weight": 0.3}, "similarity": {"attribute": "category"},
        "rules": [{"name": "oos", "type": "filter", "match": {"attribute": "in_stock", "equals": False}},
                  {"name": "cat", "type": "cap", "attribute": "category", "max_per_slate": 1}]})
    check_reranker(RerankPipeline(filtered, catalog), fills=False)  # filters and caps may show fewer items


def test_pipeline_diversifies_then_applies_slate_rules(catalog: ItemCatalog) -> None:
    config = RerankConfig.model_validate({
        "diversity": {"method": "mmr", "relevance_weight": 0.3}, "similarity": {"attribute": "category"},
        "rules": [{"name": "oos", "type": "filter", "match": {"attribute": "in_stock", "equals": False}},
                  {"name": "cat", "type": "cap", "attribute": "category", "max_per_slate": 2},
                  {"name": "pin", "type": "pin", "item": 28, "slot": 1}]})
    pipeline = RerankPipeline(config, catalog)
    ids = np.array([[0, 5, 10, 15, 20, 25, 1, 6, 11, 2]])  # six items of c0 first, then c1 and c2
    trace = ExplanationTrace()
    out = pipeline.rerank(Candidates(ids, np.linspace(1, 0, 10)[None], "src"), 5,
                          RerankContext.for_users([7], trace=trace))
    slate = out.item_ids[0].tolist()
    assert slate[0] == 28 and 5 not in slate and 11 not in slate  # pinned; 5, 11 are out of stock
    assert slate[1:] == [0, 1, 2, 10]  # MMR alternates categories; the cap keeps c0 to two
    assert out.source == "src+rerank" and {r.user_id for r in trace} == {7}


def test_example_config_runs_on_the_synthetic_catalog(catalog: ItemCatalog) -> None:
    pipeline = RerankPipeline.from_yaml(EXAMPLE, catalog)
    store = InMemoryExposureStore()
    store.record(0, 3, "conversion", 0.0)
    context = RerankContext.for_users([0, 1], now=1.79e9, exposure=store, spend={"acme": 0.0}, trace=ExplanationTrace())
    rng = np.random.default_rng(0)
    ids = np.stack([rng.permutation(30), rng.permutation(30)])
    out = pipeline.rerank(Candidates(ids, rng.random(ids.shape), "x"), 10, context)
    assert out.item_ids.shape == (2, 10) and 3 not in out.item_ids[0]
    sponsored = catalog.column("sponsored").to_numpy()
    for slate in out.item_ids:
        shown = slate[slate >= 0]
        assert not sponsored[shown[0]] and sponsored[shown].sum() <= 2 and (~sponsored[shown]).mean() >= 0.7


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), method=st.sampled_from(["mmr", "dpp"]), k=st.integers(1, 10))
def test_diversity_never_reintroduces_filtered_items(catalog: ItemCatalog, seed: int, method: str, k: int) -> None:
    rng = np.random.default_rng(seed)
    blocked = rng.choice(30, 6, replace=False).tolist()
    store = InMemoryExposureStore()
    capped = rng.choice(30, 4, replace=False).tolist()
    for item in capped:
        store.record_slate(0, [item, item], 100.0)
    config = RerankConfig.model_validate({
        "diversity": {"method": method, "relevance_weight": float(rng.random())},
        "similarity": {"attribute": "category"}, "depth": int(rng.integers(1, 30)),
        "rules": [{"name": "b", "type": "block", "items": blocked},
                  {"name": "f", "type": "frequency_cap", "max_count": 2, "window_days": 1}]})
    ids = np.stack([rng.permutation(30)[:20], rng.permutation(30)[:20]])
    out = RerankPipeline(config, catalog).rerank(Candidates(ids, rng.random(ids.shape), "x"), k,
                                                 RerankContext.for_users([0, 1], now=200.0, exposure=store))
    assert not set(out.item_ids[0].tolist()) & set(blocked + capped)
    assert not set(out.item_ids[1].tolist()) & set(blocked)
    assert ((out.item_ids >= 0).sum(axis=1) == k).all()


def test_exposure_store_windows_and_events() -> None:
    store = InMemoryExposureStore()
    store.record_slate(1, [4, 5, -1], 10.0)
    store.record(1, 4, "click", 20.0)
    store.record_slate(1, [4], 30.0)
    assert store.counts(1, since=0.0, events=["impression"]) == {4: 2, 5: 1}
    assert store.counts(1, since=15.0, events=["impression", "click"]) == {4: 2}
    assert store.counts(2, since=0.0, events=["impression"]) == {}
    assert len(store) == 4
