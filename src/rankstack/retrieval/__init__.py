"""Candidate sources (retrieval models) and their registry."""

from rankstack.retrieval.base import Candidates, CandidateSource, SourceConfig

__all__ = ["CandidateSource", "Candidates", "SourceConfig"]
