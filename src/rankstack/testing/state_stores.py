"""The conformance suite every ``StateStore`` passes: subclass :class:`StateStoreConformance` in a test module
and give it a ``make_store`` fixture that returns a factory of fresh, empty stores.

    class TestMyStore(StateStoreConformance):
        @pytest.fixture
        def make_store(self, tmp_path):
            return lambda: MyStore(tmp_path / "state")

Needs pytest and hypothesis (the ``dev`` extra); the library itself never imports this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rankstack.events import Event
from rankstack.state.store import BatchStateReads, StateStore

StoreFactory = Callable[[], Any]


def ev(eid: str, user: str, item: str, kind: str = "click", ts: float | None = 100.0, **kw: Any) -> Event:
    """A terse event constructor for tables of cases."""
    return Event(event_id=eid, user_id=user, item_id=item, event=kind, timestamp=ts, **kw)  # type: ignore[arg-type]


class StateStoreConformance:
    """Idempotent writes, recent items and exposure counts by time and kind, bandit stats, batched reads, and
    agreement with a plain-Python reference model; every test takes the ``make_store`` fixture."""

    def test_satisfies_the_protocol(self, make_store: StoreFactory) -> None:
        assert isinstance(make_store(), StateStore)

    def test_add_events_is_idempotent_on_event_id(self, make_store: StoreFactory) -> None:
        store = make_store()
        assert store.add_events([ev("a", "u", "i1"), ev("b", "u", "i2")]) == 2
        assert store.add_events([ev("a", "u", "i1"), ev("c", "u", "i3")]) == 1
        assert store.add_events([ev("d", "u", "i4"), ev("d", "u", "i4")]) == 1
        assert store.recent_items("u", 10) == ["i1", "i2", "i3", "i4"]
        assert store.stored_event_ids(["a", "b", "c", "d", "zzz"]) == {"a", "b", "c", "d"}

    def test_recent_items_order_kinds_and_limit(self, make_store: StoreFactory) -> None:
        store = make_store()
        store.add_events([
            ev("1", "u", "late", ts=300.0), ev("2", "u", "early", ts=100.0),
            ev("3", "u", "seen", "impression", ts=200.0),
            ev("4", "u", "bought", "conversion", ts=250.0, value=9.5), ev("5", "v", "other", ts=150.0),
            ev("6", "u", "tie-a", ts=400.0), ev("7", "u", "tie-b", ts=400.0),
        ])
        assert store.recent_items("u", 10) == ["early", "bought", "late", "tie-a", "tie-b"]
        assert store.recent_items("u", 2) == ["tie-a", "tie-b"]
        assert store.recent_items("u", 10, events=("impression",)) == ["seen"]
        assert store.recent_items("u", 10, events=("click",)) == ["early", "late", "tie-a", "tie-b"]
        assert store.recent_items("nobody", 5) == []
        assert store.recent_items("u", 0) == []

    def test_exposure_counts_since(self, make_store: StoreFactory) -> None:
        store = make_store()
        store.add_events([ev(str(i), "u", f"i{i % 2}", "impression", ts=float(i)) for i in range(10)]
                         + [ev("c", "u", "i0", "click", ts=5.0), ev("x", "v", "i0", "impression", ts=9.0)])
        assert store.exposure_counts("u", since=0.0) == {"i0": 5, "i1": 5}
        assert store.exposure_counts("u", since=6.0) == {"i0": 2, "i1": 2}
        assert store.exposure_counts("u", since=5.0, events=("impression", "click")) == {"i0": 3, "i1": 3}
        assert store.exposure_counts("u", since=100.0) == {}

    def test_latest_times_per_user_and_kind(self, make_store: StoreFactory) -> None:
        store = make_store()
        store.add_events([ev("1", "u", "a", ts=100.0), ev("2", "u", "b", "conversion", ts=250.0),
                          ev("3", "u", "c", "impression", ts=900.0), ev("4", "v", "a", ts=50.0)])
        assert store.latest_times_many(["u", "v", "nobody"]) == [250.0, 50.0, None]
        assert store.latest_times_many(["u"], events=("click",)) == [100.0]
        assert store.latest_times_many(["u"], events=("impression",)) == [900.0]
        assert store.latest_times_many([]) == []

    def test_bandit_stats_count_new_events_only(self, make_store: StoreFactory) -> None:
        store = make_store()
        batch = [ev("p1", "u", "a", "impression"), ev("p2", "v", "a", "impression"), ev("r1", "u", "a", "click"),
                 ev("p3", "u", "b", "impression"), ev("k1", "u", "b", "conversion")]
        store.add_events(batch)
        store.add_events(batch)
        assert store.bandit_stats(["a", "b", "never"]) == {"a": (2.0, 1.0), "b": (1.0, 0.0), "never": (0.0, 0.0)}
        assert store.bandit_stats([]) == {}

    def test_missing_timestamp_is_the_arrival_time(self, make_store: StoreFactory) -> None:
        store = make_store()
        before = time.time()
        store.add_events([ev("a", "u", "i", "impression", ts=None)])
        assert store.exposure_counts("u", since=before - 1) == {"i": 1}
        assert store.exposure_counts("u", since=time.time() + 60) == {}

    def test_healthy(self, make_store: StoreFactory) -> None:
        assert make_store().healthy()

    def test_ids_with_separators_do_not_collide(self, make_store: StoreFactory) -> None:
        store = make_store()
        store.add_events([ev("1", "a:click", "x:y"), ev("2", "a", "z", "impression")])
        assert store.recent_items("a:click", 5) == ["x:y"]
        assert store.recent_items("a", 5) == []

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.lists(st.tuples(st.integers(0, 15), st.sampled_from("uv"), st.sampled_from("abcd"),
                              st.sampled_from(["impression", "click", "conversion"]), st.integers(0, 5)), max_size=30),
           st.integers(1, 6))
    def test_matches_a_reference_model(self, make_store: StoreFactory, rows: list[tuple[int, str, str, str, int]],
                                       n: int) -> None:
        """Any batch sequence (with repeated event ids) gives the same answers as a plain-Python model."""
        store = make_store()
        events = [ev(f"e{eid}", user, item, kind, ts=float(ts)) for eid, user, item, kind, ts in rows]
        for start in range(0, len(events), 7):
            store.add_events(events[start : start + 7])
        first: dict[str, Event] = {}
        for e in events:
            first.setdefault(e.event_id, e)
        kept = list(first.values())
        for user in "uv":
            engaged = [(e.timestamp, i, e.item_id) for i, e in enumerate(kept)
                       if e.user_id == user and e.event in ("click", "conversion")]
            assert store.recent_items(user, n) == [item for *_, item in sorted(engaged)[-n:]]
            shown = [e.item_id for e in kept
                     if e.user_id == user and e.event == "impression" and (e.timestamp or 0) >= 2]
            assert store.exposure_counts(user, since=2.0) == {i: shown.count(i) for i in set(shown)}
        users = ["u", "v", "nobody", "u"]  # batched reads answer per user, in order, repeats and strangers included
        assert store.recent_items_many(users, n) == [store.recent_items(u, n) for u in users]
        assert store.exposure_counts_many(users, since=2.0) == [store.exposure_counts(u, since=2.0) for u in users]

    def test_batched_reads_of_nothing(self, make_store: StoreFactory) -> None:
        store = make_store()
        store.add_events([ev("e1", "a", "x"), ev("e2", "a", "y", "impression")])
        assert isinstance(store, BatchStateReads)
        assert store.recent_items_many([], 3) == [] and store.exposure_counts_many([], since=0.0) == []
        assert store.recent_items_many(["a"], 0) == [[]] and store.recent_items_many(["a"], 3, events=()) == [[]]
        assert store.exposure_counts_many(["a"], since=0.0, events=()) == [{}]
        assert store.recent_items_many(["a"], 3) == [["x"]]
        assert store.exposure_counts_many(["a"], since=0.0) == [{"y": 1}]

    def test_batched_reads_span_more_users_than_one_statement_takes(self, make_store: StoreFactory) -> None:
        store = make_store()
        users = [f"u{i}" for i in range(1_203)]
        store.add_events([ev(f"e{i}", u, f"i{i}", ts=float(i)) for i, u in enumerate(users)])
        assert store.recent_items_many(users, 2) == [[f"i{i}"] for i in range(len(users))]
