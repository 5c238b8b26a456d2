"""Slate estimators: exact expectations over enumerated slate spaces (unbiased under each one's assumption, biased
outside it), a tiny log computed by hand, and the bootstrap interval and diagnostics they report."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slate_worlds import SlateWorld, make_world

from rankstack.ope.slate_estimators import (
    ESTIMATORS,
    cascade_dr,
    evaluate_slates,
    independent_dr,
    independent_ips,
    pseudoinverse,
    pseudoinverse_general,
    reward_interaction_ips,
    round_values,
    standard_ips,
)
from rankstack.ope.slate_inputs import SlateLog, SlateTarget, slate_target
from rankstack.ope.slate_pi import co_occurrence, gamma_weights

SIZES = [(3, 2), (4, 3)]


def random_q(world: SlateWorld, seed: int) -> dict[tuple[int, ...], float]:
    """An arbitrary reward model: a random Q̂ for every prefix."""
    rng = np.random.default_rng(seed)
    return {tuple(int(a) for a in s[: k + 1]): float(rng.normal())
            for s in world.slates for k in range(world.slots)}


def expected(name: str, world: SlateWorld, q_model: dict[tuple[int, ...], float] | None = None) -> float:
    """E_μ of estimator ``name`` on one round, exactly (Σ over every slate μ can log)."""
    values, _ = round_values(name, world.log(), world.target(q_model))
    return world.expectation(values)


@pytest.mark.parametrize(("m", "k"), SIZES)
@pytest.mark.parametrize(("name", "reward"), [
    ("standard IPS", "additive"), ("standard IPS", "cascade"), ("standard IPS", "general"),
    ("reward-interaction IPS", "additive"), ("reward-interaction IPS", "cascade"),
    ("independent IPS", "additive"),
])
def test_unbiased_under_its_assumption(name: str, reward: str, m: int, k: int) -> None:
    world = make_world(m, k, reward, seed=m * 10 + k)
    assert expected(name, world) == pytest.approx(world.truth(), rel=1e-10, abs=1e-12)


@pytest.mark.parametrize(("m", "k"), SIZES)
@pytest.mark.parametrize("model", ["zero", "random"])
def test_independent_dr_is_unbiased_for_any_per_slot_model(m: int, k: int, model: str) -> None:
    """Additive slot rewards: E_μ[independent DR] = V(π) whatever the per-slot model Q̂_k(a)."""
    world = make_world(m, k, "additive", seed=m * 7 + k)
    log = world.log()
    n = len(world.slates)
    q = np.zeros((m, k)) if model == "zero" else np.random.default_rng(m + k).normal(size=(m, k))
    dist = np.broadcast_to(world.marginals(world.pi), (n, m, k))
    target = slate_target(log, action_dist=dist, reward_model=np.broadcast_to(q, (n, m, k)))
    values, _ = round_values("independent DR", log, target)
    assert world.expectation(values) == pytest.approx(world.truth(), rel=1e-10, abs=1e-12)
    if model == "zero":  # Q̂ = 0 is independent IPS
        assert values == pytest.approx(round_values("independent IPS", log, target)[0])


def test_independent_dr_by_hand() -> None:
    """Two rounds, two slots over two actions; π shows action 1 then 0 for sure."""
    log = SlateLog(rewards=np.array([[1.0, 0.0], [0.0, 1.0]]), positions=np.array([[1, 0], [0, 1]]),
                   pscore=np.array([[0.5, 0.5], [0.5, 0.25]]))
    dist = np.zeros((2, 2, 2))
    dist[:, 1, 0] = dist[:, 0, 1] = 1.0
    q = np.broadcast_to(np.array([[0.2, 0.1], [0.4, 0.3]]), (2, 2, 2))  # Q̂_k(a): rows a, columns k
    target = slate_target(log, action_dist=dist, reward_model=q)
    # round 0: baseline 0.4 + 0.1; weights 2, 2 on the logged (1 at 0), (0 at 1): 2·(1 − 0.4) + 2·(0 − 0.1)
    # round 1: baseline 0.5; the logged (0 at 0), (1 at 1) are not π's: weights 0
    assert independent_dr(log, target).value == pytest.approx(((0.5 + 1.2 - 0.2) + 0.5) / 2)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([(2, 1), (3, 2), (4, 2), (3, 3)]))
def test_additive_worlds_are_estimated_without_bias_by_all(seed: int, size: tuple[int, int]) -> None:
    """Any seed: μ, π and rewards drawn at random; every estimator's exact expectation is V(π) (PI under a uniform
    logger, the others under any logger with full support)."""
    m, k = size
    world = make_world(m, k, "additive", seed=seed)
    q = random_q(world, seed)
    for name in ("standard IPS", "independent IPS", "reward-interaction IPS", "cascade-DR"):
        assert expected(name, world, q) == pytest.approx(world.truth(), rel=1e-8, abs=1e-10), name
    uniform = make_world(m, k, "additive", logging="uniform", seed=seed)
    assert expected("PI", uniform) == pytest.approx(uniform.truth(), rel=1e-8, abs=1e-10)


@pytest.mark.parametrize(("m", "k"), SIZES)
@pytest.mark.parametrize("reward", ["additive", "cascade"])
def test_cascade_dr_is_unbiased_for_any_reward_model(reward: str, m: int, k: int) -> None:
    world = make_world(m, k, reward, seed=3)
    for seed in range(3):
        assert expected("cascade-DR", world, random_q(world, seed)) == pytest.approx(world.truth(), rel=1e-10)


@pytest.mark.parametrize(("m", "k"), SIZES)
def test_cascade_dr_with_the_true_q_has_no_variance(m: int, k: int) -> None:
    """With Q̂ = Q and rewards at their expectation, every round's value telescopes to V(π)."""
    world = make_world(m, k, "cascade", seed=5)
    values, _ = round_values("cascade-DR", world.log(), world.target(world.true_q()))
    supported = world.mu > 0
    assert np.allclose(values[supported], world.truth(), rtol=1e-10)
    ips, _ = round_values("reward-interaction IPS", world.log(), world.target())
    assert np.var(ips) > 1e-3


