"""Which split a dataset gets when none is asked for, and why — never a silent switch of protocol.

In order: a registered dataset's standard split; a ``split`` column or separate files → ``predefined``; a
timestamp (or file-order position) on every event → ``leave_one_out``; otherwise no default: an error that
names the missing timestamp and the choices (a time column, ``--order file``, ``--split random``, a split column).
"""

from __future__ import annotations

from dataclasses import dataclass

from rankstack.data.dataset import Dataset
from rankstack.data.loaders.event_log import ReadInfo
from rankstack.data.loaders.read_options import SPLIT_COLUMN
from rankstack.data.loaders.specs import DatasetSpec
from rankstack.errors import DataValidationError

LOO = "each user's last event is test, the one before it validation"


@dataclass(frozen=True)
class SplitChoice:
    """A split kind and, in words, why it was chosen."""

    kind: str
    reason: str


def choose_split(
    dataset: Dataset, requested: str | None = None, *, spec: DatasetSpec | None = None, info: ReadInfo | None = None
) -> SplitChoice:
    """The split to use: ``requested``, else the default for this data (see the module docstring)."""
    if requested is not None:
        return SplitChoice(requested, "asked for")
    if spec is not None:
        return SplitChoice(spec.default_split, f"the standard split of {spec.name}")
    if SPLIT_COLUMN in dataset.events.columns:
        if info is not None and info.split_from == "files":
            return SplitChoice("predefined", f"separate {'/'.join(p for p in info.files)} files were given")
        return SplitChoice("predefined", f"the data has a '{SPLIT_COLUMN}' column")
    untimed = int(dataset.events.get_column("timestamp").null_count())
    if untimed == 0:
        if info is not None and info.order == "file":
            why = {"sequences": "sequences lines are in time order",
                   "pairs": "pairs lines without a timestamp are read in file order"}.get(
                info.format, "order 'file' was given")
            return SplitChoice("leave_one_out", f"{why}, so file order is time order: {LOO}")
        return SplitChoice("leave_one_out", f"every event has a timestamp: leave-one-out by time, {LOO}")
    raise DataValidationError(
        ", ".join(info.files.values()) if info is not None else dataset.name,
        f"{untimed:,} of {len(dataset):,} events have no timestamp, so there is no default split (leave-one-out "
        "needs the order of each user's events). Choose one: map a time column (--columns timestamp=COLUMN); "
        "--order file if the rows are in time order; --split random for a per-user random 20% test set (ignores "
        "order); or a 'split' column / --test-file for a predefined split. In a pipeline YAML: data.columns, "
        "data.order, data.split, data.test_file",
        column="timestamp",
    )
