"""``Pipeline``: the one recommend code path for offline evaluation, log replay, simulation and the service."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp

from rankstack.bandits.draws import request_rng
from rankstack.candidates import PAD_ITEM, Candidates, take_rows
from rankstack.errors import ConfigError
from rankstack.pipeline import components
from rankstack.pipeline import stages as st
from rankstack.pipeline.api import MAX_K, RecommendRequest, RecommendResponse, ScoredItem
from rankstack.pipeline.artifact import load_artifact
from rankstack.pipeline.batch import ItemFilters, RequestBatch, SlateBatch, build_batch, internal_batch
from rankstack.pipeline.candidate_cache import CandidateCache, row_bytes
from rankstack.pipeline.config import PipelineConfig
from rankstack.pipeline.deadline import Outcome, StageRunner
from rankstack.pipeline.exploration_stage import explore
from rankstack.pipeline.online_policy import OnlinePolicy
from rankstack.pipeline.parts import PipelineParts, source_index
from rankstack.pipeline.state_exposure import RowExposure
from rankstack.ranking.ranker import RankBatch
from rankstack.reranking.rerank_pipeline import RerankPipeline
from rankstack.reranking.reranker import RerankContext
from rankstack.retrieval.indexed import IndexedRetriever
from rankstack.retrieval.source import Retriever
from rankstack.sequential.state_cache import StateCache
from rankstack.state.store import StateStore, fresh_times

T = TypeVar("T")
log = logging.getLogger(__name__)
WARM_BLOCK = 256  # known users per retrieval call while the candidate cache warms


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


class Pipeline:
    """A trained multi-stage pipeline; satisfies ``rankstack.pipeline.api.Recommender``."""

    def __init__(self, parts: PipelineParts) -> None:
        self.parts = parts
        self.config = parts.config
        self.version: str = str(parts.manifest.get("version", "unsaved"))
        self.digest: str = str(parts.manifest.get("digest", ""))  # content address of the artifact; "" unsaved
        self._check_ranker()
        if parts.ranker is not None and self.config.ranker is not None:
            parts.ranker.keep_states(self.config.ranker.state_cache)
        self.popular_order = parts.fallback.popularity_order()[0]
        self.seen: sp.csr_matrix = parts.fallback._require_fitted()
        self.filters = ItemFilters(parts.catalog, len(parts.item_map))
        self.reranker: RerankPipeline | None = None
        if self.config.rerank is not None:
            if parts.catalog is None:
                raise ConfigError("rerank: the dataset has no item attributes for the re-rank rules")
            self.reranker = components.resolve("reranker", "rules")(self.config.rerank, parts.catalog,
                                                                    source="rerank")
        self._check_value_fields()
        self.retrievers = self._retrievers()
        self.runner = StageRunner()
        self.online = self._online_policy()
        self.candidate_cache: CandidateCache | None = None  # made by keep_candidates (the service's warm-up)

    def _online_policy(self) -> OnlinePolicy | None:
        """The learning exploration stage (None for the stateless policies)."""
        stage = self.config.exploration
        if not stage.learns:
            return None
        if self.parts.policy is None:
            raise ConfigError(f"exploration.policy {stage.policy!r} learns online but the pipeline has no policy "
                              "features (train it with this exploration stage)")
        return OnlinePolicy(stage, self.parts.policy, self.parts.user_map, self.parts.item_map)

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
        if stage is None or ranker is None:
            return
        missing = sorted(stage.order_fields - set(ranker.objectives))
        if missing:
            raise ConfigError(f"ranker.order_by reads {missing}; the {stage.kind} stage's ranker {ranker.name!r} "
                              f"predicts {sorted(ranker.objectives)}")

    def _check_value_fields(self) -> None:
        if self.config.value is None:
            return
        known = {"ranker", "retrieval", *self.parts.sources}
        if self.parts.ranker is not None:
            known |= set(self.parts.ranker.objectives)
        if self.parts.catalog is not None:
            known |= {a for a in self.parts.catalog.attributes if self.parts.catalog.column(a).dtype.is_numeric()}
        missing = sorted(self.config.value.objective.fields - known)
        if missing:
            raise ConfigError(f"value.objective reads unknown predictions {missing}; available: {sorted(known)}")

    @classmethod
    def load(cls, path: str | Path, *, key: bytes | None = None) -> Pipeline:
        """A pipeline from an artifact directory (``ArtifactError`` when it is corrupt, changed or incompatible);
        ``key`` (default: the operator's ``$RANKSTACK_ARTIFACT_KEY``) requires a valid signature."""
        return cls(load_artifact(Path(path), key=key))

    def describe(self) -> dict[str, Any]:
        """Version, stages, data checksum and metrics summary (for /readyz and the registry)."""
        m = self.parts.manifest
        return {"version": self.version, "digest": self.digest, "name": self.config.name,
                "stages": self.config.stage_names(),
                "sources": list(self.parts.sources), "created_at": m.get("created_at"),
                "data": m.get("data", {}), "metrics": m.get("metrics", {}).get("pipeline", {}),
                "code_version": m.get("code_version", {})}

    def _run(self, stage: str, fn: Callable[[], T], size: int, started: float, deadline_s: float | None,
             enforce: bool) -> Outcome[T]:
        """``fn`` through the stage runner, within the stage's own budget capped by what is left of the call's
        deadline; the runner judges the stage's inline trust by its own budget alone."""
        own_ms = getattr(self.config.deadlines_ms, stage) if enforce else None
        own = None if own_ms is None else own_ms / 1000.0
        budget = own
        if deadline_s is not None:
            left = deadline_s - (time.perf_counter() - started)
            budget = left if budget is None else min(budget, left)
        return self.runner.run(stage, fn, budget, size, own_s=own)

    def recommend(
        self, requests: Sequence[RecommendRequest], state: StateStore | None = None, *,
        deadline_s: float | None = None, stage_deadlines: bool = True,
    ) -> list[RecommendResponse]:
        """Slates for a batch of requests in external ids: :meth:`recommend_batch` behind the id boundary; degrades
        stage by stage (see ``stages`` and ``fallback``).

        ``stage_deadlines=False`` lifts the per-stage budgets (offline evaluation of large batches).
        """
        if not requests:
            return []
        started = time.perf_counter()
        p = self.parts
        batch = build_batch(requests, state, user_map=p.user_map, item_map=p.item_map, train_histories=p.histories,
                            history_len=self._history_len(), filters=self.filters)
        return self._respond(requests, self._slates(batch, state, started, deadline_s, stage_deadlines))

    def recommend_batch(
        self, user_ids: np.ndarray, ks: int | np.ndarray, state: StateStore | None = None, *,
        request_ids: Sequence[str] | None = None, contexts: Sequence[dict[str, Any]] | None = None,
        deadline_s: float | None = None, stage_deadlines: bool = True, times: np.ndarray | None = None,
    ) -> SlateBatch:
        """Slates in internal ids for known users ``user_ids`` [B] (``ks``: one slate length, or one per user), with
        the same stages, fallbacks and exploration as :meth:`recommend`; ``request_ids`` key the exploration draws
        (random when None), ``contexts`` feed the multi-task ranker, ``state`` adds each user's fresh events,
        ``times`` [B] are the requests' times (epoch seconds; offline: the held-out events'; None: unknown)."""
        started = time.perf_counter()
        p = self.parts
        users = np.asarray(user_ids, dtype=np.int64).reshape(-1)
        lengths = np.asarray(ks, dtype=np.int64)
        if lengths.ndim == 0:
            lengths = np.full(users.shape, int(lengths), np.int64)
        elif lengths.shape != users.shape:
            raise ValueError(f"ks: expected one slate length for all or one per user ({len(users)}), got "
                             f"shape {lengths.shape}")
        if len(lengths) and (int(lengths.min()) < 1 or int(lengths.max()) > MAX_K):
            raise ValueError(f"ks: slate lengths must lie in [1, {MAX_K}], got {int(lengths.min())} … "
                             f"{int(lengths.max())}")
        batch = internal_batch(users, lengths, state, user_map=p.user_map, item_map=p.item_map,
                               train_histories=p.histories, history_len=self._history_len(),
                               request_ids=request_ids, contexts=contexts, times=times)
        return self._slates(batch, state, started, deadline_s, stage_deadlines)

    def _history_len(self) -> int:
        """How many of a user's latest items the ranker reads (50 without a ranker)."""
        return self.config.ranker.history if self.config.ranker is not None else 50

    def _slates(self, batch: RequestBatch, state: StateStore | None, started: float, deadline_s: float | None,
                stage_deadlines: bool) -> SlateBatch:
        """Every stage over a batch in internal ids, from retrieval to exploration."""
        clock = _Clock(started)
        p = self.parts
        clock.lap("prepare")
        if not len(batch):
            return SlateBatch(np.zeros((0, 0), np.int64), np.zeros((0, 0)), None, np.zeros(0, np.int64), [], [], [],
                              clock.done())
        fallback: list[str | None] = [None] * len(batch)
        table, need = self._table(batch, fallback, started, deadline_s, stage_deadlines)
        clock.lap("retrieval")
        ranker_scores, heads = self._rank(batch, table, state, started, deadline_s, stage_deadlines)
        if ranker_scores is None and self.parts.ranker is not None and self.config.ranker is not None:
            fallback = [f or "retrieval_order" for f in fallback]
        clock.lap("ranker")
        order_scores = table.retrieval if ranker_scores is None else np.where(
            np.isnan(ranker_scores), table.retrieval, ranker_scores)
        if self.config.value is not None:
            fields = self.config.value.objective.fields
            if p.ranker is not None and not heads and not fields.isdisjoint(p.ranker.objectives):
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
        return self._explore(batch, ids, scores, fallback, clock)

    def _table(self, batch: RequestBatch, fallback: list[str | None], started: float, deadline_s: float | None,
               enforce: bool) -> tuple[st.CandidateTable, np.ndarray]:
        """The ranker's candidates: merged retrieval, minus blocked and filtered items, backfilled by popularity to
        each row's need (its slate length, or the exploration pool); returns the table and the needs."""
        table = self._candidates(batch, fallback, started, deadline_s, enforce)
        need = np.maximum(batch.ks, self.config.exploration.pool if self.config.exploration.policy != "greedy" else 0)
        table = st.eligible(table, batch.blocked, batch.allowed)
        table = st.backfill(table, need, self.popular_order, self.seen, batch.user_ids, batch.blocked, batch.allowed)
        return table, need

    def rank_inputs(self, user_ids: np.ndarray, k: int, state: StateStore | None = None, *,
                    times: np.ndarray | None = None) -> RankBatch:
        """What the ranker reads for known users ``user_ids`` asking for ``k`` items at ``times`` (epoch seconds):
        the same candidates and histories as :meth:`recommend_batch` (per-stage deadlines off); a learned ranker's
        training rows."""
        p = self.parts
        users = np.asarray(user_ids, dtype=np.int64).reshape(-1)
        batch = internal_batch(users, np.full(users.shape, k, np.int64), state, user_map=p.user_map,
                               item_map=p.item_map, train_histories=p.histories, history_len=self._history_len(),
                               request_ids=None, contexts=None, times=times)
        table, _ = self._table(batch, [None] * len(batch), time.perf_counter(), None, False)
        return self._rank_batch(batch, table, state)

    def _rank_batch(self, batch: RequestBatch, table: st.CandidateTable, state: StateStore | None) -> RankBatch:
        """The ranker's view of a batch and its candidate table (with the users' fresh event times when the ranker
        reads them)."""
        exposures = None if state is None else RowExposure(batch, state, self.parts.item_map)
        fresh = fresh_times(state, batch.user_keys) if state is not None and \
            getattr(self.parts.ranker, "needs_times", False) else None
        return RankBatch(batch.user_ids, table.item_ids, batch.histories, batch.contexts,
                         table.source_scores, self.parts.sources, exposures, batch.times, fresh)

    def _candidates(self, batch: RequestBatch, fallback: list[str | None], started: float,
                    deadline_s: float | None, enforce: bool) -> st.CandidateTable:
        """Merged retrieval for known users; popularity for unknown users and when retrieval fails."""
        known = np.flatnonzero(batch.user_ids >= 0)
        unknown = np.flatnonzero(batch.user_ids < 0)
        names = list(self.parts.sources)
        width, rrf = self.config.merge.k, self.config.merge.rrf_k
        parts: list[tuple[np.ndarray, st.CandidateTable]] = []
        cache = self.candidate_cache
        if len(known) and cache is not None:
            found, cached = cache.get(batch.user_ids[known])
            if cached is not None:
                parts.append((known[found], cached))
                batch.mark("retrieval", "ran", known[found])
                known = known[~found]
        if len(known):
            users = batch.user_ids[known]
            outcome = self._run("retrieval", lambda: st.retrieve(self.retrievers, self.config, users), len(users),
                                started, deadline_s, enforce)
            if outcome.value is not None:
                table, failed = outcome.value
                parts.append((known, table))
                batch.mark("retrieval", "degraded" if failed else "ran", known)
                if cache is not None and not failed:
                    cache.put(users, table)
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
        return st.stack(parts, len(batch))

    def _rank(self, batch: RequestBatch, table: st.CandidateTable, state: StateStore | None, started: float,
              deadline_s: float | None, enforce: bool) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
        """The ranker's order scores (``ranker.order_by`` over its objectives) and its per-objective scores; None
        and {} when the ranker is absent, failed or overran (retrieval order is kept)."""
        ranker, stage = self.parts.ranker, self.config.ranker
        if ranker is None or stage is None:
            return None, {}
        block = self._rank_batch(batch, table, state)
        outcome = self._run("ranker", lambda: ranker.score(block), len(batch), started, deadline_s, enforce)
        if outcome.value is None:
            batch.mark("ranker", "degraded")
            return None, {}
        if ranker.needs_history:
            batch.mark("ranker", "skipped")
            batch.mark("ranker", "ran", [r for r, h in enumerate(batch.histories) if len(h)])
        else:
            batch.mark("ranker", "ran")
        return stage.order_scores(outcome.value), outcome.value

    def _rerank(self, batch: RequestBatch, ids: np.ndarray, scores: np.ndarray, depth: int,
                state: StateStore | None, started: float, deadline_s: float | None,
                enforce: bool) -> tuple[np.ndarray, np.ndarray]:
        """Re-ranked pools [B, depth] (rules and diversity), or the score order when re-ranking fails."""
        if self.reranker is None:
            return ids[:, :depth], scores[:, :depth]
        reranker = self.reranker
        context = RerankContext(np.arange(len(batch)), now=time.time(),
                                exposure=RowExposure(batch, state, self.parts.item_map))
        cands = Candidates(ids, np.where(ids >= 0, scores, -np.inf), "ranked")
        outcome = self._run("rerank", lambda: reranker.rerank(cands, depth, context), len(batch), started,
                            deadline_s, enforce)
        if outcome.value is None:
            batch.mark("rerank", "degraded")
            return ids[:, :depth], scores[:, :depth]
        batch.mark("rerank", "ran")
        return outcome.value.item_ids, outcome.value.scores

    def _explore(self, batch: RequestBatch, ids: np.ndarray, scores: np.ndarray, fallback: list[str | None],
                 clock: _Clock) -> SlateBatch:
        """Exploration per request over its re-ranked pool: the slates and their propensities, in internal ids."""
        stage = self.config.exploration
        rows = len(batch)
        width = int(batch.ks.max())
        items_out = np.full((rows, width), PAD_ITEM, np.int64)
        scores_out = np.full((rows, width), np.nan)
        props_out = None if stage.policy == "greedy" else np.full((rows, width), np.nan)
        lengths = np.zeros(rows, np.int64)
        for row, k in enumerate(batch.ks.tolist()):
            valid = ids[row] >= 0
            pool_ids, pool_scores = ids[row][valid], scores[row][valid]
            pool = k if stage.policy == "greedy" else max(k, stage.pool)
            rng = request_rng(stage.seed, batch.request_ids[row], batch.user_keys[row])
            props: np.ndarray | None
            if self.online is not None:
                items, props = self.online.choose(int(batch.user_ids[row]), pool_ids[:pool], k, rng)
            else:
                items, props = explore(pool_ids[:pool], pool_scores[:pool], k, stage, rng)
            lookup = dict(zip(pool_ids.tolist(), pool_scores.tolist(), strict=True))
            n = lengths[row] = len(items)
            items_out[row, :n] = items
            scores_out[row, :n] = [lookup[int(i)] for i in items]
            if props_out is not None and props is not None:
                props_out[row, :n] = props
        batch.mark("exploration", "ran")
        clock.lap("exploration")
        return SlateBatch(items_out, scores_out, props_out, lengths, batch.request_ids, batch.stages, fallback,
                          clock.done())

    def _respond(self, requests: Sequence[RecommendRequest], slates: SlateBatch) -> list[RecommendResponse]:
        """The response objects of ``slates``, in external ids (built with ``model_construct``: our own output, every
        field set with its type, is not validated again; ``tests/pipeline`` checks it against validation)."""
        flat = np.concatenate([slates.item_ids[row, :n] for row, n in enumerate(slates.lengths.tolist())])
        external = [str(x) for x in self.parts.item_map.to_external_list(flat)]
        out, at = [], 0
        for row, n in enumerate(slates.lengths.tolist()):
            names = external[at: at + n]
            at += n
            props = [None] * n if slates.propensities is None else slates.propensities[row, :n].tolist()
            out.append(RecommendResponse.model_construct(
                request_id=slates.request_ids[row], user_id=requests[row].user_id,
                items=[ScoredItem.trusted(name, s if math.isfinite(s) else 0.0, p)
                       for name, s, p in zip(names, slates.scores[row, :n].tolist(), props, strict=True)],
                stages=dict(slates.stages[row]), model_version=self.version,
                model_digest=self.digest, fallback=slates.fallback[row],
                stage_ms=dict(slates.stage_ms)))
        return out

    def warmup(self) -> None:
        """One full request for a known user, stages inline, so that the first served requests do not pay the
        first-call costs (lazy caches, kernel set-up) and time out into a fallback after a load or reload; with
        ``ranker.warm_states``, the ranker's state cache is filled from the known users' trained histories; with
        ``merge.cache_mb``, known users' candidates are kept from now on (and, with ``merge.warm_cache``, computed
        now)."""
        self.keep_candidates()
        self.warm_states()
        if len(self.parts.user_map):
            user = str(self.parts.user_map.to_external_list([0])[0])
            self.recommend([RecommendRequest(user_id=user, k=1, request_id="rankstack-warmup")], None,
                           stage_deadlines=False)

    def keep_candidates(self) -> int:
        """Keep known users' merged candidates between calls, in at most ``merge.cache_mb`` MiB (a no-op at 0 or
        when already kept); with ``merge.warm_cache``, compute them now for the most active users (the longest
        trained histories first, ties by user id) until the cache is full or ``merge.warm_cache_s`` has passed.
        Returns how many rows were kept."""
        merge = self.config.merge
        if self.candidate_cache is not None or merge.cache_mb <= 0 or not len(self.parts.user_map):
            return 0
        capacity = int(merge.cache_mb * 2**20) // row_bytes(merge.k, len(self.parts.sources))
        if capacity < 1:
            return 0
        self.candidate_cache = cache = CandidateCache(capacity, merge.k, list(self.parts.sources))
        if not merge.warm_cache:
            return 0
        started = time.perf_counter()
        lengths = np.fromiter((len(h) for h in self.parts.histories), np.int64, len(self.parts.histories))
        users = np.argsort(-lengths, kind="stable")[:capacity]
        kept = 0
        for at in range(0, len(users), WARM_BLOCK):
            block = users[at: at + WARM_BLOCK]
            table, failed = st.retrieve(self.retrievers, self.config, block)
            if not failed:
                kept += cache.put(block, table)
            if merge.warm_cache_s is not None and time.perf_counter() - started > merge.warm_cache_s:
                break  # a slow catalogue (item-kNN's dense rows over millions of items) must not hold a load for long
        cache.hits = cache.misses = 0  # lookups count from here: the warm-up is not served traffic
        log.info("%s: merged candidates of %d of %d known users kept (%.0f MiB) in %.1f s", self.version, kept,
                 len(lengths), cache.nbytes / 2**20, time.perf_counter() - started)
        return kept

    def candidate_cache_counts(self) -> tuple[int, int, int]:
        """(hits, misses, entries) of the merged-candidate cache since the service started keeping it (all zero
        while none is kept)."""
        cache = self.candidate_cache
        return (0, 0, 0) if cache is None else (cache.hits, cache.misses, len(cache))

    def warm_states(self) -> int:
        """Compute and cache the ranker's state for up to ``ranker.state_cache`` known users (their trained
        histories, as a request without fresh events reads them); returns how many were computed."""
        ranker, stage = self.parts.ranker, self.config.ranker
        if ranker is None or stage is None or not stage.warm_states:
            return 0
        return ranker.warm([h[-stage.history:] for h in self.parts.histories])

    def state_cache_counts(self) -> tuple[int, int, int]:
        """(hits, misses, entries) of the ranker's and the sources' user-state caches (each counted once), since
        each was made; a miss ran the sequential network (a fresh event changed the history, or this process never
        computed that state). The service counts the lookups after a model starts serving."""
        caches = {id(c): c for c in (getattr(part, "state_cache", None)
                                     for part in (self.parts.ranker, *self.parts.sources.values()))
                  if isinstance(c, StateCache)}
        return (sum(c.hits for c in caches.values()), sum(c.misses for c in caches.values()),
                sum(len(c) for c in caches.values()))

    def known_items(self, item_ids: Sequence[str]) -> list[bool]:
        """One flag per external item id: True when the item is in the trained catalog."""
        if not item_ids:
            return []
        return (self.parts.item_map.to_internal(list(item_ids), strict=False) >= 0).tolist()

    def close(self) -> None:
        """Release the stage worker threads (and stop the online policy's learner)."""
        if self.online is not None:
            self.online.closed = True
        self.runner.close()

    def with_config(self, config: PipelineConfig) -> Pipeline:
        """The same trained parts under another (serving-time) config, e.g. other deadlines or policy."""
        return Pipeline(replace(self.parts, config=config))
