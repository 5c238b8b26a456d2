"""``Pipeline``: the one recommend code path for offline evaluation, log replay, simulation and the service."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import scipy.sparse as sp

from rankstack.bandits.draws import request_rng
from rankstack.data.idmap import IdMap
from rankstack.errors import ConfigError
from rankstack.index import VectorIndex, build_index
from rankstack.pipeline import stages as st
from rankstack.pipeline.api import RecommendRequest, RecommendResponse, ScoredItem, StateStore
from rankstack.pipeline.batch import ItemFilters, RequestBatch, build_batch
from rankstack.pipeline.config import IndexStage, MultiTaskRankerStage, PipelineConfig, RankerStage, SourceStage
from rankstack.pipeline.deadline import StageRunner
from rankstack.pipeline.multitask_stage import MultiTaskStage
from rankstack.pipeline.policy import explore
from rankstack.pipeline.state_exposure import RowExposure
from rankstack.reranking.base import RerankContext, take_rows
from rankstack.reranking.catalog import ItemCatalog
from rankstack.reranking.pipeline import RerankPipeline
from rankstack.retrieval.base import Candidates, CandidateSource, Retriever
from rankstack.retrieval.indexed import IndexedRetriever
from rankstack.retrieval.popular import MostPopular
from rankstack.sequential.state_cache import CachesStates


def new_index(stage: IndexStage, source: str) -> VectorIndex:
    """An empty vector index as ``sources[source].index`` asks (``ConfigError`` naming it when it cannot be)."""
    try:
        return build_index(stage.kind, stage.params)
    except (ValueError, ImportError) as exc:
        raise ConfigError(f"sources[{source}].index: {exc}") from None


def source_index(parts: PipelineParts, stage: SourceStage) -> VectorIndex:
    """The index ``stage.index`` asks for over the source's item vectors: the parts' own when it was built for the
    same index stage (e.g. read from the artifact), else built now (FAISS indexes train here) and kept in the
    parts, where the artifact writer finds it."""
    assert stage.index is not None
    kept = parts.indexes.get(stage.name)
    if kept is None or kept[0] != stage.index:
        built = IndexedRetriever(parts.sources[stage.name], new_index(stage.index, stage.name)).index
        kept = parts.indexes[stage.name] = (stage.index, built)
    return kept[1]


class _Clock:
    """Wall time per stage of one ``recommend`` call, in milliseconds."""

    def __init__(self, started: float) -> None:
        self.started = self.last = started
        self.ms: dict[str, float] = {}

    def lap(self, stage: str) -> None:
        """Charge the time since the previous lap to ``stage``."""
        now = time.perf_counter()
        self.ms[stage] = round(1000 * (now - self.last), 3)
        self.last = now

    def done(self) -> dict[str, float]:
        """The laps plus ``total``."""
        return {**self.ms, "total": round(1000 * (time.perf_counter() - self.started), 3)}


@dataclass
class PipelineParts:
    """Everything a trained pipeline holds: fitted sources, optional ranker (a sequential source or the multi-task
    stage), the popularity fallback, id maps, each known user's training sequence (internal ids, oldest first)
    the item catalog and the vector indexes built for sources with an ``index`` stage (with the stage each was built
    for, so a pipeline whose config asks for another index builds its own)."""

    config: PipelineConfig
    sources: dict[str, CandidateSource]
    fallback: MostPopular
    user_map: IdMap
    item_map: IdMap
    histories: list[np.ndarray]
    ranker: CandidateSource | MultiTaskStage | None = None
    catalog: ItemCatalog | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    indexes: dict[str, tuple[IndexStage, VectorIndex]] = field(default_factory=dict)


class Pipeline:
    """A trained multi-stage pipeline; satisfies ``rankstack.pipeline.api.Recommender``."""

    def __init__(self, parts: PipelineParts) -> None:
        self.parts = parts
        self.config = parts.config
        self.version: str = str(parts.manifest.get("version", "unsaved"))
        self.digest: str = str(parts.manifest.get("digest", ""))  # content address of the artifact; "" unsaved
        self._check_ranker()
        if isinstance(parts.ranker, CachesStates) and isinstance(self.config.ranker, RankerStage):
            parts.ranker.enable_state_cache(self.config.ranker.state_cache)
        self.popular_order = parts.fallback.popularity_order()[0]
        self.seen: sp.csr_matrix = parts.fallback._require_fitted()
        self.filters = ItemFilters(parts.catalog, len(parts.item_map))
        self.reranker: RerankPipeline | None = None
        if self.config.rerank is not None:
            if parts.catalog is None:
                raise ConfigError("rerank: the dataset has no item attributes for the re-rank rules")
            self.reranker = RerankPipeline(self.config.rerank, parts.catalog, source="rerank")
        self._check_value_fields()
        self.retrievers = self._retrievers()
        self.runner = StageRunner()

    def _retrievers(self) -> dict[str, Retriever]:
        """The sources as retrieval sees them: those with an ``index`` stage answer from a vector index over their
        item vectors (:func:`source_index`)."""
        out: dict[str, Retriever] = dict(self.parts.sources)
        for stage in self.config.sources:
            if stage.index is not None:
                out[stage.name] = IndexedRetriever(self.parts.sources[stage.name], source_index(self.parts, stage))
        return out

    def _check_ranker(self) -> None:
        ranker, stage = self.parts.ranker, self.config.ranker
        if isinstance(stage, MultiTaskRankerStage):
            if not isinstance(ranker, MultiTaskStage):
                got = type(ranker).__name__
                raise ConfigError(f"ranker kind 'multitask' needs a fitted multi-task stage, not {got}")
            missing = sorted(stage.order_by.fields - ranker.predictions)
            if missing:
                raise ConfigError(f"ranker.order_by reads {missing}; the ranker predicts {sorted(ranker.predictions)}")
        elif stage is not None and ranker is not None and not isinstance(ranker, st.CandidateScorer):
            raise ConfigError(f"ranker {type(ranker).__name__} has no score_candidates method")

    def _check_value_fields(self) -> None:
        if self.config.value is None:
            return
        known = {"ranker", "retrieval", *self.parts.sources}
        if isinstance(self.parts.ranker, MultiTaskStage):
            known |= self.parts.ranker.predictions
        if self.parts.catalog is not None:
            known |= {a for a in self.parts.catalog.attributes if self.parts.catalog.column(a).dtype.is_numeric()}
        missing = sorted(self.config.value.objective.fields - known)
        if missing:
            raise ConfigError(f"value.objective reads unknown predictions {missing}; available: {sorted(known)}")

    @classmethod
    def load(cls, path: str | Path, *, key: bytes | None = None) -> Pipeline:
        """A pipeline from an artifact directory (``ArtifactError`` when it is corrupt, changed or incompatible);
        ``key`` (default: the operator's ``$RANKSTACK_ARTIFACT_KEY``) requires a valid signature."""
        from rankstack.pipeline.artifact import load_artifact

        return cls(load_artifact(Path(path), key=key))

    def describe(self) -> dict[str, Any]:
        """Version, stages, data checksum and metrics summary (for /readyz and the registry)."""
        m = self.parts.manifest
        return {"version": self.version, "digest": self.digest, "name": self.config.name,
                "stages": self.config.stage_names(),
                "sources": list(self.parts.sources), "created_at": m.get("created_at"),
                "data": m.get("data", {}), "metrics": m.get("metrics", {}).get("pipeline", {}),
                "code_version": m.get("code_version", {})}

    def _budget(self, stage: str, started: float, deadline_s: float | None, enforce: bool) -> float | None:
        """Seconds this stage may take: its own budget, capped by what is left of the call's deadline."""
        own = getattr(self.config.deadlines_ms, stage) if enforce else None
        budget = None if own is None else own / 1000.0
        if deadline_s is not None:
            left = deadline_s - (time.perf_counter() - started)
            budget = left if budget is None else min(budget, left)
        return budget

    def recommend(
        self, requests: Sequence[RecommendRequest], state: StateStore | None = None, *,
        deadline_s: float | None = None, stage_deadlines: bool = True,
    ) -> list[RecommendResponse]:
        """Slates for a batch of requests; degrades stage by stage (see ``stages`` and ``fallback``).

        ``stage_deadlines=False`` lifts the per-stage budgets (offline evaluation of large batches).
        """
        if not requests:
            return []
        started = time.perf_counter()
        clock = _Clock(started)
        p = self.parts
        history_len = self.config.ranker.history if self.config.ranker is not None else 50
        batch = build_batch(requests, state, user_map=p.user_map, item_map=p.item_map, train_histories=p.histories,
                            history_len=history_len, filters=self.filters)
        clock.lap("prepare")
        fallback: list[str | None] = [None] * len(batch.requests)
        table = self._candidates(batch, fallback, started, deadline_s, stage_deadlines)
        need = np.maximum(batch.ks, self.config.exploration.pool if self.config.exploration.policy != "greedy" else 0)
        table = st.eligible(table, batch.blocked, batch.allowed)
        table = st.backfill(table, need, self.popular_order, self.seen, batch.user_ids, batch.blocked, batch.allowed)
        clock.lap("retrieval")
        ranker_scores, heads = self._rank(batch, table, state, started, deadline_s, stage_deadlines)
        if ranker_scores is None and self.parts.ranker is not None and self.config.ranker is not None:
            fallback = [f or "retrieval_order" for f in fallback]
        clock.lap("ranker")
        order_scores = table.retrieval if ranker_scores is None else np.where(
            np.isnan(ranker_scores), table.retrieval, ranker_scores)
        if self.config.value is not None:
            fields = self.config.value.objective.fields
            if isinstance(p.ranker, MultiTaskStage) and fields & p.ranker.predictions and not heads:
                batch.mark("value", "skipped")  # the ranker's predictions are missing: retrieval order stands
            else:
                preds = st.predictions(table, ranker_scores, p.catalog, fields, heads)
                order_scores = st.blend(self.config.value, table, preds)
                batch.mark("value", "ran")
        keyed = np.where(table.item_ids >= 0, order_scores, -np.inf)
        order = np.argsort(-keyed, axis=1, kind="stable")
        table = table.take(order)
        scores = take_rows(keyed, order)
        clock.lap("value")
        ids, scores = self._rerank(batch, table.item_ids, scores, int(need.max()), state, started, deadline_s,
                                   stage_deadlines)
        clock.lap("rerank")
        return self._respond(batch, ids, scores, fallback, clock)

    def _candidates(self, batch: RequestBatch, fallback: list[str | None], started: float,
                    deadline_s: float | None, enforce: bool) -> st.CandidateTable:
        """Merged retrieval for known users; popularity for unknown users and when retrieval fails."""
        known = np.flatnonzero(batch.user_ids >= 0)
        unknown = np.flatnonzero(batch.user_ids < 0)
        names = list(self.parts.sources)
        width, rrf = self.config.merge.k, self.config.merge.rrf_k
        parts: list[tuple[np.ndarray, st.CandidateTable]] = []
        if len(known):
            users = batch.user_ids[known]
            outcome = self.runner.run("retrieval", lambda: st.retrieve(self.retrievers, self.config, users),
                                      self._budget("retrieval", started, deadline_s, enforce))
            if outcome.value is not None:
                table, failed = outcome.value
                parts.append((known, table))
                batch.mark("retrieval", "degraded" if failed else "ran", known)
            else:
                parts.append((known, st.popularity(self.popular_order, self.seen, users, width, rrf, names)))
                batch.mark("retrieval", "failed", known)
                for row in known:
                    fallback[row] = "popularity"
        if len(unknown):
            parts.append((unknown, st.popularity(self.popular_order, None, batch.user_ids[unknown], width, rrf, names)))
            batch.mark("retrieval", "degraded", unknown)
            for row in unknown:
                fallback[row] = "popularity"
        return st.stack(parts, len(batch.requests))

    def _rank(self, batch: RequestBatch, table: st.CandidateTable, state: StateStore | None, started: float,
              deadline_s: float | None, enforce: bool) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
        """Ranker scores and (multi-task) per-head predictions; None and {} when the ranker is absent, failed or
        overran (retrieval order is kept)."""
        ranker, stage = self.parts.ranker, self.config.ranker
        if ranker is None or stage is None:
            return None, {}
        budget = self._budget("ranker", started, deadline_s, enforce)
        if isinstance(ranker, MultiTaskStage) and isinstance(stage, MultiTaskRankerStage):
            multitask, order_by = ranker, stage.order_by
            outcome = self.runner.run("ranker", lambda: self._multitask(multitask, batch, table, state), budget)
            if outcome.value is None:
                batch.mark("ranker", "degraded")
                return None, {}
            batch.mark("ranker", "ran")
            return order_by.score(outcome.value), outcome.value
        scorer = cast(st.CandidateScorer, ranker)  # checked once in __init__ (a Protocol isinstance costs ~50 us)
        scored = self.runner.run("ranker", lambda: st.rank(scorer, table, batch.histories), budget)
        if scored.value is None:
            batch.mark("ranker", "degraded")
            return None, {}
        with_history = [r for r, h in enumerate(batch.histories) if len(h)]
        batch.mark("ranker", "skipped")
        batch.mark("ranker", "ran", with_history)
        return scored.value, {}

    def _multitask(self, ranker: MultiTaskStage, batch: RequestBatch, table: st.CandidateTable,
                   state: StateStore | None) -> dict[str, np.ndarray]:
        """The multi-task ranker's predictions [B, C]; exposures are the user's impressions in the state store."""
        exposures = np.zeros(table.item_ids.shape)
        if state is not None:
            seen = RowExposure(batch, state, self.parts.item_map)
            for row in range(len(batch.requests)):
                counts = seen.counts(row, since=0.0, events=("impression",))
                if counts:
                    exposures[row] = [counts.get(int(i), 0) for i in table.item_ids[row]]
        contexts = [r.context for r in batch.requests]
        return ranker.predict(batch.user_ids, table.item_ids, contexts, exposures, self.parts.sources)

    def _rerank(self, batch: RequestBatch, ids: np.ndarray, scores: np.ndarray, depth: int,
                state: StateStore | None, started: float, deadline_s: float | None,
                enforce: bool) -> tuple[np.ndarray, np.ndarray]:
        """Re-ranked pools [B, depth] (rules and diversity), or the score order when re-ranking fails."""
        if self.reranker is None:
            return ids[:, :depth], scores[:, :depth]
        reranker = self.reranker
        context = RerankContext(np.arange(len(batch.requests)), now=time.time(),
                                exposure=RowExposure(batch, state, self.parts.item_map))
        cands = Candidates(ids, np.where(ids >= 0, scores, -np.inf), "ranked")
        outcome = self.runner.run("rerank", lambda: reranker.rerank(cands, depth, context),
                                  self._budget("rerank", started, deadline_s, enforce))
        if outcome.value is None:
            batch.mark("rerank", "degraded")
            return ids[:, :depth], scores[:, :depth]
        batch.mark("rerank", "ran")
        return outcome.value.item_ids, outcome.value.scores

    def _respond(self, batch: RequestBatch, ids: np.ndarray, scores: np.ndarray,
                 fallback: list[str | None], clock: _Clock) -> list[RecommendResponse]:
        """Exploration per request, then external ids and the response objects."""
        stage = self.config.exploration
        slates: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []
        for row, req in enumerate(batch.requests):
            valid = ids[row] >= 0
            pool_ids, pool_scores = ids[row][valid], scores[row][valid]
            width = req.k if stage.policy == "greedy" else max(req.k, stage.pool)
            rng = request_rng(stage.seed, batch.request_ids[row], req.user_id)
            items, props = explore(pool_ids[:width], pool_scores[:width], req.k, stage, rng)
            lookup = dict(zip(pool_ids.tolist(), pool_scores.tolist(), strict=True))
            slates.append((items, np.array([lookup[int(i)] for i in items]), props))
        batch.mark("exploration", "ran")
        clock.lap("exploration")
        flat = np.concatenate([s[0] for s in slates]) if slates else np.zeros(0, np.int64)
        external = [str(x) for x in self.parts.item_map.to_external_list(flat)]
        stage_ms = clock.done()
        out, at = [], 0
        for row, (items, item_scores, props) in enumerate(slates):
            names = external[at: at + len(items)]
            at += len(items)
            out.append(RecommendResponse(
                request_id=batch.request_ids[row], user_id=batch.requests[row].user_id,
                items=[ScoredItem(item_id=n, score=s if math.isfinite(s) else 0.0, propensity=p)
                       for n, s, p in zip(names, item_scores.tolist(),
                                          [None] * len(names) if props is None else props.tolist(), strict=True)],
                stages=dict(batch.stages[row]), model_version=self.version,
                model_digest=self.digest, fallback=fallback[row],
                stage_ms=dict(stage_ms)))
        return out

    def warmup(self) -> None:
        """One full request for a known user, stages inline, so that the first served requests do not pay the
        first-call costs (lazy caches, kernel set-up) and time out into a fallback after a load or reload; with
        ``ranker.warm_states``, the ranker's state cache is filled from the known users' trained histories."""
        self.warm_states()
        if len(self.parts.user_map):
            user = str(self.parts.user_map.to_external_list([0])[0])
            self.recommend([RecommendRequest(user_id=user, k=1, request_id="rankstack-warmup")], None,
                           stage_deadlines=False)

    def warm_states(self) -> int:
        """Compute and cache the ranker's state for up to ``ranker.state_cache`` known users (their trained
        histories, as a request without fresh events reads them); returns how many were computed."""
        ranker, stage = self.parts.ranker, self.config.ranker
        if not (isinstance(ranker, CachesStates) and isinstance(stage, RankerStage) and stage.warm_states):
            return 0
        cache = ranker.state_cache
        if cache is None:
            return 0
        histories = [h[-stage.history:] for h in self.parts.histories if len(h)][: cache.capacity]
        ranker.user_states(histories)
        return len(histories)

    def known_items(self, item_ids: Sequence[str]) -> list[bool]:
        """One flag per external item id: True when the item is in the trained catalog."""
        if not item_ids:
            return []
        return (self.parts.item_map.to_internal(list(item_ids), strict=False) >= 0).tolist()

    def close(self) -> None:
        """Release the stage worker threads."""
        self.runner.close()

    def with_config(self, config: PipelineConfig) -> Pipeline:
        """The same trained parts under another (serving-time) config, e.g. other deadlines or policy."""
        return Pipeline(replace(self.parts, config=config))
