"""The learned ranker's view of its sequential scorer's user-state cache (what the serving metrics count)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rankstack.ranking.lambdarank import LambdaRankRanker
from rankstack.sequential.state_cache import StateCache

CACHE = StateCache(4)


@pytest.mark.parametrize(("sequential", "expected"), [
    (None, None),  # no sequential feature
    (SimpleNamespace(), None),  # a scorer that keeps no states
    (SimpleNamespace(state_cache=None), None),  # one whose cache is off
    (SimpleNamespace(state_cache="not a cache"), None),
    (SimpleNamespace(state_cache=CACHE), CACHE),
])
def test_the_state_cache_is_the_sequential_scorers(sequential: object, expected: StateCache | None) -> None:
    ranker = object.__new__(LambdaRankRanker)
    ranker.sequential = sequential  # type: ignore[assignment]
    assert ranker.state_cache is expected
