"""The service's state store read back as an off-policy log: slots by arrival order, clicks joined."""

from __future__ import annotations

import pytest

from rankstack.errors import DataValidationError
from rankstack.events import Event
from rankstack.ope.bandit_log import bandit_log_from_events
from rankstack.ope.service_log import is_state_store, read_service_events
from rankstack.state.sqlite import SQLiteStateStore


def served(path, requests: int = 3):
    """Each request shows items i0, i1 with propensities 0.5 and 0.25; request 0's second item is clicked."""
    store = SQLiteStateStore(path)
    events = []
    for r in range(requests):
        for slot, (item, p) in enumerate((("i0", 0.5), ("i1", 0.25))):
            events.append(Event(event_id=f"e{r}{slot}", user_id=f"u{r}", item_id=item, event="impression",
                                request_id=f"r{r}", propensity=p, timestamp=float(r)))
    events.append(Event(event_id="c0", user_id="u0", item_id="i1", event="click", request_id="r0", timestamp=9.0))
    store.add_events(events)
    store.close()
    return path


def test_state_store_becomes_rounds(tmp_path):
    path = served(tmp_path / "state.db")
    assert is_state_store(path)
    frame = read_service_events(path)
    assert frame.filter(frame["event"] == "impression")["position"].to_list() == [0, 1] * 3
    log = bandit_log_from_events(frame, source=str(path))
    assert log.items.tolist() == ["i0", "i1"] and log.n_slots == 2
    assert log.reward.tolist() == [0, 1, 0, 0, 0, 0]
    assert log.pscore.tolist() == [0.5, 0.25] * 3


def test_missing_store_is_named(tmp_path):
    with pytest.raises(DataValidationError, match="no such state store"):
        read_service_events(tmp_path / "none.db")
