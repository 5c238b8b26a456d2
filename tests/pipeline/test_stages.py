"""The retrieval stage's table helpers (``eligible``, ``stack``) equal their straightforward per-row versions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.candidates import PAD_ITEM
from rankstack.pipeline.stages import CandidateTable, eligible, stack


def _reference_eligible(table: CandidateTable, blocked: Sequence[np.ndarray],
                        allowed: Sequence[np.ndarray | None]) -> CandidateTable:
    """Row by row: blocked or filtered-out candidates become pads, survivors move to the front in order."""
    ids = table.item_ids.copy()
    for row, (block, allow) in enumerate(zip(blocked, allowed, strict=True)):
        valid = ids[row] >= 0
        bad = valid & np.isin(ids[row], block)
        if allow is not None:
            bad |= valid & ~allow[np.where(valid, ids[row], 0)]
        ids[row, bad] = PAD_ITEM
    order = np.argsort(ids < 0, axis=1, kind="stable")
    out = CandidateTable(ids, table.retrieval, table.source_scores).take(order)
    return CandidateTable(out.item_ids, np.where(out.item_ids >= 0, out.retrieval, -np.inf), out.source_scores)


def _reference_stack(tables: Sequence[tuple[np.ndarray, CandidateTable]], rows: int) -> CandidateTable:
    """Every part copied into fresh full-size arrays."""
    width = max(t.item_ids.shape[1] for _, t in tables)
    names = sorted({n for _, t in tables for n in t.source_scores})
    ids, ret = np.full((rows, width), PAD_ITEM, np.int64), np.full((rows, width), -np.inf)
    src = {n: np.full((rows, width), np.nan) for n in names}
    for index, t in tables:
        w = t.item_ids.shape[1]
        ids[index, :w], ret[index, :w] = t.item_ids, t.retrieval
        for n, s in t.source_scores.items():
            src[n][index, :w] = s
    return CandidateTable(ids, ret, src)


def _table(rng: np.random.Generator, rows: int, width: int, n_items: int, compact: bool) -> CandidateTable:
    """Distinct items per row, -1 pads at the end (``compact``) or anywhere; scores with NaN where a source
    did not propose."""
    ids = np.stack([rng.permutation(n_items)[:width] for _ in range(rows)]) if rows else np.zeros((0, width), int)
    ids = ids.astype(np.int64)
    if compact:
        ids[np.arange(width)[None, :] >= rng.integers(0, width + 1, (rows, 1))] = PAD_ITEM
    else:
        ids[rng.random(ids.shape) < 0.3] = PAD_ITEM
    retrieval = np.where(ids >= 0, rng.random(ids.shape), -np.inf)
    sources = {n: np.where((ids >= 0) & (rng.random(ids.shape) < 0.6), rng.random(ids.shape), np.nan)
               for n in ("zeta", "alpha")}
    return CandidateTable(ids, retrieval, sources)


def _assert_same(got: CandidateTable, want: CandidateTable) -> None:
    np.testing.assert_array_equal(got.item_ids, want.item_ids)
    np.testing.assert_array_equal(got.retrieval, want.retrieval)
    assert list(got.source_scores) == list(want.source_scores)
    for name, scores in want.source_scores.items():
        assert got.source_scores[name].dtype == scores.dtype
        np.testing.assert_array_equal(got.source_scores[name], scores)
    assert got.item_ids.dtype == want.item_ids.dtype and got.retrieval.dtype == want.retrieval.dtype


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(0, 6), width=st.integers(1, 12), compact=st.booleans(),
       n_blocked=st.integers(0, 6), filtered=st.booleans())
def test_eligible_equals_the_per_row_reference(seed: int, rows: int, width: int, compact: bool, n_blocked: int,
                                               filtered: bool) -> None:
    rng = np.random.default_rng(seed)
    n_items = width + 8
    table = _table(rng, rows, width, n_items, compact)
    blocked = [rng.integers(0, n_items, int(rng.integers(0, n_blocked + 1))) for _ in range(rows)]
    allowed = [rng.random(n_items) < 0.7 if filtered and rng.random() < 0.5 else None for _ in range(rows)]
    _assert_same(eligible(table, blocked, allowed), _reference_eligible(table, blocked, allowed))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(1, 6), parts=st.integers(1, 3))
def test_stack_equals_the_copying_reference(seed: int, rows: int, parts: int) -> None:
    rng = np.random.default_rng(seed)
    owner = rng.integers(0, parts, rows)
    tables = [(np.flatnonzero(owner == p), _table(rng, int((owner == p).sum()), int(rng.integers(1, 6)), 12,
                                                  bool(p % 2)))
              for p in range(parts) if (owner == p).any()]
    _assert_same(stack(tables, rows), _reference_stack(tables, rows))
