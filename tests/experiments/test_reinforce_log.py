"""The service's event log read as REINFORCE rows: events written through the real SQLite store API."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rankstack.bandits.logging_policies import simulate
from rankstack.data.idmap import IdMap
from rankstack.errors import ConfigError
from rankstack.events import Event
from rankstack.experiments.reinforce_log import dataset_events, read_service_rows, rows_from_events, sqlite_path
from rankstack.simulation import SimulatorConfig
from rankstack.state import SQLiteStateStore

ITEMS = IdMap.fit(pl.Series(["a", "b", "c", "d"]))  # internal 0..3
USERS = IdMap.fit(pl.Series(["u1", "u2"]))
TRAIN = [np.array([0, 1], dtype=np.int64), np.array([3], dtype=np.int64)]


def _event(n: int, user: str, item: str, kind: str, request: str | None = None, prop: float | None = None) -> Event:
    return Event(event_id=f"e{n}", user_id=user, item_id=item, event=kind, request_id=request,  # type: ignore[arg-type]
                 timestamp=1_000.0 + n, propensity=prop)


def _store(tmp_path: Path) -> Path:
    events = [
        _event(1, "u1", "c", "impression", "r1", 0.5),   # row 0: history [a, b] (training), clicked
        _event(2, "u1", "c", "click", "r1"),
        _event(3, "u1", "d", "impression", "r1", 0.25),  # row 1: same request → same history as row 0
        _event(4, "u1", "zzz", "impression", "r1", 0.25),  # unknown item: no row
        _event(5, "u1", "d", "impression", "r2", 0.2),   # row 2: history [a, b, c] (the click of r1 came first)
        _event(6, "u1", "d", "conversion", "r2"),         # history only (reward is click)
        _event(7, "new", "a", "impression"),              # row 3: unknown user, empty history, no propensity
        _event(8, "new", "a", "click"),                   # joined without request id
        _event(9, "new", "b", "impression", "r3", 0.1),   # row 4: history [a]
        _event(10, "new", "b", "click", "other"),         # another request's click: no reward for row 4
    ]
    store = SQLiteStateStore(tmp_path / "state.db")
    for start in range(0, len(events), 3):  # several batches, as a client would post them
        store.add_events(events[start:start + 3])
    store.close()
    return tmp_path / "state.db"


def test_rows_carry_the_history_before_the_request_the_item_reward_and_propensity(tmp_path: Path) -> None:
    rows = read_service_rows(_store(tmp_path), user_map=USERS, item_map=ITEMS, train_histories=TRAIN, max_len=5)
    assert [h.tolist() for h in rows.histories] == [[0, 1], [0, 1], [0, 1, 2], [], [0]]
    assert rows.items.tolist() == [2, 3, 3, 0, 1]
    assert rows.rewards.tolist() == [1, 0, 0, 1, 0]
    np.testing.assert_array_equal(rows.propensity, [0.5, 0.25, 0.2, np.nan, 0.1])
    assert rows.users == ["u1", "u1", "u1", "new", "new"]
    assert rows.counts == {"events": 10, "impressions": 6, "unknown_items": 1, "rows": 5, "rewarded": 2,
                           "unknown_users": 1}


def test_conversion_rewards_and_history_truncation(tmp_path: Path) -> None:
    rows = read_service_rows(_store(tmp_path), user_map=USERS, item_map=ITEMS, train_histories=TRAIN, max_len=2,
                             reward_event="conversion")
    assert rows.rewards.tolist() == [0, 0, 1, 0, 0]
    assert [h.tolist() for h in rows.histories] == [[0, 1], [0, 1], [1, 2], [], [0]]


@pytest.mark.parametrize(("url", "message"), [("redis://localhost:6379/0", "only a SQLite store"),
                                              ("sqlite:", "expected sqlite:PATH")])
def test_only_sqlite_stores_are_read(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        sqlite_path(url)


def test_sqlite_urls_name_their_file() -> None:
    assert sqlite_path("sqlite:state/x.db") == Path("state/x.db") == sqlite_path("sqlite://state/x.db")
    assert sqlite_path("plain.db") == Path("plain.db")


def test_a_simulated_log_gives_a_row_per_impression_with_its_click_and_propensity(tmp_path: Path) -> None:
    sim_log = simulate(SimulatorConfig(n_users=30, n_items=20, n_impressions=600, slate_size=3, seed=4))
    sim_log.save(tmp_path / "sim")
    events = dataset_events(str(tmp_path / "sim"))
    users = IdMap.fit(events.get_column("user_id").unique(maintain_order=True))
    items = IdMap.fit(events.get_column("item_id").unique(maintain_order=True))
    empty = [np.zeros(0, np.int64)] * len(users)
    rows = rows_from_events(events, user_map=users, item_map=items, train_histories=empty, max_len=10)
    assert len(rows.items) == len(sim_log.item) == 600 and int(rows.rewards.sum()) == int(sim_log.click.sum())
    # time order is request order, so the rows follow the simulator's impressions one to one
    np.testing.assert_array_equal(items.to_external(rows.items).to_numpy(), sim_log.item)
    np.testing.assert_array_equal(rows.rewards, sim_log.click.astype(float))
    np.testing.assert_allclose(rows.propensity, sim_log.propensity)
    clicked = {(int(u), int(i)) for u, i, c in zip(sim_log.user, sim_log.item, sim_log.click, strict=True) if c}
    lengths: dict[int, int] = {}
    for row, user in enumerate(sim_log.user.tolist()):
        history = items.to_external(rows.histories[row]).to_list()
        assert all((user, int(i)) in clicked for i in history)  # only the user's own clicked items
        assert len(history) >= min(lengths.get(user, 0), 10)  # histories only grow (up to max_len)
        lengths[user] = len(history)
    assert sum(lengths.values()) > 0
