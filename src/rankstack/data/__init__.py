"""Data layer: canonical event schema, id maps, datasets, loaders and leakage-safe splits."""

from rankstack.data.dataset import Dataset
from rankstack.data.idmap import IdMap
from rankstack.data.schema import EventSchema, validate_events

__all__ = ["Dataset", "EventSchema", "IdMap", "validate_events"]
