"""Candidate sources (retrieval models) and their registry.

The names below are imported on first use (``rankstack.lazy_exports``), so importing one submodule does not
import the others."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rankstack.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from rankstack.retrieval.source import CandidateSource, SourceConfig

_HOME = dict.fromkeys(["CandidateSource", "SourceConfig"], "source")

__all__ = ["CandidateSource", "SourceConfig"]

__getattr__ = lazy_getattr(__name__, _HOME)
