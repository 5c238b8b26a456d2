"""Conformance checks for a ranker: per-objective scores over a [batch, candidates] block.

Written against the ``Ranker`` protocol's described interface, ``score(batch) -> dict[objective, array]``;
:func:`check_ranker` takes a plain function ``score(user_ids, item_ids) -> Mapping[objective, array]`` so that
any ranker (SASRec's ``score_candidates``, the multi-task stage's ``predict``, a future ``Ranker.score``) is
checked through a one-line adapter. Each check raises ``AssertionError`` saying what was expected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

ScoreFn = Callable[[np.ndarray, np.ndarray], Mapping[str, np.ndarray]]


def check_scores(scores: Mapping[str, np.ndarray], item_ids: np.ndarray,
                 probabilities: frozenset[str] = frozenset()) -> None:
    """At least one objective; each an array of the block's shape, finite on real (non-PAD) candidates; the
    ``probabilities`` objectives within [0, 1]."""
    assert len(scores) > 0, "a ranker must return at least one objective"
    real = item_ids >= 0
    for name, values in scores.items():
        values = np.asarray(values)
        assert isinstance(name, str), f"objective names are strings, got {name!r}"
        assert values.shape == item_ids.shape, f"{name!r} has shape {values.shape}, expected {item_ids.shape}"
        assert np.isfinite(values[real]).all(), f"{name!r} is not finite on some real candidates"
        if name in probabilities:
            got = values[real]
            assert ((got >= 0) & (got <= 1)).all(), f"{name!r} is a probability, got {got.min()}..{got.max()}"


def check_ranker(score: ScoreFn, user_ids: np.ndarray, item_ids: np.ndarray, *,
                 probabilities: frozenset[str] = frozenset(), rtol: float = 1e-5) -> None:
    """:func:`check_scores`, the same call twice gives the same scores, and each row scored alone matches the
    batch (to ``rtol``: float32 matmuls over other shapes may round differently in the last bit)."""
    got = score(user_ids, item_ids)
    check_scores(got, item_ids, probabilities)
    again = score(user_ids, item_ids)
    real = item_ids >= 0
    assert set(again) == set(got), f"objectives changed between calls: {sorted(got)} then {sorted(again)}"
    for name in got:
        assert np.array_equal(np.asarray(again[name])[real], np.asarray(got[name])[real]), f"{name!r} not repeatable"
    for row in range(len(user_ids)):
        alone = score(user_ids[row: row + 1], item_ids[row: row + 1])
        for name in got:
            a, b = np.asarray(alone[name])[0][real[row]], np.asarray(got[name])[row][real[row]]
            assert np.allclose(a, b, rtol=rtol, atol=rtol), f"row {row}, {name!r}: alone {a}, in the batch {b}"
