"""Preparing an event log for training at scale: validation → id maps → interaction shards and sequences.

``rankstack data prepare LOG --out DIR --shards N`` reads a CSV/TSV (header row, canonical column names) or Parquet
log, validates it (:func:`~rankstack.data.schema.validate_events`: the same errors, naming the file, column and
row), fits the user and item id maps (sorted distinct ids) and writes::

    DIR/user_map.parquet, item_map.parquet       the id maps (IdMap.save)
    DIR/interactions/part-00000.parquet ...      events with internal ids; shard i holds users with
                                                 user_id * N // n_users == i, sorted by user, time, file row
    DIR/sequences/part-00000.parquet ...         per user of the shard: positive events' items in time order
    DIR/manifest.json                            counts, each file's SHA-256 and one hash over them all

The pieces here are pure functions over one chunk of rows or one shard, so the single-machine path
(:func:`prepare_log`) and the Ray one (``rankstack.distributed.preprocess``) run the same code and write the same
bytes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from rankstack.data.idmap import IdMap
from rankstack.data.loaders.event_log import read_table
from rankstack.data.schema import EventSchema, first_repeat, normalise_events, validate_events
from rankstack.errors import DataValidationError
from rankstack.io import write_text_atomic

ROW = "_row"  # 0-based row of the file, kept while shards are built (ties in time keep file order)
# the order in which normalise_events checks the rows: the first failing check is reported, at its first row
CHECKS = ("user_id", "item_id", "timestamp", "event", "value", "position", "propensity", "propensity range",
          "position range")


def check_of(exc: DataValidationError) -> str:
    """Which of :data:`CHECKS` raised ``exc`` (a row error from :func:`normalise_events`)."""
    message = str(exc)
    if exc.column == "propensity" and "propensity must be" in message:
        return "propensity range"
    if exc.column == "position" and "position must be" in message:
        return "position range"
    return exc.column or ""


@dataclass(frozen=True)
class RowError:
    """A chunk's validation error: the check, the 1-based row within the chunk, and the message without its place."""

    check: str
    row: int
    column: str | None
    message: str

    @classmethod
    def of(cls, exc: DataValidationError) -> RowError:
        """From the error :func:`normalise_events` raised on a chunk."""
        where = ", ".join([exc.source, *([f"column '{exc.column}'"] if exc.column else []), f"row {exc.row}"])
        return cls(check_of(exc), int(exc.row or 0), exc.column, str(exc).removeprefix(where + ": "))

    def raise_at(self, source: str, offset: int) -> None:
        """Raise it as :func:`validate_events` on the whole file would: the row counted from the file's start."""
        raise DataValidationError(source, self.message, column=self.column, row=offset + self.row)


def first_error(errors: list[tuple[int, RowError]]) -> tuple[int, RowError] | None:
    """The error the whole file reports, from (chunk offset, error) pairs: the earliest check, then the first row."""
    ranked = [(CHECKS.index(e.check) if e.check in CHECKS else -1, offset + e.row, offset, e) for offset, e in errors]
    if not ranked:
        return None
    _, _, offset, error = min(ranked, key=lambda r: (r[0], r[1]))
    return offset, error


def normalise_chunk(frame: pl.DataFrame, source: str, schema: EventSchema) -> pl.DataFrame | RowError:
    """One chunk of rows normalised (canonical columns, dtypes), or its row error; errors without a row (missing
    or unexpected columns) are the same for every chunk and raise here."""
    try:
        return normalise_events(frame, source=source, schema=schema)
    except DataValidationError as exc:
        if exc.row is None:
            raise
        return RowError.of(exc)


def with_internal_ids(events: pl.DataFrame, users: IdMap, items: IdMap, offset: int) -> pl.DataFrame:
    """Events with internal user/item ids and their file row (``offset`` + position) in :data:`ROW`."""
    return events.with_columns(
        pl.Series("user_id", users.to_internal(events.get_column("user_id")), dtype=pl.Int64),
        pl.Series("item_id", items.to_internal(events.get_column("item_id")), dtype=pl.Int64),
        pl.int_range(offset, offset + events.height, dtype=pl.Int64).alias(ROW),
    )


def shard_of(user_ids: pl.Expr, n_users: int, shards: int) -> pl.Expr:
    """The shard of each internal user id: contiguous ranges, ``user_id * shards // n_users``."""
    return (user_ids * shards) // max(n_users, 1)


