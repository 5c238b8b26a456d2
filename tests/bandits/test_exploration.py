"""Every exploration policy: action_dist is a distribution per slot, inclusion sums to k, choose reports
action_dist at what it chose, and choose's slot frequencies over many draws match action_dist."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rankstack.bandits import EpsilonGreedy, Greedy, Policy, Softmax, Uniform, inclusion, request_rng, slot_propensity

POLICIES: dict[str, Policy] = {
    "greedy": Greedy(), "uniform": Uniform(), "epsilon_greedy": EpsilonGreedy(0.3),
    "softmax_score": Softmax(0.7, order="score"), "softmax_random": Softmax(0.7, order="random"),
}


@st.composite
def pools(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    """A batch of pools with PAD anywhere, distinct ids per row, scores with ties and -inf, and a k."""
    rounds, width = draw(st.integers(1, 4)), draw(st.integers(1, 9))
    pool = np.stack([np.random.default_rng(draw(st.integers(0, 999))).permutation(50)[:width] for _ in range(rounds)])
    pad = draw(arrays(np.bool_, (rounds, width)))
    pool = np.where(pad, -1, pool)
    scores = draw(arrays(np.float64, (rounds, width), elements=st.sampled_from([-np.inf, -1.0, 0.0, 0.5, 2.0, 7.0])))
    return pool, scores, draw(st.integers(1, 6))


@settings(max_examples=80, deadline=None)
@given(case=pools(), name=st.sampled_from(sorted(POLICIES)), seed=st.integers(0, 10_000))
def test_action_dist_is_a_distribution_per_slot_and_choose_reports_it(case: tuple[np.ndarray, np.ndarray, int],
                                                                     name: str, seed: int) -> None:
    pool, scores, k = case
    policy = POLICIES[name]
    n_valid = (pool >= 0).sum(axis=1)
    width = np.minimum(k, n_valid)
    dist = policy.action_dist(pool, scores, k)
    assert dist.shape == (*pool.shape, min(k, pool.shape[1]))
    assert (dist >= 0).all() and (dist[pool < 0] == 0).all()
    filled = np.arange(dist.shape[2])[None, :] < width[:, None]
    np.testing.assert_allclose(dist.sum(axis=1), filled.astype(float), atol=1e-9)
    np.testing.assert_allclose(inclusion(dist).sum(axis=1), width, atol=1e-9)
    assert (inclusion(dist) <= 1 + 1e-9).all()
    slates = policy.choose(pool, scores, k, np.random.default_rng(seed))
    assert slates.items.shape == slates.positions.shape == slates.propensity.shape == dist.shape[::2]
    shown = slates.positions >= 0
    assert (shown == filled).all() and (slates.items[~shown] == -1).all()
    assert (slates.items[shown] >= 0).all()
    for row in slates.items:
        assert len(set(row[row >= 0].tolist())) == (row >= 0).sum()
    np.testing.assert_allclose(slates.propensity[shown], slot_propensity(dist, slates.positions)[shown], atol=1e-9)
    assert (slates.propensity[shown] > 0).all()


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_slot_frequencies_over_many_draws_match_action_dist(name: str) -> None:
    policy, k, draws = POLICIES[name], 3, 20_000
    scores = np.array([2.0, 1.5, 1.5, 0.3, -0.2, -1.0, -np.inf])
    pool = np.array([10, 11, 12, -1, 14, 15, 16])
    slates = policy.choose(np.tile(pool, (draws, 1)), np.tile(scores, (draws, 1)), k, np.random.default_rng(7))
    dist = policy.action_dist(pool[None], scores[None], k)[0]
    for slot in range(k):
        freq = np.bincount(slates.positions[:, slot], minlength=len(pool)) / draws
        se = np.sqrt(dist[:, slot] * (1 - dist[:, slot]) / draws)
        assert (np.abs(freq - dist[:, slot]) <= 4.5 * se + 1e-9).all(), (slot, freq, dist[:, slot])


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_a_request_gets_the_same_slate_alone_or_in_a_batch(name: str) -> None:
    policy = POLICIES[name]
    rng = np.random.default_rng(0)
    pool = np.stack([rng.permutation(30)[:8] for _ in range(5)])
    pool[1, 3] = -1
    scores = rng.normal(size=pool.shape)
    ids = [f"r{i}" for i in range(5)]
    together = policy.choose(pool, scores, 4, [request_rng(1, r, "u") for r in ids])
    for row, r in enumerate(ids):
        alone = policy.choose(pool[row: row + 1], scores[row: row + 1], 4, [request_rng(1, r, "u")])
        assert together.items[row].tolist() == alone.items[0].tolist()
        np.testing.assert_array_equal(together.propensity[row], alone.propensity[0])


def test_greedy_ties_go_to_the_earlier_pool_position() -> None:
    slates = Greedy().choose(np.array([[5, 6, 7, 8]]), np.array([[1.0, 3.0, 3.0, 1.0]]), 3, np.random.default_rng(0))
    assert slates.items.tolist() == [[6, 7, 5]] and (slates.propensity == 1).all()


def test_score_order_softmax_per_slot_differs_from_inclusion() -> None:
    """Shown in score order, the best item sits at slot 0 whenever drawn: its slot-0 propensity is its inclusion."""
    pool, scores = np.arange(6)[None], np.array([[3.0, 2.0, 1.0, 0.0, -1.0, -2.0]])
    dist = Softmax(1.0, order="score").action_dist(pool, scores, 3)
    pi = inclusion(dist)[0]
    assert np.isclose(dist[0, 0, 0], pi[0]) and (dist[0, 0, 1:] == 0).all()
    assert np.isclose(dist[0, 5, 2], pi[5]) and (dist[0, 5, :2] == 0).all()


def test_bad_shapes_are_refused_with_the_argument_named() -> None:
    with pytest.raises(ValueError, match="scores must have the pool's shape"):
        Uniform().choose(np.zeros((2, 3), int), np.zeros((2, 4)), 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="pool must be"):
        Uniform().action_dist(np.zeros(3, int), np.zeros(3), 2)
    with pytest.raises(ValueError, match="one per round"):
        Uniform().choose(np.zeros((2, 3), int), np.zeros((2, 3)), 2, [request_rng(0, "r", "u")])


def test_every_policy_satisfies_the_protocol() -> None:
    assert all(isinstance(p, Policy) for p in POLICIES.values())
