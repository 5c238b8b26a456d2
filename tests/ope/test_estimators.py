"""Every estimator against values computed by hand on tiny logs, and invariants on random ones."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rankstack.ope.estimators import (
    ALL_ESTIMATORS,
    DR,
    IPS,
    MIPS,
    SNDR,
    SNIPS,
    SNMIPS,
    DirectMethod,
    DRos,
    SwitchDR,
    make_estimator,
)
from rankstack.ope.feedback import OffPolicyData


def tiny() -> OffPolicyData:
    """3 rounds, 2 actions, 1 slot; w = [1.6, 2, 4], residuals r − q̂(a) = [.4, −.1, .5], q̂(π_e) = [.52, .25, .5]."""
    return OffPolicyData(
        reward=np.array([1.0, 0.0, 1.0]),
        action=np.array([0, 1, 1]),
        position=np.array([0, 0, 0]),
        pscore=np.array([0.5, 0.25, 0.25]),
        action_dist=np.array([[0.8, 0.2], [0.5, 0.5], [0.0, 1.0]])[:, :, None],
        estimated_rewards=np.array([[0.6, 0.2], [0.4, 0.1], [0.3, 0.5]])[:, :, None],
    )


@pytest.mark.parametrize(("estimator", "expected"), [
    (DirectMethod(), (0.52 + 0.25 + 0.5) / 3),
    (IPS(), (1.6 * 1 + 2 * 0 + 4 * 1) / 3),
    (SNIPS(), 5.6 / 7.6),
    (DR(), (1.27 + 1.6 * 0.4 + 2 * -0.1 + 4 * 0.5) / 3),
    (SNDR(), 1.27 / 3 + 2.44 / 7.6),
    (SwitchDR(tau=3.0), (1.27 + 0.64 - 0.2) / 3),  # the w = 4 round falls back to q̂
    (SwitchDR(tau=0.0), 1.27 / 3),
    (DRos(lam=1.0), (1.27 + 1.6 / 3.56 * 0.4 + 2 / 5 * -0.1 + 4 / 17 * 0.5) / 3),
])
def test_hand_computed_values(estimator, expected):
    assert estimator.estimate(tiny()) == pytest.approx(expected, rel=1e-12)


def test_limits_of_the_hyperparameters():
    data = tiny()
    assert SwitchDR(tau=np.inf).estimate(data) == pytest.approx(DR().estimate(data))
    assert DRos(lam=1e12).estimate(data) == pytest.approx(DR().estimate(data))
    assert DRos(lam=0.0).estimate(data) == pytest.approx(DirectMethod().estimate(data))


def embedded() -> OffPolicyData:
    """3 actions, embeddings [0, 0, 1], uniform logger: w^e = [(.5 + .3) / (2/3), .8 / (1/3)] = [1.2, 2.4]."""
    return OffPolicyData(
        reward=np.array([1.0, 0.5]),
        action=np.array([0, 2]),
        position=np.array([0, 0]),
        pscore=np.array([1 / 3, 1 / 3]),
        action_dist=np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])[:, :, None],
        behavior_dist=np.full((1, 3, 1), 1 / 3),
        action_embedding=np.array([0, 0, 1]),
    )


def test_mips_hand_computed():
    assert MIPS().estimate(embedded()) == pytest.approx((1.2 * 1 + 2.4 * 0.5) / 2)
    assert SNMIPS().estimate(embedded()) == pytest.approx((1.2 + 1.2) / 3.6)


def test_mips_with_one_embedding_per_action_is_ips():
    data = embedded()
    data = OffPolicyData(data.reward, data.action, data.position, data.pscore, data.action_dist,
                         behavior_dist=data.behavior_dist, action_embedding=np.array([0, 1, 2]))
    assert MIPS().estimate(data) == pytest.approx(IPS().estimate(data))


def test_slots_pick_their_own_column():
    """Two slots: each round's weight uses the evaluated policy's column of its own slot."""
    dist = np.array([[[0.9, 0.1], [0.1, 0.9]]])  # [1, 2 actions, 2 slots]: action 0 at slot 0, action 1 at slot 1
    data = OffPolicyData(np.array([1.0, 1.0]), np.array([0, 0]), np.array([0, 1]), np.array([0.5, 0.5]), dist)
    assert IPS().estimate(data) == pytest.approx((0.9 / 0.5 + 0.1 / 0.5) / 2)


@pytest.mark.parametrize("name", ["dm", "dr", "sndr", "switch_dr", "dros"])
def test_model_based_estimators_need_a_reward_model(name):
    data = tiny()
    data = OffPolicyData(data.reward, data.action, data.position, data.pscore, data.action_dist)
    with pytest.raises(ValueError, match="estimated_rewards"):
        make_estimator(name).estimate(data)


@pytest.mark.parametrize("name", ["mips", "snmips"])
def test_mips_needs_behavior_and_embedding(name):
    with pytest.raises(ValueError, match="behavior_dist"):
        make_estimator(name).estimate(tiny())


def test_make_estimator_names_and_bad_values():
    assert [make_estimator(n).name for n in ALL_ESTIMATORS] == list(ALL_ESTIMATORS)
    with pytest.raises(ValueError, match="unknown estimator"):
        make_estimator("ipw")
    with pytest.raises(ValueError, match="tau"):
        SwitchDR(tau=-1.0)
    with pytest.raises(ValueError, match="lam"):
        DRos(lam=float("nan"))


@st.composite
def logs(draw):
    """A random valid log over a few actions and slots with its logging distribution and a reward model."""
    n, actions, slots = draw(st.integers(1, 12)), draw(st.integers(2, 5)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    behavior = rng.dirichlet(np.ones(actions), size=(n, slots)).transpose(0, 2, 1)
    target = rng.dirichlet(np.ones(actions), size=(n, slots)).transpose(0, 2, 1)
    position = rng.integers(0, slots, n)
    action = np.array([rng.choice(actions, p=behavior[i, :, position[i]]) for i in range(n)])
    return dict(
        reward=rng.integers(0, 2, n).astype(float), action=action, position=position,
        pscore=behavior[np.arange(n), action, position], action_dist=target,
        estimated_rewards=rng.random((n, actions, slots)), behavior_dist=behavior,
        action_embedding=rng.integers(0, 2, actions),
    )


@settings(max_examples=40, deadline=None)
@given(logs())
def test_invariants(fields):
    data = OffPolicyData(**fields)
    lo, hi = data.reward.min(), data.reward.max()
    for name in ("snips", "snmips"):
        assert lo - 1e-9 <= make_estimator(name).estimate(data) <= hi + 1e-9 or data.weights().sum() == 0
    # the logging policy evaluated on its own log: every weight is 1, IPS = SNIPS = the on-policy mean
    own = OffPolicyData(**{**fields, "action_dist": fields["behavior_dist"]})
    assert IPS().estimate(own) == pytest.approx(own.reward.mean())
    assert MIPS().estimate(own) == pytest.approx(own.reward.mean())
    # a perfect reward model for deterministic rewards makes DR equal DM
    exact = np.repeat(fields["reward"][:, None, None], fields["action_dist"].shape[1], axis=1)
    exact = np.repeat(exact, fields["action_dist"].shape[2], axis=2)
    perfect = OffPolicyData(**{**fields, "estimated_rewards": exact})
    assert DR().estimate(perfect) == pytest.approx(DirectMethod().estimate(perfect))
