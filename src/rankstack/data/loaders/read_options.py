"""How to read your own interaction log: its format, column names, event order, duplicates and split files.

The same options are ``--format``/``--columns``/``--order``/... on the command line and ``data:`` fields in a
pipeline YAML. Formats (``docs/data.md`` has examples):

| format      | what a file holds                                                                     |
|-------------|---------------------------------------------------------------------------------------|
| ``auto``    | by suffix: ``.csv``/``.tsv`` (with a header), ``.parquet``, ``.jsonl`` (sessions)      |
| ``csv``     | comma-separated with a header row (``tsv``: tab-separated)                            |
| ``parquet`` | a Parquet table                                                                       |
| ``pairs``   | headerless ``user item [value] [timestamp]`` lines, split on spaces or tabs           |
| ``sequences`` | headerless ``user item item …`` lines, one per user, items in time order            |
| ``sessions``| JSON lines ``{"session": id, "events": [{"aid": item, "ts": ms, "type": "clicks"}]}`` |
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rankstack.data.schema import CANONICAL_COLUMNS

Format = Literal["auto", "csv", "tsv", "parquet", "pairs", "sequences", "sessions"]
FORMATS: tuple[str, ...] = ("auto", "csv", "tsv", "parquet", "pairs", "sequences", "sessions")
Order = Literal["time", "file"]
TimeUnit = Literal["s", "ms", "us", "ns"]
SPLIT_COLUMN = "split"
SESSION_EVENTS = "events"
# keys a column mapping may use: the canonical columns, the predefined-split column, a session's event list
MAPPABLE = (*CANONICAL_COLUMNS, SPLIT_COLUMN, SESSION_EVENTS)
# cell spellings read as a missing value (compared case-insensitively, after stripping spaces)
MISSING_SPELLINGS = ("", "na", "n/a", "nan", "null", "none")


class ReadOptions(BaseModel):
    """How a log file is read; the defaults read a CSV/Parquet file with canonical column names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Format = "auto"
    columns: dict[str, str] = Field(
        default_factory=dict, description="canonical name → file column (headerless files: 1-based position)")
    order: Order | None = Field(
        default=None, description="time: by the timestamp column; file: row order is time order (default: time "
        "when there is a timestamp column; file for sequences and for pairs without one)")
    time_unit: TimeUnit | None = Field(
        default=None, description="unit of numeric timestamps (default: ms for sessions, else s)")
    duplicates: Literal["error", "drop"] = "error"
    ignore: tuple[str, ...] = Field(default=(), description="file columns to leave out")
    validation_file: Path | None = None
    test_file: Path | None = None

    @field_validator("columns")
    @classmethod
    def _sound(cls, columns: dict[str, str]) -> dict[str, str]:
        """Keys are checked where the schema is known (its context columns may be mapped too)."""
        empty = [key for key, value in columns.items() if not str(value).strip()]
        if empty:
            raise ValueError(f"column(s) {empty} are mapped to an empty name")
        values = list(columns.values())
        shared = sorted({v for v in values if values.count(v) > 1})
        if shared:
            raise ValueError(f"file column(s) {shared} are mapped to more than one name")
        return columns

    @model_validator(mode="after")
    def _consistent(self) -> ReadOptions:
        if self.validation_file is not None and self.test_file is None:
            raise ValueError("validation_file needs a test_file too (the test events)")
        if SPLIT_COLUMN in self.columns and self.test_file is not None:
            raise ValueError("give the split either as a split column or as separate files, not both")
        if SESSION_EVENTS in self.columns and self.format not in ("sessions", "auto"):
            raise ValueError("'events' can only be mapped in the sessions format")
        return self

    def is_default(self) -> bool:
        """Whether nothing was set (a registered dataset accepts only the defaults; ``duplicates`` is not counted:
        the CLI and pipeline files drop repeats by default, and registered loaders have none)."""
        return self.model_copy(update={"duplicates": "error"}) == ReadOptions()

    def unit(self, fmt: str) -> TimeUnit:
        """The unit numeric timestamps are read in: as set, else ms for sessions and s otherwise."""
        if self.time_unit is not None:
            return self.time_unit
        return "ms" if fmt == "sessions" else "s"


def check_column_names(columns: dict[str, str]) -> None:
    """Raise ValueError unless every key is a canonical column, ``split`` or ``events`` (no context columns)."""
    unknown = [key for key in columns if key not in MAPPABLE]
    if unknown:
        raise ValueError(f"unknown column name(s) {unknown}; map one of {list(MAPPABLE)} to a file column")


def parse_columns(text: str | None) -> dict[str, str]:
    """``"user_id=uid,item_id=iid"`` → ``{"user_id": "uid", "item_id": "iid"}``; raises ValueError on bad pairs."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"expected canonical=column pairs separated by commas, got {part.strip()!r}")
        if key.strip() in out:
            raise ValueError(f"{key.strip()!r} is mapped twice")
        out[key.strip()] = value.strip()
    return out
