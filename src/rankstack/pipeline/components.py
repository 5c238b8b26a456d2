"""The one registry of pipeline components: per kind, name → ``"module:attribute"`` of the class or factory.

Explicit (a dict literal, nothing discovered from file names) and lazy: listing names imports nothing, so the
CLI can offer ``--model`` choices without loading torch; a component's module is imported when it is resolved.
Kinds: ``source`` (candidate sources), ``ranker`` (by the pipeline's ``ranker.kind``), ``reranker`` (the re-rank
stage and its diversity methods), ``policy`` (exploration), ``index`` (vector indexes), ``state`` (online stores).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, cast

from pydantic import BaseModel, ValidationError

from rankstack.errors import ConfigError

if TYPE_CHECKING:  # annotations only: importing them here would load torch with the names
    from rankstack.retrieval.source import CandidateSource
    from rankstack.state.store import StateStore

Kind = Literal["source", "ranker", "reranker", "policy", "index", "state"]

# kind → name → (component, its config class or None when the component carries ``config_class``)
REGISTRY: dict[str, dict[str, tuple[str, str | None]]] = {
    "source": {
        "popular": ("rankstack.retrieval.popular:MostPopular", None),
        "itemknn": ("rankstack.retrieval.itemknn:ItemKNN", None),
        "ease": ("rankstack.retrieval.ease:EASE", None),
        "als": ("rankstack.retrieval.als:ALS", None),
        "lightgcn": ("rankstack.retrieval.lightgcn:LightGCN", None),
        "two-tower": ("rankstack.retrieval.two_tower:TwoTower", None),
        "sasrec": ("rankstack.sequential.sasrec:SASRec", None),
    },
    "ranker": {
        "sequential": ("rankstack.ranking.sequential:SequentialRanker", "rankstack.pipeline.config:RankerStage"),
        "multitask": ("rankstack.pipeline.multitask_stage:MultiTaskStage",
                      "rankstack.pipeline.config:MultiTaskRankerStage"),
        "lambdarank": ("rankstack.ranking.lambdarank:LambdaRankRanker", "rankstack.pipeline.config:LambdaRankStage"),
        "neural": ("rankstack.ranking.neural_ranker:NeuralRanker", "rankstack.pipeline.config:NeuralRankStage"),
    },
    "reranker": {
        "rules": ("rankstack.reranking.rerank_pipeline:RerankPipeline",
                  "rankstack.reranking.rerank_pipeline:RerankConfig"),
        "mmr": ("rankstack.reranking.mmr:MMR", "rankstack.reranking.mmr:MMRConfig"),
        "dpp": ("rankstack.reranking.dpp:DPP", "rankstack.reranking.dpp:DPPConfig"),
    },
    "policy": {
        "greedy": ("rankstack.bandits.exploration:Greedy", None),
        "epsilon_greedy": ("rankstack.bandits.exploration:EpsilonGreedy", None),
        "softmax": ("rankstack.bandits.exploration:Softmax", None),
        # learning policies: the pipeline's OnlinePolicy chooses with these (rankstack.pipeline.online_policy)
        "linucb": ("rankstack.bandits.pool_policies:linucb", "rankstack.pipeline.config:LearningSettings"),
        "lints": ("rankstack.bandits.pool_policies:lints", "rankstack.pipeline.config:LearningSettings"),
        "squarecb": ("rankstack.bandits.pool_policies:squarecb", "rankstack.pipeline.config:LearningSettings"),
        "bernoulli_ts": ("rankstack.bandits.pool_policies:bernoulli_ts", "rankstack.pipeline.config:LearningSettings"),
        "ridge_epsilon_greedy": ("rankstack.bandits.pool_policies:ridge_epsilon_greedy",
                                 "rankstack.pipeline.config:LearningSettings"),
        # lints over a learned network's representation (NeuralLinear, Riquelme et al. 2018)
        "neural_linear": ("rankstack.bandits.pool_policies:lints", "rankstack.pipeline.config:LearningSettings"),
    },
    "index": {
        "exact": ("rankstack.index.exact:ExactIndex", "rankstack.index.exact:ExactIndexConfig"),
        "hnsw": ("rankstack.index.faiss_index:FaissHNSWIndex", "rankstack.index.faiss_index:FaissHNSWConfig"),
        "ivf-flat": ("rankstack.index.faiss_index:FaissIVFFlatIndex",
                     "rankstack.index.faiss_index:FaissIVFFlatConfig"),
    },
    "state": {
        "sqlite": ("rankstack.state.sqlite:SQLiteStateStore", None),
        "redis": ("rankstack.state.redis_store:RedisStateStore", None),
    },
}

# ``--state`` URL prefix → state store name (the rest of the URL is the store's location)
STATE_SCHEMES: dict[str, str] = {"sqlite:": "sqlite", "redis://": "redis", "rediss://": "redis", "unix://": "redis"}


def names(kind: Kind) -> tuple[str, ...]:
    """The registered names of ``kind``, in registry order (imports nothing)."""
    return tuple(_table(kind))


def _table(kind: str) -> dict[str, tuple[str, str | None]]:
    if kind not in REGISTRY:
        raise ConfigError(f"unknown component kind {kind!r}; available: {', '.join(REGISTRY)}")
    return REGISTRY[kind]


def _import(spec: str) -> Any:
    """``"package.module:attr"`` → that object."""
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def _label(kind: str) -> str:
    """How messages name a component of ``kind`` (a candidate source is a ``--model`` on the command line)."""
    return "model" if kind == "source" else kind


def _entry(kind: Kind, name: str) -> tuple[str, str | None]:
    table = _table(kind)
    if name not in table:
        raise ConfigError(f"unknown {_label(kind)} {name!r}; available: {', '.join(table)}")
    return table[name]


def resolve(kind: Kind, name: str) -> Any:
    """The class or factory registered as ``name`` of ``kind`` (``ConfigError`` listing the names if unknown)."""
    return _import(_entry(kind, name)[0])


def config_class(kind: Kind, name: str) -> type[BaseModel] | None:
    """The config class that validates the settings of component ``name`` (None: it takes none)."""
    spec = _entry(kind, name)[1]
    if spec is not None:
        return cast(type[BaseModel], _import(spec))
    return cast("type[BaseModel] | None", getattr(resolve(kind, name), "config_class", None))


def settings(kind: Kind, name: str, params: Mapping[str, object] | None = None) -> BaseModel:
    """The validated config of component ``name``; a ``ConfigError`` names each bad setting and the known ones."""
    cls = config_class(kind, name)
    if cls is None:
        raise ConfigError(f"{kind} {name!r} takes no settings")
    try:
        return cls.model_validate(dict(params or {}))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "<config>"
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown setting '{where}' (known: {', '.join(cls.model_fields)})")
            else:
                problems.append(f"{where}: {err['msg']}")
        raise ConfigError(f"invalid settings for {_label(kind)} {name!r}: {'; '.join(problems)}") from None


def build(kind: Kind, name: str, params: Mapping[str, object] | None = None) -> Any:
    """Component ``name`` of ``kind`` made from its validated settings (sources, indexes, diversity rerankers
    take their config alone; the others are made by the pipeline from its parts)."""
    config = settings(kind, name, params)  # checks the name first
    return resolve(kind, name)(config)


def source_class(name: str) -> type[CandidateSource]:
    """The class of registered candidate source ``name`` (``ConfigError`` if unknown)."""
    return cast("type[CandidateSource]", resolve("source", name))


def build_source(name: str, params: Mapping[str, object] | None = None) -> CandidateSource:
    """An unfitted candidate source ``name`` with validated settings (unknown keys are errors)."""
    return cast("CandidateSource", build("source", name, params))


def open_state(spec: str) -> StateStore:
    """The state store a ``--state`` URL names: ``sqlite:PATH`` or ``redis://…`` / ``rediss://…`` / ``unix://…``."""
    scheme = next((s for s in STATE_SCHEMES if spec.startswith(s)), None)
    if scheme is None:
        raise ConfigError(f"unknown state store {spec!r}: use sqlite:PATH or redis://HOST:PORT/DB")
    return cast("StateStore", resolve("state", STATE_SCHEMES[scheme]).from_url(spec))
