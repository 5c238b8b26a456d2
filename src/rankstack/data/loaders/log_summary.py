"""What a log holds, before any training: counts, time range, events per user, repeats and the split it would get
(``rankstack data inspect``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from rankstack.data.loaders.event_log import LoadedLog
from rankstack.data.loaders.specs import DatasetSpec
from rankstack.data.loaders.split_choice import choose_split
from rankstack.data.splits import make_split
from rankstack.errors import RankstackError

QUANTILES = {"min": 0.0, "p25": 0.25, "median": 0.5, "p75": 0.75, "p95": 0.95, "max": 1.0}


def spread(counts: np.ndarray) -> dict[str, float]:
    """Min, quartiles, 95th percentile, max and mean of a count per user (or item)."""
    if counts.size == 0:
        return {}
    out = {name: float(np.quantile(counts, q, method="lower")) for name, q in QUANTILES.items()}
    return {**out, "mean": round(float(counts.mean()), 2)}


def _time(loaded: LoadedLog) -> dict[str, Any]:
    """How events are ordered and, for real timestamps, the first and last."""
    ts = loaded.dataset.events.get_column("timestamp")
    order = loaded.info.order if loaded.info is not None else ("time" if ts.null_count() == 0 else "none")
    out: dict[str, Any] = {"order": order, "untimed_events": int(ts.null_count())}
    if order == "time" and ts.null_count() < len(ts):
        # polars formats dates past 9999 (milliseconds read as seconds) that Python's datetime cannot hold
        bounds = ts.drop_nulls().sort()[[0, -1]]
        first, last = bounds.dt.to_string("%Y-%m-%dT%H:%M:%S%.f").to_list()
        micros = bounds.dt.epoch("us").to_list()
        days = (micros[1] - micros[0]) / 86_400e6
        out.update(first=first, last=last, days=round(days, 2 if days >= 1 else 5))
    return out


def _split(loaded: LoadedLog, requested: str | None, spec: DatasetSpec | None) -> dict[str, Any]:
    """The split evaluate/train would use, why, and its part sizes; or the error they would stop with."""
    try:
        choice = choose_split(loaded.dataset, requested, spec=spec, info=loaded.info)
        split = make_split(loaded.dataset, choice.kind)
    except (RankstackError, ValueError) as exc:
        return {"kind": None, "error": str(exc)}
    return {"kind": choice.kind, "reason": choice.reason, "sizes": split.summary()}


def summarize(loaded: LoadedLog, *, requested_split: str | None = None, spec: DatasetSpec | None = None
              ) -> dict[str, Any]:
    """Everything ``rankstack data inspect`` prints, as one JSON-ready mapping."""
    data = loaded.dataset
    events = data.events
    per_user = events.group_by("user_id").len().get_column("len").to_numpy()
    per_item = events.group_by("item_id").len().get_column("len").to_numpy()
    kinds = dict(events.group_by("event").len().sort("len", descending=True).iter_rows())
    problems = []
    info = loaded.info
    if info is not None and info.duplicates and info.duplicates_action == "error":
        problems.append(f"{info.duplicates:,} repeated rows (identical in every column): evaluate and train stop on "
                        "them; pass --duplicates drop (duplicates: drop in a pipeline YAML) to drop the repeats")
    split = _split(loaded, requested_split, spec)
    if split["kind"] is None:
        problems.append(split["error"])
    return {
        "dataset": data.name,
        "read": info.to_json() if info is not None else {"registered": spec.name if spec else None},
        "users": data.n_users,
        "items": data.n_items,
        "events": len(data),
        "event_types": {str(k): int(v) for k, v in kinds.items()},
        "time": _time(loaded),
        "events_per_user": spread(per_user),
        "users_with_one_event": int((per_user == 1).sum()),
        "events_per_item": spread(per_item),
        "items_with_one_event": int((per_item == 1).sum()),
        "density": round(len(data) / max(data.n_users * data.n_items, 1), 6),
        "columns": {c: str(t) for c, t in events.schema.items() if not _all_null(events, c)},
        "split": split,
        "problems": problems,
    }


def _all_null(events: pl.DataFrame, column: str) -> bool:
    """Whether a column holds no value at all (an optional column the file did not have)."""
    return events.get_column(column).null_count() == events.height
