"""Conformance checks for a ``Reranker`` (``rerank(candidates, k, context) -> Candidates``): call
:func:`check_reranker`. Each check raises ``AssertionError`` with what was expected and what came back.
"""

from __future__ import annotations

import numpy as np

from rankstack.candidates import PAD_ITEM, Candidates
from rankstack.reranking.reranker import RerankContext, Reranker


def standard_candidates(n_items: int = 30, seed: int = 5) -> Candidates:
    """Rows with PAD in the middle, an all-PAD row, a full row and tied scores; ids below ``n_items``."""
    rng = np.random.default_rng(seed)
    ids = np.array([[3, -1, 7, 9, 11, -1], [-1, -1, -1, -1, -1, -1], [1, 2, 3, 4, 5, 6], [8, 0, 12, 14, 2, 20]])
    scores = rng.random(ids.shape)
    scores[3, 1:4] = scores[3, 0]
    return Candidates(np.where(ids >= 0, ids % n_items, PAD_ITEM), scores, "ranked")


def check_slates(candidates: Candidates, got: Candidates, k: int, *, fills: bool = True) -> None:
    """[rows, k] slates of distinct items taken from each row's candidates, PAD only at the end; with ``fills``,
    exactly min(k, valid candidates) items per row (a re-ranker that filters may show fewer)."""
    rows = candidates.item_ids.shape[0]
    assert got.item_ids.shape == (rows, k), f"slates shape {got.item_ids.shape}, expected {(rows, k)}"
    assert got.scores.shape == got.item_ids.shape, f"scores shape {got.scores.shape}"
    for row, (given, out) in enumerate(zip(candidates.item_ids, got.item_ids, strict=True)):
        shown = out[out != PAD_ITEM]
        assert (out[len(shown):] == PAD_ITEM).all(), f"row {row}: PAD before a real item: {out}"
        assert len(set(shown.tolist())) == len(shown), f"row {row} repeats an item: {out}"
        extra = set(shown.tolist()) - set(given[given != PAD_ITEM].tolist())
        assert not extra, f"row {row}: items {sorted(extra)} were not among its candidates"
        n_valid = len(set(given[given != PAD_ITEM].tolist()))
        if fills:
            assert len(shown) == min(k, n_valid), f"row {row}: {len(shown)} items, expected {min(k, n_valid)}"


def check_reranker(reranker: Reranker, candidates: Candidates | None = None, *, k: int = 5,
                   fills: bool = True) -> None:
    """:func:`check_slates`, an all-PAD row stays PAD, each row alone gives the same slate as in the batch, and
    the same call twice gives the same slates."""
    assert isinstance(reranker, Reranker), f"{type(reranker).__name__} has no rerank(candidates, k, context)"
    cands = candidates if candidates is not None else standard_candidates()
    rows = cands.item_ids.shape[0]
    got = reranker.rerank(cands, k, RerankContext.for_users(np.arange(rows)))
    check_slates(cands, got, k, fills=fills)
    empty = (cands.item_ids == PAD_ITEM).all(axis=1)
    assert (got.item_ids[empty] == PAD_ITEM).all(), "a row without candidates got items"
    again = reranker.rerank(cands, k, RerankContext.for_users(np.arange(rows)))
    assert np.array_equal(again.item_ids, got.item_ids), "the same call gave other slates"
    for row in range(rows):
        one = Candidates(cands.item_ids[row: row + 1], cands.scores[row: row + 1], cands.source)
        alone = reranker.rerank(one, k, RerankContext.for_users(np.array([row])))
        assert np.array_equal(alone.item_ids[0], got.item_ids[row]), \
            f"row {row}: alone {alone.item_ids[0]}, in the batch {got.item_ids[row]}"
