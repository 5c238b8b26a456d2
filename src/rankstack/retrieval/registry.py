"""Explicit registry of candidate sources: name → class (no discovery by file name)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from rankstack.errors import ConfigError
from rankstack.retrieval.base import CandidateSource
from rankstack.retrieval.ease import EASE
from rankstack.retrieval.itemknn import ItemKNN
from rankstack.retrieval.lightgcn import LightGCN
from rankstack.retrieval.popular import MostPopular
from rankstack.retrieval.two_tower import TwoTower
from rankstack.sequential.sasrec import SASRec

SOURCES: dict[str, type[CandidateSource]] = {
    cls.name: cls for cls in (MostPopular, ItemKNN, EASE, LightGCN, TwoTower, SASRec)
}


def build_source(name: str, params: Mapping[str, object] | None = None) -> CandidateSource:
    """Instantiate a registered source with a validated config (unknown keys are errors)."""
    if name not in SOURCES:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(sorted(SOURCES))}")
    cls = SOURCES[name]
    try:
        config = cls.config_class.model_validate(dict(params or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<config>'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings for model {name!r}: {problems}") from None
    return cls(config)
