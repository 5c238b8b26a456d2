"""A dataset: canonical events with dense internal ids, their id maps and optional feature tables."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp

from rankstack.data.idmap import IdMap
from rankstack.data.schema import EventSchema, validate_events
from rankstack.errors import DataValidationError
from rankstack.io import atomic_write, write_text_atomic


@dataclass(frozen=True)
class Dataset:
    """Events whose ``user_id``/``item_id`` are internal ints in ``[0, n_users)`` / ``[0, n_items)``."""

    name: str
    events: pl.DataFrame
    user_map: IdMap
    item_map: IdMap
    item_features: pl.DataFrame | None = None
    user_features: pl.DataFrame | None = None
    schema: EventSchema = field(default_factory=EventSchema)

    @classmethod
    def from_events(
        cls,
        events: pl.DataFrame,
        *,
        name: str,
        schema: EventSchema | None = None,
        item_features: pl.DataFrame | None = None,
        user_features: pl.DataFrame | None = None,
        validated: bool = False,
    ) -> Dataset:
        """Validate external-id events, fit id maps on them and map events and features to internal ids."""
        schema = schema or EventSchema()
        if not validated:
            events = validate_events(events, source=name, schema=schema)
        user_map = IdMap.fit(events.get_column("user_id"), name=f"{name}:user_id")
        item_map = IdMap.fit(events.get_column("item_id"), name=f"{name}:item_id")
        internal = events.with_columns(
            pl.Series("user_id", user_map.to_internal(events.get_column("user_id"))),
            pl.Series("item_id", item_map.to_internal(events.get_column("item_id"))),
        )
        return cls(
            name=name,
            events=internal,
            user_map=user_map,
            item_map=item_map,
            item_features=_map_features(item_features, item_map, "item_id", name),
            user_features=_map_features(user_features, user_map, "user_id", name),
            schema=schema,
        )

    @property
    def n_users(self) -> int:
        """Number of users in the id map (the full dataset, not only this part)."""
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        """Number of items in the id map."""
        return len(self.item_map)

    def __len__(self) -> int:
        return self.events.height

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, events={len(self)}, users={self.n_users}, items={self.n_items})"

    def with_events(self, events: pl.DataFrame) -> Dataset:
        """A dataset sharing this one's id maps and features but holding other (internal-id) events."""
        return replace(self, events=events)

    def positive_events(self) -> pl.DataFrame:
        """Events whose type has a positive weight (e.g. all but impressions)."""
        weights = {e: self.schema.weight(e) for e in self.schema.event_types}
        positive = [e for e, w in weights.items() if w > 0]
        return self.events.filter(pl.col("event").is_in(positive))

    def interaction_matrix(self, *, binary: bool = True) -> sp.csr_matrix:
        """User × item CSR matrix (float32) of positive events; weights summed, or 1/0 when binary."""
        ev = self.positive_events()
        users = ev.get_column("user_id").to_numpy()
        items = ev.get_column("item_id").to_numpy()
        if binary:
            data = np.ones(len(users), dtype=np.float32)
        else:
            weight = ev.get_column("event").replace_strict(
                {e: self.schema.weight(e) for e in self.schema.event_types}, return_dtype=pl.Float32
            )
            data = weight.to_numpy().astype(np.float32)
        mat = sp.csr_matrix((data, (users, items)), shape=(self.n_users, self.n_items), dtype=np.float32)
        mat.sum_duplicates()
        if binary:
            mat.data[:] = 1.0
        mat.sort_indices()
        return mat

    def sequences(self) -> list[np.ndarray]:
        """Per-user item ids of positive events in time order (ties keep row order); index = user id."""
        ev = self.positive_events().with_row_index("_row").sort(["user_id", "timestamp", "_row"])
        users = ev.get_column("user_id").to_numpy()
        items = ev.get_column("item_id").to_numpy().astype(np.int64)
        bounds = np.searchsorted(users, np.arange(self.n_users + 1))
        return [items[bounds[u] : bounds[u + 1]] for u in range(self.n_users)]

    def checksum(self) -> str:
        """SHA-256 over the events' user, item, timestamp and event columns (stable across runs)."""
        digest = hashlib.sha256()
        for col in ("user_id", "item_id"):
            digest.update(self.events.get_column(col).to_numpy().astype(np.int64).tobytes())
        ts = self.events.get_column("timestamp").cast(pl.Int64).fill_null(-1).to_numpy()
        digest.update(ts.astype(np.int64).tobytes())
        digest.update("\n".join(self.events.get_column("event").to_list()).encode())
        return digest.hexdigest()

    def save(self, directory: str | Path) -> None:
        """Write events, id maps and features as Parquet plus ``dataset.json`` (name and schema)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_write(out / "events.parquet") as tmp:
            self.events.write_parquet(tmp)
        self.user_map.save(out / "user_map.parquet")
        self.item_map.save(out / "item_map.parquet")
        for key, table in (("item_features", self.item_features), ("user_features", self.user_features)):
            if table is not None:
                with atomic_write(out / f"{key}.parquet") as tmp:
                    table.write_parquet(tmp)
        meta = {"name": self.name, "schema": self.schema.model_dump(mode="json")}
        write_text_atomic(out / "dataset.json", json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> Dataset:
        """Read a dataset written by :meth:`save`."""
        src = Path(directory)
        meta = json.loads((src / "dataset.json").read_text(encoding="utf-8"))
        name = meta["name"]

        def optional(key: str) -> pl.DataFrame | None:
            path = src / f"{key}.parquet"
            return pl.read_parquet(path) if path.exists() else None

        return cls(
            name=name,
            events=pl.read_parquet(src / "events.parquet"),
            user_map=IdMap.load(src / "user_map.parquet", name=f"{name}:user_id"),
            item_map=IdMap.load(src / "item_map.parquet", name=f"{name}:item_id"),
            item_features=optional("item_features"),
            user_features=optional("user_features"),
            schema=EventSchema.model_validate(meta["schema"]),
        )


def _map_features(
    table: pl.DataFrame | None, id_map: IdMap, key: str, name: str
) -> pl.DataFrame | None:
    """Map a feature table's external ``key`` to internal ids, dropping rows of unknown ids."""
    if table is None:
        return None
    if key not in table.columns:
        raise DataValidationError(f"{name} {key.split('_')[0]} features", f"missing key column '{key}'")
    repeated = ~table.get_column(key).is_first_distinct()
    if repeated.any():
        row = int(repeated.arg_true()[0]) + 1
        raise DataValidationError(
            f"{name} {key.split('_')[0]} features", f"duplicate id {table.get_column(key)[row - 1]!r}",
            column=key, row=row,
        )
    ids = id_map.to_internal(table.get_column(key), strict=False)
    mapped = table.with_columns(pl.Series(key, ids)).filter(pl.col(key) >= 0)
    return mapped.sort(key)
