"""An event log as REINFORCE training rows: (user history before the event, shown item, reward, logged
propensity).

Two logs are read: the service's own (``rankstack serve`` keeps every ``/v1/events`` event in its state store;
:mod:`rankstack.ope.service_log` reads the SQLite file read-only, in log order) and a canonical event log such as
``rankstack simulate`` writes (a dataset name, file or folder; its events in time order). One row per
``impression`` whose item the artifact knows:

- history: the user's training sequence from the artifact, then the user's ``click`` / ``conversion`` events
  stored before the request's first impression (the items the service itself adds to a history,
  ``rankstack.pipeline.batch``), unknown items dropped, the last ``max_len`` kept. Every impression of one
  ``request_id`` gets the history as of that request's first impression, so feedback on a slate never leaks into
  the state its items were shown in;
- reward: 1 when a ``reward_event`` (``click`` by default) with the same ``request_id`` and item follows; an
  impression without a request id is joined to the next such event of the same user and item without one;
- propensity: the per-slot propensity the exploration stage returned and the client posted back (NaN if absent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from rankstack.data.idmap import IdMap
from rankstack.data.loaders import load_dataset
from rankstack.errors import ConfigError, DataValidationError
from rankstack.ope.service_log import read_service_events

HISTORY_EVENTS = ("click", "conversion")


@dataclass
class ServiceRows:
    """Training rows in log order and what the reader left out."""

    histories: list[np.ndarray]
    items: np.ndarray
    rewards: np.ndarray
    propensity: np.ndarray
    users: list[str]
    counts: dict[str, int] = field(default_factory=dict)


def sqlite_path(state: str) -> Path:
    """The file of a ``sqlite:PATH`` URL or a plain path (ConfigError for other stores: only SQLite logs are
    read)."""
    if "://" in state and not state.startswith("sqlite:"):
        raise ConfigError(f"--state: only a SQLite store (sqlite:PATH) can be read as a training log, got {state!r}")
    path = state.removeprefix("sqlite:").removeprefix("//")
    if not path:
        raise ConfigError("--state: expected sqlite:PATH with a file path")
    return Path(path)


def read_service_rows(path: Path, *, user_map: IdMap, item_map: IdMap, train_histories: list[np.ndarray],
                      max_len: int, reward_event: Literal["click", "conversion"] = "click") -> ServiceRows:
    """One row per impression of a known item in the store at ``path`` (see the module docstring)."""
    return rows_from_events(read_service_events(path), user_map=user_map, item_map=item_map,
                            train_histories=train_histories, max_len=max_len, reward_event=reward_event)


def dataset_events(spec: str) -> pl.DataFrame:
    """A canonical event log (dataset name, file or folder) in external ids and time order, with ``request_id``
    and ``propensity`` (null where the log has none); DataValidationError without an ``event`` column."""
    dataset = load_dataset(spec)
    events = dataset.events
    if "event" not in events.columns:
        raise DataValidationError(spec, "the log has no 'event' column (impressions and clicks are needed)")
    events = events.with_columns(
        dataset.item_map.to_external(events.get_column("item_id").to_numpy()).alias("item_id"),
        dataset.user_map.to_external(events.get_column("user_id").to_numpy()).alias("user_id"),
        *[pl.lit(None, dtype=dtype).alias(name) for name, dtype in (("request_id", pl.String),
                                                                    ("propensity", pl.Float64))
          if name not in events.columns])
    return events.sort("timestamp", maintain_order=True) if "timestamp" in events.columns else events


def rows_from_events(frame: pl.DataFrame, *, user_map: IdMap, item_map: IdMap, train_histories: list[np.ndarray],
                     max_len: int, reward_event: Literal["click", "conversion"] = "click") -> ServiceRows:
    """One row per impression of a known item in ``frame`` (``user_id``, ``item_id``, ``event``, ``request_id``,
    ``propensity``; in log order)."""
    users, items, events = frame["user_id"].to_list(), frame["item_id"].to_list(), frame["event"].to_list()
    requests, props = frame["request_id"].to_list(), frame["propensity"].to_list()
    known_users = dict(zip(users, user_map.to_internal(users, strict=False).tolist(), strict=True)) if users else {}
    item_ids = item_map.to_internal(items, strict=False).tolist() if items else []
    history: dict[str, list[int]] = {}
    at_request: dict[str, np.ndarray] = {}
    open_rows: dict[tuple[str, str, str], int] = {}  # (request id or "", user or "", item) → row awaiting reward
    out = ServiceRows([], np.zeros(0, np.int64), np.zeros(0), np.zeros(0), [])
    shown: list[int] = []
    rewards: list[float] = []
    propensity: list[float] = []
    unknown_items = impressions = 0
    for user, item, internal, event, request, prop in zip(users, items, item_ids, events, requests, props,
                                                          strict=True):
        if user not in history:
            known = known_users[user]
            history[user] = list(train_histories[known][-max_len:]) if known >= 0 else []
        if event == "impression":
            impressions += 1
            if internal < 0:
                unknown_items += 1
                continue
            if request is not None and request in at_request:
                state = at_request[request]
            else:
                state = np.asarray(history[user][-max_len:], dtype=np.int64)
                if request is not None:
                    at_request[request] = state
            open_rows[(request, "", item) if request is not None else ("", user, item)] = len(shown)
            out.histories.append(state)
            out.users.append(user)
            shown.append(internal)
            rewards.append(0.0)
            propensity.append(np.nan if prop is None else float(prop))
            continue
        if event == reward_event:
            row = open_rows.pop((request, "", item) if request is not None else ("", user, item), None)
            if row is not None:
                rewards[row] = 1.0
        if event in HISTORY_EVENTS and internal >= 0:
            history[user].append(internal)
            del history[user][:-max_len]
    out.items = np.asarray(shown, dtype=np.int64)
    out.rewards = np.asarray(rewards, dtype=np.float64)
    out.propensity = np.asarray(propensity, dtype=np.float64)
    out.counts = {"events": len(events), "impressions": impressions, "unknown_items": unknown_items,
                  "rows": len(shown), "rewarded": int(out.rewards.sum()),
                  "unknown_users": sum(1 for u in history if known_users[u] < 0)}
    return out