def test_cascade_dr_with_a_zero_model_is_reward_interaction_ips() -> None:
    world = make_world(4, 3, "cascade", seed=2)
    dr, _ = round_values("cascade-DR", world.log(), world.target({}))
    ips, _ = round_values("reward-interaction IPS", world.log(), world.target())
    assert np.allclose(dr, ips)


@pytest.mark.parametrize(("m", "k"), [*SIZES, (4, 4), (5, 1)])
def test_pseudoinverse_is_unbiased_for_additive_rewards_under_any_logger(m: int, k: int) -> None:
    world = make_world(m, k, "additive", seed=7)
    log = world.log()
    dist = np.broadcast_to(world.marginals(world.pi), (len(world.slates), m, k))
    w = gamma_weights(log, dist, co_occurrence(world.slates, world.mu, m))
    assert world.expectation(w * log.rewards.sum(axis=1)) == pytest.approx(world.truth(), rel=1e-9)


@pytest.mark.parametrize(("m", "k"), [*SIZES, (4, 4)])
def test_pseudoinverse_uniform_closed_form_is_unbiased(m: int, k: int) -> None:
    world = make_world(m, k, "additive", logging="uniform", seed=11)
    assert expected("PI", world) == pytest.approx(world.truth(), rel=1e-10)


@pytest.mark.parametrize(("m", "k"), [(3, 2), (3, 3)])
def test_pseudoinverse_product_closed_form_is_unbiased(m: int, k: int) -> None:
    world = make_world(m, k, "additive", logging="product", repeats=True, seed=13)
    values, _ = round_values("PI", world.log(), world.target(), logging="product")
    assert world.expectation(values) == pytest.approx(world.truth(), rel=1e-10)


@pytest.mark.parametrize(("name", "reward", "logging"), [
    ("independent IPS", "cascade", "random"),
    ("reward-interaction IPS", "general", "random"),
    ("cascade-DR", "general", "random"),
    ("PI", "cascade", "uniform"),
])
def test_biased_when_its_assumption_fails(name: str, reward: str, logging: str) -> None:
    """The exact tests above can fail: outside its assumption an estimator is off by a visible amount."""
    world = make_world(4, 3, reward, logging=logging, seed=17)
    q = random_q(world, 0) if name == "cascade-DR" else None
    assert abs(expected(name, world, q) - world.truth()) > 1e-3


def hand_log() -> tuple[SlateLog, SlateTarget]:
    """Two rounds, 2 slots, 3 actions, a uniform logger (μ per slot 1/3, prefixes 1/3 and 1/6)."""
    log = SlateLog(rewards=np.array([[1.0, 0.0], [0.5, 1.0]]), positions=np.array([[0, 1], [2, 0]]),
                   pscore=np.full((2, 2), 1 / 3), pscore_cascade=np.array([[1 / 3, 1 / 6], [1 / 3, 1 / 6]]))
    dist = np.broadcast_to(np.array([[0.5, 0.2], [0.25, 0.6], [0.25, 0.2]]), (2, 3, 2))
    target = slate_target(log, action_dist=dist, cascade=np.array([[0.5, 0.3], [0.25, 0.05]]))
    return log, target


