"""Explicit registry of candidate sources: name → class (no discovery by file name)."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from rankstack.errors import ConfigError
from rankstack.retrieval.base import CandidateSource, SourceConfig
from rankstack.retrieval.ease import EASE
from rankstack.retrieval.itemknn import ItemKNN
from rankstack.retrieval.lightgcn import LightGCN
from rankstack.retrieval.popular import MostPopular
from rankstack.retrieval.two_tower import TwoTower
from rankstack.sequential.sasrec import SASRec

SOURCES: dict[str, type[CandidateSource]] = {
    cls.name: cls for cls in (MostPopular, ItemKNN, EASE, LightGCN, TwoTower, SASRec)
}


def source_config(name: str, params: Mapping[str, object] | None = None) -> SourceConfig:
    """The validated config of registered source ``name``: a ``ConfigError`` names each bad setting."""
    if name not in SOURCES:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(sorted(SOURCES))}")
    config_class = SOURCES[name].config_class
    try:
        return config_class.model_validate(dict(params or {}))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "<config>"
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown setting '{where}' (known: {', '.join(config_class.model_fields)})")
            else:
                problems.append(f"{where}: {err['msg']}")
        raise ConfigError(f"invalid settings for model {name!r}: {'; '.join(problems)}") from None


def build_source(name: str, params: Mapping[str, object] | None = None) -> CandidateSource:
    """Instantiate a registered source with a validated config (unknown keys are errors)."""
    config = source_config(name, params)  # checks the name first
    return SOURCES[name](config)
