"""``ServiceMetrics.observe_caches``: each cache's lookups counted from when a recommender serves, by increase."""

from __future__ import annotations

import re
import sys
import threading

import pytest

from rankstack.serving.prometheus import ServiceMetrics

CACHES = ["state_cache", "candidate_cache"]  # Pipeline.<cache>_counts() → rankstack_<cache>_lookups_total, _entries


class _Counts:
    """A recommender whose counts of one cache (``<cache>_counts``) are set by the test; the other cache reads 0."""

    def __init__(self, hits: int, misses: int, entries: int, cache: str = "state_cache") -> None:
        self.counts = (hits, misses, entries)
        self.cache = cache

    def state_cache_counts(self) -> tuple[int, int, int]:
        """(hits, misses, entries) as set, when the test is about the state cache."""
        return self.counts if self.cache == "state_cache" else (0, 0, 0)

    def candidate_cache_counts(self) -> tuple[int, int, int]:
        """(hits, misses, entries) as set, when the test is about the candidate cache."""
        return self.counts if self.cache == "candidate_cache" else (0, 0, 0)


def _read(metrics: ServiceMetrics, cache: str = "state_cache") -> tuple[float, float, float]:
    """(hit, miss) totals and the entries gauge of ``cache``, from the rendered text."""
    text = metrics.render().decode()
    found = dict(re.findall(rf'rankstack_{cache}_lookups_total\{{result="(\w+)"\}} (\S+)', text))
    entries = re.search(rf"^rankstack_{cache}_entries (\S+)$", text, re.M)
    assert entries is not None
    return float(found["hit"]), float(found["miss"]), float(entries.group(1))


@pytest.mark.parametrize("cache", CACHES)
def test_counts_start_when_a_recommender_is_first_read_and_follow_its_increase(cache: str) -> None:
    metrics = ServiceMetrics()
    first = _Counts(100, 40, 140, cache)  # the load's warm-up filled the cache: not counted
    metrics.observe_caches(first)
    assert _read(metrics, cache) == (0.0, 0.0, 140.0)
    first.counts = (103, 41, 141)
    metrics.observe_caches(first)
    first.counts = (110, 41, 141)
    metrics.observe_caches(first)
    assert _read(metrics, cache) == (10.0, 1.0, 141.0)
    first.counts = (0, 0, 0)  # the cache was cleared (new weights): nothing is taken back
    metrics.observe_caches(first)
    first.counts = (2, 3, 5)
    metrics.observe_caches(first)
    assert _read(metrics, cache) == (12.0, 4.0, 5.0)
    other = next(c for c in CACHES if c != cache)
    assert _read(metrics, other) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("cache", CACHES)
def test_a_new_recommender_starts_from_its_own_counts(cache: str) -> None:
    metrics = ServiceMetrics()
    old = _Counts(5, 5, 10, cache)
    metrics.observe_caches(old)
    old.counts = (6, 7, 13)
    metrics.observe_caches(old)
    new = _Counts(50, 50, 100, cache)  # a reload: its warm-up's counts are its starting point
    metrics.observe_caches(new)
    new.counts = (51, 50, 100)
    metrics.observe_caches(new)
    assert _read(metrics, cache) == (2.0, 2.0, 100.0)


@pytest.mark.parametrize("cache", CACHES)
def test_a_recommender_without_caches_leaves_the_counts_alone(cache: str) -> None:
    metrics = ServiceMetrics()
    metrics.observe_caches(object())
    assert _read(metrics, cache) == (0.0, 0.0, 0.0)


class _Ticking:
    """A recommender whose every reading finds one more hit (lookups happening between readings)."""

    def __init__(self) -> None:
        self.hits = 0
        self.lock = threading.Lock()

    def state_cache_counts(self) -> tuple[int, int, int]:
        """One more hit than the last reading."""
        with self.lock:
            self.hits += 1
            return self.hits, 0, 1


def test_concurrent_readings_count_every_lookup_once() -> None:
    """Batches and a reload's first reading can race: each reading's increments follow the one before."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as CPython allows, so unguarded readings interleave
    try:
        metrics, recommender = ServiceMetrics(), _Ticking()
        threads = [threading.Thread(target=lambda: [metrics.observe_caches(recommender) for _ in range(2000)])
                   for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(before)
    assert _read(metrics)[0] == recommender.hits - 1  # the first reading is the starting point