def test_hand_computed_values() -> None:
    log, target = hand_log()
    # standard: w = π(s)/μ(s) = 0.3·6, 0.05·6; times the slate reward 1 and 1.5
    assert standard_ips(log, target).value == pytest.approx((1.8 * 1 + 0.3 * 1.5) / 2)
    # independent: Σ_k 3·π(a_k at k)·r_k
    assert independent_ips(log, target).value == pytest.approx((3 * 0.5 * 1 + 0 + 3 * 0.25 * 0.5 + 3 * 0.2 * 1) / 2)
    # reward interaction: prefix ratios 1.5, 1.8 and 0.75, 0.3
    assert reward_interaction_ips(log, target).value == pytest.approx((1.5 * 1 + 0 + 0.75 * 0.5 + 0.3 * 1) / 2)
    # PI, uniform m = 3, K = 2: w = 2·Σq + (2·Σp − 3); inclusion p = 0.7, 0.85, 0.45 for actions 0, 1, 2
    w0 = 2 * (0.5 + 0.6) + 2 * (0.7 + 0.85) - 3
    w1 = 2 * (0.25 + 0.2) + 2 * (0.45 + 0.7) - 3
    assert (w0, w1) == pytest.approx((2.3, 0.2))
    assert pseudoinverse(log, target).value == pytest.approx((w0 * 1 + w1 * 1.5) / 2)
    # cascade-DR with Q̂ at the logged prefixes and its π-expectation given the logged prefix
    with_model = SlateTarget(pscore=target.pscore, cascade=target.cascade, q_logged=np.array([[0.4, 0.1], [0.3, 0.2]]),
                             q_baseline=np.array([[0.5, 0.2], [0.6, 0.1]]))
    r0 = 1.5 * (1 - 0.4) + 1 * 0.5 + 1.8 * (0 - 0.1) + 1.5 * 0.2
    r1 = 0.75 * (0.5 - 0.3) + 1 * 0.6 + 0.3 * (1 - 0.2) + 0.75 * 0.1
    assert cascade_dr(log, with_model).value == pytest.approx((r0 + r1) / 2)


def test_every_estimator_reports_an_interval_and_diagnostics() -> None:
    world = make_world(4, 2, "additive", logging="uniform", seed=19)
    log, target = world.log(), world.target(random_q(world, 1))
    found = evaluate_slates(log, target, n_boot=200, seed=3)
    assert set(found) == set(ESTIMATORS)
    for name, est in found.items():
        assert est.estimator == name
        assert est.lower <= est.value <= est.upper, name
        assert est.n_rounds == len(world.slates) and est.level == 0.95
        assert est.max_weight > 0 and 0 < est.ess <= est.n_rounds
        again = ESTIMATORS[name](log, target, n_boot=200, seed=3)  # seeded: the same interval again
        assert (again.value, again.lower, again.upper, again.std_error) == (est.value, est.lower, est.upper,
                                                                            est.std_error)
    assert found["standard IPS"].zero_weight_share == pytest.approx(float(np.mean(world.pi == 0)))


def test_evaluate_slates_runs_only_what_its_inputs_allow() -> None:
    log, target = hand_log()
    assert set(evaluate_slates(log, target, n_boot=50)) == {"standard IPS", "independent IPS",
                                                             "reward-interaction IPS", "PI"}
    non_uniform = SlateLog(rewards=log.rewards, positions=log.positions, pscore=np.array([[0.5, 0.2], [0.3, 0.3]]))
    only = evaluate_slates(non_uniform, slate_target(non_uniform, action_dist=np.full((2, 3, 2), 1 / 3)), n_boot=50)
    assert set(only) == {"independent IPS"}


def test_a_missing_input_is_named() -> None:
    log, target = hand_log()
    with pytest.raises(ValueError, match="cascade-DR needs the evaluated policy's q_logged"):
        cascade_dr(log, target)
    bare = SlateLog(rewards=log.rewards, positions=log.positions, pscore=log.pscore)
    with pytest.raises(ValueError, match="prefix probabilities: pass SlateLog\\(pscore_cascade"):
        standard_ips(bare, target)
    with pytest.raises(ValueError, match="unknown slate estimator 'DM'"):
        round_values("DM", log, target)


def test_pseudoinverse_general_matches_the_closed_form_on_a_uniform_log() -> None:
    world = make_world(4, 2, "additive", logging="uniform", seed=23)
    log = world.log()
    dist = np.broadcast_to(world.marginals(world.pi), (len(world.slates), 4, 2))
    general = pseudoinverse_general(log, dist, co_occurrence(world.slates, world.mu, 4), n_boot=100)
    assert general.value == pytest.approx(pseudoinverse(log, world.target(), n_boot=100).value, rel=1e-9)
