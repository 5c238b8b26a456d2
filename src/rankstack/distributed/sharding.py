"""Cutting a run's batches into contiguous shards for workers (pure; no Ray)."""

from __future__ import annotations


def shard_ranges(n: int, parts: int) -> list[range]:
    """``n`` items cut into at most ``parts`` contiguous, non-empty ranges of near-equal size, in order.

    >>> shard_ranges(5, 2)
    [range(0, 3), range(3, 5)]
    """
    if n < 0 or parts < 1:
        raise ValueError(f"need n >= 0 and parts >= 1, got n={n}, parts={parts}")
    parts = min(parts, n)
    if parts == 0:
        return []
    base, extra = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + base + (1 if i < extra else 0)
        out.append(range(start, stop))
        start = stop
    return out
