"""Cutting batches into shards: every batch once, in order, shards of near-equal size."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rankstack.distributed.sharding import shard_ranges


@given(st.integers(0, 500), st.integers(1, 40))
def test_shards_cover_every_batch_once_in_order(n: int, parts: int) -> None:
    shards = shard_ranges(n, parts)
    assert [i for shard in shards for i in shard] == list(range(n))
    assert len(shards) == min(n, parts)
    sizes = [len(shard) for shard in shards]
    assert all(size >= 1 for size in sizes)
    assert not sizes or max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize(("n", "parts"), [(-1, 2), (3, 0)])
def test_bad_sizes_are_refused(n: int, parts: int) -> None:
    with pytest.raises(ValueError, match="n >= 0 and parts >= 1"):
        shard_ranges(n, parts)
