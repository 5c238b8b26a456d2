"""``rankstack data prepare`` on Ray workers, writing the bytes the single-machine path writes.

The log is cut into chunks — CSV/TSV at line starts by byte offset, Parquet by row groups — that workers read and
validate in parallel (:func:`rankstack.data.prepare.normalise_chunk`). Each chunk's rows are counted, so a bad row
is reported at its row of the whole file, and the error reported is the one one process would raise (the earliest
check, then the first row). The id maps are the sorted union of the chunks' distinct ids; the chunks' rows are
then split by user shard, and each shard (a repeated row always shares its user, hence its shard) is de-duplicated,
sorted and written by one worker with the single-machine code (:mod:`rankstack.data.prepare`).

CSV limit: a quoted field may not hold a line break (a chunk starts at a line start).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from rankstack.data.idmap import IdMap
from rankstack.data.loaders.text_formats import format_of
from rankstack.data.prepare import (
    RowError,
    drop_repeats,
    first_error,
    fresh_dir,
    normalise_chunk,
    repeats_in,
    shard_of,
    shard_tables,
    with_internal_ids,
    write_manifest,
    write_maps,
    write_shard,
)
from rankstack.data.schema import EventSchema, duplicates_message
from rankstack.distributed.backend import Backend
from rankstack.distributed.cluster import ray_session, worker_count
from rankstack.errors import DataValidationError

CHUNKS_PER_WORKER = 4
EMPTY = "no events: the data is empty"


def csv_chunks(path: Path, parts: int) -> tuple[bytes, list[tuple[int, int]]]:
    """(the header line, byte ranges of the data lines cut into about ``parts`` pieces at line starts)."""
    with path.open("rb") as f:
        header = f.readline()
        start, size = f.tell(), path.stat().st_size
        cuts = [start]
        for i in range(1, parts):
            f.seek(max(start + (size - start) * i // parts, cuts[-1]))
            if f.tell() > start:
                f.seek(f.tell() - 1)  # a cut landing on a line start keeps that line
            f.readline()
            cuts.append(max(f.tell(), cuts[-1]))
    cuts.append(size)
    return header, [(a, b) for a, b in itertools.pairwise(cuts) if b > a] or [(start, start)]


def parquet_chunks(path: Path, parts: int) -> list[tuple[int, int]]:
    """(row offset, rows) of about ``parts`` runs of whole row groups."""
    import pyarrow.parquet as pq

    sizes = [pq.ParquetFile(path).metadata.row_group(i).num_rows for i in range(pq.ParquetFile(path).num_row_groups)]
    per = max(1, -(-sum(sizes) // max(parts, 1)))
    chunks, offset, run = [], 0, 0
    for size in sizes:
        run += size
        if run >= per:
            chunks.append((offset, run))
            offset, run = offset + run, 0
    if run or not chunks:
        chunks.append((offset, run))
    return chunks


def read_chunk(path: str, fmt: str, header: bytes, chunk: tuple[int, int]) -> pl.DataFrame:
    """A chunk's raw columns, read as the single-machine reader reads the whole file (CSV: all strings)."""
    try:
        if fmt == "parquet":
            return pl.scan_parquet(path).slice(chunk[0], chunk[1]).collect()
        with open(path, "rb") as f:
            f.seek(chunk[0])
            data = f.read(chunk[1] - chunk[0])
        return pl.read_csv(header + data, separator="\t" if fmt == "tsv" else ",", infer_schema=False)
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
        raise DataValidationError(path, f"cannot read file as {fmt}: {str(exc).splitlines()[0]}") from exc


def validate_chunk(path: str, fmt: str, header: bytes, chunk: tuple[int, int], schema: EventSchema
                   ) -> tuple[tuple[int, RowError | None, pl.Series | None, pl.Series | None], pl.DataFrame | None]:
    """A worker's first task: ((rows, row error, distinct users, distinct items), the normalised rows)."""
    raw = read_chunk(path, fmt, header, chunk)
    try:
        events = normalise_chunk(raw, path, schema)
    except DataValidationError as exc:
        if raw.height == 0 and str(exc).endswith(EMPTY):
            return (0, None, None, None), None
        raise
    if isinstance(events, RowError):
        return (raw.height, events, None, None), None
    users, items = events.get_column("user_id").unique(), events.get_column("item_id").unique()
    return (raw.height, None, users, items), events


