"""Slate composition: without constraints or pins the slate is the ranked head (the serving fast path)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.reranking.rules.slate import SlateSpec, _fill, compose


@settings(max_examples=80, deadline=None)
@given(ranked=st.lists(st.integers(0, 500), max_size=60, unique=True), k=st.integers(1, 40))
def test_unconstrained_compose_equals_the_general_fill(ranked: list[int], k: int) -> None:
    items = np.array(ranked, dtype=np.int64)
    fast, notes = compose(items, k, SlateSpec())
    slow, slow_notes = _fill(items, k, SlateSpec(), [], [])
    assert fast == slow and notes == slow_notes == []
    assert len(fast) == k and fast[: min(k, len(ranked))] == ranked[:k]
