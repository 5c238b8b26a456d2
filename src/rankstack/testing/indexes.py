"""Conformance checks for a ``VectorIndex``: call :func:`check_vector_index` with a factory of empty indexes.

Each check raises ``AssertionError`` with what was expected and what came back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from rankstack.index.vector_index import VectorIndex

IndexFactory = Callable[[], VectorIndex]


def unnormalised(n: int = 600, dim: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(vectors [n, dim], queries [20, dim]) whose norms vary 30-fold, so L2 and inner-product neighbours differ."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x *= rng.uniform(0.1, 3.0, (n, 1)).astype(np.float32)
    q = rng.standard_normal((20, dim)).astype(np.float32)
    return x, q


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Mean share of each row of ``a`` found in the same row of ``b``."""
    return float(np.mean([len(set(r) & set(s)) / len(r) for r, s in zip(a, b, strict=True)]))


def check_inner_product(factory: IndexFactory, recall: float = 0.95) -> None:
    """Neighbours by inner product, not L2; scores are q·x in descending order; ``metric`` says so."""
    index = factory()
    x, q = unnormalised()
    ip = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :10]
    scores, ids = index.build(x).search(q, 10)
    got = overlap(ids, ip)
    assert got >= recall, f"inner-product recall@10 {got:.3f}, expected ≥ {recall}"
    assert np.allclose(scores, np.take_along_axis(q @ x.T, ids, axis=1), rtol=1e-4, atol=1e-4), "scores ≠ q·x"
    assert (np.diff(scores, axis=1) <= 1e-5).all(), "scores not in descending order"
    assert index.metric == "inner_product", f"metric {index.metric!r}, expected 'inner_product'"


def check_tie_rule(factory: IndexFactory) -> None:
    """Equal scores come back lower id first; an exact index returns exactly the stable brute-force order."""
    index = factory()
    rng = np.random.default_rng(4)
    x = rng.integers(-1, 2, (300, 2)).astype(np.float32)  # 9 distinct vectors: every score is shared by many
    q = rng.integers(-1, 2, (10, 2)).astype(np.float32)
    scores, ids = index.build(x).search(q, 40)
    for row in range(len(q)):
        found = ids[row][ids[row] >= 0]
        want = found[np.lexsort((found, -scores[row][: len(found)]))]
        assert found.tolist() == want.tolist(), f"query {row}: not ordered by (score desc, id asc): {found}"
    if index.is_exact():
        assert np.array_equal(ids, np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :40]), "exact index not exact"


def check_padding(factory: IndexFactory) -> None:
    """k beyond the catalogue pads ids with -1 and scores with -inf."""
    x, q = unnormalised(n=40, seed=2)
    scores, ids = factory().build(x[:3]).search(q[:2], 5)
    assert ids.shape == scores.shape == (2, 5), f"shapes {ids.shape} and {scores.shape}, expected (2, 5)"
    assert (ids[:, 3:] == -1).all() and np.isneginf(scores[:, 3:]).all(), f"padding wrong: {ids}, {scores}"
    assert sorted(ids[0, :3].tolist()) == [0, 1, 2], f"the three vectors should all come back: {ids[0]}"


def check_add(factory: IndexFactory, recall: float = 0.95) -> None:
    """``add`` continues the ids, and vectors longer than all before stay findable."""
    x, q = unnormalised(n=200, seed=3)
    index = factory().build(x[:100])
    big = x[100:] * 10.0
    index.add(big)
    assert index.ntotal == 200, f"ntotal {index.ntotal} after adding 100 to 100"
    _, ids = index.search(q, 5)
    got = overlap(ids, np.argsort(-(q @ np.vstack([x[:100], big]).T), axis=1)[:, :5])
    assert got >= recall, f"recall@5 after add {got:.3f}, expected ≥ {recall}"


def check_round_trip(factory: IndexFactory, directory: Path) -> None:
    """``write`` then ``read`` over the same vectors searches alike."""
    x, q = unnormalised(n=400)
    built = factory().build(x)
    built.write(directory)
    read = factory().read(directory, x)
    assert type(read) is type(built), f"read a {type(read).__name__}, wrote a {type(built).__name__}"
    assert read.ntotal == built.ntotal == len(x), f"ntotal {read.ntotal} after reading {len(x)} vectors"
    for a, b in zip(built.search(q, 7), read.search(q, 7), strict=True):
        assert np.array_equal(a, b), "the index read back searches differently"


def check_vector_index(factory: IndexFactory, *, save_to: Path | None = None, incremental: bool = True,
                       recall: float = 0.95) -> None:
    """Every check above (``add`` when ``incremental``, the round trip given ``save_to``)."""
    check_inner_product(factory, recall)
    check_tie_rule(factory)
    check_padding(factory)
    if incremental:
        check_add(factory, recall)
    if save_to is not None:
        check_round_trip(factory, save_to)
