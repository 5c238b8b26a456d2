"""Data layer: canonical event schema, id maps, datasets, loaders and leakage-safe splits.

The names below are imported on first use (``rankstack.lazy_exports``), so importing one submodule does not
import the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from rankstack.data.dataset import Dataset
    from rankstack.data.idmap import IdMap
    from rankstack.data.schema import EventSchema, validate_events

_HOME = {
    "Dataset": "dataset",
    "IdMap": "idmap",
    **dict.fromkeys(["EventSchema", "validate_events"], "schema"),
}

__all__ = ["Dataset", "EventSchema", "IdMap", "validate_events"]

__getattr__ = lazy_getattr(__name__, _HOME)
