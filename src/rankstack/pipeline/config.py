"""The pipeline definition (YAML → pydantic): data, candidate sources, ranker, value, re-rank, exploration.

Every model forbids unknown keys; :func:`load_pipeline_config` turns any problem into a ``ConfigError``
naming the file and the field (``sources[1] 'ease', field 'quota'``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from rankstack.data.loaders.read_options import ReadOptions
from rankstack.errors import ConfigError
from rankstack.io import read_yaml_mapping
from rankstack.pipeline.defaults import DEFAULT
from rankstack.ranking.multitask import MultiTaskConfig
from rankstack.ranking.neural_ranker import NeuralRankerConfig
from rankstack.ranking.sequential import NEXT_ITEM
from rankstack.reranking.rerank_pipeline import RerankConfig
from rankstack.value.objective import ValueObjective


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    """A registered dataset name or your own log's path; ``split`` null = the data's default split (said, with why).

    For your own files: ``format``, ``columns`` (canonical name → file column), ``order`` (``file``: row order is
    time order), ``time_unit``, ``duplicates`` (``drop`` repeated rows), ``ignore`` (file columns to leave out) and
    ``validation_file`` / ``test_file`` (a predefined split in separate files; ``name`` is then the train file), as
    :class:`rankstack.data.loaders.ReadOptions` (``docs/data.md``).
    """

    name: str = Field(default="ml-latest-small", min_length=1)
    split: Literal["leave_one_out", "temporal", "random", "predefined"] | None = None
    eval_on: Literal["validation", "test"] = "test"
    format: Literal["auto", "csv", "tsv", "parquet", "pairs", "sequences", "sessions"] = "auto"
    columns: dict[str, str] = Field(default_factory=dict)
    order: Literal["time", "file"] | None = None
    time_unit: Literal["s", "ms", "us", "ns"] | None = None
    duplicates: Literal["error", "drop"] = "drop"
    ignore: list[str] = Field(default_factory=list)
    validation_file: str | None = None
    test_file: str | None = None

    @field_validator("columns")
    @classmethod
    def _known_names(cls, columns: dict[str, str]) -> dict[str, str]:
        from rankstack.data.loaders.read_options import check_column_names

        check_column_names(columns)
        return columns

    @model_validator(mode="after")
    def _readable(self) -> DataConfig:
        from rankstack.data.loaders import REGISTRY

        try:
            options = self.read_options()  # its own consistency checks
        except ValidationError as exc:
            raise ValueError("; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())) from None
        if self.name in REGISTRY and not options.is_default():
            raise ValueError(f"{self.name!r} is a registered dataset, read by its own loader: format, columns, "
                             "order, time_unit, ignore and the split files apply to your own files only")
        return self

    def read_options(self) -> ReadOptions:
        """How the log is read (:class:`ReadOptions`)."""
        from rankstack.data.loaders.read_options import ReadOptions

        return ReadOptions(
            format=self.format, columns=self.columns, order=self.order, time_unit=self.time_unit,
            duplicates=self.duplicates, ignore=tuple(self.ignore),
            validation_file=Path(self.validation_file) if self.validation_file else None,
            test_file=Path(self.test_file) if self.test_file else None,
        )


class IndexStage(_Strict):
    """Serve a vector source's retrieval from an index over its item vectors (an ``index`` component of
    ``rankstack.pipeline.components``): ``exact`` (torch matmul + top-k), ``hnsw`` or ``ivf-flat`` (FAISS);
    ``params`` go to the index config."""

    kind: Literal["exact", "hnsw", "ivf-flat"] = "exact"
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _params_fit_the_index(self) -> IndexStage:
        from rankstack.pipeline.components import config_class

        try:
            params = config_class("index", self.kind)
            if params is not None:
                params.model_validate(self.params)  # checks the params, builds nothing
        except ImportError:  # FAISS missing: said when the index is built
            pass
        except ValidationError as exc:
            raise ValueError("params: " + "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())) from None
        return self


class SourceStage(_Strict):
    """One candidate source: a ``source`` name of ``rankstack.pipeline.components`` and its settings.

    ``k`` items are retrieved per user; the merge keeps the source's top ``quota`` and fuses the rest with
    reciprocal-rank weight ``weight``. ``index`` (vector sources only: LightGCN, two-tower, SASRec) answers
    retrieval from a vector index instead of scoring the whole catalog. ``fit: once`` (sources that read a user's
    history at request time, e.g. SASRec; with a learned candidate ranker only) fits the source a single time, on
    every event before each user's first label or validation event, and points that model at each window's
    histories, and at all of them for serving, instead of refitting it per window; ``fit: once_continued`` does the
    same for the windows, then serves with that model trained further on all the fit data (its training starts from
    the once-fitted weights, which it keeps unless an epoch beats them on validation), so what it serves with has
    also learned from the windows' events.
    """

    name: str = Field(min_length=1)
    settings: dict[str, Any] = Field(default_factory=dict)
    k: int = Field(default=100, ge=1, le=10_000)
    quota: int = Field(default=0, ge=0)
    weight: float = Field(default=1.0, ge=0.0)
    index: IndexStage | None = None
    fit: Literal["per_window", "once", "once_continued"] = "per_window"

    @field_validator("name")
    @classmethod
    def _registered(cls, name: str) -> str:
        from rankstack.pipeline.components import names

        if name not in names("source"):
            raise ValueError(f"unknown source {name!r}; available: {', '.join(sorted(names('source')))}")
        return name

    @field_validator("settings")
    @classmethod
    def _settings_fit_the_source(cls, settings: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        return _checked_settings(info.data.get("name"), settings)

    @model_validator(mode="after")
    def _indexable(self) -> SourceStage:
        from rankstack.pipeline.components import source_class
        from rankstack.retrieval.indexed import has_vectors

        if self.index is not None and not has_vectors(source_class(self.name)):
            raise ValueError(f"source {self.name!r} has no user/item vectors, so it cannot be served from an index")
        model = source_class(self.name)
        if self.fit != "per_window" and not callable(getattr(model, "with_histories", None)):
            raise ValueError(f"source {self.name!r} cannot be fitted once: its model keeps what it learned from the "
                             f"histories it was fitted on (fit: {self.fit} suits sources that read histories at "
                             "request time, e.g. sasrec)")
        if self.fit == "once_continued":
            _continuable(self.name)
        return self


def _rescorer(name: str) -> str:
    """``name`` when it is a registered source with ``score_candidates`` (else a ``ValueError`` saying why)."""
    from rankstack.pipeline.components import names, source_class

    if name not in names("source"):
        raise ValueError(f"unknown source {name!r}; available: {', '.join(sorted(names('source')))}")
    if not callable(getattr(source_class(name), "score_candidates", None)):
        raise ValueError(f"source {name!r} cannot re-score candidates (it has no score_candidates method)")
    return name


def _continuable(name: str) -> None:
    """A ``ValueError`` unless source ``name``'s training can start from fitted weights (``continued``)."""
    from rankstack.pipeline.components import source_class

    if not callable(getattr(source_class(name), "continued", None)):
        raise ValueError(f"source {name!r} cannot be continued: its training cannot start from fitted weights "
                         "(fit: once_continued suits sasrec; fit: once serves with the once-fitted model)")


