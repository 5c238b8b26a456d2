"""Dataset specs (what a named dataset needs and where it comes from) and shared reading helpers."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from rankstack.data.dataset import Dataset
from rankstack.data.schema import EventSchema, validate_events
from rankstack.errors import DatasetNotFoundError

SplitKind = Literal["leave_one_out", "predefined", "temporal"]


@dataclass(frozen=True)
class Download:
    """A public file to fetch: saved as ``target``, or a zip whose ``strip`` folder is unpacked there."""

    url: str
    target: str = ""
    kind: Literal["file", "zip"] = "file"
    strip: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: its folder under a data directory, needed files (each a tuple of alternatives)."""

    name: str
    description: str
    subdir: str
    files: tuple[tuple[str, ...], ...]
    licence: str
    default_split: SplitKind
    downloads: tuple[Download, ...]
    loader: Callable[[Path], Dataset]

    def resolve(self, root: Path) -> list[Path] | None:
        """The first existing alternative of every needed file under ``root``, or None if any is absent."""
        found: list[Path] = []
        for alternatives in self.files:
            path = first_existing(root, alternatives)
            if path is None:
                return None
            found.append(path)
        return found


def first_existing(root: Path, names: tuple[str, ...]) -> Path | None:
    """The first of ``root / name`` that is a file, or None."""
    for name in names:
        path = root / name
        if path.is_file():
            return path
    return None


def require(root: Path, names: tuple[str, ...]) -> Path:
    """The first existing ``root / name``; raises DatasetNotFoundError naming all alternatives."""
    path = first_existing(root, names)
    if path is None:
        raise DatasetNotFoundError(f"{root}: none of {list(names)} found")
    return path


def read_bytes(path: Path) -> bytes:
    """Whole file as bytes, gunzipped when the name ends in ``.gz``."""
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as fh:
            return fh.read()
    return path.read_bytes()


def read_separated(
    path: Path,
    columns: list[str],
    *,
    separator: str,
    encoding: str = "utf-8",
    dtypes: list[pl.DataType] | None = None,
) -> pl.DataFrame:
    """Read a headerless table whose separator may be several characters (``::``); strings unless typed."""
    text = read_bytes(path).decode(encoding)
    sep = separator if len(separator) == 1 else "\x1f"
    if sep != separator:
        text = text.replace(separator, sep)
    schema = dict(zip(columns, dtypes or [pl.String()] * len(columns), strict=True))
    return pl.read_csv(text.encode("utf-8"), has_header=False, separator=sep, quote_char=None, schema=schema)


def year_from_title(title: pl.Expr) -> pl.Expr:
    """Release year from a trailing ``(1995)`` in a MovieLens title (null when absent)."""
    return title.str.strip_chars().str.extract(r"\((\d{4})[^()]*\)$", 1).cast(pl.Int64).alias("year")


def finish(
    events: pl.DataFrame,
    *,
    name: str,
    source: Path,
    schema: EventSchema | None = None,
    item_features: pl.DataFrame | None = None,
    user_features: pl.DataFrame | None = None,
) -> Dataset:
    """Validate events (errors name ``source``) and build the dataset with internal ids."""
    schema = schema or EventSchema()
    valid = validate_events(events, source=str(source), schema=schema)
    return Dataset.from_events(
        valid,
        name=name,
        schema=schema,
        item_features=item_features,
        user_features=user_features,
        validated=True,
    )
