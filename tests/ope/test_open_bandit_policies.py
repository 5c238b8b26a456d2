"""The Open Bandit logging policies: uniform, and Bernoulli TS by Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest

from rankstack.ope.open_bandit_policies import (
    ALL_CAMPAIGN_ALPHA,
    ALL_CAMPAIGN_BETA,
    bernoulli_ts_action_dist,
    uniform_action_dist,
)


def test_uniform():
    dist = uniform_action_dist(80, 3)
    assert dist.shape == (1, 80, 3) and np.allclose(dist.sum(axis=1), 1) and dist[0, 0, 0] == 1 / 80


def test_bts_prior_shape():
    assert ALL_CAMPAIGN_ALPHA.shape == ALL_CAMPAIGN_BETA.shape == (80,)


def test_bts_ranks_by_posterior_draws():
    # a sure winner, a sure runner-up, then a coin flip between two identical items for the last slot
    alpha = np.array([1e6, 1.0, 5e5, 5e5])
    beta = np.array([1.0, 1e6, 5e5, 5e5])
    dist = bernoulli_ts_action_dist(alpha, beta, 2, n_sim=4000, seed=0)[0]
    assert dist[0, 0] == 1.0 and dist[1].sum() == 0.0
    assert dist[2, 1] == pytest.approx(0.5, abs=0.05) and dist[2, 1] + dist[3, 1] == pytest.approx(1.0)
    assert np.array_equal(dist, bernoulli_ts_action_dist(alpha, beta, 2, n_sim=4000, seed=0)[0])


@pytest.mark.parametrize(("alpha", "beta", "slots", "message"), [
    (np.ones(3), np.ones(2), 1, "one length"),
    (np.ones(3), np.ones(3), 4, "n_slots"),
])
def test_bts_bad_arguments(alpha, beta, slots, message):
    with pytest.raises(ValueError, match=message):
        bernoulli_ts_action_dist(alpha, beta, slots)
