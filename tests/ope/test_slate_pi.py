"""Pseudo-inverse weights: the closed forms equal q_πᵀ Γ_μ† 1_s computed with the pseudo-inverse itself."""

from __future__ import annotations

import numpy as np
import pytest
from slate_worlds import make_world

from rankstack.errors import DataValidationError
from rankstack.ope.slate_inputs import SlateLog, SupportWarning
from rankstack.ope.slate_pi import co_occurrence, gamma_weights, is_uniform_log, product_weights, uniform_weights


@pytest.mark.parametrize(("m", "k"), [(3, 1), (3, 2), (4, 2), (5, 3), (3, 3), (4, 4)])
def test_uniform_closed_form_equals_the_pseudo_inverse(m: int, k: int) -> None:
    world = make_world(m, k, "additive", logging="uniform", seed=m + k)
    log = world.log()
    dist = np.broadcast_to(world.marginals(world.pi), (len(world.slates), m, k))
    pinv = gamma_weights(log, dist, co_occurrence(world.slates, world.mu, m))
    assert np.allclose(uniform_weights(log, world.target()), pinv, atol=1e-9)


@pytest.mark.parametrize(("m", "k"), [(2, 2), (3, 2), (2, 3)])
def test_product_closed_form_equals_the_pseudo_inverse(m: int, k: int) -> None:
    world = make_world(m, k, "additive", logging="product", repeats=True, seed=m * k)
    log = world.log()
    dist = np.broadcast_to(world.marginals(world.pi), (len(world.slates), m, k))
    pinv = gamma_weights(log, dist, co_occurrence(world.slates, world.mu, m))
    assert np.allclose(product_weights(log, world.target()), pinv, atol=1e-9)


def test_one_slot_pi_is_plain_ips() -> None:
    world = make_world(5, 1, "additive", logging="uniform", seed=1)
    target = world.target()
    assert np.allclose(uniform_weights(world.log(), target), 5 * target.pscore[:, 0])


def test_co_occurrence_of_the_uniform_logger() -> None:
    """Γ[(k,a),(k,a)] = 1/m, Γ[(k,a),(l,b)] = 1/(m(m−1)) for k ≠ l and a ≠ b, 0 otherwise."""
    world = make_world(3, 2, "additive", logging="uniform")
    gamma = co_occurrence(world.slates, world.mu, 3)
    assert np.allclose(np.diag(gamma), 1 / 3)
    assert gamma[0 * 3 + 0, 1 * 3 + 1] == pytest.approx(1 / 6)
    assert gamma[0 * 3 + 0, 1 * 3 + 0] == 0.0 and gamma[0, 1] == 0.0


def test_a_policy_out_of_the_loggers_reach_is_warned() -> None:
    """μ only ever shows slates (0, 1) and (1, 0); π shows action 2: PI cannot see it."""
    slates = np.array([[0, 1], [1, 0]])
    gamma = co_occurrence(slates, np.array([0.5, 0.5]), 3)
    log = SlateLog(rewards=np.ones((2, 2)), positions=slates, pscore=np.full((2, 2), 0.5))
    dist = np.zeros((2, 3, 2))
    dist[:, 2, :] = 1.0
    with pytest.warns(SupportWarning, match="outside the logging policy's reach in 2 rounds"):
        gamma_weights(log, dist, gamma)


def test_gamma_shape_and_action_space_are_checked() -> None:
    log = SlateLog(rewards=np.ones((1, 2)), positions=np.array([[0, 2]]), pscore=np.full((1, 2), 0.25))
    with pytest.raises(ValueError, match="gamma must be \\[6, 6\\]"):
        gamma_weights(log, np.full((1, 3, 2), 1 / 3), np.eye(5))
    with pytest.raises(DataValidationError, match="never considers"):
        gamma_weights(log, np.full((1, 2, 2), 1 / 2), np.eye(4))
    with pytest.raises(DataValidationError, match="expected shape \\[1, any, 2\\]"):
        gamma_weights(log, np.full((2, 3, 2), 1 / 3), np.eye(6))
    with pytest.raises(DataValidationError, match=r"sum to 0\.6"):
        gamma_weights(log, np.full((1, 3, 2), 0.2), np.eye(6))


def test_uniform_weights_refuse_a_log_that_is_not_uniform() -> None:
    log = SlateLog(rewards=np.ones((2, 2)), positions=np.array([[0, 1], [1, 0]]),
                   pscore=np.array([[0.25, 0.25], [0.25, 0.2]]))
    assert not is_uniform_log(log)
    with pytest.raises(ValueError, match=r"round 1: pscore .* is not a uniform logger's 1/m"):
        uniform_weights(log, make_world(4, 2, "additive").target())


def test_the_product_form_is_biased_under_a_uniform_logger_without_repeats() -> None:
    """Drawing without replacement couples the slots: Σ_k π/μ − (K − 1) misses V(π) there; the uniform form does not."""
    world = make_world(4, 3, "additive", logging="uniform", seed=29)
    log, target = world.log(), world.target()
    rewards = log.rewards.sum(axis=1)
    assert world.expectation(uniform_weights(log, target) * rewards) == pytest.approx(world.truth(), rel=1e-10)
    assert abs(world.expectation(product_weights(log, target) * rewards) - world.truth()) > 1e-3