def repeats_in(shard: pl.DataFrame) -> tuple[pl.Series, tuple[int, int] | None]:
    """(rows identical in every column to an earlier row of the file, the first such (earlier, later) 1-based file
    rows); a repeat always shares its user, hence its shard, with the row it repeats."""
    ordered = shard.sort(ROW)
    repeats = ~ordered.select(pl.struct(pl.exclude(ROW)).is_first_distinct()).to_series()
    if not repeats.any():
        return repeats, None
    earlier, later = first_repeat(ordered.drop(ROW), repeats)
    rows = ordered.get_column(ROW)
    return repeats, (int(rows[earlier - 1]) + 1, int(rows[later - 1]) + 1)


def drop_repeats(shard: pl.DataFrame) -> pl.DataFrame:
    """The shard without rows repeating an earlier row of the file."""
    ordered = shard.sort(ROW)
    repeats, _ = repeats_in(ordered)
    return ordered.filter(~repeats)


def shard_tables(shard: pl.DataFrame, schema: EventSchema) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(interactions sorted by user, time — nulls last — and file row; sequences: each user's positive events'
    items in that order) of one shard's events (internal ids, :data:`ROW`)."""
    interactions = shard.sort(["user_id", "timestamp", ROW], nulls_last=True)
    positive = [e for e in schema.event_types if schema.weight(e) > 0]
    sequences = (interactions.filter(pl.col("event").is_in(positive))
                 .group_by("user_id", maintain_order=True).agg(pl.col("item_id").alias("items")))
    return interactions.drop(ROW).rechunk(), sequences.rechunk()


def write_shard(out: Path, number: int, interactions: pl.DataFrame, sequences: pl.DataFrame) -> dict[str, str]:
    """Write shard ``number``'s two files; {relative path: SHA-256}."""
    hashes = {}
    for folder, table in (("interactions", interactions), ("sequences", sequences)):
        path = out / folder / f"part-{number:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        table.write_parquet(path, compression="zstd", statistics=True)
        hashes[f"{folder}/{path.name}"] = sha256(path)
    return hashes


def sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_maps(out: Path, users: IdMap, items: IdMap) -> dict[str, str]:
    """Write the two id maps; {relative path: SHA-256}."""
    users.save(out / "user_map.parquet")
    items.save(out / "item_map.parquet")
    return {name: sha256(out / name) for name in ("user_map.parquet", "item_map.parquet")}


def write_manifest(out: Path, hashes: dict[str, str], counts: dict[str, int]) -> dict[str, Any]:
    """``manifest.json``: counts, each file's hash and ``hash``, one SHA-256 over the sorted (path, hash) pairs."""
    files = dict(sorted(hashes.items()))
    total = hashlib.sha256("".join(f"{p}\t{h}\n" for p, h in files.items()).encode()).hexdigest()
    manifest = {**counts, "files": files, "hash": total}
    write_text_atomic(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest


def fresh_dir(out: Path) -> Path:
    """``out`` emptied of a previous preparation's files (refusing a folder that holds anything else)."""
    if out.exists() and any(out.iterdir()) and not (out / "manifest.json").exists():
        raise DataValidationError(str(out), "the output folder is not empty and holds no manifest.json: choose a "
                                            "new folder (prepare replaces only its own output)")
    for part in ("interactions", "sequences"):
        shutil.rmtree(out / part, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    return out


def prepare_log(path: str | Path, out: str | Path, *, shards: int = 8, schema: EventSchema | None = None
                ) -> dict[str, Any]:
    """The single-machine preparation (module docstring); returns the manifest."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    schema = schema or EventSchema()
    source = str(path)
    events = validate_events(read_table(Path(path)), source=source, schema=schema)
    users = IdMap.fit(events.get_column("user_id"), name=f"{source}:user_id")
    items = IdMap.fit(events.get_column("item_id"), name=f"{source}:item_id")
    target = fresh_dir(Path(out))
    hashes = write_maps(target, users, items)
    mapped = with_internal_ids(events, users, items, 0).with_columns(
        shard_of(pl.col("user_id"), len(users), shards).alias("_shard"))
    parts = mapped.partition_by("_shard", as_dict=True, include_key=False)
    for number in range(shards):
        shard = parts.get((number,), mapped.clear().drop("_shard"))
        hashes.update(write_shard(target, number, *shard_tables(shard, schema)))
    return write_manifest(target, hashes, {"events": events.height, "users": len(users), "items": len(items),
                                           "shards": shards})
