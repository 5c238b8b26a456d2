"""The Vowpal Wabbit SquareCB peer: slot-by-slot slates from VW's pmf, propensities, learning, missing extra."""

import sys

import numpy as np
import pytest

from rankstack.bandits.learning import BanditContext
from rankstack.bandits.policy import Slates

vowpalwabbit = pytest.importorskip("vowpalwabbit", reason="the peers extra (vowpalwabbit) is not installed")

from rankstack.bandits.vw_squarecb import VWSquareCB  # noqa: E402


def _ctx(n: int, seed: int = 0) -> BanditContext:
    x = np.random.default_rng(seed).normal(size=(n, 3))
    x[:, -1] = 1.0
    return BanditContext(x, np.zeros((6, 1)))


def test_slates_are_distinct_skip_pad_and_slot_one_carries_vw_pmf() -> None:
    policy = VWSquareCB(6, seed=0)
    pool = np.array([[0, 1, -1, 3, 4, 5], [5, -1, -1, 2, 1, 0]])
    ctx = _ctx(2)
    slates = policy.choose(pool, np.zeros(pool.shape), 3, np.random.default_rng(0), context=ctx)
    assert (slates.items >= 0).all()
    for row in range(2):
        assert len(set(slates.items[row])) == 3
        np.testing.assert_array_equal(pool[row, slates.positions[row]], slates.items[row])
        valid = [int(a) for a in pool[row] if a >= 0]
        pmf = policy.pmf(policy._shared(ctx.rounds[row]), valid)
        assert pmf.sum() == pytest.approx(1.0, abs=1e-5)
        assert slates.propensity[row, 0] == pytest.approx(pmf[valid.index(int(slates.items[row, 0]))])
    assert np.isnan(slates.propensity[:, 1:]).all()  # no Monte-Carlo samples asked for
    assert ((policy.last_conditional > 0) & (policy.last_conditional <= 1)).all()


def test_later_slot_marginals_match_the_exact_sum_over_earlier_picks() -> None:
    policy = VWSquareCB(3, gamma_scale=3.0, seed=0)
    ctx = _ctx(1, seed=4)
    pool = np.array([[0, 1, 2]])
    # teach it a preference so the pmf is not uniform
    for _ in range(30):
        slates = policy.choose(pool, np.zeros(pool.shape), 2, np.random.default_rng(1), context=ctx)
        policy.update(pool, slates, (slates.items == 2).astype(float), ctx)
    policy.propensity_samples = 2000
    slates = policy.choose(pool, np.zeros(pool.shape), 2, np.random.default_rng(5), context=ctx)
    shared = policy._shared(ctx.rounds[0])
    q1 = policy.pmf(shared, [0, 1, 2])
    second = int(slates.items[0, 1])
    exact = sum(q1[a] * policy.pmf(shared, [b for b in (0, 1, 2) if b != a])[[b for b in (0, 1, 2) if b != a]
                                                                            .index(second)]
                for a in (0, 1, 2) if a != second)
    assert slates.propensity[0, 1] == pytest.approx(exact, abs=0.03)


def test_it_learns_the_clicked_arm() -> None:
    policy = VWSquareCB(6, gamma_scale=50.0, seed=0)
    rng = np.random.default_rng(0)
    pool = np.tile(np.arange(6), (50, 1))
    for step in range(20):
        ctx = _ctx(50, seed=step)
        slates = policy.choose(pool, np.zeros(pool.shape), 1, rng, context=ctx)
        policy.update(pool, slates, (slates.items == 4).astype(float), ctx)
    ctx = _ctx(1, seed=99)
    pmf = policy.pmf(policy._shared(ctx.rounds[0]), list(range(6)))
    assert int(np.argmax(pmf)) == 4 and pmf[4] > 0.5


def test_update_must_follow_its_choose() -> None:
    policy = VWSquareCB(3)
    items = np.array([[0]])
    with pytest.raises(ValueError, match="must follow the choose"):
        policy.update(np.array([[0, 1, 2]]), Slates(items, items, np.ones((1, 1))), np.ones((1, 1)), _ctx(1))


def test_a_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vowpalwabbit", None)
    with pytest.raises(ImportError, match=r"rankstack\[peers\]"):
        VWSquareCB(3)
