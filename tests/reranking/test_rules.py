"""Each rule type on the synthetic catalog, explanations and logging, and invariants under random rule sets."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.candidates import Candidates
from rankstack.reranking import (
    ExplanationTrace,
    InMemoryExposureStore,
    ItemCatalog,
    RerankConfig,
    RerankContext,
    RuleEngine,
)
from rankstack.reranking.rules.engine import DAY_S, pacing_target

N_ITEMS = 30  # the size of the conftest catalog
NOW = datetime(2026, 11, 16, tzinfo=UTC).timestamp()


def _engine(catalog: ItemCatalog, *rules: dict[str, Any]) -> RuleEngine:
    return RuleEngine(RerankConfig.model_validate({"rules": list(rules)}).rules, catalog)


def _run(engine: RuleEngine, ids: list[int], k: int, **ctx: Any) -> tuple[list[int], ExplanationTrace]:
    trace = ExplanationTrace()
    scores = np.linspace(1.0, 0.0, len(ids))[None]
    context = RerankContext.for_users([0], now=NOW, trace=trace, **ctx)
    out = engine.rerank(Candidates(np.array([ids]), scores, "t"), k, context)
    return [int(i) for i in out.item_ids[0]], trace


def test_filter_and_block_remove_items_and_say_which_rule(catalog: ItemCatalog) -> None:
    engine = _engine(catalog, {"name": "oos", "type": "filter", "match": {"attribute": "in_stock", "equals": False}},
                     {"name": "legal", "type": "block", "items": [2, 11]})
    slate, trace = _run(engine, list(range(12)), 12)
    assert slate == [0, 1, 3, 4, 6, 7, 8, 9, 10, -1, -1, -1]
    removed = {(r.item_id, r.rule, r.action) for r in trace}
    assert removed == {(5, "oos", "removed"), (11, "oos", "removed"), (2, "legal", "removed")}
    assert next(r for r in trace if r.item_id == 2).from_rank == 3


def test_history_and_frequency_cap_read_the_exposure_store(catalog: ItemCatalog) -> None:
    store = InMemoryExposureStore()
    store.record(0, 1, "conversion", NOW - 400 * DAY_S)
    store.record(0, 2, "click", NOW - 10 * DAY_S)
    store.record(0, 3, "click", NOW - 2 * DAY_S)
    for ago in (0.1, 0.5, 0.9):
        store.record_slate(0, [4, 6], NOW - ago * DAY_S)
    store.record(0, 7, "impression", NOW - 3 * DAY_S)
    store.record(1, 0, "conversion", NOW)
    engine = _engine(catalog, {"name": "bought", "type": "filter_history"},
                     {"name": "clicked", "type": "filter_history", "events": ["click"], "within_days": 7},
                     {"name": "fcap", "type": "frequency_cap", "max_count": 3, "window_days": 1})
    slate, trace = _run(engine, [0, 1, 2, 3, 4, 6, 7], 7, exposure=store)
    assert slate == [0, 2, 7, -1, -1, -1, -1]
    assert {(r.item_id, r.rule) for r in trace} == {(1, "bought"), (3, "clicked"), (4, "fcap"), (6, "fcap")}
    with pytest.raises(ValueError, match=r"'bought' .* needs RerankContext\.exposure"):
        _run(engine, [0, 1], 2)


def test_boost_lifts_and_bury_sinks(catalog: ItemCatalog) -> None:
    engine = _engine(catalog, {"name": "up", "type": "boost", "match": {"attribute": "category", "equals": "c3"},
                               "amount": 0.7},
                     {"name": "down", "type": "bury", "match": {"attribute": "tags", "contains": "clearance"}})
    slate, trace = _run(engine, [8, 0, 1, 2, 3, 4], 6)
    assert slate == [3, 0, 1, 2, 4, 8]
    # 0.2 + 0.7 lifts item 3 past item 0 (0.8); item 8 is boosted too but buried below everything
    assert {(r.item_id, r.action) for r in trace} == {(8, "boosted"), (3, "boosted"), (8, "buried")}


def test_pins_place_items_and_refuse_what_rules_forbid(catalog: ItemCatalog) -> None:
    engine = _engine(catalog, {"name": "oos", "type": "filter", "match": {"attribute": "in_stock", "equals": False}},
                     {"name": "promo", "type": "pin", "item": 20, "slot": 2},
                     {"name": "house", "type": "pin", "match": {"attribute": "advertiser", "equals": "house"},
                      "slot": 4},
                     {"name": "gone", "type": "pin", "item": 23, "slot": 1},
                     {"name": "sp", "type": "slot_limit", "match": {"attribute": "sponsored", "equals": True},
                      "forbidden_slots": [1]},
                     {"name": "sp-top", "type": "pin", "item": 13, "slot": 1})
    slate, trace = _run(engine, [2, 3, 4, 6, 7, 14], 5)
    assert slate == [2, 20, 3, 7, 4]
    by_rule = {r.rule: r for r in trace}
    assert by_rule["promo"].action == "pinned" and by_rule["promo"].to_rank == 2 and by_rule["promo"].from_rank is None
    assert by_rule["house"].item_id == 7 and by_rule["house"].from_rank == 5
    assert by_rule["gone"].action == "rejected"  # item 23 is out of stock
    assert by_rule["sp-top"].action == "rejected" and "not allowed in slot 1" in by_rule["sp-top"].reason


def test_caps_slot_limits_and_organic_share(catalog: ItemCatalog) -> None:
    engine = _engine(catalog, {"name": "cat", "type": "cap", "attribute": "category", "max_per_slate": 1},
                     {"name": "sp", "type": "slot_limit", "match": {"attribute": "sponsored", "equals": True},
                      "max_count": 1, "forbidden_slots": [1]})
    slate, trace = _run(engine, [1, 5, 0, 9, 6, 2, 13], 4)
    # 1 and 5 (sponsored) may not open the slate; 1 moves to slot 2, which uses the one sponsored place
    assert slate == [0, 1, 2, -1]
    notes = {(r.item_id, r.rule, r.action) for r in trace}
    assert notes == {(1, "sp", "moved"), (5, "cat", "capped"), (9, "sp", "capped"), (6, "cat", "capped"),
                     (13, "sp", "capped")}
    share = _engine(catalog, {"name": "org", "type": "min_share", "match": {"attribute": "sponsored", "equals": False},
                              "share": 0.75})
    slate, trace = _run(share, [1, 5, 2, 3, 4, 6], 4)  # 1, 5 sponsored: room for one of them
    assert slate == [1, 2, 3, 4]
    assert {(r.item_id, r.action) for r in trace} == {(5, "capped")}
    slate, _ = _run(share, [1, 5, 2, 9], 4)  # one organic item: [1, 2] would be 50 %, so only 2 is shown
    assert slate == [2, -1, -1, -1]


def test_a_slot_that_nothing_may_fill_ends_the_slate(catalog: ItemCatalog) -> None:
    engine = _engine(catalog, {"name": "sp", "type": "slot_limit", "match": {"attribute": "sponsored",
                                                                            "equals": True}, "forbidden_slots": [1]})
    assert _run(engine, [1, 5, 9], 3)[0] == [-1, -1, -1]


def test_pacing_throttles_advertisers_ahead_of_their_budget_curve(catalog: ItemCatalog) -> None:
    rule = {"name": "pace", "type": "pacing", "budgets": {"a0": 100.0, "a1": 100.0, "a2": 100.0},
            "start": "2026-11-01T00:00:00Z", "end": "2026-12-01T00:00:00Z", "curve": [0, 0.2, 1], "tolerance": 0.05}
    engine = _engine(catalog, rule)
    cfg = RerankConfig.model_validate({"rules": [rule]}).rules[0]
    assert pacing_target(cfg, NOW) == pytest.approx(0.2 + 0.8 * (15 / 30 - 0.5) / 0.5)
    assert pacing_target(cfg, NOW - 30 * DAY_S) == 0.0 and pacing_target(cfg, NOW + 30 * DAY_S) == 1.0
    slate, trace = _run(engine, [1, 2, 3, 4, 5], 5, spend={"a0": 10.0, "a1": 30.0, "a2": 100.0})
    # at NOW the plan is 20 %: a0 (10 %) keeps serving; a1 (30 % > 25 %) and a2 (whole budget) are throttled
    assert slate == [3, -1, -1, -1, -1]
    assert {r.action for r in trace} == {"throttled"} and len(trace) == 4
    with pytest.raises(ValueError, match=r"needs RerankContext\.spend"):
        _run(engine, [1], 1)


def test_explanations_are_logged(catalog: ItemCatalog, caplog: pytest.LogCaptureFixture) -> None:
    engine = _engine(catalog, {"name": "legal", "type": "block", "items": [2]})
    with caplog.at_level(logging.INFO, logger="rankstack.reranking.explain"):
        _, trace = _run(engine, [1, 2, 3], 2)
    assert "item=2 removed by rule 'legal'" in caplog.text
    assert trace.for_row(0)[0].as_dict()["rule"] == "legal"


MATCHES = [{"attribute": "sponsored", "equals": True}, {"attribute": "category", "one_of": ["c1", "c2"]},
           {"attribute": "margin", "at_least": 0.5}, {"attribute": "tags", "contains": "clearance"}]


@st.composite
def rule_sets(draw: st.DrawFn) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["filter", "block", "cap", "slot_limit", "min_share", "boost", "bury", "pin"]))
        rule: dict[str, Any] = {"name": f"r{i}", "type": kind}
        if kind in ("filter", "slot_limit", "min_share", "boost", "bury"):
            rule["match"] = draw(st.sampled_from(MATCHES))
        if kind == "block":
            rule["items"] = draw(st.lists(st.integers(0, N_ITEMS - 1), min_size=1, max_size=5))
        if kind == "cap":
            rule |= {"attribute": draw(st.sampled_from(["category", "advertiser", "tags"])),
                     "max_per_slate": draw(st.integers(1, 3))}
        if kind == "slot_limit":
            rule |= {"max_count": draw(st.integers(0, 3)), "forbidden_slots": draw(st.lists(st.integers(1, 6)))}
        if kind == "min_share":
            rule["share"] = draw(st.floats(0.1, 1.0))
        if kind == "boost":
            rule["amount"] = draw(st.sampled_from([-0.5, 0.3, 2.0]))
        if kind == "pin":
            rule |= {"slot": draw(st.integers(1, 8)), "item": draw(st.integers(0, N_ITEMS - 1))}
        rules.append(rule)
    return rules


@settings(max_examples=120, deadline=None)
@given(rules=rule_sets(), seed=st.integers(0, 10_000), k=st.integers(1, 8))
def test_rules_never_let_a_filtered_item_through_nor_exceed_a_limit(catalog: ItemCatalog, rules: list[dict[str, Any]],
                                                                     seed: int, k: int) -> None:
    engine = _engine(catalog, *rules)
    rng = np.random.default_rng(seed)
    ids = np.stack([rng.permutation(N_ITEMS)[:15] for _ in range(3)])
    out = engine.rerank(Candidates(ids, rng.random(ids.shape), "t"), k, RerankContext.for_users([0, 1, 2])).item_ids
    pinned = {r["item"] for r in rules if r["type"] == "pin"}
    table = catalog.table
    for row, slate in zip(ids, out, strict=True):
        shown = slate[slate >= 0]
        assert (slate[shown.size :] == -1).all() and len(set(shown.tolist())) == shown.size
        assert set(shown.tolist()) <= set(row.tolist()) | pinned
        for rule in rules:
            if rule["type"] == "filter":
                assert not catalog.mask(_match(rule)).take(shown).any()
            elif rule["type"] == "block":
                assert not set(shown.tolist()) & set(rule["items"])
            elif rule["type"] == "cap":
                values = table.get_column(rule["attribute"]).to_list()
                flat = [v for i in shown for v in (values[i] if isinstance(values[i], list) else [values[i]])]
                assert max((flat.count(v) for v in flat), default=0) <= rule["max_per_slate"]
            elif rule["type"] == "slot_limit":
                hit = catalog.mask(_match(rule)).take(shown)
                assert hit.sum() <= rule["max_count"]
                assert not any(hit[s - 1] for s in rule["forbidden_slots"] if s <= shown.size)
            elif rule["type"] == "min_share" and shown.size:
                assert catalog.mask(_match(rule)).take(shown).mean() >= rule["share"] - 1e-9


def _match(rule: dict[str, Any]) -> Any:
    from rankstack.reranking.rules.rule_config import Match

    return Match.model_validate(rule["match"])
