"""Logged bandit feedback as arrays: one round per shown (item, slot), read from canonical event columns.

A log in the canonical columns (``rankstack.data.schema``) holds one ``impression`` event per shown item with its
``request_id``, 0-based ``position`` and per-slot logging ``propensity``; a reward event (``click`` by default)
with the same (request_id, item_id) makes that impression's reward 1. The Open Bandit Dataset loaders and
the service's event store (:mod:`rankstack.ope.service_log`) both produce such events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from rankstack.data.dataset import Dataset
from rankstack.errors import DataValidationError


@dataclass(frozen=True)
class BanditLog:
    """Rounds (reward, action index, slot, logged per-slot propensity, context features [rounds, d]) over the action
    axis ``items`` (external item ids) with ``n_slots`` slots and optional ``action_features`` [actions, k]; when the
    events had them, each round's ``request_ids`` and external ``user_ids`` (what a pipeline target is asked)."""

    reward: np.ndarray
    action: np.ndarray
    position: np.ndarray
    pscore: np.ndarray
    context: np.ndarray
    items: np.ndarray
    n_slots: int
    action_features: np.ndarray | None = None
    request_ids: np.ndarray | None = None
    user_ids: np.ndarray | None = None

    @property
    def n_rounds(self) -> int:
        """Number of logged rounds."""
        return len(self.reward)

    @property
    def n_actions(self) -> int:
        """Number of actions (items) on the action axis."""
        return len(self.items)

    def take(self, index: np.ndarray) -> BanditLog:
        """The rounds at ``index``."""
        return BanditLog(self.reward[index], self.action[index], self.position[index], self.pscore[index],
                         self.context[index], self.items, self.n_slots, self.action_features,
                         None if self.request_ids is None else self.request_ids[index],
                         None if self.user_ids is None else self.user_ids[index])


def one_hot_features(frame: pl.DataFrame) -> np.ndarray:
    """Numeric columns as they are, string / categorical columns one-hot encoded: float [rows, d]."""
    if frame.width == 0:
        return np.zeros((frame.height, 0))
    parts = []
    for name in frame.columns:
        column = frame.get_column(name)
        if column.dtype.is_numeric():
            parts.append(column.cast(pl.Float64).fill_null(0.0).to_numpy()[:, None])
        else:
            parts.append(column.cast(pl.String).fill_null("").to_frame().to_dummies().to_numpy().astype(np.float64))
    return np.hstack(parts)


def _require(events: pl.DataFrame, columns: Sequence[str], source: str) -> None:
    """Raise naming the missing columns an off-policy log needs."""
    missing = [c for c in columns if c not in events.columns]
    if missing:
        raise DataValidationError(source, f"an off-policy log needs column(s) {missing} on its impression events; "
                                          f"found {events.columns}")


def bandit_log_from_events(
    events: pl.DataFrame,
    *,
    source: str,
    context_columns: Sequence[str] = (),
    items: Sequence[object] | np.ndarray | None = None,
    item_features: pl.DataFrame | None = None,
    reward_events: Sequence[str] = ("click",),
) -> BanditLog:
    """One round per impression event, its reward joined from ``reward_events`` on (request_id, item_id).

    ``items`` fixes the action axis (default: the sorted distinct logged item ids); ``item_features`` (an
    ``item_id`` column + features) gives the reward models action features. Raises DataValidationError naming
    the column and row of a missing propensity or position, or an item outside ``items``.
    """
    _require(events, ("event", "request_id", "item_id", "position", "propensity"), source)
    shown = events.filter(pl.col("event") == "impression").with_row_index("_row")
    if shown.height == 0:
        raise DataValidationError(source, "the log holds no impression events")
    for column in ("request_id", "position", "propensity"):
        nulls = shown.get_column(column).is_null()
        if nulls.any():
            raise DataValidationError(source, f"impression {int(nulls.arg_true()[0])} has no {column}", column=column)
    rewarded = (events.filter(pl.col("event").is_in(list(reward_events)))
                .select("request_id", "item_id").unique().with_columns(pl.lit(1.0).alias("_reward")))
    joined = shown.join(rewarded, on=["request_id", "item_id"], how="left").sort("_row")
    axis = np.sort(shown.get_column("item_id").unique().to_numpy()) if items is None else np.asarray(items)
    lookup = {value: i for i, value in enumerate(axis.tolist())}
    logged = joined.get_column("item_id").to_list()
    action = np.fromiter((lookup.get(v, -1) for v in logged), dtype=np.int64, count=len(logged))
    if (action < 0).any():
        row = int(np.argmax(action < 0))
        raise DataValidationError(source, f"impression {row}: item {logged[row]!r} is not on the action axis "
                                          f"({len(axis)} items)", column="item_id")
    position = joined.get_column("position").to_numpy().astype(np.int64)
    if (position < 0).any():
        raise DataValidationError(source, f"impression {int(np.argmax(position < 0))} has a negative position",
                                  column="position")
    features = None
    if item_features is not None:
        table = pl.DataFrame({"item_id": axis}).join(item_features, on="item_id", how="left")
        features = one_hot_features(table.drop("item_id"))
    return BanditLog(
        reward=joined.get_column("_reward").fill_null(0.0).to_numpy().astype(np.float64),
        action=action,
        position=position,
        pscore=joined.get_column("propensity").to_numpy().astype(np.float64),
        context=one_hot_features(joined.select(list(context_columns))) if context_columns else
        np.zeros((joined.height, 0)),
        items=axis,
        n_slots=int(position.max()) + 1,
        action_features=features,
        request_ids=joined.get_column("request_id").cast(pl.String).to_numpy(),
        user_ids=joined.get_column("user_id").cast(pl.String).to_numpy() if "user_id" in joined.columns else None,
    )


def bandit_log_from_dataset(dataset: Dataset, **kwargs: object) -> BanditLog:
    """:func:`bandit_log_from_events` on a loaded dataset's events in external ids, with its context columns and
    item features (``items`` defaults to every item of the dataset's catalogue)."""
    events = dataset.events.with_columns(
        dataset.item_map.to_external(dataset.events.get_column("item_id").to_numpy()).alias("item_id"),
        dataset.user_map.to_external(dataset.events.get_column("user_id").to_numpy()).alias("user_id"))
    features = None
    if dataset.item_features is not None:
        features = dataset.item_features.with_columns(
            dataset.item_map.to_external(dataset.item_features.get_column("item_id").to_numpy()).alias("item_id"))
    items = kwargs.pop("items", None)
    if items is None:
        items = np.sort(dataset.item_map.to_external(np.arange(dataset.n_items)).to_numpy())
    return bandit_log_from_events(events, source=dataset.name, context_columns=dataset.schema.context_columns,
                                  items=items, item_features=features, **kwargs)  # type: ignore[arg-type]
