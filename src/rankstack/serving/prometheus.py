"""Prometheus metrics of one service instance (own registry, so several apps can live in one process).

With several worker processes (``$PROMETHEUS_MULTIPROC_DIR`` set before ``prometheus_client`` is imported) every
worker writes its values to files there and ``render`` adds them up: counters and histograms are summed,
``state_up`` and the worker counts are the latest check by any live worker, ``model_loaded`` and ``model_info``
are listed per live worker (``pid`` label).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from rankstack.pipeline.api import RecommendResponse
from rankstack.serving.model_slot import Loaded

LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServiceMetrics:
    """Latency per endpoint and per pipeline stage, errors, degradations, fallbacks, events, reloads."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, *, multiprocess: bool = False) -> None:
        self.multiprocess = multiprocess
        self.registry = CollectorRegistry()
        r = self.registry
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}
        self.request_seconds = Histogram("rankstack_http_request_duration_seconds", "HTTP request latency.",
                                         ["endpoint", "method"], buckets=LATENCY_BUCKETS, registry=r)
        self.requests = Counter("rankstack_http_requests", "HTTP responses by status.", ["endpoint", "status"],
                                registry=r)
        self.stage_seconds = Histogram("rankstack_stage_duration_seconds", "Wall time of each pipeline stage, "
                                       "once per batched pipeline call.", ["stage"], buckets=LATENCY_BUCKETS,
                                       registry=r)
        self.errors = Counter("rankstack_errors", "Failures handled by the service.", ["endpoint", "kind"], registry=r)
        self.degradations = Counter("rankstack_stage_degradations", "Stages that did not run normally.",
                                    ["stage", "status"], registry=r)
        self.fallbacks = Counter("rankstack_fallbacks", "Responses served by a fallback.", ["fallback"], registry=r)
        self.events = Counter("rankstack_events_ingested", "Events acknowledged, new or duplicate.", ["result"],
                              registry=r)
        self.unknown_items = Counter("rankstack_events_unknown_items", "Events naming an item not served.", registry=r)
        self.state_up = Gauge("rankstack_state_store_up", "1 when the state store answered its last check.",
                              multiprocess_mode="livemostrecent", registry=r)
        self.state_durable = Gauge("rankstack_state_store_durable", "1 when the state store's settings keep "
                                   "acknowledged events through a crash, 0 when not (Redis without appendonly yes and "
                                   "appendfsync always); -1 until the store first answers.",
                                   multiprocess_mode="livemostrecent", registry=r)
        self.reloads = Counter("rankstack_model_reloads", "Reload attempts by result.", ["result"], registry=r)
        self.batch_size = Histogram("rankstack_recommend_batch_size", "Requests per batched pipeline call.",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.queue_seconds = Histogram("rankstack_recommend_queue_seconds", "Wait before a request's batch starts.",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.shed = Counter("rankstack_requests_shed", "Requests refused to keep the queues within their bounds "
                            "(503 with Retry-After): deadline (expected wait + service past the deadline), queue_full "
                            "(max_queue reached), expired (the deadline passed while queued).", ["endpoint", "reason"],
                            registry=r)
        for reason in ("deadline", "queue_full", "expired"):
            self.shed.labels("/v1/recommend", reason)
        for reason in ("deadline", "queue_full"):
            self.shed.labels("/v1/events", reason)
        self.upstream_wait = Histogram("rankstack_upstream_wait_seconds", "Wait before the service read a request, "
                                       "by the front proxy's stamp (only with --request-start-header).",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.request_start_invalid = Counter("rankstack_request_start_invalid", "Request-start stamps ignored: not "
                                             "a time, or older than the clock-error bound.", registry=r)
        self.service_estimate = Gauge("rankstack_recommend_batch_seconds_estimate", "Estimated wall time of a "
                                      "recommend batch of one request (batch=single) and of max_batch requests "
                                      "(batch=full), as load shedding uses it.", ["batch"], multiprocess_mode="liveall",
                                      registry=r)
        self.admission_margin = Gauge("rankstack_admission_margin_seconds", "What load shedding adds to expected "
                                      "times: the 90th percentile of how much later than expected the last 256 "
                                      "answers came.", multiprocess_mode="liveall", registry=r)
        self.fill_wait = Gauge("rankstack_batch_fill_wait_seconds", "How long a request finding the batcher idle "
                               "waits for others now (batch_wait_ms scaled by the worker's busy share).",
                               multiprocess_mode="liveall", registry=r)
        self.busy_share = Gauge("rankstack_batcher_busy_share", "Share of the last half second the worker spent "
                                "running recommend batches.", multiprocess_mode="liveall", registry=r)
        self._caches = {  # Recommender method → its lookups by result and its entries
            "state_cache_counts": self._cache_metrics(
                "state_cache", "User-state lookups of the sequential model while serving, by result: a miss runs the "
                "network (a fresh event changed the user's history, or this worker never computed that state).",
                "User states the workers' caches hold."),
            "candidate_cache_counts": self._cache_metrics(
                "candidate_cache", "Known users' merged-candidate lookups while serving, by result: a miss runs "
                "retrieval (this worker has not kept that user's candidates since the model loaded).",
                "Users whose merged candidates the workers' caches hold.")}
        self._cache_read: dict[str, tuple[object, int, int]] = {}  # reader → (recommender, hits, misses) last read
        self._cache_lock = threading.Lock()  # a reading and its increments are one step (batches, reloads race)
        self.model_loaded = Gauge("rankstack_model_loaded_timestamp_seconds", "When the served model was loaded.",
                                  multiprocess_mode="liveall", registry=r)
        self.model_info = Gauge("rankstack_model_info", "1 for the served model, by version and artifact digest "
                                "(0 for one served before).", ["version", "digest"], multiprocess_mode="liveall",
                                registry=r)
        self.balance_closes = Counter("rankstack_balance_closes", "Kept-alive connections closed to move load off "
                                      "a worker busier than the others.", registry=r)
        self.workers_serving = Gauge("rankstack_workers_serving", "Worker processes serving (past loading).",
                                     multiprocess_mode="livemostrecent", registry=r)
        self.workers_expected = Gauge("rankstack_workers_expected", "Worker processes the service runs when whole.",
                                      multiprocess_mode="livemostrecent", registry=r)
        self._served: tuple[str, str] | None = None

    def model_served(self, loaded: Loaded) -> None:
        """Record the model served from now on: its load time and its version and digest; its cache lookups
        count from here (the load's warm-up is not counted)."""
        self.model_loaded.set(loaded.loaded_at)
        self.observe_caches(loaded.recommender)
        labels = (loaded.version, loaded.digest)
        if self._served is not None and self._served != labels:
            self.model_info.labels(*self._served).set(0)  # a worker's file keeps the series: say it is gone
            self.model_info.remove(*self._served)
        self.model_info.labels(*labels).set(1)
        self._served = labels

    def capacity(self, serving: int, expected: int) -> None:
        """Record how many worker processes serve out of how many the service runs."""
        self.workers_serving.set(serving)
        self.workers_expected.set(expected)

    def child(self, metric: Counter | Histogram, *labels: str) -> Any:
        """``metric.labels(*labels)``, kept for the next call: ``labels`` costs a lock and a tuple key per call,
        which the per-request metrics should not pay (not for series that are ever removed)."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children.setdefault(key, metric.labels(*labels))
        return found

    def _cache_metrics(self, name: str, lookups_help: str, entries_help: str) -> tuple[Counter, Gauge]:
        """``rankstack_<name>_lookups_total{result="hit|miss"}`` (both series present from the start) and
        ``rankstack_<name>_entries`` (summed over live workers)."""
        lookups = Counter(f"rankstack_{name}_lookups", lookups_help, ["result"], registry=self.registry)
        for result in ("hit", "miss"):
            self.child(lookups, result)
        entries = Gauge(f"rankstack_{name}_entries", entries_help, multiprocess_mode="livesum", registry=self.registry)
        return lookups, entries

    def observe_caches(self, recommender: object) -> None:
        """Count the state-cache and candidate-cache lookups ``recommender`` made since the last reading of it (a
        recommender read for the first time only sets the starting point), and what each cache holds."""
        with self._cache_lock:
            for reader, (lookups, entries) in self._caches.items():
                read = getattr(recommender, reader, None)
                if not callable(read):
                    continue
                hits, misses, held = read()
                last = self._cache_read.get(reader)
                if last is not None and last[0] is recommender:
                    if hits > last[1]:
                        self.child(lookups, "hit").inc(hits - last[1])
                    if misses > last[2]:
                        self.child(lookups, "miss").inc(misses - last[2])
                self._cache_read[reader] = (recommender, hits, misses)
                entries.set(held)

    def observe_stages(self, stage_ms: Mapping[str, float]) -> None:
        """Record one batched pipeline call's stage timings (its slates share them: once per batch, not per slate,
        which in multiprocess mode would write ~16 shared-memory values per request)."""
        for stage, ms in stage_ms.items():
            self.child(self.stage_seconds, stage).observe(ms / 1000.0)

    def observe_response(self, response: RecommendResponse) -> None:
        """Record a slate's non-normal stages and fallback."""
        for stage, status in response.stages.items():
            if status != "ran":
                self.degradations.labels(stage, status).inc()
        if response.fallback:
            self.fallbacks.labels(response.fallback).inc()

    def render(self) -> bytes:
        """The exposition text of every metric (of every worker process in multiprocess mode)."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged)
        return generate_latest(merged)
