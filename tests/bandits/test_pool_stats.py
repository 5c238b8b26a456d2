"""Exact statistics of the online policy stage: any split of the events into batches, in any order, gives the same
bits, equal to the ridge formulas computed in floating point; checkpoints round-trip."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.bandits.pool_stats import SCALE, PoolStats, quantize, ridge_model

DIM, ITEMS = 5, 7


def events(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q = quantize(rng.uniform(-1, 1, (n, DIM)))
    return q, rng.integers(0, ITEMS, n), rng.integers(0, 2, n), rng.integers(0, 3, n)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 60), st.integers(0, 10_000), st.lists(st.integers(1, 20), min_size=1, max_size=8))
def test_any_batching_and_order_gives_identical_bits(n: int, seed: int, cuts: list[int]) -> None:
    q, items, pulls, rewards = events(n, seed)
    whole = PoolStats.empty(DIM, ITEMS)
    whole.fold(q, items, pulls, rewards)
    pieces = PoolStats.empty(DIM, ITEMS)
    order = np.random.default_rng(seed + 1).permutation(n)
    at = 0
    for size in cuts * (n // max(sum(cuts), 1) + 1):
        idx = order[at: at + size]
        pieces.fold(q[idx], items[idx], pulls[idx], rewards[idx])
        at += size
        if at >= n:
            break
    assert whole.to_bytes() == pieces.to_bytes()


def test_ridge_model_equals_the_batch_formulas() -> None:
    q, items, pulls, rewards = events(300, 0)
    stats = PoolStats.empty(DIM, ITEMS)
    stats.fold(q, items, pulls, rewards)
    phi = q / SCALE
    a = 2.0 * np.eye(DIM) + (phi[pulls > 0].T @ phi[pulls > 0])
    b = (rewards[:, None] * phi).sum(axis=0)
    model = ridge_model(stats, ridge=2.0)
    assert np.allclose(model.theta, np.linalg.solve(a, b))
    assert np.allclose(model.a_inv, np.linalg.inv(a))
    assert np.allclose(model.a_inv_chol @ model.a_inv_chol.T, model.a_inv)
    assert stats.pulls.tolist() == np.bincount(items, weights=pulls, minlength=ITEMS).astype(int).tolist()
    assert stats.wins.tolist() == np.bincount(items, weights=rewards, minlength=ITEMS).astype(int).tolist()


def test_checkpoint_round_trip_and_shape_check() -> None:
    q, items, pulls, rewards = events(50, 3)
    stats = PoolStats.empty(DIM, ITEMS)
    stats.fold(q, items, pulls, rewards)
    stats.cursor = 42
    back = PoolStats.from_bytes(stats.to_bytes(), DIM, ITEMS)
    assert back.cursor == 42 and back.events == 50 and back.to_bytes() == stats.to_bytes()
    with pytest.raises(ValueError, match="expected"):
        PoolStats.from_bytes(stats.to_bytes(), DIM + 1, ITEMS)


def test_quantize_clips_and_rounds() -> None:
    assert quantize(np.array([2.0, -3.0, 0.5, 1 / 512])).tolist() == [SCALE, -SCALE, SCALE // 2, 0]
