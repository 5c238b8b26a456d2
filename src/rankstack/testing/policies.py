"""Conformance checks for a bandit ``Policy`` (:mod:`rankstack.bandits.policy`): call :func:`check_policy`.

Each check raises ``AssertionError`` with what was expected and what came back.
"""

from __future__ import annotations

import numpy as np

from rankstack.bandits.draws import request_rng
from rankstack.bandits.policy import Policy, inclusion, slot_propensity


def standard_pools() -> list[tuple[np.ndarray, np.ndarray, int]]:
    """(pool, scores, k) cases: PAD in the middle and at the end, tied and -inf scores, pools shorter than k."""
    rng = np.random.default_rng(0)
    pool = np.stack([rng.permutation(40)[:9] for _ in range(4)])
    pool[1, [2, 5]] = -1
    pool[2, 3:] = -1
    scores = np.round(rng.normal(size=pool.shape), 1)
    scores[0, [1, 4]] = scores[0, 0]
    scores[3, 6] = -np.inf
    return [(pool, scores, 3), (pool, scores, 5), (pool[:, :2], scores[:, :2], 4)]


def check_action_dist(policy: Policy, pool: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """action_dist is [rounds, pool size, min(k, pool size)], 0 on PAD, a distribution over the pool for each
    filled slot (all 0 past a short pool's end), with inclusion Σ_l summing to min(k, |valid|) and at most 1."""
    dist = policy.action_dist(pool, scores, k)
    width = np.minimum(k, (pool >= 0).sum(axis=1))
    expected = (*pool.shape, min(k, pool.shape[1]))
    assert dist.shape == expected, f"action_dist shape {dist.shape}, expected {expected}"
    assert (dist >= 0).all(), "action_dist has negative probabilities"
    assert (dist[pool < 0] == 0).all(), "action_dist gives probability to PAD entries"
    filled = (np.arange(dist.shape[2])[None, :] < width[:, None]).astype(float)
    got = dist.sum(axis=1)
    assert np.allclose(got, filled, atol=1e-9), f"per-slot sums {got}, expected {filled}"
    pi = inclusion(dist)
    assert np.allclose(pi.sum(axis=1), width, atol=1e-9), f"inclusion sums {pi.sum(axis=1)}, expected {width}"
    assert (pi <= 1 + 1e-9).all(), f"inclusion above 1: {pi.max()}"
    return dist


def check_choose(policy: Policy, pool: np.ndarray, scores: np.ndarray, k: int, seed: int = 0) -> None:
    """choose fills min(k, |valid|) slots per round with distinct valid items, PAD after, and reports
    propensity = action_dist at the chosen (item, slot), > 0."""
    dist = check_action_dist(policy, pool, scores, k)
    slates = policy.choose(pool, scores, k, np.random.default_rng(seed))
    shape = dist.shape[::2]
    for name in ("items", "positions", "propensity"):
        got = getattr(slates, name).shape
        assert got == shape, f"slates.{name} has shape {got}, expected {shape}"
    width = np.minimum(k, (pool >= 0).sum(axis=1))
    shown = slates.positions >= 0
    assert (shown == (np.arange(shape[1])[None, :] < width[:, None])).all(), "slots filled wrongly (PAD not last?)"
    assert (slates.items[~shown] == -1).all(), "PAD slots must hold item -1"
    rows = np.arange(len(pool))[:, None]
    assert (pool[rows, np.maximum(slates.positions, 0)][shown] == slates.items[shown]).all(), "items ≠ pool[positions]"
    assert (slates.items[shown] >= 0).all(), "a PAD pool entry was chosen"
    for r, row in enumerate(slates.items):
        assert len(set(row[row >= 0].tolist())) == int(width[r]), f"round {r} repeats an item: {row}"
    want = slot_propensity(dist, slates.positions)[shown]
    got_prop = slates.propensity[shown]
    assert np.allclose(got_prop, want, atol=1e-9), f"propensities {got_prop}, action_dist says {want}"
    assert (got_prop > 0).all(), "a chosen item has propensity 0"


def check_frequencies(policy: Policy, pool: np.ndarray, scores: np.ndarray, k: int, draws: int = 20_000,
                      z: float = 4.5) -> None:
    """Over ``draws`` repetitions of one round (a 1-row pool), each (item, slot) is chosen as often as
    action_dist says, within ``z`` standard errors."""
    dist = policy.action_dist(pool[:1], scores[:1], k)[0]
    slates = policy.choose(np.repeat(pool[:1], draws, 0), np.repeat(scores[:1], draws, 0), k,
                           np.random.default_rng(1))
    for slot in range(dist.shape[1]):
        picked = slates.positions[:, slot]
        freq = np.bincount(picked[picked >= 0], minlength=pool.shape[1]) / draws
        se = np.sqrt(dist[:, slot] * (1 - dist[:, slot]) / draws)
        assert (np.abs(freq - dist[:, slot]) <= z * se + 1e-9).all(), \
            f"slot {slot}: frequencies {freq.round(4)}, action_dist {dist[:, slot].round(4)}"


def check_request_draws(policy: Policy, pool: np.ndarray, scores: np.ndarray, k: int) -> None:
    """With one ``request_rng`` per round, a round gets the same slate and propensities alone or in a batch."""
    ids = [f"req-{r}" for r in range(len(pool))]
    together = policy.choose(pool, scores, k, [request_rng(7, i, "user") for i in ids])
    for r, request_id in enumerate(ids):
        alone = policy.choose(pool[r: r + 1], scores[r: r + 1], k, [request_rng(7, request_id, "user")])
        assert together.items[r].tolist() == alone.items[0].tolist(), f"round {r}: batch and alone differ"
        assert np.array_equal(together.propensity[r], alone.propensity[0], equal_nan=True), f"round {r}: propensity"


def check_policy(policy: Policy, cases: list[tuple[np.ndarray, np.ndarray, int]] | None = None) -> None:
    """Every check above on ``cases`` (default: :func:`standard_pools`), plus the protocol itself."""
    assert isinstance(policy, Policy), f"{type(policy).__name__} lacks choose / action_dist"
    for pool, scores, k in cases or standard_pools():
        check_choose(policy, pool, scores, k)
        check_request_draws(policy, pool, scores, k)
    pool, scores, k = (cases or standard_pools())[0]
    check_frequencies(policy, pool, scores, k)
