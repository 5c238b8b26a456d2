"""Top-K off-policy REINFORCE: the 10-item simulation of Chen et al. (WSDM 2019, Sec. 6.1), λ_K and capping."""

import numpy as np
import pytest

from rankstack.bandits.learning import BanditContext
from rankstack.bandits.reinforce_topk import ReinforceTopK

N_ITEMS = 10
REWARD = np.arange(1, N_ITEMS + 1) / N_ITEMS  # r(a_i) = i / 10: the last item is the best
BEHAVIOUR = (N_ITEMS + 1 - np.arange(1, N_ITEMS + 1)) / 55  # β prefers the worst items


@pytest.fixture(scope="module")
def log() -> tuple[np.ndarray, np.ndarray]:
    actions = np.random.default_rng(0).choice(N_ITEMS, 20_000, p=BEHAVIOUR)
    return np.ones((len(actions), 1)), actions


def _policy(log: tuple[np.ndarray, np.ndarray], propensity: bool = True, **kw: object) -> np.ndarray:
    x, a = log
    model = ReinforceTopK(1, N_ITEMS, epochs=10, batch=1000, **kw)  # type: ignore[arg-type]
    model.fit(x, np.eye(N_ITEMS), a, REWARD[a], BEHAVIOUR[a] if propensity else None)
    return model.model.probs(x[:1], np.eye(N_ITEMS))[0]


def test_without_correction_the_policy_follows_the_behaviour_policy(log: tuple[np.ndarray, np.ndarray]) -> None:
    pi = _policy(log, correction=False)
    # the stationary point is π ∝ β·r, which peaks at items 5 and 6, not at the best item
    assert np.argmax(pi) in (4, 5) and pi[-1] < 0.1
    np.testing.assert_allclose(pi, BEHAVIOUR * REWARD / (BEHAVIOUR * REWARD).sum(), atol=0.03)


@pytest.mark.parametrize("propensity", [True, False], ids=["logged beta", "learned beta"])
def test_with_the_correction_the_policy_moves_to_the_best_item(log: tuple[np.ndarray, np.ndarray],
                                                               propensity: bool) -> None:
    assert _policy(log, propensity, cap=1e4)[-1] > 0.9


def test_top_k_spreads_the_policy_over_the_top_items(log: tuple[np.ndarray, np.ndarray]) -> None:
    one, four = _policy(log, cap=1e4), _policy(log, cap=1e4, top_k=4)
    assert four[-1] < 0.5 < one[-1]
    assert four[-4:].sum() > 0.75 and np.argmax(four) == N_ITEMS - 1


def test_lambda_k_and_capping_follow_their_formulas() -> None:
    model = ReinforceTopK(1, 2, top_k=3, cap=2.0)
    pi, beta = np.array([0.1, 0.5]), np.array([0.2, 0.1])
    np.testing.assert_allclose(model.weights(pi, beta), [0.5 * 3 * 0.9**2, 2.0 * 3 * 0.5**2])
    assert (ReinforceTopK(1, 2, correction=False).weights(pi, beta) == 1).all()


def test_choose_serves_softmax_slates_with_exact_propensities() -> None:
    model = ReinforceTopK(1, 4)
    model.model.weights[:] = [[2.0, 1.0, 0.0, -1.0]]
    ctx = BanditContext(np.ones((3, 1)), np.eye(4))
    pool = np.broadcast_to(np.arange(4), (3, 4))
    slates = model.choose(pool, np.zeros((3, 4)), 2, np.random.default_rng(0), context=ctx)
    assert (slates.items >= 0).all() and ((slates.propensity > 0) & (slates.propensity <= 1)).all()