def split_chunk(events: pl.DataFrame | None, users: IdMap, items: IdMap, offset: int, shards: int
                ) -> list[pl.DataFrame] | pl.DataFrame:
    """A worker's second task: a chunk's rows with internal ids and file rows, one frame per user shard (one
    frame, not a list, for one shard: a Ray task with one return value returns it as it is)."""
    if events is None or events.height == 0:
        out = [pl.DataFrame()] * shards
    else:
        mapped = with_internal_ids(events, users, items, offset)
        mapped = mapped.with_columns(shard_of(pl.col("user_id"), len(users), shards).alias("_shard"))
        parts = mapped.partition_by("_shard", as_dict=True, include_key=False)
        empty = mapped.clear().drop("_shard")
        out = [parts.get((i,), empty) for i in range(shards)]
    return out if shards > 1 else out[0]


def _gather(pieces: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """One shard's rows from its pieces, in chunk order."""
    return pl.concat([p for p in pieces if p.width], how="vertical")


def shard_repeat(*pieces: pl.DataFrame) -> tuple[int, int] | None:
    """A worker's task under ``duplicates: error``: the shard's first (earlier, later) repeated file rows."""
    live = [p for p in pieces if p.width]
    return repeats_in(_gather(live))[1] if live else None


def write_prepared_shard(out: str, number: int, schema: EventSchema, template: pl.DataFrame,
                         *pieces: pl.DataFrame) -> tuple[int, dict[str, str]]:
    """A worker's last task: de-duplicate, sort and write shard ``number``; (its events, {file: SHA-256})."""
    live = [p for p in pieces if p.width]
    shard = drop_repeats(_gather(live)) if live else template
    interactions, sequences = shard_tables(shard, schema)
    return interactions.height, write_shard(Path(out), number, interactions, sequences)


def prepare_log_on_ray(path: str | Path, out: str | Path, backend: Backend, *, shards: int = 8,
                       schema: EventSchema | None = None) -> dict[str, Any]:
    """:func:`rankstack.data.prepare.prepare_log` on Ray workers: the same files, byte for byte, and the same errors."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    schema = schema or EventSchema()
    file, source = Path(path), str(path)
    fmt = format_of(file, "auto")
    if fmt not in ("csv", "tsv", "parquet"):
        raise DataValidationError(source, f"prepare reads CSV/TSV with a header row or Parquet, not {fmt}")
    with ray_session(backend) as ray:
        parts = worker_count(ray, backend) * CHUNKS_PER_WORKER
        header, chunks = csv_chunks(file, parts) if fmt != "parquet" else (b"", parquet_chunks(file, parts))
        validate = ray.remote(validate_chunk).options(num_returns=2, num_cpus=1)
        schema_ref = ray.put(schema)
        first = [validate.remote(source, fmt, header, c, schema_ref) for c in chunks]
        summaries = ray.get([meta for meta, _ in first])
        offsets = [0]
        for rows, *_ in summaries:
            offsets.append(offsets[-1] + rows)
        failed = first_error([(offsets[i], s[1]) for i, s in enumerate(summaries) if s[1] is not None])
        if failed is not None:
            failed[1].raise_at(source, failed[0])
        if offsets[-1] == 0:
            raise DataValidationError(source, EMPTY)
        users = IdMap.fit(pl.concat([s[2] for s in summaries if s[2] is not None]), name=f"{source}:user_id")
        items = IdMap.fit(pl.concat([s[3] for s in summaries if s[3] is not None]), name=f"{source}:item_id")
        split = ray.remote(split_chunk).options(num_returns=shards, num_cpus=1)
        maps = ray.put(users), ray.put(items)
        pieces = [split.remote(rows, *maps, offsets[i], shards) for i, (_, rows) in enumerate(first)]
        by_shard = [[chunk_pieces if shards == 1 else chunk_pieces[n] for chunk_pieces in pieces]
                    for n in range(shards)]
        if schema.duplicates == "error":
            check = ray.remote(shard_repeat).options(num_cpus=1)
            found = [r for r in ray.get([check.remote(*refs) for refs in by_shard]) if r is not None]
            if found:
                earlier, later = min(found, key=lambda r: r[1])
                raise DataValidationError(source, duplicates_message(earlier, later), row=later)
        target = fresh_dir(Path(out))
        hashes = write_maps(target, users, items)
        some = next(i for i, summary in enumerate(summaries) if summary[0])
        template = ray.put(with_internal_ids(ray.get(first[some][1]).clear(), users, items, 0))
        write = ray.remote(write_prepared_shard).options(num_cpus=1)
        written = ray.get([write.remote(str(target), n, schema_ref, template, *refs)
                           for n, refs in enumerate(by_shard)])
    events = 0
    for count, files in written:
        events += count
        hashes.update(files)
    return write_manifest(target, hashes, {"events": events, "users": len(users), "items": len(items),
                                           "shards": shards})
