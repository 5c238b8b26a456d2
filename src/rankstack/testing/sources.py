"""Conformance checks for a ``CandidateSource``: call :func:`check_candidate_source` with a factory of unfitted
sources and a small dataset. Each check raises ``AssertionError`` with what was expected and what came back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from rankstack.candidates import PAD_ITEM, Candidates
from rankstack.data.dataset import Dataset
from rankstack.retrieval.source import CandidateSource


def check_candidates(cands: Candidates, n_users: int, k: int, n_items: int, name: str) -> None:
    """Shape [users, k], the source's name, PAD only after the real items, ids in range and distinct per row,
    scores non-increasing, and equal scores in ascending item id (the one tie rule)."""
    assert cands.item_ids.shape == (n_users, k), f"item_ids shape {cands.item_ids.shape}, expected {(n_users, k)}"
    assert cands.source == name, f"candidates name their source {cands.source!r}, expected {name!r}"
    real = cands.item_ids != PAD_ITEM
    assert (real[:, 1:] <= real[:, :-1]).all(), "PAD must only follow the real items of a row"
    assert ((cands.item_ids[real] >= 0) & (cands.item_ids[real] < n_items)).all(), "item ids out of range"
    for row, ids in enumerate(cands.item_ids):
        items, scores = ids[real[row]], cands.scores[row][real[row]]
        assert len(set(items.tolist())) == len(items), f"row {row} repeats an item: {items}"
        assert (np.diff(scores) <= 1e-6).all(), f"row {row}: scores not in descending order: {scores}"
        tied = scores[1:] == scores[:-1]
        assert (items[1:][tied] > items[:-1][tied]).all(), f"row {row}: equal scores not in ascending id: {items}"


def check_excludes_seen(source: CandidateSource, dataset: Dataset, user_ids: np.ndarray, k: int) -> None:
    """retrieve (exclude_seen by default) never returns an item the user interacted with in ``dataset``."""
    cands = source.retrieve(user_ids, k)
    seen = dataset.interaction_matrix().tocsr()
    for row, user in enumerate(user_ids):
        items = cands.item_ids[row][cands.item_ids[row] != PAD_ITEM]
        overlap = set(items.tolist()) & set(seen[user].indices.tolist())
        assert not overlap, f"user {user}: retrieved training items {sorted(overlap)}"


def check_candidate_source(factory: Callable[[], CandidateSource], dataset: Dataset, *, k: int = 8,
                           save_to: Path | None = None) -> CandidateSource:
    """Every check on sources built by ``factory`` and fitted to ``dataset``; returns the fitted source.

    fit returns self; score is [users, items]; retrieve passes :func:`check_candidates` for k and for more
    than the catalogue (trailing PAD); seen items are excluded; a second fit gives the same candidates; with
    ``save_to``, a save/load round trip gives the same candidates too.
    """
    source = factory()
    fitted = source.fit(dataset)
    assert fitted is source, "fit must return self"
    users = np.arange(min(dataset.n_users, 12))
    scores = source.score(users)
    assert tuple(scores.shape) == (len(users), dataset.n_items), f"score shape {tuple(scores.shape)}"
    cands = source.retrieve(users, k)
    check_candidates(cands, len(users), k, dataset.n_items, source.name)
    wide = source.retrieve(users, dataset.n_items + 3, exclude_seen=False)
    check_candidates(wide, len(users), dataset.n_items + 3, dataset.n_items, source.name)
    assert (wide.item_ids[:, dataset.n_items:] == PAD_ITEM).all(), "k beyond the catalogue must pad with -1"
    check_excludes_seen(source, dataset, users, k)
    again = factory().fit(dataset).retrieve(users, k)
    assert np.array_equal(again.item_ids, cands.item_ids), "a second fit on the same data gave other candidates"
    if save_to is not None:
        from rankstack.pipeline.components import source_class
        from rankstack.retrieval.source_files import load_source, save_source

        loaded = load_source(save_source(source, save_to, dataset=dataset), source_class)
        assert type(loaded) is type(source), f"loaded a {type(loaded).__name__}, saved a {type(source).__name__}"
        back = loaded.retrieve(users, k)
        assert np.array_equal(back.item_ids, cands.item_ids), "the loaded source retrieves other candidates"
    return source
