"""Off-policy estimates of a candidate pipeline from the current pipeline's exploration log, with logged data only.

Each logged request is one slate round: the logged slate, its per-slot propensities (ε-greedy over the current
pipeline's pool of ``pool`` items) and its per-slot rewards. The candidate is greedy, so π(a at k | x) = 1 for its
item at slot k. The action axis of a round holds the logged items, then the candidate's items the log did not
show. The ε-greedy prefix probabilities come from the logged propensities themselves: slot k showed the greedy
item exactly when its propensity is 1 − ε + ε / pool (:func:`greedy_slots`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rankstack.ope.slate_estimators import ESTIMATORS
from rankstack.ope.slate_inputs import SlateLog, SlateTarget, slate_target
from rankstack.ope.slate_policies import uniform_cascade
from rankstack.ope.slate_result import SlateEstimate

# what the loop reports; PI needs a uniform logger and cascade-DR a prefix-level reward model, so neither runs here
LOOP_ESTIMATORS = ("independent IPS", "independent DR", "reward-interaction IPS", "standard IPS")


@dataclass(frozen=True)
class LoggedRounds:
    """What an estimator may read of the exploration log: slates [n, k] (item ids), per-slot propensities and
    rewards [n, k], and the exploration's ε and pool size (the logging policy's definition)."""

    items: np.ndarray
    propensity: np.ndarray
    reward: np.ndarray
    epsilon: float
    pool: int


def greedy_slots(rounds: LoggedRounds) -> np.ndarray:
    """[n, k] bool: slot k showed the current pipeline's greedy item (propensity 1 − ε + ε / pool, not ε / pool)."""
    explore = rounds.epsilon / rounds.pool
    if rounds.epsilon >= 1.0:
        return np.zeros(rounds.propensity.shape, dtype=bool)
    expected = np.where(rounds.propensity > explore * (1 + 1e-6), 1.0 - rounds.epsilon + explore, explore)
    bad = ~np.isclose(rounds.propensity, expected, rtol=1e-6, atol=1e-12)
    if bad.any():
        row, slot = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"logged propensity {rounds.propensity[row, slot]} at request {row}, slot {slot} is neither "
                         f"ε/pool = {explore:g} nor 1 − ε + ε/pool = {1 - rounds.epsilon + explore:g}: the log was "
                         f"not written by ε-greedy with ε = {rounds.epsilon:g} over {rounds.pool} items")
    return expected > explore


def logging_cascade(rounds: LoggedRounds) -> np.ndarray:
    """μ(a_1..a_k | x) of ε-greedy at the logged prefixes [n, k]: (1 − ε)·1[prefix greedy] + ε Π_{j<k} 1/(pool − j)."""
    n, k = rounds.items.shape
    match = np.cumprod(greedy_slots(rounds), axis=1).astype(bool)
    return (1.0 - rounds.epsilon) * match + rounds.epsilon * uniform_cascade(rounds.pool, k, n)


def action_axis(logged: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per round, the actions [n, 2k] (logged items, then the target's unlogged items, -1 padding) and the index of
    each target item on that axis [n, k]."""
    n, k = logged.shape
    actions = np.full((n, 2 * k), -1, np.int64)
    actions[:, :k] = logged
    where = np.full((n, k), -1, np.int64)
    hit = logged[:, None, :] == target[:, :, None]  # [n, target slot, logged slot]
    found = hit.any(axis=2)
    where[found] = np.argmax(hit, axis=2)[found]
    extra = np.cumsum(~found, axis=1) - 1 + k
    where[~found] = extra[~found]
    rows = np.broadcast_to(np.arange(n)[:, None], (n, k))
    actions[rows[~found], extra[~found]] = target[~found]
    return actions, where


def target_inputs(rounds: LoggedRounds, target: np.ndarray, q_actions: np.ndarray | None = None
                  ) -> tuple[SlateLog, SlateTarget]:
    """The slate log and the greedy candidate's slate target; ``q_actions`` [n, 2k, k] (a per-slot reward model
    on :func:`action_axis`) adds independent DR's inputs."""
    n, k = rounds.items.shape
    if target.shape != (n, k):
        raise ValueError(f"the candidate's slates must be [{n}, {k}] like the log's, got {list(target.shape)}")
    log = SlateLog(rewards=rounds.reward, positions=np.broadcast_to(np.arange(k), (n, k)).copy(),
                   pscore=rounds.propensity, pscore_cascade=logging_cascade(rounds))
    _, where = action_axis(rounds.items, target)
    dist = np.zeros((n, 2 * k, k))
    dist[np.arange(n)[:, None], where, np.arange(k)[None, :]] = 1.0
    cascade = np.cumprod(rounds.items == target, axis=1).astype(np.float64)
    return log, slate_target(log, action_dist=dist, cascade=cascade, reward_model=q_actions)


def estimate_all(log: SlateLog, target: SlateTarget, *, n_boot: int, seed: int, level: float = 0.95
                 ) -> dict[str, SlateEstimate]:
    """Every loop estimator the inputs allow, per request: the slate's summed reward, with bootstrap intervals
    (requests are resampled, so the slots of one request stay together)."""
    names = [n for n in LOOP_ESTIMATORS if n != "independent DR" or target.q_marginal is not None]
    return {name: ESTIMATORS[name](log, target, n_boot=n_boot, seed=seed, level=level) for name in names}


def slot_calibration(reward: np.ndarray, q_logged: np.ndarray) -> np.ndarray:
    """Per-slot factors c_k = Σ_i r_ik / Σ_i q̂_ik that put a slot-free model on each slot's logged scale [k]."""
    total = q_logged.sum(axis=0)
    return np.where(total > 0, reward.sum(axis=0) / np.where(total > 0, total, 1.0), 1.0)
