"""``ServiceMetrics.observe_state_cache``: lookups counted from when a recommender starts serving, by increase."""

from __future__ import annotations

import re
import sys
import threading

from rankstack.serving.prometheus import ServiceMetrics


class _Counts:
    """A recommender whose state-cache counts are set by the test."""

    def __init__(self, hits: int, misses: int, entries: int) -> None:
        self.counts = (hits, misses, entries)

    def state_cache_counts(self) -> tuple[int, int, int]:
        """(hits, misses, entries) as set."""
        return self.counts


def _read(metrics: ServiceMetrics) -> tuple[float, float, float]:
    """(hit, miss) totals and the entries gauge, from the rendered text."""
    text = metrics.render().decode()
    found = dict(re.findall(r'rankstack_state_cache_lookups_total\{result="(\w+)"\} (\S+)', text))
    entries = re.search(r"^rankstack_state_cache_entries (\S+)$", text, re.M)
    assert entries is not None
    return float(found["hit"]), float(found["miss"]), float(entries.group(1))


def test_counts_start_when_a_recommender_is_first_read_and_follow_its_increase() -> None:
    metrics = ServiceMetrics()
    first = _Counts(100, 40, 140)  # the load's warm-up filled the cache: not counted
    metrics.observe_state_cache(first)
    assert _read(metrics) == (0.0, 0.0, 140.0)
    first.counts = (103, 41, 141)
    metrics.observe_state_cache(first)
    first.counts = (110, 41, 141)
    metrics.observe_state_cache(first)
    assert _read(metrics) == (10.0, 1.0, 141.0)
    first.counts = (0, 0, 0)  # the cache was cleared (new weights): nothing is taken back
    metrics.observe_state_cache(first)
    first.counts = (2, 3, 5)
    metrics.observe_state_cache(first)
    assert _read(metrics) == (12.0, 4.0, 5.0)


def test_a_new_recommender_starts_from_its_own_counts() -> None:
    metrics = ServiceMetrics()
    old = _Counts(5, 5, 10)
    metrics.observe_state_cache(old)
    old.counts = (6, 7, 13)
    metrics.observe_state_cache(old)
    new = _Counts(50, 50, 100)  # a reload: its warm-up's counts are its starting point
    metrics.observe_state_cache(new)
    new.counts = (51, 50, 100)
    metrics.observe_state_cache(new)
    assert _read(metrics) == (2.0, 2.0, 100.0)


def test_a_recommender_without_a_state_cache_leaves_the_counts_alone() -> None:
    metrics = ServiceMetrics()
    metrics.observe_state_cache(object())
    assert _read(metrics) == (0.0, 0.0, 0.0)


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
        threads = [threading.Thread(target=lambda: [metrics.observe_state_cache(recommender) for _ in range(2000)])
                   for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(before)
    assert _read(metrics)[0] == recommender.hits - 1  # the first reading is the starting point