def _checked_settings(name: Any, settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` checked against the config class of registered source ``name`` (skipped when the name is bad:
    its own error says so), so a typo fails at load, before any stage is fitted."""
    from rankstack.pipeline.components import names
    from rankstack.pipeline.components import settings as validated

    if isinstance(name, str) and name in names("source"):
        validated("source", name, settings)  # a ConfigError (a ValueError) becomes this field's validation error
    return settings


class MergeStage(_Strict):
    """How many merged candidates go on to ranking, the reciprocal-rank-fusion constant, and the memory the service
    may spend keeping known users' merged candidates between requests."""

    k: int = Field(default=200, ge=1, le=10_000)
    rrf_k: float = Field(default=60.0, ge=0.0)
    cache_mb: float = Field(default=256.0, ge=0.0, le=1_000_000.0, description=(
        "MiB per serving process for known users' merged candidate rows, kept between requests (0: off)"))
    warm_cache: bool = Field(default=True, description=(
        "fill that cache when the service loads the pipeline, most active users first"))
    warm_cache_s: float | None = Field(default=60.0, gt=0.0, description=(
        "stop that warm-up after this many seconds (null: until the cache is full); later users fill on demand"))


class RankerStage(_Strict):
    """Re-scores the merged candidates from the user's recent history (internal ids, oldest first).

    ``source`` is a registered source with ``score_candidates(histories, candidates)``; when it names one of
    the candidate sources and gives no settings, that fitted source is reused.
    """

    kind: Literal["sequential"] = "sequential"
    source: str = Field(min_length=1)
    settings: dict[str, Any] = Field(default_factory=dict)
    history: int = Field(default=50, ge=1, le=10_000)
    state_cache: int = Field(default=100_000, ge=0, le=100_000_000, description=(
        "user states kept between requests, keyed by the exact history (0: off; SASRec only)"))
    warm_states: bool = Field(default=True, description=(
        "compute the states of known users' trained histories when the pipeline loads (up to state_cache)"))

    @field_validator("source")
    @classmethod
    def _can_rescore(cls, name: str) -> str:
        return _rescorer(name)

    @field_validator("settings")
    @classmethod
    def _settings_fit_the_source(cls, settings: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        return _checked_settings(info.data.get("source"), settings)

    @property
    def order_fields(self) -> set[str]:
        """The ranker objectives the slate order reads: the model's next-item score."""
        return {NEXT_ITEM}

    def order_scores(self, scores: Mapping[str, np.ndarray]) -> np.ndarray:
        """The slate order of the ranker's scores [B, C] (NaN: keep the retrieval order)."""
        return scores[NEXT_ITEM]


class MultiTaskRankerStage(_Strict):
    """The multi-task ranker (``rankstack.ranking.MultiTaskRanker``) trained on logged impressions joined with the
    candidate sources' scores; ``order_by`` (a value expression over its calibrated predictions) orders the slate.

    The fit window's impressions are cut by request time: the first ``history_share`` only fits the sources
    that score the ranker's rows (so their scores do not leak the labels), the last ``validation_share`` is
    for early stopping and calibration, the rest trains the ranker.
    """

    kind: Literal["multitask"]
    model: MultiTaskConfig = Field(default_factory=MultiTaskConfig)
    order_by: ValueObjective = Field(default_factory=ValueObjective)
    score_sources: list[str] | None = Field(default=None, description="sources whose scores are features (all)")
    history_share: float = Field(default=0.5, gt=0.0, lt=1.0)
    validation_share: float = Field(default=0.15, gt=0.0, lt=1.0)
    history: int = Field(default=50, ge=1, le=10_000)

    @property
    def order_fields(self) -> set[str]:
        """The ranker objectives the slate order reads (``order_by``'s fields)."""
        return self.order_by.fields

    def order_scores(self, scores: Mapping[str, np.ndarray]) -> np.ndarray:
        """The slate order: ``order_by`` over the calibrated predictions [B, C]."""
        return self.order_by.score(scores)

    @property
    def state_cache(self) -> int:
        """No per-user states to keep (the sequential ranker's setting)."""
        return 0

    @property
    def warm_states(self) -> bool:
        """Nothing to warm (the sequential ranker's setting)."""
        return False

    @model_validator(mode="after")
    def _shares(self) -> MultiTaskRankerStage:
        if self.history_share + self.validation_share >= 1.0:
            raise ValueError("history_share + validation_share must leave impressions to train on (< 1)")
        return self


class SequentialFeature(_Strict):
    """A sequential model whose score of each candidate given the history is a ranker feature (fitted with the
    ranker's windows; reused from the sources when it names one of them without settings). ``fit: once`` fits it
    a single time, on every event before each user's first label or validation event, and uses that model in
    every window and at serving (no label or validation event reaches it; it serves with what it learned before
    the windows); ``fit: once_continued`` uses it in every window and serves with it trained further on all the
    fit data (as a source's ``once_continued``)."""

    source: str = Field(min_length=1)
    settings: dict[str, Any] = Field(default_factory=dict)
    fit: Literal["per_window", "once", "once_continued"] = "per_window"

    @field_validator("source")
    @classmethod
    def _can_rescore(cls, name: str) -> str:
        return _rescorer(name)

    @field_validator("settings")
    @classmethod
    def _settings_fit_the_source(cls, settings: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        return _checked_settings(info.data.get("source"), settings)

    @model_validator(mode="after")
    def _continued_if_it_can(self) -> SequentialFeature:
        if self.fit == "once_continued":
            _continuable(self.source)
        return self


class CandidateRankerStage(_Strict):
    """What every learned candidate ranker (``kind: lambdarank``, ``kind: neural``) shares: the windows it trains
    on and the features it reads (``rankstack.ranking.candidate_features``).

    Windows, per user in time order (positive events): the last ``validation_events`` are the validation window,
    the ``label_events`` before them the label window, everything earlier the feature window. Sources fitted on
    the feature window give the training candidates (labels: items of the label window); sources fitted on the
    feature + label windows give the validation candidates (labels: the validation window), on which the ranker
    stops early (NDCG@10). Then every source is fitted on all the fit data for serving. Users with fewer than
    ``min_history`` earlier events are left out of the ranker's rows.
    """

    label_events: int = Field(default=1, ge=1, le=1000)
    label_windows: int = Field(default=1, ge=1, le=100, description=(
        "label windows of label_events each, back to back before the validation window (one group per user each)"))
    validation_events: int = Field(default=1, ge=1, le=1000)
    window_order: Literal["time", "random"] = Field(default="time", description=(
        "windows cut by time, or by a seeded shuffle of each user's events (logs whose order means nothing)"))
    min_history: int = Field(default=3, ge=1)
    max_users: int | None = Field(default=None, ge=1, description="users per window (a seeded sample; all)")
    sequential: SequentialFeature | None = None
    recent_days: float = Field(default=30.0, gt=0.0)
    recency: bool = Field(default=False, description=(
        "days since the user's latest event as a feature: needs real timestamps (requests are timed now when served)"))
    cooc_neighbors: int = Field(default=200, ge=1)
    last_n: int = Field(default=20, ge=1, description="history items the co-occurrence features read")
    attribute: str | None = Field(default="genres", description="item attribute of the match feature (none)")
    transition_gap: int = Field(default=3, ge=1, le=100, description=(
        "a transition h → i counts when i comes within this many events after h (the trans_* features)"))
    embedding: str | None = Field(default=None, description=(
        "a source with item vectors (als, two-tower, lightgcn): cosine of candidate and history embeddings"))
    base: str | None = Field(default=None, description=(
        "a source whose order the model starts from (prior -log2(1 + rank)); the model learns corrections"))
    history: int = Field(default=50, ge=1, le=10_000)
    state_cache: int = Field(default=0, ge=0, le=100_000_000)
    seed: int = 0

    @property
    def order_fields(self) -> set[str]:
        """The ranker objective the slate order reads: the model's relevance score."""
        return {"relevance"}

    def order_scores(self, scores: Mapping[str, np.ndarray]) -> np.ndarray:
        """The slate order: the relevance scores [B, C] (NaN: keep the retrieval order)."""
        return scores["relevance"]

    @property
    def warm_states(self) -> bool:
        """Nothing to warm."""
        return False


class LambdaRankStage(CandidateRankerStage):
    """A learned candidate ranker: LightGBM LambdaRank over the candidate features (windows: the base class)."""

    kind: Literal["lambdarank"]
    rounds: int = Field(default=500, ge=1)
    early_stopping: int = Field(default=50, ge=1)
    refit: bool = Field(default=False, description="after early stopping, fit that many rounds on train + validation")
    params: dict[str, Any] = Field(default_factory=dict, description="LightGBM parameters over the defaults")


class NeuralRankStage(CandidateRankerStage):
    """A learned candidate ranker: the multi-task network's architecture in ranking mode (one relevance head,
    listwise softmax cross-entropy) over the same candidate features and windows as LambdaRank; ``model``: its
    architecture and training (``rankstack.ranking.neural_ranker.NeuralRankerConfig``)."""

    kind: Literal["neural"]
    model: NeuralRankerConfig = Field(default_factory=NeuralRankerConfig)


def _ranker_kind(value: Any) -> str:
    """The ranker's ``kind``; a mapping without one is the sequential ranker (configs written before kinds)."""
    if isinstance(value, dict):
        return str(value.get("kind", "sequential"))
    return str(getattr(value, "kind", "sequential"))


RankerConfig = Annotated[
    Annotated[RankerStage, Tag("sequential")] | Annotated[MultiTaskRankerStage, Tag("multitask")]
    | Annotated[LambdaRankStage, Tag("lambdarank")] | Annotated[NeuralRankStage, Tag("neural")],
    Discriminator(_ranker_kind),
]


class ValueStage(_Strict):
    """Blends per-candidate predictions (``ranker``, ``retrieval``, each source's name, numeric item
    attributes) with a value objective; ``normalize`` min-max scales each prediction per request first."""

    objective: ValueObjective
    normalize: bool = True


LEARNING_POLICIES = ("linucb", "lints", "squarecb", "bernoulli_ts", "ridge_epsilon_greedy", "neural_linear")


def vector_sources() -> tuple[str, ...]:
    """The registered sources that expose user and item vectors (``user_vectors`` / ``item_vectors``)."""
    from rankstack.pipeline.components import names, source_class
    from rankstack.retrieval.indexed import has_vectors

    return tuple(n for n in names("source") if has_vectors(source_class(n)))


class LearningSettings(_Strict):
    """An exploration stage that learns online from the service's feedback (``rankstack.pipeline.online_policy``).

    One shared model over per-(user, candidate) features φ = [1, y_item, x_user ⊙ y_item], where x and y are
    ``dim``-dimensional unit vectors fitted at train time and saved with the artifact: a truncated SVD of the
    training interactions (``representation: svd``) or a fitted vector source's user and item vectors projected
    onto the top ``dim`` singular directions of its item vectors (``representation: <source name>``, e.g.
    ``sasrec``): the state is O(dim²) whatever the catalogue (plus two counters per item for ``bernoulli_ts``).
    Impressions are pulls, a ``click`` adds ``click_reward`` and a ``conversion`` ``conversion_reward``
    (integers: the statistics are exact sums). ``prior_weight`` × 1/log2(2 + pool position) is added to every
    score, so the untrained policy keeps the upstream order.
    """

    dim: int = Field(default=8, ge=1, le=64, description="dimensions of the user and item vectors")
    representation: str = Field(default="svd", min_length=1, description=(
        "svd, or a pipeline source with user/item vectors (sasrec, two-tower, lightgcn, als) to project"))
    alpha: float = Field(default=0.5, ge=0.0, description="linucb: width of the confidence bonus")
    v: float = Field(default=0.1, gt=0.0, description="lints: posterior scale")
    gamma: float = Field(default=1000.0, ge=0.0, description="squarecb: inverse-gap weighting strength")
    ridge: float = Field(default=1.0, gt=0.0, description="λ of A = λI + Σφφᵀ")
    beta_prior: tuple[float, float] = Field(default=(1.0, 1.0), description="bernoulli_ts: Beta(α₀, β₀)")
    prior_weight: float = Field(default=0.05, ge=0.0, description="weight of the upstream order's offset")
    click_reward: int = Field(default=1, ge=0, le=1000)
    conversion_reward: int = Field(default=0, ge=0, le=1000)
    propensity_samples: int = Field(default=100, ge=0, le=10_000, description="Monte-Carlo draws (Thompson)")
    sync_every_s: float = Field(default=0.2, gt=0.0, le=3600.0, description="how often a worker folds new events")
    checkpoint_every_s: float = Field(default=5.0, gt=0.0, le=86_400.0, description="how often it saves its state")
    warm_start: bool = Field(default=True, description=(
        "start from the training log's impressions, clicks and conversions (logs with impressions only)"))

    @field_validator("representation")
    @classmethod
    def _known_representation(cls, name: str) -> str:
        if name != "svd" and name not in vector_sources():
            raise ValueError(f"unknown representation {name!r}; expected 'svd' or a source with user/item vectors: "
                             f"{', '.join(vector_sources())}")
        return name

    @field_validator("beta_prior")
    @classmethod
    def _positive_prior(cls, prior: tuple[float, float]) -> tuple[float, float]:
        if min(prior) <= 0:
            raise ValueError(f"Beta prior parameters must be > 0, got {list(prior)}")
        return prior


class ExplorationStage(_Strict):
    """Picks the shown slate from the top ``pool`` re-ranked items and records each item's propensity.

    ``greedy``: the top k, propensity None. ``epsilon_greedy``: with probability ε a uniformly random slate
    from the pool. ``softmax``: items drawn with inclusion probability ∝ exp(score / temperature).
    ``linucb``, ``lints``, ``squarecb``, ``bernoulli_ts``, ``ridge_epsilon_greedy`` (ε = ``epsilon``): learning
    policies that update online from the service's feedback events, configured by ``learning``
    (:class:`LearningSettings`; docs/bandits.md). ``neural_linear``: ``lints`` over a learned network's
    representation (``learning.representation`` naming a vector source; refused with ``svd``).
    """

    policy: Literal["greedy", "epsilon_greedy", "softmax", "linucb", "lints", "squarecb", "bernoulli_ts",
                    "ridge_epsilon_greedy", "neural_linear"] = "greedy"
    epsilon: float = Field(default=0.05, ge=0.0, le=1.0)
    temperature: float = Field(default=1.0, gt=0.0)
    pool: int = Field(default=50, ge=1, le=10_000)
    seed: int = 0
    learning: LearningSettings | None = None

    @model_validator(mode="after")
    def _learning_fits_the_policy(self) -> ExplorationStage:
        if self.policy in LEARNING_POLICIES and self.learning is None:
            self.learning = LearningSettings()
        elif self.policy not in LEARNING_POLICIES and self.learning is not None:
            raise ValueError(f"learning: settings for a learning policy ({', '.join(LEARNING_POLICIES)}), "
                             f"but policy is {self.policy!r}")
        if self.policy == "neural_linear" and self.learning is not None and self.learning.representation == "svd":
            raise ValueError("policy 'neural_linear' is Thompson sampling over a learned network's representation: "
                             "set learning.representation to a vector source of the pipeline (e.g. sasrec), or use "
                             "policy 'lints' over the SVD features")
        return self

    @property
    def learns(self) -> bool:
        """Whether the policy learns online from feedback."""
        return self.policy in LEARNING_POLICIES


class DeadlineConfig(_Strict):
    """Per-stage time budgets in milliseconds for one ``recommend`` call (null = no limit)."""

    retrieval: float | None = Field(default=200.0, gt=0)
    ranker: float | None = Field(default=100.0, gt=0)
    rerank: float | None = Field(default=50.0, gt=0)


class EvaluationConfig(_Strict):
    """Cut-offs of the offline metrics and of the funnel (candidate recall) report."""

    ks: list[int] = Field(default_factory=lambda: [10, 20], min_length=1)
    funnel_ks: list[int] = Field(default_factory=lambda: [50, 100, 200], min_length=1)

    @field_validator("ks", "funnel_ks")
    @classmethod
    def _positive(cls, ks: list[int]) -> list[int]:
        if any(k < 1 for k in ks):
            raise ValueError("cut-offs must be >= 1")
        return sorted(set(ks))


class PipelineConfig(_Strict):
    """The whole pipeline: data → sources → merge → ranker → value → rerank → exploration."""

    name: str = Field(default="pipeline", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    data: DataConfig = Field(default_factory=DataConfig)
    sources: list[SourceStage] = Field(min_length=1)
    merge: MergeStage = Field(default_factory=MergeStage)
    ranker: RankerConfig | None = None
    value: ValueStage | None = None
    rerank: RerankConfig | None = None
    exploration: ExplorationStage = Field(default_factory=ExplorationStage)
    deadlines_ms: DeadlineConfig = Field(default_factory=DeadlineConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)

    @model_validator(mode="after")
    def _consistent(self) -> PipelineConfig:
        names = [s.name for s in self.sources]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"sources: each source may appear once; repeated: {repeated}")
        if sum(s.quota for s in self.sources) > self.merge.k:
            raise ValueError(f"sources: quotas sum to more than merge.k = {self.merge.k}")
        once = [s.name for s in self.sources if s.fit != "per_window"]
        if once and not isinstance(self.ranker, CandidateRankerStage):
            raise ValueError(f"sources {once}: fit: once (or once_continued) needs a learned candidate ranker "
                             "(ranker.kind lambdarank or neural), whose windows it is fitted before")
        if isinstance(self.ranker, CandidateRankerStage) and self.ranker.base is not None and \
                self.ranker.base not in names:
            raise ValueError(f"ranker.base: {self.ranker.base!r} is not among the sources {names}")
        if isinstance(self.ranker, CandidateRankerStage) and self.ranker.embedding is not None and \
                self.ranker.embedding not in names:
            raise ValueError(f"ranker.embedding: {self.ranker.embedding!r} is not among the sources {names}")
        if isinstance(self.ranker, MultiTaskRankerStage) and self.ranker.score_sources is not None:
            unknown = sorted(set(self.ranker.score_sources) - set(names))
            if unknown:
                raise ValueError(f"ranker.score_sources: {unknown} are not among the sources {names}")
        self._representation_is_fitted(names)
        return self

    def _representation_is_fitted(self, names: list[str]) -> None:
        """The learning stage's ``representation`` names a source of this pipeline or its sequential ranker."""
        learning = self.exploration.learning
        if learning is None or learning.representation == "svd" or learning.representation in names:
            return
        if isinstance(self.ranker, RankerStage) and self.ranker.source == learning.representation:
            return
        ranker = f" or the sequential ranker's source {self.ranker.source!r}" \
            if isinstance(self.ranker, RankerStage) else ""
        raise ValueError(f"exploration.learning.representation: {learning.representation!r} is not fitted by this "
                         f"pipeline: expected one of the sources {names}{ranker}")

    def stage_names(self) -> list[str]:
        """The stages this pipeline runs, in order."""
        optional = [("ranker", self.ranker), ("value", self.value), ("rerank", self.rerank)]
        return ["retrieval", *(name for name, stage in optional if stage is not None), "exploration"]


def _where(error: dict[str, Any], data: Any) -> str:
    """``sources[1] 'ease', field 'quota'`` from a pydantic error location."""
    loc = list(error["loc"])
    parts: list[str] = []
    if len(loc) >= 2 and loc[0] == "sources" and isinstance(loc[1], int):
        raw = data.get("sources") if isinstance(data, dict) else None
        entry = raw[loc[1]] if isinstance(raw, list) and loc[1] < len(raw) else None
        label = f"sources[{loc[1]}]"
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            label += f" '{entry['name']}'"
        parts.append(label)
        loc = loc[2:]
    if len(loc) >= 2 and loc[0] == "ranker" and loc[1] in ("sequential", "multitask", "lambdarank", "neural"):
        loc = [loc[0], *loc[2:]]  # the union's tag adds nothing for the reader
    if error["type"] == "union_tag_invalid":
        field = ".".join(str(p) for p in loc)
        msg = (f"unknown kind {error.get('input', {}).get('kind')!r}; expected 'sequential', 'multitask', "
               "'lambdarank' or 'neural'")
    elif error["type"] == "extra_forbidden":
        field = ".".join(str(p) for p in loc[:-1])
        msg = f"unknown field '{loc[-1]}'"
    elif error["type"] == "missing":
        field = ".".join(str(p) for p in loc[:-1])
        msg = f"missing required field '{loc[-1]}'"
    else:
        field = ".".join(str(p) for p in loc)
        msg = str(error["msg"]).removeprefix("Value error, ")
    if field:
        parts.append(f"field '{field}'")
    return (", ".join(parts) + ": " if parts else "") + msg


def validate_pipeline_config(data: Any, source: str = "<config>") -> PipelineConfig:
    """Validate a mapping; a problem becomes a ``ConfigError`` naming ``source`` and each bad field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: " + "; ".join(_where(dict(e), data) for e in exc.errors())) from None


def default_config() -> PipelineConfig:
    """The default pipeline: popular + item-kNN + EASE → the learned LambdaRank ranker → greedy top k."""
    return validate_pipeline_config(DEFAULT, "<default pipeline>")


def load_pipeline_config(path: str | Path | None = None) -> PipelineConfig:
    """Read and validate a pipeline YAML file; without a path, the default pipeline.

    A ``rerank`` given as a string is a path to a re-rank YAML file, relative to the pipeline file; so is a
    ``data.name`` that is an event log found next to the pipeline file.
    """
    if path is None:
        return default_config()
    file = Path(path)
    data: dict[str, Any] = read_yaml_mapping(file, what="pipeline config", empty_ok=False)
    if isinstance(data.get("rerank"), str):
        data = {**data, "rerank": read_yaml_mapping(file.parent / data["rerank"], what="rules file")}
    if isinstance(data.get("data"), dict):
        paths = {key: _beside(file, value) for key, value in data["data"].items()
                 if key in ("name", "validation_file", "test_file") and isinstance(value, str)}
        data = {**data, "data": {**data["data"], **paths}}
    return validate_pipeline_config(data, str(file))


def _beside(file: Path, name: str) -> str:
    """A relative event-log path that exists next to the pipeline file, made absolute; anything else unchanged."""
    from rankstack.data.loaders import REGISTRY

    candidate = file.parent / name
    if name in REGISTRY or Path(name).is_absolute() or not candidate.exists():
        return name
    return str(candidate.resolve())
