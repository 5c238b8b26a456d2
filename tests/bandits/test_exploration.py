"""Every exploration policy: action_dist is a distribution per slot, inclusion sums to k, choose reports
action_dist at what it chose, and choose's slot frequencies over many draws match action_dist."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from rankstack.bandits import EpsilonGreedy, Greedy, Policy, Slates, Softmax, Uniform, inclusion, request_rng
from rankstack.bandits.draws import Draws
from rankstack.testing.policies import check_choose, check_policy

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


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_passes_the_conformance_suite(name: str) -> None:
    check_policy(POLICIES[name])


@settings(max_examples=80, deadline=None)
@given(case=pools(), name=st.sampled_from(sorted(POLICIES)), seed=st.integers(0, 10_000))
def test_any_pool_gives_a_distribution_per_slot_and_choose_reports_it(case: tuple[np.ndarray, np.ndarray, int],
                                                                     name: str, seed: int) -> None:
    check_choose(POLICIES[name], *case, seed=seed)


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




class _InclusionReporting(Softmax):
    """The old online convention: score-ordered softmax reporting the inclusion probability."""

    def choose(self, pool: np.ndarray, scores: np.ndarray, k: int, rng: Draws) -> Slates:
        slates = super().choose(pool, scores, k, rng)
        pi = inclusion(self.action_dist(pool, scores, k), slates.positions)
        return Slates(slates.items, slates.positions, pi)


def test_the_suite_catches_a_policy_that_logs_inclusion_as_its_propensity() -> None:
    with pytest.raises(AssertionError, match="action_dist says"):
        check_policy(_InclusionReporting(0.7, order="score"))


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 60), k=st.integers(1, 25), epsilon=st.floats(0.0, 1.0), seed=st.integers(0, 10**6))
def test_the_ordered_single_request_path_is_choose(n: int, k: int, epsilon: float, seed: int) -> None:
    pool = np.random.default_rng(seed).permutation(1000)[:n].astype(np.int64)
    ranked = -np.arange(n, dtype=np.float64)
    policy = EpsilonGreedy(epsilon)
    full = policy.choose(pool[None, :], ranked[None, :], k, [request_rng(seed, "r", "u")])
    items, prop = policy.choose_ordered(pool, k, request_rng(seed, "r", "u"))
    np.testing.assert_array_equal(items, full.items[0])
    np.testing.assert_array_equal(prop, full.propensity[0])
